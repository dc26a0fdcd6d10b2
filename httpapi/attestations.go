package httpapi

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
)

// AttestationInfo summarises one logged attestation.
type AttestationInfo struct {
	LogIndex      uint64           `json:"log_index"`
	Envelope      cas.Digest       `json:"envelope"`
	KeyID         cas.Digest       `json:"key_id"`
	KeyName       string           `json:"key_name"`
	KeyStatus     ledger.KeyStatus `json:"key_status"` // now, not when it was logged
	PredicateType string           `json:"predicate_type"`
	Build         *uuid.UUID       `json:"build"`
	Verdict       ledger.Verdict   `json:"verdict"`
	Subjects      []ledger.Subject `json:"subjects"`
	// Differs lists the artifacts of the attested build for which the
	// rebuilder got other bytes than recorded (a "differs" verdict).
	Differs []SubjectDiff `json:"differs,omitempty"`
}

// SubjectDiff is one artifact a rebuilder could not reproduce.
type SubjectDiff struct {
	Name     string     `json:"name"`
	Recorded cas.Digest `json:"recorded"`
	Got      cas.Digest `json:"got"`
}

// AttestationReceipt is the answer to POST /attestations: where the
// attestation is in the log and the proof that it is there.
type AttestationReceipt struct {
	AttestationInfo
	Existing   bool     `json:"existing"` // the same envelope was logged before
	LeafHash   []byte   `json:"leaf_hash"`
	Checkpoint string   `json:"checkpoint"`
	Inclusion  [][]byte `json:"inclusion_proof"`
}

// AttestationList is the answer to GET /attestations: every attestation of
// a digest (or of a build), each with its inclusion proof in Checkpoint.
type AttestationList struct {
	SHA256     *cas.Digest `json:"sha256,omitempty"`
	Build      *uuid.UUID  `json:"build,omitempty"`
	Checkpoint string      `json:"checkpoint"`
	// Attestations name the digest as a subject (or attest the build).
	Attestations []ProvenAttestation `json:"attestations"`
	// Disputes are "differs" attestations of builds that recorded the
	// digest: the rebuilder got other bytes.
	Disputes []ProvenAttestation `json:"disputes"`
}

// ProvenAttestation is an attestation with its inclusion proof.
type ProvenAttestation struct {
	AttestationInfo
	LeafHash  []byte   `json:"leaf_hash"`
	Inclusion [][]byte `json:"inclusion_proof"`
	// URL serves the envelope's exact bytes.
	URL string `json:"envelope_url"`
}

func envelopeURL(d cas.Digest) string { return "/attestations/" + d.String() }

// keyEntry is a registered key ready to verify signatures.
type keyEntry struct {
	ledger.RegisteredKey
	verifier *attest.Verifier
	sshID    string // the keyid go-securesystemslib derives (SHA256:…)
}

// keys returns every registered key with a verifier. Keys never change
// once registered (a revocation is a new event), so verifiers are cached.
func (s *Server) keys() ([]keyEntry, error) {
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
	return out, nil
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
			Msg: fmt.Sprintf("Content-Type %q: send the DSSE envelope as application/json", r.Header.Get("Content-Type"))})
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
	ev, v, err := s.verifyEnvelope(body)
	if err != nil {
		return nil, nil, err
	}
	return ev, v.Canonical(), nil
}

func (s *Server) verifyEnvelope(body []byte) (*ledger.AttestationRecorded, *attest.Verified, error) {
	env, err := attest.ParseEnvelope(body)
	if err != nil {
		return nil, nil, badRequest("%v", err)
	}
	if env.PayloadType != attest.PayloadType {
		return nil, nil, &Error{Status: http.StatusUnsupportedMediaType,
			Msg: fmt.Sprintf("the envelope's payloadType is %.100q; only in-toto statements (%s) are accepted", env.PayloadType, attest.PayloadType)}
	}
	keys, err := s.keys()
	if err != nil {
		return nil, nil, err
	}
	if len(keys) == 0 {
		return nil, nil, &Error{Status: http.StatusForbidden, Msg: "no rebuilder keys are registered with this ledger; an administrator must add the signing key (ledger key add NAME KEY.pub)"}
	}
	// Active keys first; a revoked key is tried only to say so.
	vs := make([]*attest.Verifier, 0, len(keys))
	for _, active := range []bool{true, false} {
		for _, k := range keys {
			if (k.Status == ledger.KeyStatusActive) == active {
				vs = append(vs, k.verifier)
			}
		}
	}
	v, err := attest.VerifyAny(body, vs)
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
	id := cas.Digest(v.KeyID)
	if _, err := s.cfg.Ledger.AttestationIndex(cas.Sum(v.Canonical())); err == nil {
		ev, err := s.loggedAttestation(cas.Sum(v.Canonical()))
		return ev, v, err
	}
	for _, k := range keys {
		if k.KeyID == id && k.Status == ledger.KeyStatusRevoked {
			return nil, nil, &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf(
				"key %s (%q) was revoked at log index %d; attestations signed with it are no longer accepted", id, k.Name, k.RevokedAt)}
		}
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
	if err := checkRebuildMatches(rb, b); err != nil {
		return nil, nil, err
	}
	ev := &ledger.AttestationRecorded{Envelope: cas.Sum(v.Canonical()), KeyID: id, PredicateType: v.PredicateType,
		Build: &b.Event.UUID, Verdict: ledger.Verdict(rb.Verdict)}
	for _, sub := range v.Subjects {
		ev.Subjects = append(ev.Subjects, ledger.Subject{Name: sub.Name, SHA256: cas.Digest(sub.SHA256)})
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

// checkRebuildMatches holds the predicate's account of the original build
// to what the log recorded.
func checkRebuildMatches(rb *attest.Rebuild, b ledger.BuildEntry) error {
	e := b.Event
	bad := func(format string, args ...any) error {
		return &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("the predicate does not describe build %s as recorded: ", e.UUID) + fmt.Sprintf(format, args...)}
	}
	switch {
	case rb.Job != e.Job:
		return bad("job %q, recorded %q", rb.Job, e.Job)
	case rb.Platform != e.Platform:
		return bad("platform %q, recorded %q", rb.Platform, e.Platform)
	case rb.LogIndex != int64(b.Index):
		return bad("log index %d, recorded at %d", rb.LogIndex, b.Index)
	}
	recorded := map[string]*cas.Digest{
		attest.InputOpamSwitch: e.Inputs.OpamSwitch, attest.InputBuildEnvironment: e.Inputs.BuildEnvironment,
		attest.InputSystemPackages: e.Inputs.SystemPackages, attest.InputScript: &e.Script,
	}
	for _, in := range rb.Inputs {
		want, known := recorded[in.Name]
		switch {
		case !known:
			continue // other inputs are the rebuilder's business
		case want == nil:
			return bad("input %s %s, but the build recorded none", in.Name, in.SHA256)
		case cas.Digest(in.SHA256) != *want:
			return bad("input %s %s, recorded %s", in.Name, in.SHA256, want)
		}
	}
	return nil
}

// attestationInfo summarises an attestation, naming its key and, for an
// attestation of a recorded build, the artifacts it disputes.
func (s *Server) attestationInfo(a ledger.Entry[*ledger.AttestationRecorded]) (AttestationInfo, error) {
	e := a.Event
	info := AttestationInfo{LogIndex: a.Index, Envelope: e.Envelope, KeyID: e.KeyID, PredicateType: e.PredicateType,
		Build: e.Build, Verdict: e.Verdict, Subjects: e.Subjects}
	info.KeyName, info.KeyStatus = s.keyName(e.KeyID)
	if e.Build == nil || e.Verdict != ledger.VerdictDiffers {
		return info, nil
	}
	b, err := s.cfg.Ledger.Build(*e.Build)
	if err != nil {
		return info, err
	}
	for _, sub := range e.Subjects {
		if art, ok := b.Event.Artifact(sub.Name); ok && art.SHA256 != sub.SHA256 {
			info.Differs = append(info.Differs, SubjectDiff{Name: sub.Name, Recorded: art.SHA256, Got: sub.SHA256})
		}
	}
	return info, nil
}

func (s *Server) attestationInfos(es []ledger.Entry[*ledger.AttestationRecorded], size uint64) ([]AttestationInfo, error) {
	out := make([]AttestationInfo, 0, len(es))
	for _, a := range es {
		if a.Index >= size {
			continue // newer than the checkpoint the answer refers to
		}
		info, err := s.attestationInfo(a)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// listAttestations answers GET /attestations?sha256=HEX or ?build=UUID.
func (s *Server) listAttestations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cp := s.cfg.Ledger.Checkpoint()
	out := AttestationList{Checkpoint: string(cp.Note), Attestations: []ProvenAttestation{}, Disputes: []ProvenAttestation{}}
	var atts, disputes []ledger.Entry[*ledger.AttestationRecorded]
	switch {
	case q.Get("sha256") != "" && q.Get("build") == "":
		d, err := cas.ParseDigest(q.Get("sha256"))
		if err != nil {
			s.fail(w, r, badRequest("sha256=%q: %v", q.Get("sha256"), err))
			return
		}
		h, err := s.cfg.Ledger.Hash(d)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if len(h.Builds) == 0 && len(h.Attestations) == 0 {
			s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: "no recorded build or attestation has SHA-256 " + d.String()})
			return
		}
		out.SHA256, atts, disputes = &d, h.Attestations, h.Disputes
	case q.Get("build") != "" && q.Get("sha256") == "":
		id, err := uuid.Parse(q.Get("build"))
		if err != nil {
			s.fail(w, r, badRequest("build=%q is not a UUID", q.Get("build")))
			return
		}
		if _, err := s.cfg.Ledger.Build(id); err != nil {
			s.fail(w, r, err)
			return
		}
		if atts, err = s.cfg.Ledger.AttestationsOf(id); err != nil {
			s.fail(w, r, err)
			return
		}
		out.Build = &id
	default:
		s.fail(w, r, badRequest("give exactly one of ?sha256=<64 hex digits> or ?build=<uuid>"))
		return
	}
	for _, c := range []struct {
		in  []ledger.Entry[*ledger.AttestationRecorded]
		out *[]ProvenAttestation
	}{{atts, &out.Attestations}, {disputes, &out.Disputes}} {
		infos, err := s.attestationInfos(c.in, cp.Size)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, info := range infos {
			data, err := s.cfg.Ledger.EventBytes(info.LogIndex)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			p, err := s.cfg.Ledger.Tree().InclusionProof(info.LogIndex, cp.Size)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			leaf := leafHash(data)
			*c.out = append(*c.out, ProvenAttestation{AttestationInfo: info, LeafHash: leaf[:], Inclusion: p, URL: envelopeURL(info.Envelope)})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// envelope serves a logged envelope's exact bytes, for verifiers such as
// cosign.
func (s *Server) envelope(w http.ResponseWriter, r *http.Request) {
	d, err := cas.ParseDigest(mux.Vars(r)["sha256"])
	if err != nil {
		s.fail(w, r, badRequest("%v", err))
		return
	}
	if _, err := s.cfg.Ledger.AttestationIndex(d); err != nil {
		s.fail(w, r, fmt.Errorf("no attestation envelope with SHA-256 %s is logged: %w", d, ledger.ErrNotFound))
		return
	}
	s.serveBlob(w, r, d, "application/json")
}

// KeyInfo describes a registered rebuilder key (GET /keys).
type KeyInfo struct {
	Name      string           `json:"name"`
	KeyID     cas.Digest       `json:"key_id"`
	Algorithm string           `json:"algorithm"`
	Status    ledger.KeyStatus `json:"status"`
	AddedAt   uint64           `json:"added_at"`
	RevokedAt *uint64          `json:"revoked_at,omitempty"`
	PublicKey string           `json:"public_key"` // PEM
}

func keyInfo(k ledger.RegisteredKey) KeyInfo {
	ki := KeyInfo{Name: k.Name, KeyID: k.KeyID, Algorithm: k.Algorithm, Status: k.Status, AddedAt: k.AddedAt, PublicKey: publicKeyPEM(k.PublicKey)}
	if k.Status == ledger.KeyStatusRevoked {
		at := k.RevokedAt
		ki.RevokedAt = &at
	}
	return ki
}

// listKeys answers GET /keys: every key ever registered.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.cfg.Ledger.Keys()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Checkpoint string    `json:"checkpoint"`
		Keys       []KeyInfo `json:"keys"`
	}{string(s.cfg.Ledger.Checkpoint().Note), []KeyInfo{}}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyInfo(k))
	}
	s.render(w, r, "keys", out)
}

// KeyRequest is the body of POST /keys and POST /keys/{name}/revoke.
type KeyRequest struct {
	PublicKey string `json:"public_key,omitempty"` // PEM "PUBLIC KEY" (add)
	Reason    string `json:"reason,omitempty"`     // (revoke)
}

// admin checks that the request carries an administrator's credentials.
func (s *Server) admin(r *http.Request) error {
	if s.cfg.Users == nil {
		return &Error{Status: http.StatusForbidden, Msg: "key management is disabled on this server (it has no accounts)"}
	}
	u, err := s.login(r)
	if err != nil {
		return err
	}
	if !u.Admin {
		return &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf("user %q is not an administrator; keys are managed by accounts made with 'ledger user add NAME --admin'", u.Name)}
	}
	return nil
}

func (s *Server) readKeyRequest(w http.ResponseWriter, r *http.Request) (KeyRequest, error) {
	var req KeyRequest
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return req, &Error{Status: http.StatusRequestEntityTooLarge, Msg: "key requests are at most 64 KiB"}
	}
	if err != nil {
		return req, badRequest("reading the request: %v", err)
	}
	if err := decodeStrictJSON(b, &req); err != nil {
		return req, badRequest("the body must be a JSON object {\"public_key\": PEM} or {\"reason\": TEXT}: %v", err)
	}
	return req, nil
}

// adminKeyRequest authenticates an administrator and reads the key
// request, answering the failure itself.
func (s *Server) adminKeyRequest(w http.ResponseWriter, r *http.Request) (KeyRequest, bool) {
	err := s.admin(r)
	var req KeyRequest
	if err == nil {
		req, err = s.readKeyRequest(w, r)
	}
	if err != nil {
		s.fail(w, r, err)
		return req, false
	}
	return req, true
}

// addKey answers POST /keys/{name}: an administrator registers a
// rebuilder's public key under name.
func (s *Server) addKey(w http.ResponseWriter, r *http.Request) {
	req, ok := s.adminKeyRequest(w, r)
	if !ok {
		return
	}
	v, err := attest.LoadVerifier([]byte(req.PublicKey))
	if err != nil {
		s.fail(w, r, badRequest("public_key: %v", strings.TrimPrefix(err.Error(), "attest: ")))
		return
	}
	s.appendKeyEvent(w, r, &ledger.KeyAdded{Name: mux.Vars(r)["name"], PublicKey: v.PublicKeyDER()})
}

// revokeKey answers POST /keys/{name}/revoke.
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	req, ok := s.adminKeyRequest(w, r)
	if !ok {
		return
	}
	name := mux.Vars(r)["name"]
	st, err := s.cfg.Ledger.KeyByName(name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.appendKeyEvent(w, r, &ledger.KeyRevoked{KeyID: st.KeyID, Reason: req.Reason})
}

func (s *Server) appendKeyEvent(w http.ResponseWriter, r *http.Request, ev ledger.Event) {
	rc, err := s.cfg.Ledger.Append(r.Context(), ev)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.cfg.Ledger.Tree().InclusionProof(rc.Index, rc.Checkpoint.Size)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	logged, err := s.cfg.Ledger.Event(rc.Index) // as normalised by the ledger
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var id cas.Digest
	switch e := logged.(type) {
	case *ledger.KeyAdded:
		id = e.KeyID
	case *ledger.KeyRevoked:
		id = e.KeyID
	}
	keys, err := s.cfg.Ledger.Keys()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Key        KeyInfo  `json:"key"`
		LogIndex   uint64   `json:"log_index"`
		LeafHash   []byte   `json:"leaf_hash"`
		Checkpoint string   `json:"checkpoint"`
		Inclusion  [][]byte `json:"inclusion_proof"`
	}{LogIndex: rc.Index, LeafHash: rc.LeafHash[:], Checkpoint: string(rc.Checkpoint.Note), Inclusion: p}
	for _, k := range keys {
		if k.KeyID == id {
			out.Key = keyInfo(k)
		}
	}
	writeJSON(w, http.StatusCreated, out)
}

// decodeStrictJSON decodes one JSON value with no unknown fields and
// nothing after it.
func decodeStrictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

func publicKeyPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}
