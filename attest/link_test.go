package attest

import (
	"crypto/ecdsa"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	intoto "github.com/in-toto/in-toto-golang/in_toto"
)

func signedLink(t *testing.T, alg KeyAlgorithm, products map[string]intoto.HashObj) ([]byte, *Verifier) {
	t.Helper()
	p, err := GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := LoadSigner(p, nil)
	ik, err := LoadInTotoKey(p)
	if err != nil {
		t.Fatal(err)
	}
	mb := intoto.Metablock{Signed: intoto.Link{Type: "link", Name: LinkStep, Materials: map[string]intoto.HashObj{}, Products: products,
		ByProducts: map[string]any{LinkBuildByproduct: "6f1b0a52-2f54-4c47-9d58-8a3c7a8e5b21", LinkVerdictByproduct: "reproduced"},
		Command:    []string{"rebuilder", "rebuild"}, Environment: map[string]any{}}}
	if err := mb.Sign(ik); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(mb)
	return b, s.Verifier()
}

// One signed link and signature has one stored form: the signature's hex
// case, an ECDSA signature's other S, the key id hint and the encoding do
// not make another.
func TestLinkCanonicalIsUnique(t *testing.T) {
	data, v := signedLink(t, ECDSAP256, map[string]intoto.HashObj{"bin/a<b>&c": {"sha256": Sum([]byte("a")).String()}})
	want, err := VerifyLink(data, v)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(want.Canonical()), "bin/a<b>&c") {
		t.Fatalf("HTML-escaped stored form: %s", want.Canonical())
	}
	var m map[string]any
	json.Unmarshal(data, &m)
	sig := m["signatures"].([]any)[0].(map[string]any)
	raw, _ := hex.DecodeString(sig["sig"].(string))
	var rs struct{ R, S *big.Int }
	asn1.Unmarshal(raw, &rs)
	rs.S.Sub(v.pub.(*ecdsa.PublicKey).Curve.Params().N, rs.S)
	other, _ := asn1.Marshal(rs)
	for name, change := range map[string]func(){
		"upper-case hex": func() { sig["sig"] = strings.ToUpper(sig["sig"].(string)) },
		"the other S":    func() { sig["sig"] = hex.EncodeToString(other) },
		"another hint":   func() { sig["keyid"] = "deadbeef" },
	} {
		json.Unmarshal(data, &m)
		sig = m["signatures"].([]any)[0].(map[string]any)
		change()
		b, _ := json.MarshalIndent(m, "", "\t")
		got, err := VerifyLink(b, v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(got.Canonical()) != string(want.Canonical()) {
			t.Errorf("%s: another stored form:\n%s\n%s", name, got.Canonical(), want.Canonical())
		}
	}
}

// Keys Go would match case-insensitively, and keys given twice, are
// refused rather than read one way here and another elsewhere.
func TestParseLinkIsStrict(t *testing.T) {
	data, v := signedLink(t, Ed25519, map[string]intoto.HashObj{"bin/a": {"sha256": Sum([]byte("a")).String()}})
	s := string(data)
	for name, bad := range map[string]string{
		"a field in another case": strings.Replace(s, `"name":"rebuild"`, `"name":"rebuild","NAME":"other"`, 1),
		"a field twice":           strings.Replace(s, `"name":"rebuild"`, `"name":"rebuild","name":"other"`, 1),
		"a product twice":         strings.Replace(s, `"products":{`, `"products":{"bin/a":{"sha256":"00"},`, 1),
		"a signature field":       strings.Replace(s, `"keyid":`, `"KeyID":"x","keyid":`, 1),
	} {
		if _, err := VerifyLink([]byte(bad), v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := VerifyLink(data, v); err != nil {
		t.Fatal(err)
	}
}
