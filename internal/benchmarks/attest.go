package benchmarks

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/buildledger/buildledger/attest"
)

// AttestFixture holds one signed rebuild envelope per key algorithm and a
// 3-of-5 policy with its attestations.
type AttestFixture struct {
	Envelopes map[attest.KeyAlgorithm][]byte
	Verifiers map[attest.KeyAlgorithm]*attest.Verifier
	privs     map[attest.KeyAlgorithm]crypto.Signer
	Payload   []byte

	Policy  attest.Policy
	Target  attest.Target
	Attests []attest.Attestation
}

// Algorithms in the order they are reported.
var Algorithms = []attest.KeyAlgorithm{attest.ECDSAP256, attest.Ed25519, attest.RSA2048}

// NewAttestFixture signs a realistic rebuild statement (10 artifacts, four
// inputs) with a fresh key of each algorithm.
func NewAttestFixture() (*AttestFixture, error) {
	f := &AttestFixture{Envelopes: map[attest.KeyAlgorithm][]byte{}, Verifiers: map[attest.KeyAlgorithm]*attest.Verifier{}, privs: map[attest.KeyAlgorithm]crypto.Signer{}}
	r := &attest.Rebuild{Job: "hello", Build: uuid.New(), Platform: "debian-12", LogIndex: 12345,
		Verdict: attest.Reproduced, BuilderID: "https://rebuilder.example/bench",
		StartedOn: time.Unix(1.7e9, 0), FinishedOn: time.Unix(1.7e9+600, 0)}
	for i := range 10 {
		r.Subjects = append(r.Subjects, attest.Subject{Name: "bin/file" + string(rune('a'+i)), SHA256: attest.Sum([]byte{byte(i)})})
	}
	for _, n := range []string{attest.InputOpamSwitch, attest.InputBuildEnvironment, attest.InputSystemPackages, attest.InputScript} {
		r.Inputs = append(r.Inputs, attest.Input{Name: n, SHA256: attest.Sum([]byte(n))})
	}
	st, err := r.Statement()
	if err != nil {
		return nil, err
	}
	if f.Payload, err = attest.MarshalStatement(st); err != nil {
		return nil, err
	}
	for _, alg := range Algorithms {
		var priv crypto.Signer
		switch alg {
		case attest.ECDSAP256:
			priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case attest.Ed25519:
			_, priv, err = ed25519.GenerateKey(rand.Reader)
		case attest.RSA2048:
			priv, err = rsa.GenerateKey(rand.Reader, 2048)
		}
		if err != nil {
			return nil, err
		}
		s, err := attest.NewSigner(priv)
		if err != nil {
			return nil, err
		}
		if f.Envelopes[alg], err = attest.Sign(context.Background(), st, s); err != nil {
			return nil, err
		}
		f.Verifiers[alg], f.privs[alg] = s.Verifier(), priv
	}

	// 3-of-5: five trusted keys, four agree, one disagrees, plus a
	// duplicate and an untrusted key.
	art := r.Subjects[0].SHA256
	for i := range 5 {
		f.Policy.Keys = append(f.Policy.Keys, attest.TrustedKey{ID: attest.KeyIDOf([]byte{byte(i)}), Name: "rebuilder-" + string(rune('a'+i)), AddedAt: int64(i)})
	}
	f.Policy.Threshold = 3
	f.Target = attest.Target{Digest: art, Builds: []attest.BuildArtifact{{Build: r.Build, Name: r.Subjects[0].Name}}}
	for i := range 4 {
		f.Attests = append(f.Attests, attest.Attestation{KeyID: f.Policy.Keys[i].ID, PredicateType: attest.PredicateType, Build: r.Build,
			Subjects: r.Subjects, Verdict: attest.Reproduced, LogIndex: int64(100 + i)})
	}
	bad := append([]attest.Subject(nil), r.Subjects...)
	bad[0].SHA256 = attest.Sum([]byte("other"))
	f.Attests = append(f.Attests,
		attest.Attestation{KeyID: f.Policy.Keys[4].ID, PredicateType: attest.PredicateType, Build: r.Build, Subjects: bad, Verdict: attest.Differs, LogIndex: 104},
		f.Attests[0],
		attest.Attestation{KeyID: attest.KeyIDOf([]byte("untrusted")), PredicateType: attest.PredicateType, Build: r.Build, Subjects: r.Subjects, Verdict: attest.Reproduced, LogIndex: 106})
	return f, nil
}

// VerifyEnvelope measures attest.Verify: strict parsing, the DSSE
// signature through sigstore's verifier, and parsing the statement.
func VerifyEnvelope(b *testing.B, f *AttestFixture, alg attest.KeyAlgorithm) {
	env, v := f.Envelopes[alg], f.Verifiers[alg]
	b.SetBytes(int64(len(env)))
	for b.Loop() {
		if _, err := attest.Verify(env, v); err != nil {
			b.Fatal(err)
		}
	}
}

// VerifyRawSignature is the baseline: the bare standard-library signature
// check over the same DSSE pre-authentication encoding, nothing else.
func VerifyRawSignature(b *testing.B, f *AttestFixture, alg attest.KeyAlgorithm) {
	pae := dsse.PAE(attest.PayloadType, f.Payload)
	priv := f.privs[alg]
	var verify func() bool
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(pae)
		sig, _ := ecdsa.SignASN1(rand.Reader, k, h[:])
		verify = func() bool { h := sha256.Sum256(pae); return ecdsa.VerifyASN1(&k.PublicKey, h[:], sig) }
	case ed25519.PrivateKey:
		sig := ed25519.Sign(k, pae)
		verify = func() bool { return ed25519.Verify(k.Public().(ed25519.PublicKey), pae, sig) }
	case *rsa.PrivateKey:
		h := sha256.Sum256(pae)
		sig, _ := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, h[:])
		verify = func() bool {
			h := sha256.Sum256(pae)
			return rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, h[:], sig) == nil
		}
	}
	for b.Loop() {
		if !verify() {
			b.Fatal("signature does not verify")
		}
	}
}

// Policy3of5 measures one k-of-n decision over already verified
// attestations.
func Policy3of5(b *testing.B, f *AttestFixture) {
	for b.Loop() {
		d, err := f.Policy.Evaluate(f.Target, f.Attests)
		if err != nil || !d.Satisfied || len(d.Disagreeing) != 1 {
			b.Fatalf("decision %v %v", d, err)
		}
	}
}

// VerifyRawSignatureECDSA is one bare ECDSA P-256 check over a fixed
// message, the unit the gate's decision time is compared with.
func VerifyRawSignatureECDSA(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	h := sha256.Sum256([]byte("message"))
	sig, _ := ecdsa.SignASN1(rand.Reader, k, h[:])
	for b.Loop() {
		if !ecdsa.VerifyASN1(&k.PublicKey, h[:], sig) {
			b.Fatal("signature does not verify")
		}
	}
}
