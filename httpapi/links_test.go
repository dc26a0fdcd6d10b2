package httpapi_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	intoto "github.com/in-toto/in-toto-golang/in_toto"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// linkKey returns a fresh rebuilder key as an attest signer (to register)
// and as in-toto's signing key.
func linkKey(t *testing.T, alg attest.KeyAlgorithm) (*attest.Signer, intoto.Key) {
	t.Helper()
	p, err := attest.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.LoadSigner(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	ik, err := attest.LoadInTotoKey(p)
	if err != nil {
		t.Fatal(err)
	}
	return s, ik
}

// rebuildLink is an unsigned rebuild link of b whose products are b's
// output files with the recorded digests, changed by got.
func rebuildLink(b *ledger.BuildRecorded, got map[string]cas.Digest) intoto.Link {
	l := intoto.Link{Type: "link", Name: attest.LinkStep, Materials: map[string]intoto.HashObj{}, Products: map[string]intoto.HashObj{},
		ByProducts: map[string]any{attest.LinkBuildByproduct: b.UUID.String(), attest.LinkVerdictByproduct: string(attest.Reproduced)},
		Command:    []string{"rebuilder", "rebuild"}, Environment: map[string]any{}}
	l.Materials[attest.InputScript] = intoto.HashObj{"sha256": b.Script.String()}
	for _, a := range b.Artifacts {
		if a.Path == attest.InputBuildEnvironment {
			l.Materials[a.Path] = intoto.HashObj{"sha256": a.SHA256.String()}
			continue
		}
		l.Products[a.Path] = intoto.HashObj{"sha256": a.SHA256.String()}
	}
	for p, d := range got {
		l.Products[p] = intoto.HashObj{"sha256": d.String()}
		l.ByProducts[attest.LinkVerdictByproduct] = string(attest.Differs)
	}
	return l
}

func signLink(t *testing.T, l intoto.Link, k intoto.Key) []byte {
	t.Helper()
	mb := intoto.Metablock{Signed: l}
	if err := mb.Sign(k); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(mb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The ledger accepts, verifies, logs and serves in-toto links as it does
// DSSE envelopes, and refuses links that lie about the build.
func TestInTotoLinks(t *testing.T) {
	l, srv := attestServer(t)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "unikernel", "bin/hello.debug": "symbols", "build-environment": "A=1\n"},
		time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), ledger.Result{Kind: ledger.ResultExited})
	other := cas.Sum([]byte("other bytes"))
	signers := map[string]intoto.Key{}
	for _, k := range []struct {
		name string
		alg  attest.KeyAlgorithm
	}{{"ecdsa", attest.ECDSAP256}, {"ed25519", attest.Ed25519}, {"rsa", attest.RSA2048}} {
		s, ik := linkKey(t, k.alg)
		if resp, body := post(t, srv.URL+"/keys/"+k.name, "root", "root-password", jsonBody(httpapi.KeyRequest{PublicKey: string(s.PublicKeyPEM())}), jsonCT); resp.StatusCode != http.StatusCreated {
			t.Fatalf("key %s: %s %s", k.name, resp.Status, body)
		}
		signers[k.name] = ik
	}
	submit := func(body []byte) (*http.Response, httpapi.AttestationReceipt, string) {
		resp, text := post(t, srv.URL+"/attestations", "", "", body, jsonCT)
		var rc httpapi.AttestationReceipt
		json.Unmarshal([]byte(text), &rc)
		return resp, rc, text
	}

	var first httpapi.AttestationReceipt
	for _, name := range []string{"ecdsa", "ed25519", "rsa"} {
		resp, rc, body := submit(signLink(t, rebuildLink(b, nil), signers[name]))
		if resp.StatusCode != http.StatusCreated || rc.Verdict != ledger.VerdictReproduced || rc.PredicateType != attest.LinkPredicateType ||
			rc.KeyName != name || len(rc.Subjects) != 2 || rc.Build == nil || *rc.Build != b.UUID {
			t.Fatalf("link by %s: %s %s", name, resp.Status, body)
		}
		if name == "ecdsa" {
			first = rc
		}
	}

	// The same signed link again, re-encoded with in-toto's own layout
	// and another key id hint: the logged record.
	mb := intoto.Metablock{Signed: rebuildLink(b, nil)}
	if err := mb.Sign(signers["ecdsa"]); err != nil {
		t.Fatal(err)
	}
	served := func(d cas.Digest, format string) (*http.Response, string) {
		return get(t, srv.URL+"/attestations/"+d.String()+format, "")
	}
	resp, stored := served(first.Envelope, "")
	if resp.StatusCode != http.StatusOK || cas.Sum([]byte(stored)) != first.Envelope {
		t.Fatalf("GET the link: %s %s", resp.Status, stored)
	}
	var again intoto.Metablock
	json.Unmarshal([]byte(stored), &again)
	var resent map[string]any
	json.Unmarshal([]byte(stored), &resent)
	rs := resent["signatures"].([]any)[0].(map[string]any)
	rs["keyid"], rs["sig"] = strings.Repeat("ab", 32), strings.ToUpper(rs["sig"].(string))
	pretty, _ := json.MarshalIndent(resent, "  ", "\t")
	if resp, rc, body := submit(pretty); resp.StatusCode != http.StatusOK || !rc.Existing || rc.LogIndex != first.LogIndex {
		t.Fatalf("the same link re-encoded: %s %s", resp.Status, body)
	}

	// What is served is a link file in-toto's own loader reads and whose
	// signature verifies under in-toto's key id, which names the file.
	dir := t.TempDir()
	ik := signers["ecdsa"]
	ik.KeyVal.Private = ""
	p := filepath.Join(dir, "rebuild.link")
	os.WriteFile(p, []byte(stored), 0o644)
	md, err := intoto.LoadMetadata(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := md.VerifySignature(ik); err != nil {
		t.Fatalf("in-toto-golang does not verify the served link: %v", err)
	}
	if resp, body := served(first.Envelope, "?format=link"); resp.StatusCode != http.StatusOK || body != stored {
		t.Fatalf("?format=link: %s", resp.Status)
	}
	for _, f := range []string{"?format=bundle", "?format=dsse"} {
		if resp, body := served(first.Envelope, f); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "in-toto link") {
			t.Fatalf("%s of a link: %s %s", f, resp.Status, body)
		}
	}

	// A rebuild of other bytes is logged as a dispute.
	resp, rc, body := submit(signLink(t, rebuildLink(b, map[string]cas.Digest{"bin/hello.hvt": other}), signers["ed25519"]))
	if resp.StatusCode != http.StatusCreated || rc.Verdict != ledger.VerdictDiffers || len(rc.Differs) != 1 || rc.Differs[0].Got != other {
		t.Fatalf("differing link: %s %s", resp.Status, body)
	}

	// Refusals, each with the status and reason a rebuilder can act on.
	tamper := func(f func(*intoto.Link)) intoto.Link {
		lk := rebuildLink(b, nil)
		f(&lk)
		return lk
	}
	recorded := rebuildLink(b, nil).Products["bin/hello.hvt"]["sha256"]
	altered := strings.Replace(string(signLink(t, rebuildLink(b, nil), signers["rsa"])), recorded, other.String(), 1)
	if !strings.Contains(altered, other.String()) {
		t.Fatal("the alteration changed nothing")
	}
	_, unknown := linkKey(t, attest.ECDSAP256)
	for _, c := range []struct {
		name   string
		body   []byte
		status int
		says   string
	}{
		{"altered after signing", []byte(altered), http.StatusBadRequest, "bad signature"},
		{"unknown key", signLink(t, rebuildLink(b, nil), unknown), http.StatusForbidden, "unknown key"},
		{"reproduced but other bytes", signLink(t, tamper(func(lk *intoto.Link) {
			lk.Products["bin/hello.hvt"] = intoto.HashObj{"sha256": other.String()}
		}), signers["ecdsa"]), http.StatusUnprocessableEntity, "not exactly the 2 recorded output files"},
		{"reproduced but a file missing", signLink(t, tamper(func(lk *intoto.Link) { delete(lk.Products, "bin/hello.debug") }), signers["ecdsa"]),
			http.StatusUnprocessableEntity, "not exactly"},
		{"differs but the recorded bytes", signLink(t, tamper(func(lk *intoto.Link) { lk.ByProducts["verdict"] = "differs" }), signers["ecdsa"]),
			http.StatusUnprocessableEntity, "exactly the recorded output files"},
		{"another environment", signLink(t, tamper(func(lk *intoto.Link) {
			lk.Materials["build-environment"] = intoto.HashObj{"sha256": other.String()}
		}), signers["ecdsa"]), http.StatusUnprocessableEntity, "input build-environment"},
		{"no materials", signLink(t, tamper(func(lk *intoto.Link) { lk.Materials = map[string]intoto.HashObj{} }), signers["ecdsa"]),
			http.StatusUnprocessableEntity, "lack the recorded input"},
		{"another material", signLink(t, tamper(func(lk *intoto.Link) { lk.Materials["Makefile"] = intoto.HashObj{"sha256": other.String()} }), signers["ecdsa"]),
			http.StatusUnprocessableEntity, "exactly the recorded inputs"},
		{"an unrecorded build", signLink(t, tamper(func(lk *intoto.Link) { lk.ByProducts["build"] = "0b5a8f2c-5b7e-4a8e-9d1e-3f0c1a2b3c4d" }), signers["ecdsa"]),
			http.StatusUnprocessableEntity, "not recorded"},
		{"no build named", signLink(t, tamper(func(lk *intoto.Link) { delete(lk.ByProducts, "build") }), signers["ecdsa"]),
			http.StatusBadRequest, "must be the rebuilt build's UUID"},
		{"another step", signLink(t, tamper(func(lk *intoto.Link) { lk.Name = "package" }), signers["ecdsa"]),
			http.StatusBadRequest, "step"},
		{"sha512 only", signLink(t, tamper(func(lk *intoto.Link) {
			lk.Products["bin/hello.hvt"] = intoto.HashObj{"sha512": strings.Repeat("ab", 64)}
		}), signers["ecdsa"]), http.StatusBadRequest, "no sha256"},
		{"extra member", []byte(strings.Replace(string(signLink(t, rebuildLink(b, nil), signers["ecdsa"])), `{"signed"`, `{"x":1,"signed"`, 1)),
			http.StatusBadRequest, "unknown member"},
		{"a layout", []byte(`{"signed":{"_type":"layout"},"signatures":[]}`), http.StatusBadRequest, "only links"},
	} {
		resp, _, body := submit(c.body)
		if resp.StatusCode != c.status || !strings.Contains(body, c.says) {
			t.Errorf("%s: %s %s (want %d, %q)", c.name, resp.Status, body, c.status, c.says)
		}
	}

	// The build's attestations list the links; replay verifies each again.
	resp, body = get(t, srv.URL+"/attestations?build="+b.UUID.String(), "application/json")
	var list httpapi.AttestationList
	json.Unmarshal([]byte(body), &list)
	if resp.StatusCode != http.StatusOK || len(list.Attestations) != 4 {
		t.Fatalf("the build's attestations: %s %s", resp.Status, body)
	}
	// The build page names each attestation's form.
	resp, page := get(t, srv.URL+"/job/hello/build/"+b.UUID.String(), "text/html")
	if resp.StatusCode != http.StatusOK || strings.Count(page, ">in-toto link</a>") != 4 {
		t.Fatalf("build page: %s\n%s", resp.Status, page)
	}
	ledgertest.Check(t, l)
}

// The stored form of a link is no larger than it needs to be: a link of
// 300 KB full of "&" (which encoding/json would escape to 6 bytes each)
// is logged, and stored as it came.
func TestInTotoLinkStoredFormFits(t *testing.T) {
	l, srv := attestServer(t)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "unikernel", "build-environment": "A=1\n"},
		time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), ledger.Result{Kind: ledger.ResultExited})
	s, ik := linkKey(t, attest.Ed25519)
	if resp, body := post(t, srv.URL+"/keys/k", "root", "root-password", jsonBody(httpapi.KeyRequest{PublicKey: string(s.PublicKeyPEM())}), jsonCT); resp.StatusCode != http.StatusCreated {
		t.Fatalf("key: %s %s", resp.Status, body)
	}
	link := rebuildLink(b, nil)
	link.Environment["note"] = strings.Repeat("&", 300_000)
	body := []byte(strings.ReplaceAll(string(signLink(t, link, ik)), `\u0026`, "&"))
	resp, text := post(t, srv.URL+"/attestations", "", "", body, jsonCT)
	var rc httpapi.AttestationReceipt
	json.Unmarshal([]byte(text), &rc)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("%s %.300s", resp.Status, text)
	}
	if _, stored := get(t, srv.URL+"/attestations/"+rc.Envelope.String(), ""); len(stored) > len(body) {
		t.Fatalf("stored %d bytes of a %d-byte link", len(stored), len(body))
	}
}

// The front page shows each latest build's reproducibility at a glance.
func TestFrontPageReproducibility(t *testing.T) {
	l, srv := attestServer(t)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "unikernel", "build-environment": "A=1\n"},
		time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), ledger.Result{Kind: ledger.ResultExited})
	bi, _ := l.Build(b.UUID)
	for i, name := range []string{"a", "b", "c"} {
		k := newSigner(t, attest.ECDSAP256)
		if resp, body := post(t, srv.URL+"/keys/"+name, "root", "root-password", jsonBody(httpapi.KeyRequest{PublicKey: string(k.PublicKeyPEM())}), jsonCT); resp.StatusCode != http.StatusCreated {
			t.Fatalf("key: %s %s", resp.Status, body)
		}
		var got map[string]cas.Digest
		if i == 2 {
			got = map[string]cas.Digest{"bin/hello.hvt": cas.Sum([]byte("other"))}
		}
		if resp, body := post(t, srv.URL+"/attestations", "", "", sign(t, rebuildOf(b, bi.Index, got), k), jsonCT); resp.StatusCode != http.StatusCreated {
			t.Fatalf("attestation: %s %s", resp.Status, body)
		}
	}
	if _, front := get(t, srv.URL+"/", "text/html"); !strings.Contains(front, "<h2>Uncategorized</h2>") || !strings.Contains(front, "2 rebuilder keys") || !strings.Contains(front, "1 got other bytes") {
		t.Fatalf("front page:\n%s", front)
	}
	// A revoked key counts for nothing.
	if resp, body := post(t, srv.URL+"/keys/a/revoke", "root", "root-password", jsonBody(map[string]string{"reason": "compromised"}), jsonCT); resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		t.Fatalf("revoke: %s %s", resp.Status, body)
	}
	if _, front := get(t, srv.URL+"/", "text/html"); !strings.Contains(front, "1 rebuilder key<") {
		t.Fatalf("front page after a revocation:\n%s", front)
	}
}
