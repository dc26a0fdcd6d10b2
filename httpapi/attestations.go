package httpapi

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
)

func envelopeURL(d cas.Digest) string { return "/attestations/" + d.String() }

// keyEntry is a registered key ready to verify signatures.
type keyEntry struct {
	ledger.RegisteredKey
	verifier *attest.Verifier
	sshID    string // the keyid go-securesystemslib derives (SHA256:…)
}

// keys returns every registered key with a verifier. Keys never change
// once registered (a revocation is a new event), so verifiers are cached;
// the list itself is reused while the log has not grown.
func (s *Server) keys() ([]keyEntry, error) {
	size := s.cfg.Ledger.Size()
	if c := s.keyList.Load(); c != nil && c.size == size {
		return c.keys, nil
	}
	reg, err := s.cfg.Ledger.Keys()
	if err != nil {
		return nil, err
	}
	out := make([]keyEntry, 0, len(reg))
	for _, k := range reg {
		if v, ok := s.verifiers.Load(k.KeyID); ok {
			e := v.(keyEntry)
			e.RegisteredKey = k
			out = append(out, e)
			continue
		}
		pub, err := x509.ParsePKIXPublicKey(k.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("registered key %s: %w", k.KeyID, err)
		}
		v, err := attest.NewVerifier(pub)
		if err != nil {
			return nil, fmt.Errorf("registered key %s: %w", k.KeyID, err)
		}
		sshID, _ := dsse.SHA256KeyID(pub)
		e := keyEntry{k, v, sshID}
		s.verifiers.Store(k.KeyID, e)
		out = append(out, e)
	}
	// Keys() read a snapshot at least as new as size: keyed by size, the
	// list can only be fresher than its key says, never staler.
	s.keyList.Store(&keyListCache{size: size, keys: out})
	return out, nil
}

// keyListCache is the registered keys as of one log size.
type keyListCache struct {
	size uint64
	keys []keyEntry
}

// keyName returns a key's registered name and current standing.
func (s *Server) keyName(id cas.Digest) (string, ledger.KeyStatus) {
	st, err := s.cfg.Ledger.KeyState(id, s.cfg.Ledger.Size())
	if err != nil {
		return "", ledger.KeyStatusUnknown
	}
	return st.Name, st.Status
}

// submitAttestation verifies a DSSE envelope against the registered keys,
// checks it against the log, stores and logs it. The signature of a
// registered key is the submitter's authentication: no account is needed.
func (s *Server) submitAttestation(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		s.fail(w, r, &Error{Status: http.StatusUnsupportedMediaType,
			Msg: fmt.Sprintf("Content-Type %q: send the DSSE envelope or Sigstore bundle as application/json", r.Header.Get("Content-Type"))})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, attest.MaxEnvelopeSize))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		s.fail(w, r, &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("envelope larger than %d bytes", attest.MaxEnvelopeSize)})
		return
	}
	if err != nil {
		s.fail(w, r, badRequest("reading the envelope: %v", err))
		return
	}
	ev, canonical, err := s.verifyAttestation(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	var rc ledger.Receipt
	if idx, err := s.cfg.Ledger.AttestationIndex(ev.Envelope); err == nil {
		// Logged before (perhaps re-encoded, perhaps before its key was
		// revoked): answer with the existing record.
		rc = ledger.Receipt{Index: idx, Checkpoint: s.cfg.Ledger.Checkpoint(), Existing: true}
		data, err := s.cfg.Ledger.EventBytes(idx)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		rc.LeafHash = leafHash(data)
	} else {
		if _, err := s.cfg.Ledger.Store().PutBytes(ctx, canonical); err != nil {
			s.fail(w, r, err)
			return
		}
		if rc, err = s.cfg.Ledger.Append(ctx, ev); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	p, err := s.cfg.Ledger.Tree().InclusionProof(rc.Index, rc.Checkpoint.Size)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	logged := ev
	if rc.Existing {
		e, err := s.cfg.Ledger.Event(rc.Index)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		a, ok := e.(*ledger.AttestationRecorded)
		if !ok {
			s.fail(w, r, fmt.Errorf("%w: log index %d should hold an attestation, holds a %s", ledger.ErrCorrupt, rc.Index, e.Kind()))
			return
		}
		logged = a
	}
	info, err := s.attestationInfo(ledger.Entry[*ledger.AttestationRecorded]{Index: rc.Index, Event: logged})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusCreated
	if rc.Existing {
		status = http.StatusOK
	}
	writeJSON(w, status, AttestationReceipt{AttestationInfo: info, Existing: rc.Existing, LeafHash: rc.LeafHash[:],
		Checkpoint: string(rc.Checkpoint.Note), Inclusion: p})
}

// verifyAttestation turns an envelope into the event that logs it and the
// canonical envelope bytes to store (see attest.Verified.Canonical), or
// says why it cannot be logged. A resubmission of a logged envelope (in any
// encoding) yields the logged event's envelope digest, whatever its key's
// standing now.
func (s *Server) verifyAttestation(body []byte) (*ledger.AttestationRecorded, []byte, error) {
	if attest.IsLink(body) {
		return s.verifyLink(body)
	}
	ev, v, err := s.verifyEnvelope(body)
	if err != nil {
		return nil, nil, err
	}
	return ev, v.Canonical(), nil
}

func (s *Server) verifyEnvelope(body []byte) (*ledger.AttestationRecorded, *attest.Verified, error) {
	if attest.IsBundle(body) {
		// A Sigstore bundle (cosign attest-blob --bundle): its envelope is
		// what is verified and logged.
		b, err := attest.EnvelopeOfBundle(body)
		if err != nil {
			return nil, nil, badRequest("%v", err)
		}
		body = b
	}
	env, err := attest.ParseEnvelope(body)
	if err != nil {
		return nil, nil, badRequest("%v", err)
	}
	if env.PayloadType != attest.PayloadType {
		return nil, nil, &Error{Status: http.StatusUnsupportedMediaType,
			Msg: fmt.Sprintf("the envelope's payloadType is %.100q; only in-toto statements (%s) are accepted", env.PayloadType, attest.PayloadType)}
	}
	keys, active, revoked, err := s.keySets()
	if err != nil {
		return nil, nil, err
	}
	v, err := attest.VerifyAny(body, active)
	if errors.Is(err, attest.ErrBadSignature) && len(revoked) > 0 {
		v, err = attest.VerifyAny(body, revoked)
	}
	if errors.Is(err, attest.ErrBadSignature) {
		// Tell a signature that fails for a key it names apart from a key
		// nobody registered, as far as the unsigned keyid hints allow.
		for _, sig := range env.Signatures {
			for _, k := range keys {
				if sig.KeyID != "" && (sig.KeyID == k.KeyID.String() || sig.KeyID == k.sshID) {
					return nil, nil, &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf(
						"bad signature: the envelope names key %s (%q) but its signature does not verify with it; the envelope was altered after signing or signed with another key", k.KeyID, k.Name)}
				}
			}
		}
		return nil, nil, &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf(
			"unknown key: no registered rebuilder key (%d registered) verifies the envelope's signature; register the rebuilder's public key with 'ledger key add', or, if it is registered, the envelope was altered after signing", len(keys))}
	}
	if err != nil {
		var ve *attest.VerifyError
		if errors.As(err, &ve) {
			return nil, nil, badRequest("%s: %s", ve.Err, ve.Reason)
		}
		return nil, nil, err
	}
	id := v.KeyID
	if ev, err := s.loggedAttestation(cas.Sum(v.Canonical())); err == nil || !errors.Is(err, ledger.ErrNotFound) {
		return ev, v, err
	}
	if err := revokedKey(keys, id); err != nil {
		return nil, nil, err
	}
	rb, err := v.Rebuild()
	if err != nil {
		return nil, nil, &Error{Status: http.StatusUnprocessableEntity, Msg: "the statement is not a rebuild attestation: " + strings.TrimPrefix(err.Error(), "attest: ")}
	}
	b, err := s.cfg.Ledger.Build(rb.Build)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, nil, &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("the attested build %s is not recorded in this ledger", rb.Build)}
	} else if err != nil {
		return nil, nil, err
	}
	if err := ledger.CheckRebuildMatches(rb, b.Event, b.Index); err != nil {
		return nil, nil, err // the core checks it again when logging
	}
	ev := &ledger.AttestationRecorded{Envelope: cas.Sum(v.Canonical()), KeyID: id, PredicateType: v.PredicateType,
		Build: &b.Event.UUID, Verdict: ledger.Verdict(rb.Verdict)}
	for _, sub := range v.Subjects {
		ev.Subjects = append(ev.Subjects, ledger.Subject{Name: sub.Name, SHA256: sub.SHA256})
	}
	return ev, v, nil
}

// loggedAttestation returns the attestation event logging an envelope.
func (s *Server) loggedAttestation(envelope cas.Digest) (*ledger.AttestationRecorded, error) {
	idx, err := s.cfg.Ledger.AttestationIndex(envelope)
	if err != nil {
		return nil, err
	}
	e, err := s.cfg.Ledger.Event(idx)
	if err != nil {
		return nil, err
	}
	a, ok := e.(*ledger.AttestationRecorded)
	if !ok {
		return nil, fmt.Errorf("%w: log index %d should hold an attestation, holds a %s", ledger.ErrCorrupt, idx, e.Kind())
	}
	return a, nil
}

// keySets returns the registered keys and their verifiers, active keys
// apart from revoked ones: an attestation that a revoked key and an active
// key both signed is judged by the active key's signature, and a revoked
// key is tried only when no active one verifies, to say so (or to
// recognise an attestation logged before the revocation).
func (s *Server) keySets() (keys []keyEntry, active, revoked []*attest.Verifier, err error) {
	if keys, err = s.keys(); err != nil {
		return nil, nil, nil, err
	}
	if len(keys) == 0 {
		return nil, nil, nil, &Error{Status: http.StatusForbidden, Msg: "no rebuilder keys are registered with this ledger; an administrator must add the signing key (ledger key add NAME KEY.pub)"}
	}
	for _, k := range keys {
		if k.Status == ledger.KeyStatusActive {
			active = append(active, k.verifier)
		} else {
			revoked = append(revoked, k.verifier)
		}
	}
	return keys, active, revoked, nil
}

// revokedKey refuses a new attestation signed with a revoked key.
func revokedKey(keys []keyEntry, id cas.Digest) error {
	for _, k := range keys {
		if k.KeyID == id && k.Status == ledger.KeyStatusRevoked {
			return &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf(
				"key %s (%q) was revoked at log index %d; attestations signed with it are no longer accepted", id, k.Name, k.RevokedAt)}
		}
	}
	return nil
}

// verifyLink is verifyAttestation for an in-toto rebuild link (see
// attest.VerifyLinkAny and ledger.LinkAttestation).
func (s *Server) verifyLink(body []byte) (*ledger.AttestationRecorded, []byte, error) {
	keys, active, revoked, err := s.keySets()
	if err != nil {
		return nil, nil, err
	}
	v, err := attest.VerifyLinkAny(body, active)
	if errors.Is(err, attest.ErrBadSignature) && len(revoked) > 0 {
		v, err = attest.VerifyLinkAny(body, revoked)
	}
	if errors.Is(err, attest.ErrBadSignature) {
		// Tell a signature that fails for a key it names apart from a key
		// nobody registered, as far as in-toto key ids allow.
		mb, _ := attest.ParseLink(body)
		for _, k := range keys {
			ik, err := attest.InTotoKey(k.verifier.PublicKey())
			if err != nil || mb == nil {
				continue
			}
			if _, err := mb.GetSignatureForKeyID(ik.KeyID); err == nil {
				return nil, nil, &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf(
					"bad signature: the link names key %s (%q, in-toto key id %s) but its signature does not verify with it; the link was altered after signing or signed with another key", k.KeyID, k.Name, ik.KeyID)}
			}
		}
		return nil, nil, &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf(
			"unknown key: no registered rebuilder key (%d registered) verifies the link's signature; register the rebuilder's public key with 'ledger key add', or, if it is registered, the link was altered after signing", len(keys))}
	}
	if err != nil {
		var ve *attest.VerifyError
		if errors.As(err, &ve) {
			return nil, nil, badRequest("%s: %s", ve.Err, ve.Reason)
		}
		return nil, nil, err
	}
	canonical := v.Canonical()
	if ev, err := s.loggedAttestation(cas.Sum(canonical)); err == nil || !errors.Is(err, ledger.ErrNotFound) {
		return ev, canonical, err
	}
	if err := revokedKey(keys, v.KeyID); err != nil {
		return nil, nil, err
	}
	b, err := s.cfg.Ledger.Build(v.Build)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, nil, &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("the linked build %s is not recorded in this ledger", v.Build)}
	} else if err != nil {
		return nil, nil, err
	}
	ev, err := ledger.LinkAttestation(v, b.Event)
	if err != nil {
		return nil, nil, err
	}
	return ev, canonical, nil
}
