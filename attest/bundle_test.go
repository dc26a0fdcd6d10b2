package attest

import (
	"encoding/json"
	"strings"
	"testing"
)

// bundleOf wraps a DSSE envelope in a Sigstore bundle v0.3.
func bundleOf(t *testing.T, envelope []byte) []byte {
	t.Helper()
	b, err := Bundle(envelope, KeyID{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEnvelopeOfBundle(t *testing.T) {
	s := testSigner(t, ECDSAP256)
	v := s.Verifier()
	envelope := signed(t, s)
	b := bundleOf(t, envelope)
	if !IsBundle(b) || IsBundle(envelope) {
		t.Fatal("IsBundle")
	}
	got, err := EnvelopeOfBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(got, v); err != nil {
		t.Fatalf("the bundle's envelope: %v", err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	delete(m, "dsseEnvelope")
	noEnv, _ := json.Marshal(m)
	for name, c := range map[string]struct {
		in   []byte
		want string
	}{
		"no envelope":  {noEnv, "holds no DSSE envelope"},
		"not a bundle": {[]byte(`{"mediaType":"application/json"}`), "not a bundle"},
		"unknown type": {[]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":7}}`), "Sigstore bundle"},
		"too large":    {[]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","x":"` + strings.Repeat("a", MaxEnvelopeSize) + `"}`), "exceeds"},
	} {
		if _, err := EnvelopeOfBundle(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
