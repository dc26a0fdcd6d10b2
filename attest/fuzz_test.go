package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	intoto "github.com/in-toto/in-toto-golang/in_toto"
)

// FuzzVerify checks that the envelope parser and Verify never panic and
// fail only with a *VerifyError.
func FuzzVerify(f *testing.F) {
	s := testSigner(f, ECDSAP256)
	env := signed(f, s)
	f.Add(env)
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"","sig":"AA=="}]}`))
	f.Add([]byte(`{"payloadType":"x","payload":"","signatures":[]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	v := s.Verifier()
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Verify(b, v)
		if err != nil {
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a *VerifyError", err)
			}
			return
		}
		if got.KeyID != v.KeyID() || len(got.Subjects) == 0 {
			t.Fatalf("verified %+v", got)
		}
		_, _ = got.Rebuild()
	})
}

// FuzzParseStatement checks the statement parser never panics.
func FuzzParseStatement(f *testing.F) {
	st, err := testRebuild().Statement()
	if err != nil {
		f.Fatal(err)
	}
	b, _ := MarshalStatement(st)
	f.Add(b)
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v0.1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, subjects, err := ParseStatement(b)
		if err == nil {
			if _, err := r.Statement(); err != nil || len(subjects) == 0 {
				t.Fatalf("parsed a rebuild that cannot be written back: %v", err)
			}
		}
	})
}

// FuzzEnvelopeOfBundle: any input gives an error or DSSE JSON whose
// payload is the bundle's, never a panic.
func FuzzEnvelopeOfBundle(f *testing.F) {
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AAAA"}]}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))
	f.Add([]byte(`{"mediaType":7}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := EnvelopeOfBundle(b)
		if err != nil {
			return
		}
		var e struct {
			Payload []byte `json:"payload"`
		}
		if err := json.Unmarshal(env, &e); err != nil {
			t.Fatalf("not DSSE JSON: %v\n%s", err, env)
		}
		// The payload, read with exact key names as protojson does
		// (encoding/json's struct fields would match "pAYloAd" too).
		var top, de map[string]json.RawMessage
		var payload []byte
		if json.Unmarshal(b, &top) == nil && json.Unmarshal(top["dsseEnvelope"], &de) == nil &&
			json.Unmarshal(de["payload"], &payload) == nil && !bytes.Equal(payload, e.Payload) {
			t.Fatalf("payload changed: %q → %q", payload, e.Payload)
		}
	})
}

// FuzzVerifyLink checks that the link parser and VerifyLink never panic,
// fail only with a *VerifyError, and that whatever verifies has a
// canonical form that verifies again to the same link.
func FuzzVerifyLink(f *testing.F) {
	p, err := GenerateKey(ECDSAP256)
	if err != nil {
		f.Fatal(err)
	}
	s, err := LoadSigner(p, nil)
	if err != nil {
		f.Fatal(err)
	}
	ik, err := LoadInTotoKey(p)
	if err != nil {
		f.Fatal(err)
	}
	mb := intoto.Metablock{Signed: intoto.Link{Type: "link", Name: LinkStep,
		Materials:  map[string]intoto.HashObj{InputScript: {"sha256": Sum([]byte("script")).String()}},
		Products:   map[string]intoto.HashObj{"bin/a": {"sha256": Sum([]byte("a")).String()}},
		ByProducts: map[string]any{LinkBuildByproduct: "6f1b0a52-2f54-4c47-9d58-8a3c7a8e5b21", LinkVerdictByproduct: "reproduced"},
		Command:    []string{"rebuilder"}, Environment: map[string]any{}}}
	if err := mb.Sign(ik); err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(mb)
	f.Add(good)
	f.Add([]byte(`{"signed":{"_type":"link"},"signatures":[]}`))
	f.Add([]byte(`{"signed":{"_type":"layout"},"signatures":[{"keyid":"","sig":"00"}]}`))
	f.Add([]byte(`{"signed":null,"signatures":null}`))
	f.Add([]byte(`[`))
	v := s.Verifier()
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := VerifyLink(b, v)
		if err != nil {
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a *VerifyError", err)
			}
			return
		}
		again, err := VerifyLink(got.Canonical(), v)
		if err != nil || !bytes.Equal(again.Canonical(), got.Canonical()) || again.Build != got.Build {
			t.Fatalf("the canonical form of a verified link does not verify the same: %v", err)
		}
	})
}
