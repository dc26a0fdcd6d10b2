package ledgertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/ledger"
)

// NewSigner returns an attestation signer of a fresh ECDSA P-256 key.
func NewSigner(tb testing.TB) *attest.Signer {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := attest.NewSigner(k)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Rebuild describes build b, recorded at log index, as a rebuilder that
// got subjects (none: every artifact as recorded) with verdict would.
func Rebuild(b *ledger.BuildRecorded, index uint64, verdict ledger.Verdict, subjects ...ledger.Subject) *attest.Rebuild {
	rb := &attest.Rebuild{Job: b.Job, Build: b.UUID, Platform: b.Platform, LogIndex: int64(index),
		Verdict: attest.Verdict(verdict), BuilderID: "https://rebuilder.test"}
	if len(subjects) == 0 {
		for _, a := range b.Artifacts {
			subjects = append(subjects, ledger.Subject{Name: a.Path, SHA256: a.SHA256})
		}
	}
	for _, s := range subjects {
		rb.Subjects = append(rb.Subjects, attest.Subject{Name: s.Name, SHA256: s.SHA256})
	}
	rb.Inputs = append(rb.Inputs, attest.Input{Name: attest.InputScript, SHA256: b.Script})
	return rb
}

// Attest signs rb with s, stores the canonical envelope in l's store and
// returns the attestation_recorded event that logs it.
func Attest(tb testing.TB, l *Ledger, s *attest.Signer, rb *attest.Rebuild) *ledger.AttestationRecorded {
	tb.Helper()
	ctx := context.Background()
	st, err := rb.Statement()
	if err != nil {
		tb.Fatal(err)
	}
	env, err := attest.Sign(ctx, st, s)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := attest.Verify(env, s.Verifier())
	if err != nil {
		tb.Fatal(err)
	}
	info, err := l.Store.PutBytes(ctx, v.Canonical())
	if err != nil {
		tb.Fatal(err)
	}
	ev := &ledger.AttestationRecorded{Envelope: info.Digest, KeyID: s.KeyID(), PredicateType: v.PredicateType,
		Build: &rb.Build, Verdict: ledger.Verdict(rb.Verdict)}
	for _, sub := range v.Subjects {
		ev.Subjects = append(ev.Subjects, ledger.Subject{Name: sub.Name, SHA256: sub.SHA256})
	}
	return ev
}
