package attest

import (
	"errors"
	"testing"
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
