package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/attlog"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/google/uuid"
	"github.com/gorilla/mux"
)

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

// envelope serves a logged attestation's exact bytes: a DSSE envelope, for
// verifiers such as cosign, or an in-toto link, for in-toto's verifiers;
// with ?format=bundle, an envelope wrapped in a Sigstore bundle v0.3
// (cosign verify-blob-attestation --bundle).
func (s *Server) envelope(w http.ResponseWriter, r *http.Request) {
	d, err := cas.ParseDigest(mux.Vars(r)["sha256"])
	if err != nil {
		s.fail(w, r, badRequest("%v", err))
		return
	}
	if _, err := s.cfg.Ledger.AttestationIndex(d); err != nil {
		s.fail(w, r, fmt.Errorf("no attestation with SHA-256 %s is logged: %w", d, ledger.ErrNotFound))
		return
	}
	a, err := s.loggedAttestation(d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	isLink := a.PredicateType == attest.LinkPredicateType
	switch f := r.URL.Query().Get("format"); {
	case f == "", f == "dsse" && !isLink, f == "link" && isLink:
		s.serveBlob(w, r, d, "application/json")
		return
	case isLink && (f == "dsse" || f == "bundle"):
		s.fail(w, r, badRequest("format %q: attestation %s is an in-toto link (signed in in-toto's own wrapper), not a DSSE envelope, so it has no %s form; GET it without ?format", f, d, f))
		return
	case f == "bundle":
	case f == "link":
		s.fail(w, r, badRequest("format \"link\": attestation %s is a DSSE envelope, not an in-toto link", d))
		return
	default:
		s.fail(w, r, badRequest("format %q: want dsse (the default for an envelope), bundle, or link (the default for an in-toto link)", f))
		return
	}
	if s.cfg.AttestationLog != nil {
		b, err := s.cfg.AttestationLog.Bundle(r.Context(), d)
		if errors.Is(err, attlog.ErrForeignTree) {
			s.fail(w, r, &Error{Status: http.StatusBadGateway, Msg: err.Error() + "; this replica serves no bundle until an operator has looked into it"})
			return
		}
		if errors.Is(err, attlog.ErrBehind) {
			s.fail(w, r, &Error{Status: http.StatusServiceUnavailable, Msg: err.Error(), RetryAfter: 2 * time.Second})
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", attest.BundleMediaType)
		w.Write(b)
		return
	}
	env, err := s.cfg.Ledger.Store().Bytes(r.Context(), d, attest.MaxEnvelopeSize)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := attest.Bundle(env, a.KeyID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", attest.BundleMediaType)
	w.Write(b)
}

// trustedRoot serves the Sigstore trusted root that names the attestation
// log (cosign verify-blob-attestation --trusted-root).
func (s *Server) trustedRoot(w http.ResponseWriter, r *http.Request) {
	if s.cfg.AttestationLog == nil {
		s.fail(w, r, fmt.Errorf("this server keeps no attestation log (a ledger without one, or a replica of one): %w", ledger.ErrNotFound))
		return
	}
	b, err := s.cfg.AttestationLog.TrustedRoot()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// attestationCheckpoint serves the attestation log's latest checkpoint.
func (s *Server) attestationCheckpoint(w http.ResponseWriter, r *http.Request) {
	if s.cfg.AttestationLog == nil {
		s.fail(w, r, fmt.Errorf("this server keeps no attestation log: %w", ledger.ErrNotFound))
		return
	}
	err := s.cfg.AttestationLog.CatchUp(r.Context())
	var cp *checkpoint.Checkpoint
	if err == nil {
		cp, err = s.cfg.AttestationLog.Checkpoint()
	}
	if errors.Is(err, attlog.ErrForeignTree) {
		s.fail(w, r, &Error{Status: http.StatusBadGateway, Msg: err.Error()})
		return
	}
	if errors.Is(err, attlog.ErrBehind) {
		s.fail(w, r, &Error{Status: http.StatusServiceUnavailable, Msg: "this read replica has no checkpoint of its primary's attestation log yet; retry shortly", RetryAfter: 2 * time.Second})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(cp.Note)
}
