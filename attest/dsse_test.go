package attest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

var (
	keysOnce sync.Once
	keyPEMs  map[KeyAlgorithm][]byte
)

// testSigner returns a signer of a key generated once per test binary.
func testSigner(t testing.TB, alg KeyAlgorithm) *Signer {
	t.Helper()
	keysOnce.Do(func() {
		keyPEMs = map[KeyAlgorithm][]byte{}
		for _, a := range []KeyAlgorithm{ECDSAP256, Ed25519, RSA2048} {
			b, err := GenerateKey(a)
			if err != nil {
				panic(err)
			}
			keyPEMs[a] = b
		}
	})
	s, err := LoadSigner(keyPEMs[alg], nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signed(t testing.TB, s *Signer) []byte {
	t.Helper()
	st, err := testRebuild().Statement()
	if err != nil {
		t.Fatal(err)
	}
	env, err := Sign(context.Background(), st, s)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestSignVerify(t *testing.T) {
	for _, alg := range []KeyAlgorithm{ECDSAP256, Ed25519, RSA2048} {
		t.Run(string(alg), func(t *testing.T) {
			s := testSigner(t, alg)
			env := signed(t, s)
			v, err := LoadVerifier(s.PublicKeyPEM())
			if err != nil {
				t.Fatal(err)
			}
			got, err := Verify(env, v)
			if err != nil {
				t.Fatal(err)
			}
			der, _ := cryptoutils.MarshalPublicKeyToDER(s.PublicKey())
			if got.KeyID != KeyIDOf(der) || got.KeyID != s.KeyID() || got.KeyID != v.KeyID() {
				t.Errorf("key id %s, want SHA-256 of the SPKI %s", got.KeyID, KeyIDOf(der))
			}
			if got.PredicateType != PredicateType || got.StatementType != StatementType {
				t.Errorf("types %q %q", got.StatementType, got.PredicateType)
			}
			r, err := got.Rebuild()
			if err != nil {
				t.Fatal(err)
			}
			if r.Job != "hello" || len(got.Subjects) != 2 || got.Subjects[0] != testRebuild().Subjects[0] {
				t.Errorf("rebuild %+v subjects %v", r, got.Subjects)
			}
			a, err := got.Attestation(7)
			if err != nil || a.KeyID != s.KeyID() || a.LogIndex != 7 || a.Verdict != Reproduced || a.Build != r.Build {
				t.Errorf("Attestation = %+v, %v", a, err)
			}
			var raw map[string]any
			if err := json.Unmarshal(env, &raw); err != nil || raw["payloadType"] != PayloadType {
				t.Errorf("envelope %s", env)
			}
		})
	}
}

// TestLoadSignerEncrypted loads a key in cosign's encrypted format.
func TestLoadSignerEncrypted(t *testing.T) {
	pemKey, err := cryptoutils.MarshalPrivateKeyToPEM(mustPriv(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(pemKey, nil); err != nil {
		t.Errorf("plain key: %v", err)
	}
	der, _ := cryptoutils.MarshalPrivateKeyToEncryptedDER(mustPriv(t), cryptoutils.StaticPasswordFunc([]byte("pw")))
	enc := pemEncode("ENCRYPTED SIGSTORE PRIVATE KEY", der)
	if _, err := LoadSigner(enc, nil); err == nil {
		t.Errorf("encrypted key loaded without a password")
	}
	if _, err := LoadSigner(enc, func() ([]byte, error) { return []byte("wrong"), nil }); err == nil {
		t.Errorf("encrypted key loaded with the wrong password")
	}
	es, err := LoadSigner(enc, func() ([]byte, error) { return []byte("pw"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(signed(t, es), es.Verifier()); err != nil {
		t.Error(err)
	}
	if _, err := LoadSigner([]byte("not pem"), nil); err == nil {
		t.Error("garbage loaded as a key")
	}
	if _, err := LoadVerifier([]byte("not pem")); err == nil {
		t.Error("garbage loaded as a public key")
	}
	if _, err := LoadVerifier(pemKey); err == nil {
		t.Error("private key loaded as a public key")
	}
}

func TestVerifyRejects(t *testing.T) {
	s := testSigner(t, ECDSAP256)
	other := testSigner(t, Ed25519)
	env := signed(t, s)
	var e struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(e.Payload)
	sig := e.Signatures[0].Sig
	build := func(pt string, payload []byte, sig string) []byte {
		b, _ := json.Marshal(map[string]any{
			"payloadType": pt,
			"payload":     base64.StdEncoding.EncodeToString(payload),
			"signatures":  []map[string]string{{"keyid": "", "sig": sig}},
		})
		return b
	}
	flipped := append([]byte(nil), payload...)
	flipped[len(flipped)/2] ^= 1
	otherEnv := signed(t, other)
	var oe struct {
		Signatures []struct{ Sig string } `json:"signatures"`
	}
	json.Unmarshal(otherEnv, &oe)

	cases := []struct {
		name string
		env  []byte
		want error
	}{
		{"payload byte flipped", build(PayloadType, flipped, sig), ErrBadSignature},
		{"signature of another key", build(PayloadType, payload, oe.Signatures[0].Sig), ErrBadSignature},
		{"signed by another key", otherEnv, ErrBadSignature},
		{"wrong payload type", build("application/json", payload, sig), ErrWrongPayloadType},
		{"truncated", env[:len(env)/2], ErrMalformed},
		{"garbage", []byte("\x00garbage"), ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"not an object", []byte(`[]`), ErrMalformed},
		{"null", []byte(`null`), ErrMalformed},
		{"trailing data", append(append([]byte(nil), env...), `{}`...), ErrMalformed},
		{"no signatures", []byte(`{"payloadType":"` + PayloadType + `","payload":"` + e.Payload + `","signatures":[]}`), ErrMalformed},
		{"signatures missing", []byte(`{"payloadType":"` + PayloadType + `","payload":"` + e.Payload + `"}`), ErrMalformed},
		{"payload missing", []byte(`{"payloadType":"` + PayloadType + `","signatures":[{"sig":"` + sig + `"}]}`), ErrMalformed},
		{"payloadType missing", []byte(`{"payload":"` + e.Payload + `","signatures":[{"sig":"` + sig + `"}]}`), ErrMalformed},
		{"unknown member", []byte(`{"payloadType":"` + PayloadType + `","payload":"` + e.Payload + `","signatures":[{"sig":"` + sig + `"}],"x":1}`), ErrMalformed},
		{"unknown signature member", []byte(`{"payloadType":"` + PayloadType + `","payload":"` + e.Payload + `","signatures":[{"sig":"` + sig + `","cert":""}]}`), ErrMalformed},
		{"duplicate member", []byte(`{"payloadType":"` + PayloadType + `","payloadType":"` + PayloadType + `","payload":"` + e.Payload + `","signatures":[{"sig":"` + sig + `"}]}`), ErrMalformed},
		{"payload not base64", []byte(`{"payloadType":"` + PayloadType + `","payload":"!!","signatures":[{"sig":"` + sig + `"}]}`), ErrMalformed},
		{"payload with line break", []byte(`{"payloadType":"` + PayloadType + `","payload":"` + e.Payload[:8] + `\n` + e.Payload[8:] + `","signatures":[{"sig":"` + sig + `"}]}`), ErrMalformed},
		{"empty sig", []byte(`{"payloadType":"` + PayloadType + `","payload":"` + e.Payload + `","signatures":[{"sig":""}]}`), ErrMalformed},
		{"sig missing", []byte(`{"payloadType":"` + PayloadType + `","payload":"` + e.Payload + `","signatures":[{"keyid":"x"}]}`), ErrMalformed},
		{"payload a number", []byte(`{"payloadType":"` + PayloadType + `","payload":1,"signatures":[{"sig":"` + sig + `"}]}`), ErrMalformed},
		{"too large", append(append([]byte(nil), env...), strings.Repeat(" ", MaxEnvelopeSize)...), ErrMalformed},
		{"not UTF-8", []byte("{\"payloadType\":\"\xff\"}"), ErrMalformed},
	}
	for _, c := range cases {
		_, err := Verify(c.env, s.Verifier())
		var ve *VerifyError
		if !errors.As(err, &ve) || !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want a *VerifyError refining %v", c.name, err, c.want)
			continue
		}
		if ve.Reason == "" {
			t.Errorf("%s: empty reason", c.name)
		}
		t.Logf("%s: %v", c.name, err)
	}
}

// TestVerifyKeyIDHint shows the envelope's keyid is an unauthenticated
// hint: whatever it says, the signature is checked against the key.
func TestVerifyKeyIDHint(t *testing.T) {
	s := testSigner(t, ECDSAP256)
	env := strings.Replace(string(signed(t, s)), `"keyid":""`, `"keyid":"SHA256:something-else"`, 1)
	if _, err := Verify([]byte(env), s.Verifier()); err != nil {
		t.Errorf("keyid hint changed the outcome: %v", err)
	}
}

// TestVerifyNotAStatement: a good signature over a payload that is not an
// in-toto statement is malformed, not accepted.
func TestVerifyNotAStatement(t *testing.T) {
	s := testSigner(t, Ed25519)
	for _, payload := range []string{`{}`, `{"_type":"https://in-toto.io/Statement/v1"}`, `not json`} {
		env := signRaw(t, s, PayloadType, []byte(payload))
		if _, err := Verify(env, s.Verifier()); !errors.Is(err, ErrMalformed) {
			t.Errorf("payload %s: err = %v, want ErrMalformed", payload, err)
		}
	}
}

// TestVerifyAnyUsesHints: among many keys, a hint naming the signing key
// (in either id scheme) finds it; a hint naming another key, or none, still
// verifies with the right one, and the result names it.
func TestVerifyAnyUsesHints(t *testing.T) {
	var keys []*Verifier
	var signers []*Signer
	for range 6 {
		s := freshSigner(t)
		signers = append(signers, s)
		keys = append(keys, s.Verifier())
	}
	target := signers[4]
	env := string(signed(t, target))
	sshID, err := dsse.SHA256KeyID(target.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, hint := range []string{target.KeyID().String(), sshID, signers[1].KeyID().String(), "SHA256:unknown", ""} {
		e := strings.Replace(env, `"keyid":""`, `"keyid":"`+hint+`"`, 1)
		v, err := VerifyAny([]byte(e), keys)
		if err != nil || v.KeyID != target.KeyID() {
			t.Errorf("hint %q: %v, key %v", hint, err, v)
		}
	}
}

// BenchmarkVerifyAny100Keys: one envelope among 100 registered keys, with
// and without a hint naming its key; the hint makes it one verification.
func BenchmarkVerifyAny100Keys(b *testing.B) {
	var keys []*Verifier
	var last *Signer
	for range 100 {
		last = freshSigner(b)
		keys = append(keys, last.Verifier())
	}
	env := string(signed(b, last))
	hinted := []byte(strings.Replace(env, `"keyid":""`, `"keyid":"`+last.KeyID().String()+`"`, 1))
	for name, e := range map[string][]byte{"hinted": hinted, "unhinted": []byte(env)} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := VerifyAny(e, keys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// freshSigner returns a signer of a newly generated ECDSA P-256 key.
func freshSigner(t testing.TB) *Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
