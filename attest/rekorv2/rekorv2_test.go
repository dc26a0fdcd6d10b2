package rekorv2_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/attest/rekorv2"
	"github.com/buildledger/buildledger/ledger/checkpoint"
)

func signed(t *testing.T, alg attest.KeyAlgorithm) ([]byte, *attest.Signer) {
	t.Helper()
	p, err := attest.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.LoadSigner(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &attest.Rebuild{Subjects: []attest.Subject{{Name: "bin/x", SHA256: attest.Sum([]byte("x"))}}, Job: "j", Build: uuid.New(),
		Platform: "p", Verdict: attest.Reproduced, BuilderID: "https://r.example/"}
	st, err := r.Statement()
	if err != nil {
		t.Fatal(err)
	}
	env, err := attest.Sign(context.Background(), st, s)
	if err != nil {
		t.Fatal(err)
	}
	return env, s
}

// The entry is RFC 8785 canonical: re-encoding it with sorted members and
// no white space gives the same bytes.
func TestEntryCanonical(t *testing.T) {
	for _, alg := range []attest.KeyAlgorithm{attest.ECDSAP256, attest.Ed25519} {
		env, s := signed(t, alg)
		e, err := rekorv2.Entry(env, s.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(e, &v); err != nil {
			t.Fatal(err)
		}
		again, _ := json.Marshal(v)
		if string(again) != string(e) {
			t.Fatalf("%s: not canonical:\n%s\n%s", alg, e, again)
		}
		want := map[attest.KeyAlgorithm]string{attest.ECDSAP256: `"algorithm":"SHA2_256"`, attest.Ed25519: `"algorithm":"SHA2_512"`}[alg]
		if !strings.Contains(string(e), want) || !strings.HasPrefix(string(e), `{"apiVersion":"0.0.2","kind":"hashedrekord"`) {
			t.Fatalf("%s: %s", alg, e)
		}
	}
	env, s := signed(t, attest.RSA2048)
	if e, err := rekorv2.Entry(env, s.PublicKey()); err != nil || !strings.Contains(string(e), `"keyDetails":"PKIX_RSA_PKCS1V15_2048_SHA256"`) {
		t.Fatalf("RSA: %s %v", e, err)
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if _, err := rekorv2.Entry(env, &p224.PublicKey); err == nil {
		t.Fatal("a P-224 key has an entry")
	}
	if _, err := rekorv2.Entry([]byte("{}"), nil); err == nil {
		t.Fatal("a malformed envelope")
	}
}

// The log id is the note key hash: its first four bytes are the key hash
// in the log's verifier key; the trusted root names it.
func TestLogID(t *testing.T) {
	_, vkey, err := checkpoint.GenerateKey("ledger.example.org")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := rekorv2.KeyOfNoteVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	l := rekorv2.Log{BaseURL: "https://ledger.example.org:8443/log", Key: pub, ValidFrom: time.Unix(1.7e9, 0)}
	if o, err := l.Origin(); err != nil || o != "ledger.example.org" {
		t.Fatalf("origin %q %v", o, err)
	}
	id, err := l.LogID()
	if err != nil {
		t.Fatal(err)
	}
	if hash := strings.SplitN(vkey, "+", 3)[1]; hex.EncodeToString(id[:4]) != hash {
		t.Fatalf("log id %x, note key hash %s", id, hash)
	}
	tr, err := l.TrustedRoot()
	if err != nil {
		t.Fatal(err)
	}
	var root prototrust.TrustedRoot
	if err := protojson.Unmarshal(tr, &root); err != nil || root.GetMediaType() != rekorv2.TrustedRootMediaType ||
		len(root.GetTlogs()) != 1 || string(root.GetTlogs()[0].GetLogId().GetKeyId()) != string(id) {
		t.Fatalf("trusted root %v:\n%s", err, tr)
	}
	for _, bad := range []string{"x", "a+b", "a+b+!!!", "a+b+AQID"} {
		if _, err := rekorv2.KeyOfNoteVerifier(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := (rekorv2.Log{BaseURL: "not a url"}).LogID(); err == nil {
		t.Error("a base URL without host")
	}
}
