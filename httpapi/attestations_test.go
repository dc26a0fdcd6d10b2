package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

func attestServer(t *testing.T) (*ledgertest.Ledger, *httptest.Server) {
	t.Helper()
	l := ledgertest.Open(t)
	users := auth.New(l.DB)
	if err := users.AddAdmin("root", "root-password"); err != nil {
		t.Fatal(err)
	}
	if err := users.Add("farm", "farm-password", true); err != nil {
		t.Fatal(err)
	}
	s, err := httpapi.New(httpapi.Config{Ledger: l.Ledger, VKey: l.VKey, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return l, srv
}

func newSigner(t *testing.T, alg attest.KeyAlgorithm) *attest.Signer {
	t.Helper()
	p, err := attest.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.LoadSigner(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jsonBody(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// rebuildOf is a rebuild attestation of build b, logged at index, that got
// the given digests (the recorded ones when got is nil).
func rebuildOf(b *ledger.BuildRecorded, index uint64, got map[string]cas.Digest) *attest.Rebuild {
	r := &attest.Rebuild{Job: b.Job, Build: b.UUID, Platform: b.Platform, LogIndex: int64(index),
		Verdict: attest.Reproduced, BuilderID: "https://rebuilder.example/test", StartedOn: time.Unix(1e9, 0), FinishedOn: time.Unix(1e9+60, 0)}
	for _, a := range b.Artifacts {
		d := a.SHA256
		if g, ok := got[a.Path]; ok {
			d, r.Verdict = g, attest.Differs
		}
		r.Subjects = append(r.Subjects, attest.Subject{Name: a.Path, SHA256: d})
	}
	if b.Inputs.BuildEnvironment != nil {
		r.Inputs = append(r.Inputs, attest.Input{Name: attest.InputBuildEnvironment, SHA256: *b.Inputs.BuildEnvironment})
	}
	r.Inputs = append(r.Inputs, attest.Input{Name: attest.InputScript, SHA256: b.Script})
	return r
}

func sign(t *testing.T, r *attest.Rebuild, s *attest.Signer) []byte {
	t.Helper()
	st, err := r.Statement()
	if err != nil {
		t.Fatal(err)
	}
	env, err := attest.Sign(ctx, st, s)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

var jsonCT = map[string]string{"Content-Type": "application/json", "Accept": "application/json"}

func TestAttestations(t *testing.T) {
	l, srv := attestServer(t)
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "unikernel", "build-environment": "A=1\n"}, t0, ledger.Result{Kind: ledger.ResultExited})
	bi, err := l.Build(b.UUID)
	if err != nil {
		t.Fatal(err)
	}
	mainArt, _ := bi.Event.Artifact("bin/hello.hvt")
	main := mainArt.SHA256

	ka, kb, kc, kx := newSigner(t, attest.ECDSAP256), newSigner(t, attest.Ed25519), newSigner(t, attest.RSA2048), newSigner(t, attest.ECDSAP256)

	// Keys are registered by administrators only.
	addKey := func(name string, s *attest.Signer, user, pw string) (*http.Response, string) {
		return post(t, srv.URL+"/keys/"+name, user, pw, jsonBody(httpapi.KeyRequest{PublicKey: string(s.PublicKeyPEM())}), jsonCT)
	}
	if resp, body := addKey("a", ka, "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("key without credentials: %s %s", resp.Status, body)
	}
	if resp, body := addKey("a", ka, "farm", "farm-password"); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "not an administrator") {
		t.Fatalf("key by an uploader: %s %s", resp.Status, body)
	}
	if resp, body := post(t, srv.URL+"/keys/a", "root", "root-password", jsonBody(httpapi.KeyRequest{PublicKey: "not pem"}), jsonCT); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("key that is not PEM: %s %s", resp.Status, body)
	}
	for name, s := range map[string]*attest.Signer{"a": ka, "b": kb, "c": kc} {
		resp, body := addKey(name, s, "root", "root-password")
		if resp.StatusCode != http.StatusCreated || !strings.Contains(body, s.KeyID().String()) {
			t.Fatalf("add key %s: %s %s", name, resp.Status, body)
		}
	}
	if resp, body := addKey("a2", ka, "root", "root-password"); resp.StatusCode != http.StatusConflict {
		t.Fatalf("same key twice: %s %s", resp.Status, body)
	}

	submit := func(env []byte) (*http.Response, string) {
		return post(t, srv.URL+"/attestations", "", "", env, jsonCT)
	}
	checkReceipt := func(body string, env []byte) httpapi.AttestationReceipt {
		t.Helper()
		var rc httpapi.AttestationReceipt
		if err := json.Unmarshal([]byte(body), &rc); err != nil {
			t.Fatal(err)
		}
		cp, err := ledger.OpenCheckpoint([]byte(rc.Checkpoint), l.Origin(), l.VKey)
		if err != nil {
			t.Fatal(err)
		}
		data, err := l.EventBytes(rc.LogIndex)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, rc.LogIndex, cp.Size, rfc6962.DefaultHasher.HashLeaf(data), rc.Inclusion, cp.Hash[:]); err != nil {
			t.Fatalf("receipt's inclusion proof: %v", err)
		}
		if rc.Envelope != cas.Sum(env) {
			t.Fatalf("receipt names envelope %s, sent %s", rc.Envelope, cas.Sum(env))
		}
		return rc
	}

	envA := sign(t, rebuildOf(b, bi.Index, nil), ka)
	resp, body := submit(envA)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("attestation by a: %s %s", resp.Status, body)
	}
	rcA := checkReceipt(body, envA)
	if rcA.KeyName != "a" || rcA.Verdict != ledger.VerdictReproduced || rcA.Existing {
		t.Fatalf("receipt: %+v", rcA)
	}
	size := l.Size()
	resp, body = submit(envA)
	if again := checkReceipt(body, envA); resp.StatusCode != http.StatusOK || !again.Existing || again.LogIndex != rcA.LogIndex || l.Size() != size {
		t.Fatalf("same envelope twice: %s %+v, log grew %d → %d", resp.Status, again, size, l.Size())
	}
	// Re-encoded, with a keyid hint and another (unregistered) signature:
	// still the same attestation.
	var m map[string]any
	json.Unmarshal(envA, &m)
	m["signatures"].([]any)[0].(map[string]any)["keyid"] = "a hint"
	reencoded, _ := json.MarshalIndent(m, "", "    ")
	resp, body = submit(reencoded)
	if again := checkReceipt(body, envA); resp.StatusCode != http.StatusOK || !again.Existing || again.LogIndex != rcA.LogIndex || l.Size() != size {
		t.Fatalf("re-encoded envelope: %s %s, log grew %d → %d", resp.Status, body, size, l.Size())
	}
	for _, s := range []*attest.Signer{kb, ka} { // a's second envelope counts once
		r := rebuildOf(b, bi.Index, nil)
		r.FinishedOn = r.FinishedOn.Add(time.Second)
		if resp, body := submit(sign(t, r, s)); resp.StatusCode != http.StatusCreated {
			t.Fatalf("attestation: %s %s", resp.Status, body)
		}
	}
	other := cas.Sum([]byte("what c built"))
	envC := sign(t, rebuildOf(b, bi.Index, map[string]cas.Digest{"bin/hello.hvt": other}), kc)
	if resp, body := submit(envC); resp.StatusCode != http.StatusCreated {
		t.Fatalf("disagreeing attestation: %s %s", resp.Status, body)
	}

	// The build page and /hash say who reproduced it and who did not.
	_, body = get(t, srv.URL+"/job/hello/build/"+b.UUID.String(), "application/json")
	var bv httpapi.BuildView
	if err := json.Unmarshal([]byte(body), &bv); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(bv.AttestedBy) != "[a b]" || fmt.Sprint(bv.DisputedBy) != "[c]" || len(bv.Attestations) != 4 {
		t.Fatalf("build page: attested by %v, disputed by %v, %d attestations", bv.AttestedBy, bv.DisputedBy, len(bv.Attestations))
	}
	if _, html := get(t, srv.URL+"/job/hello/build/"+b.UUID.String(), ""); !strings.Contains(html, "NOT REPRODUCED by 1 rebuilder key(s): c") || !strings.Contains(html, "Reproduced by 2 rebuilder key(s): a, b") {
		t.Fatalf("build page HTML does not show the disagreement:\n%s", html)
	}
	_, body = get(t, srv.URL+"/hash?sha256="+main.String(), "application/json")
	var hl httpapi.HashLookup
	if err := json.Unmarshal([]byte(body), &hl); err != nil {
		t.Fatal(err)
	}
	if len(hl.Attestations) != 3 || len(hl.Disputes) != 1 || hl.Disputes[0].KeyName != "c" ||
		len(hl.Disputes[0].Differs) != 1 || hl.Disputes[0].Differs[0] != (httpapi.SubjectDiff{Name: "bin/hello.hvt", Recorded: main, Got: other}) {
		t.Fatalf("/hash: %s", body)
	}

	// The verifying client proves each of them.
	cl, err := httpapi.NewClient(srv.URL, l.VKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	lr, err := cl.Lookup(ctx, main)
	if err != nil || len(lr.Attestations) != 3 || len(lr.Disputes) != 1 || lr.KeyNames[lr.Disputes[0].KeyID] != "c" {
		t.Fatalf("client lookup: %+v %v", lr, err)
	}

	// A server that lists a dispute as an agreeing attestation is caught.
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequest(r.Method, srv.URL+r.URL.RequestURI(), nil)
		req.Header = r.Header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if r.URL.Path == "/hash" {
			var hl httpapi.HashLookup
			json.Unmarshal(b, &hl)
			hl.Attestations = append(hl.Attestations, hl.Disputes...)
			b, _ = json.Marshal(hl)
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		w.Write(b)
	}))
	defer liar.Close()
	lc, _ := httpapi.NewClient(liar.URL, l.VKey, nil)
	if _, err := lc.Lookup(ctx, main); err == nil || !strings.Contains(err.Error(), "does not name it") {
		t.Fatalf("lying server: %v", err)
	}

	// GET /attestations lists them with proofs; the envelopes are served.
	_, body = get(t, srv.URL+"/attestations?sha256="+main.String(), "application/json")
	var al httpapi.AttestationList
	if err := json.Unmarshal([]byte(body), &al); err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.OpenCheckpoint([]byte(al.Checkpoint), l.Origin(), l.VKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(al.Attestations) != 3 || len(al.Disputes) != 1 {
		t.Fatalf("/attestations: %s", body)
	}
	for _, a := range append(al.Attestations, al.Disputes...) {
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, a.LogIndex, cp.Size, a.LeafHash, a.Inclusion, cp.Hash[:]); err != nil {
			t.Errorf("attestation %d: %v", a.LogIndex, err)
		}
		resp, env := get(t, srv.URL+a.URL, "")
		if resp.StatusCode != http.StatusOK || cas.Sum([]byte(env)) != a.Envelope {
			t.Errorf("envelope %s: %s", a.URL, resp.Status)
		}
	}
	if _, body := get(t, srv.URL+"/attestations?build="+b.UUID.String(), "application/json"); strings.Count(body, `"envelope_url"`) != 4 {
		t.Fatalf("/attestations?build: %s", body)
	}

	// Rejections, each with a status and a message that says what to do.
	envelopeWith := func(payloadType string, payload []byte, sig []byte, keyid string) []byte {
		return jsonBody(map[string]any{"payloadType": payloadType, "payload": base64.StdEncoding.EncodeToString(payload),
			"signatures": []map[string]string{{"keyid": keyid, "sig": base64.StdEncoding.EncodeToString(sig)}}})
	}
	parsed, err := attest.ParseEnvelope(envA)
	if err != nil {
		t.Fatal(err)
	}
	altered := bytes.Replace(parsed.Payload, []byte("https://rebuilder.example/test"), []byte("https://rebuilder.example/evil"), 1)
	notInLedger := rebuildOf(b, bi.Index, nil)
	notInLedger.Subjects = append(notInLedger.Subjects, attest.Subject{Name: "bin/extra", SHA256: attest.Sum([]byte("x"))})
	wrongDigest := rebuildOf(b, bi.Index, nil)
	wrongDigest.Subjects[0].SHA256 = attest.Sum([]byte("x"))
	wrongJob := rebuildOf(b, bi.Index, nil)
	wrongJob.Job = "other"
	wrongInput := rebuildOf(b, bi.Index, nil)
	wrongInput.Inputs[0].SHA256 = attest.Sum([]byte("B=2\n"))
	// revoke c, then c's new attestation is refused
	if resp, body := post(t, srv.URL+"/keys/c/revoke", "root", "root-password", jsonBody(httpapi.KeyRequest{Reason: "compromised"}), jsonCT); resp.StatusCode != http.StatusCreated {
		t.Fatalf("revoke: %s %s", resp.Status, body)
	}
	for _, c := range []struct {
		name, ctype string
		env         []byte
		status      int
		msg         string
	}{
		{"unknown key", "application/json", sign(t, rebuildOf(b, bi.Index, nil), kx), http.StatusForbidden, "unknown key"},
		{"revoked key", "application/json", sign(t, rebuildOf(b, bi.Index, nil), kc), http.StatusForbidden, "revoked at log index"},
		{"bad signature", "application/json", envelopeWith(attest.PayloadType, altered, parsed.Signatures[0].Sig, ""), http.StatusForbidden, "altered after signing"},
		{"bad signature naming its key", "application/json", envelopeWith(attest.PayloadType, altered, parsed.Signatures[0].Sig, ka.KeyID().String()), http.StatusBadRequest, "bad signature"},
		{"subject not in the ledger", "application/json", sign(t, notInLedger, ka), http.StatusUnprocessableEntity, "not an artifact of build"},
		{"reproduced with another digest", "application/json", sign(t, wrongDigest, ka), http.StatusUnprocessableEntity, "but subject"},
		{"another job", "application/json", sign(t, wrongJob, ka), http.StatusUnprocessableEntity, "does not describe build"},
		{"other inputs", "application/json", sign(t, wrongInput, ka), http.StatusUnprocessableEntity, "input build-environment"},
		{"malformed envelope", "application/json", []byte(`{"payloadType":`), http.StatusBadRequest, "malformed envelope"},
		{"wrong payload type", "application/json", envelopeWith("text/plain", []byte("hi"), []byte("sig"), ""), http.StatusUnsupportedMediaType, "only in-toto statements"},
		{"wrong content type", "text/plain", envA, http.StatusUnsupportedMediaType, "application/json"},
		{"oversize", "application/json", bytes.Repeat([]byte(" "), attest.MaxEnvelopeSize+1), http.StatusRequestEntityTooLarge, "larger than"},
	} {
		size := l.Size()
		resp, body := post(t, srv.URL+"/attestations", "", "", c.env, map[string]string{"Content-Type": c.ctype, "Accept": "application/json"})
		if resp.StatusCode != c.status || !strings.Contains(body, c.msg) {
			t.Errorf("%s: %s %s, want %d and %q", c.name, resp.Status, body, c.status, c.msg)
		}
		if l.Size() != size {
			t.Errorf("%s: the log grew", c.name)
		}
	}

	// Resubmitting c's logged envelope after the revocation is not an error.
	if resp, body := submit(envC); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"existing":true`) {
		t.Fatalf("resubmission after revocation: %s %s", resp.Status, body)
	}

	_, body = get(t, srv.URL+"/keys", "application/json")
	if strings.Count(body, `"status":"active"`) != 2 || strings.Count(body, `"status":"revoked"`) != 1 {
		t.Fatalf("/keys: %s", body)
	}
	// c's earlier attestation stays logged, now marked with its key's standing.
	_, body = get(t, srv.URL+"/hash?sha256="+main.String(), "application/json")
	if !strings.Contains(body, `"key_status":"revoked"`) {
		t.Fatalf("/hash after revocation: %s", body)
	}
	if resp, _ := get(t, srv.URL+"/attestations?sha256="+cas.Sum([]byte("nothing")).String(), "application/json"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown digest: %s", resp.Status)
	}
	if resp, _ := get(t, srv.URL+"/attestations/"+cas.Sum([]byte("nothing")).String(), ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown envelope: %s", resp.Status)
	}
}

// A build farm's claim that it built a build (verdict built) is shown as
// provenance: neither a reproduction nor a dispute.
func TestBuiltAttestationOnBuildPage(t *testing.T) {
	l, srv := attestServer(t)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "unikernel"}, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), ledger.Result{Kind: ledger.ResultExited})
	bi, err := l.Build(b.UUID)
	if err != nil {
		t.Fatal(err)
	}
	farm := newSigner(t, attest.ECDSAP256)
	if resp, body := post(t, srv.URL+"/keys/farm", "root", "root-password", jsonBody(httpapi.KeyRequest{PublicKey: string(farm.PublicKeyPEM())}), jsonCT); resp.StatusCode != http.StatusCreated {
		t.Fatalf("key: %s %s", resp.Status, body)
	}
	r := rebuildOf(b, bi.Index, nil)
	r.Verdict = attest.Built
	if resp, body := post(t, srv.URL+"/attestations", "", "", sign(t, r, farm), jsonCT); resp.StatusCode != http.StatusCreated {
		t.Fatalf("built claim: %s %s", resp.Status, body)
	}
	_, body := get(t, srv.URL+"/job/hello/build/"+b.UUID.String(), "application/json")
	var bv httpapi.BuildView
	if err := json.Unmarshal([]byte(body), &bv); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(bv.BuiltBy) != "[farm]" || len(bv.AttestedBy) != 0 || len(bv.DisputedBy) != 0 {
		t.Fatalf("build page: built by %v, attested by %v, disputed by %v", bv.BuiltBy, bv.AttestedBy, bv.DisputedBy)
	}
	if _, html := get(t, srv.URL+"/job/hello/build/"+b.UUID.String(), ""); !strings.Contains(html, "Built by farm") || strings.Contains(html, "NOT REPRODUCED") {
		t.Fatalf("build page HTML:\n%s", html)
	}
}

// A Sigstore bundle (what cosign attest-blob --bundle writes) is accepted
// as its envelope: verified and logged the same, and the bare envelope
// afterwards is the same attestation.
func TestAttestationAsSigstoreBundle(t *testing.T) {
	l, srv := attestServer(t)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "unikernel"}, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), ledger.Result{Kind: ledger.ResultExited})
	bi, err := l.Build(b.UUID)
	if err != nil {
		t.Fatal(err)
	}
	k := newSigner(t, attest.Ed25519)
	if resp, body := post(t, srv.URL+"/keys/a", "root", "root-password", jsonBody(httpapi.KeyRequest{PublicKey: string(k.PublicKeyPEM())}), jsonCT); resp.StatusCode != http.StatusCreated {
		t.Fatalf("key: %s %s", resp.Status, body)
	}
	env := sign(t, rebuildOf(b, bi.Index, nil), k)
	var e map[string]any
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	bundle, _ := json.Marshal(map[string]any{
		"mediaType":            "application/vnd.dev.sigstore.bundle.v0.3+json",
		"verificationMaterial": map[string]any{"publicKey": map[string]any{"hint": "a"}},
		"dsseEnvelope":         e,
	})
	resp, body := post(t, srv.URL+"/attestations", "", "", bundle, jsonCT)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("bundle: %s %s", resp.Status, body)
	}
	var first httpapi.AttestationReceipt
	json.Unmarshal([]byte(body), &first)
	resp, body = post(t, srv.URL+"/attestations", "", "", env, jsonCT)
	var again httpapi.AttestationReceipt
	json.Unmarshal([]byte(body), &again)
	if resp.StatusCode != http.StatusOK || !again.Existing || again.LogIndex != first.LogIndex {
		t.Fatalf("the bare envelope after its bundle: %s %s", resp.Status, body)
	}
	// Served back as a bundle around the logged envelope.
	resp, body = get(t, srv.URL+"/attestations/"+first.Envelope.String()+"?format=bundle", "")
	inner, err := attest.EnvelopeOfBundle([]byte(body))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != attest.BundleMediaType || err != nil || cas.Sum(inner) != first.Envelope {
		t.Fatalf("?format=bundle: %s %q %v\n%s", resp.Status, resp.Header.Get("Content-Type"), err, body)
	}
	if resp, _ := get(t, srv.URL+"/attestations/"+first.Envelope.String()+"?format=pdf", ""); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("?format=pdf: %s", resp.Status)
	}
	noEnvelope, _ := json.Marshal(map[string]any{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
		"messageSignature": map[string]any{"signature": "AAAA"}})
	if resp, body := post(t, srv.URL+"/attestations", "", "", noEnvelope, jsonCT); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "no DSSE envelope") {
		t.Fatalf("a bundle without an envelope: %s %s", resp.Status, body)
	}
}
