package gate_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/event"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/httpapi/httpapitest"
	"github.com/buildledger/buildledger/internal/atomicfile"
	"github.com/buildledger/buildledger/ledger/ledgertest"
	"github.com/buildledger/buildledger/vmm/gate"
)

var ctx = context.Background()

// world is a real ledger server (httpapitest) with rebuilder keys.
type world struct {
	*httpapitest.Server
	t testing.TB
}

func newWorld(t testing.TB, keys ...string) *world {
	t.Helper()
	w := &world{Server: httpapitest.New(t), t: t}
	for _, name := range keys {
		w.Key(name, true)
	}
	return w
}

// build records a successful build of job whose main binary is image.
func (w *world) build(job string, image []byte, start time.Time) (*event.BuildRecorded, uint64) {
	w.t.Helper()
	return recordBuild(w.t, w.L, job, image, start)
}

func recordBuild(tb testing.TB, l *ledgertest.Ledger, job string, image []byte, start time.Time) (*event.BuildRecorded, uint64) {
	tb.Helper()
	put := func(b []byte) digest.Digest {
		info, err := l.Store.PutBytes(ctx, b)
		if err != nil {
			tb.Fatal(err)
		}
		return info.Digest
	}
	main := "bin/" + job + ".hvt"
	env := put([]byte("OS=linux\n"))
	b := &event.BuildRecorded{Job: job, UUID: uuid.New(), Platform: "debian-12", Started: start, Finished: start.Add(time.Minute),
		Result: event.Result{Kind: event.ResultExited}, Script: put([]byte("make")), Console: put(nil),
		Inputs:     event.Inputs{BuildEnvironment: &env},
		Artifacts:  []event.Artifact{{Path: main, SHA256: put(image), Size: int64(len(image))}, {Path: "build-environment", SHA256: env, Size: 9}},
		MainBinary: &main}
	if _, err := l.DefineJob(ctx, job); err != nil {
		tb.Fatal(err)
	}
	r, err := l.Append(ctx, b)
	if err != nil {
		tb.Fatal(err)
	}
	return b, r.Index
}

// attest has key name attest build b at index, with got as the main
// binary's digest (the recorded one when nil).
func (w *world) attest(name string, b *event.BuildRecorded, index uint64, got *digest.Digest) {
	w.t.Helper()
	if got != nil {
		w.attestAs(name, b, index, attest.Differs, *got)
		return
	}
	a, _ := b.Artifact(*b.MainBinary)
	w.attestAs(name, b, index, attest.Reproduced, a.SHA256)
}

// attestAs has key name attest build b at index with verdict v and got as
// the main binary's digest.
func (w *world) attestAs(name string, b *event.BuildRecorded, index uint64, v attest.Verdict, got digest.Digest) {
	w.t.Helper()
	r := &attest.Rebuild{Job: b.Job, Build: b.UUID, Platform: b.Platform, LogIndex: int64(index), Verdict: v,
		BuilderID: "https://rebuilder.example/" + name, Subjects: []attest.Subject{{Name: *b.MainBinary, SHA256: got}}}
	st, err := r.Statement()
	if err != nil {
		w.t.Fatal(err)
	}
	env, err := attest.Sign(ctx, st, w.Keys[name])
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.Client.SubmitAttestation(ctx, env); err != nil {
		w.t.Fatal(err)
	}
}

// serveFork makes the server answer for another history under the same
// log key: n forged builds, closed when the test ends.
func (w *world) serveFork(t *testing.T, n int) *ledgertest.Ledger {
	t.Helper()
	forked := ledgertest.Reopen(t, t.TempDir(), w.L.SKey, w.L.VKey)
	t.Cleanup(forked.Close)
	for range n {
		recordBuild(t, forked, "web", []byte("forged"), time.Now())
	}
	w.Serve(forked)
	return forked
}

// policy writes a policy trusting the named keys with threshold k.
func (w *world) policy(k int, trusted ...string) *gate.Policy {
	w.t.Helper()
	return w.policyBuiltBy(k, nil, trusted...)
}

// policyBuiltBy is policy with built_by builders (which must be trusted).
func (w *world) policyBuiltBy(k int, builders []string, trusted ...string) *gate.Policy {
	w.t.Helper()
	doc := map[string]any{"ledger": w.URL, "log_key": w.L.VKey, "threshold": k}
	if builders != nil {
		doc["built_by"] = builders
	}
	var keys []map[string]any
	for _, n := range trusted {
		keys = append(keys, map[string]any{"name": n, "public_key": string(w.Keys[n].PublicKeyPEM())})
	}
	doc["keys"] = keys
	b, _ := json.Marshal(doc)
	p, err := gate.ParsePolicy(b)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

func newGate(t *testing.T, p *gate.Policy, cache string, offline bool) *gate.Gate {
	t.Helper()
	g, err := gate.New(gate.Config{Policy: p, CacheDir: cache, Offline: offline})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func writeImage(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.hvt")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func statuses(d *gate.Decision) map[string]string {
	out := map[string]string{}
	for _, v := range d.Verdicts {
		name := v.KeyName
		if name == "" {
			name = v.KeyID.String()[:8]
		}
		out[name] = v.Status
	}
	return out
}

func TestGate(t *testing.T) {
	w := newWorld(t, "a", "b", "c", "x")
	image := []byte("\x7fELF a unikernel image, version 1")
	b, idx := w.build("web", image, time.Now().Add(-time.Hour))
	w.attest("a", b, idx, nil)
	w.attest("b", b, idx, nil)
	w.attest("x", b, idx, nil) // registered in the ledger, not trusted by the VMM
	imgPath := writeImage(t, image)
	cache := t.TempDir()

	// k=2 with two agreeing trusted rebuilders boots.
	g := newGate(t, w.policy(2, "a", "b", "c"), cache, false)
	d, err := g.Admit(ctx, imgPath)
	if err != nil || !d.Admitted || d.Offline || strings.Join(d.Agreeing, ",") != "a,b" || d.Build == nil || d.Build.UUID != b.UUID {
		t.Fatalf("k=2: %+v %v", d, err)
	}
	if st := statuses(d); st["a"] != gate.StatusValid || st["b"] != gate.StatusValid || len(st) != 3 {
		t.Fatalf("verdicts: %v", st)
	}
	if !strings.Contains(d.Reason, "untrusted key") {
		t.Fatalf("reason does not show the untrusted key:\n%s", d.Reason)
	}

	// k=3 refuses, saying why.
	g3 := newGate(t, w.policy(3, "a", "b", "c"), cache, false)
	d, err = g3.Admit(ctx, imgPath)
	if err != nil || d.Admitted || !strings.Contains(d.Reason, "REFUSED image") || !strings.Contains(d.Reason, "2 of 3 required") ||
		!strings.Contains(d.Reason, "job web, build "+b.UUID.String()) || !strings.Contains(d.Reason, "k=3 of 3") {
		t.Fatalf("k=3: %v\n%s", err, d.Reason)
	}

	// One flipped byte: no build has that hash.
	flipped := append([]byte(nil), image...)
	flipped[len(flipped)-1] ^= 1
	d, err = g.Admit(ctx, writeImage(t, flipped))
	if err != nil || d.Admitted || d.Build != nil || !strings.Contains(d.Reason, "no build in the ledger has SHA-256") {
		t.Fatalf("flipped byte: %+v %v", d, err)
	}

	// A disagreeing rebuilder is reported loudly (and does not count).
	other := digest.Sum([]byte("what c got"))
	w.attest("c", b, idx, &other)
	d, _ = g3.Admit(ctx, imgPath)
	if d.Admitted || statuses(d)["c"] != gate.StatusDifferentDigest || !strings.Contains(d.Reason, "OTHER BYTES") || !strings.Contains(d.Reason, other.String()) {
		t.Fatalf("disagreement:\n%s", d.Reason)
	}

	// Offline with the cached bundle: the same decision, from the cache.
	off := newGate(t, w.policy(2, "a", "b", "c"), cache, true)
	if d, err := off.Admit(ctx, imgPath); err != nil || !d.Admitted || !d.Offline {
		t.Fatalf("offline with bundle: %+v %v", d, err)
	}
	// Offline without a bundle: refused.
	if d, err := newGate(t, w.policy(2, "a", "b", "c"), t.TempDir(), true).Admit(ctx, imgPath); err != nil || d.Admitted || !strings.Contains(d.Reason, "no bundle") {
		t.Fatalf("offline without bundle: %+v %v", d, err)
	}
	// Unreachable ledger: falls back to the bundle.
	unreachable := w.policy(2, "a", "b", "c")
	unreachable.Ledger = "http://127.0.0.1:1"
	if d, err := newGate(t, unreachable, cache, false).Admit(ctx, imgPath); err != nil || !d.Admitted || !d.Offline {
		t.Fatalf("unreachable ledger with bundle: %+v %v", d, err)
	}

	// A revoked key no longer counts, even for attestations logged before.
	if _, err := w.Client.RevokeKey(ctx, "a", "compromised", httpapitest.Admin); err != nil {
		t.Fatal(err)
	}
	d, _ = g.Admit(ctx, imgPath)
	if d.Admitted || statuses(d)["a"] != gate.StatusRevoked || strings.Join(d.Agreeing, ",") != "b" {
		t.Fatalf("revoked key:\n%s", d.Reason)
	}
	// A key revoked locally, in the policy, counts for nothing either.
	doc, _ := json.Marshal(map[string]any{"ledger": w.URL, "log_key": w.L.VKey, "threshold": 1,
		"keys": []map[string]any{{"name": "b", "public_key": string(w.Keys["b"].PublicKeyPEM()), "revoked": true}}})
	local, err := gate.ParsePolicy(doc)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := newGate(t, local, cache, false).Admit(ctx, imgPath); d.Admitted || statuses(d)["b"] != gate.StatusRevoked || !strings.Contains(d.Reason, "policy marks the key revoked") {
		t.Fatalf("locally revoked key:\n%s", d.Reason)
	}
}

// TestGateTamperedBundle damages a cached bundle: each damage is caught
// offline, and the decision falls below k.
func TestGateTamperedBundle(t *testing.T) {
	w := newWorld(t, "a", "b")
	image := []byte("image bytes")
	b, idx := w.build("web", image, time.Now())
	w.attest("a", b, idx, nil)
	w.attest("b", b, idx, nil)
	cache := t.TempDir()
	g := newGate(t, w.policy(2, "a", "b"), cache, false)
	d := digest.Sum(image)
	if dec, err := g.Check(ctx, d); err != nil || !dec.Admitted {
		t.Fatalf("honest: %+v %v", dec, err)
	}
	path := filepath.Join(cache, "bundles", d.String()+".json")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		edit   func(b *gate.Bundle)
		status string
		reason string
	}{
		{"envelope swapped for a re-signed one", func(b *gate.Bundle) {
			b.Attestations[0].Envelope = b.Attestations[1].Envelope
		}, gate.StatusNotInLog, ""},
		{"proof element flipped", func(b *gate.Bundle) { b.Attestations[0].Proof[0][0] ^= 1 }, gate.StatusNotInLog, ""},
		{"build record proof flipped", func(b *gate.Bundle) { b.Builds[0].Proof[0][0] ^= 1 }, "", "no build in the ledger"},
		{"checkpoint replaced", func(b *gate.Bundle) { b.Checkpoint = strings.Replace(b.Checkpoint, "\n", "\n1", 1) }, "", "not signed by the policy's log key"},
	} {
		var bu gate.Bundle
		json.Unmarshal(orig, &bu)
		c.edit(&bu)
		data, _ := json.Marshal(bu)
		os.WriteFile(path, data, 0o600)
		dec, err := newGate(t, w.policy(2, "a", "b"), cache, true).Check(ctx, d)
		if err != nil || dec.Admitted {
			t.Errorf("%s: admitted (%v)\n%s", c.name, err, dec.Reason)
			continue
		}
		if c.status != "" && dec.Verdicts[0].Status != c.status {
			t.Errorf("%s: status %q, want %q\n%s", c.name, dec.Verdicts[0].Status, c.status, dec.Reason)
		}
		if c.reason != "" && !strings.Contains(dec.Reason, c.reason) {
			t.Errorf("%s: reason\n%s\nwant %q", c.name, dec.Reason, c.reason)
		}
	}
}

// TestGateCatchesRewrittenLog: the ledger is replaced by one with the same
// key and another history; the gate refuses with both checkpoints.
func TestGateCatchesRewrittenLog(t *testing.T) {
	w := newWorld(t, "a")
	image := []byte("image")
	b, idx := w.build("web", image, time.Now())
	w.attest("a", b, idx, nil)
	g := newGate(t, w.policy(1, "a"), t.TempDir(), false)
	if d, err := g.Check(ctx, digest.Sum(image)); err != nil || !d.Admitted {
		t.Fatalf("honest: %+v %v", d, err)
	}

	forked := ledgertest.Reopen(t, t.TempDir(), w.L.SKey, w.L.VKey)
	defer forked.Close()
	for range 3 {
		recordBuild(t, forked, "web", []byte("forged"), time.Now())
	}
	fb, fidx := recordBuild(t, forked, "web", image, time.Now())
	w.Serve(forked)
	w.Client.AddKey(ctx, "a", string(w.Keys["a"].PublicKeyPEM()), httpapitest.Admin)
	w.attest("a", fb, fidx, nil)

	d, err := g.Check(ctx, digest.Sum(image))
	if err != nil || d.Admitted || !strings.Contains(d.Reason, "rewrote its history") || !strings.Contains(d.Reason, "SECURITY") {
		t.Fatalf("rewritten log: %+v %v", d, err)
	}
}

// TestUpdateLookup finds a newer attested build, downloads it, and refuses
// an unattested one.
func TestUpdateLookup(t *testing.T) {
	w := newWorld(t, "a", "b")
	t0 := time.Now().Add(-2 * time.Hour)
	v1 := []byte("version 1")
	b1, i1 := w.build("web", v1, t0)
	w.attest("a", b1, i1, nil)
	w.attest("b", b1, i1, nil)
	g := newGate(t, w.policy(2, "a", "b"), t.TempDir(), false)
	if c, err := g.Newer(ctx, digest.Sum(v1)); err != nil || c != nil {
		t.Fatalf("no newer build yet: %+v %v", c, err)
	}
	v2 := []byte("version 2")
	b2, i2 := w.build("web", v2, t0.Add(time.Hour))
	c, err := g.Newer(ctx, digest.Sum(v1))
	if err != nil || c == nil || c.New.UUID != b2.UUID || c.Running.UUID != b1.UUID || c.SHA256 != digest.Sum(v2) ||
		c.CompareURL != w.URL+"/compare/"+b1.UUID.String()+"/"+b2.UUID.String() {
		t.Fatalf("newer: %+v %v", c, err)
	}
	dst := filepath.Join(t.TempDir(), "new.hvt")
	if err := g.Download(ctx, c, dst); err != nil {
		t.Fatal(err)
	}
	if d, err := g.Admit(ctx, dst); err != nil || d.Admitted {
		t.Fatalf("unattested newer build admitted: %+v %v", d, err)
	}
	w.attest("a", b2, i2, nil)
	w.attest("b", b2, i2, nil)
	if d, err := g.Admit(ctx, dst); err != nil || !d.Admitted {
		t.Fatalf("attested newer build: %+v %v", d, err)
	}
	if c, err := g.Newer(ctx, digest.Sum(v2)); err != nil || c != nil {
		t.Fatalf("newest is running: %+v %v", c, err)
	}
}

func TestParsePolicy(t *testing.T) {
	w := newWorld(t, "a", "b")
	pem := func(n string) string { return string(w.Keys[n].PublicKeyPEM()) }
	for _, c := range []struct{ name, doc, want string }{
		{"not JSON", `{`, "invalid gate policy"},
		{"unknown field", `{"log_key":"` + w.L.VKey + `","threshold":1,"keys":[{"name":"a","public_key":"x"}],"extra":1}`, "extra"},
		{"threshold too high", `{"log_key":"` + w.L.VKey + `","threshold":3,"keys":[{"name":"a","public_key":` + q(pem("a")) + `},{"name":"b","public_key":` + q(pem("b")) + `}]}`, "can never be met"},
		{"same key twice", `{"log_key":"` + w.L.VKey + `","threshold":1,"keys":[{"name":"a","public_key":` + q(pem("a")) + `},{"name":"b","public_key":` + q(pem("a")) + `}]}`, "same key"},
		{"bad public key", `{"log_key":"` + w.L.VKey + `","threshold":1,"keys":[{"name":"a","public_key":"not pem"}]}`, `key 0 ("a")`},
		{"origin mismatch", `{"log_key":"` + w.L.VKey + `","origin":"other","threshold":1,"keys":[{"name":"a","public_key":` + q(pem("a")) + `}]}`, "origin"},
		{"bad log key", `{"log_key":"x+00000000+AAAA","threshold":1,"keys":[{"name":"a","public_key":` + q(pem("a")) + `}]}`, "log_key"},
	} {
		if _, err := gate.ParsePolicy([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func q(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestLoadPolicyKeyFiles reads trusted keys from files next to the policy.
func TestLoadPolicyKeyFiles(t *testing.T) {
	w := newWorld(t, "a")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.pub"), w.Keys["a"].PublicKeyPEM(), 0o644)
	doc := `{"log_key":"` + w.L.VKey + `","threshold":1,"keys":[{"name":"a","public_key_file":"a.pub"}]}`
	os.WriteFile(filepath.Join(dir, "gate.json"), []byte(doc), 0o644)
	if _, err := gate.LoadPolicy(filepath.Join(dir, "gate.json")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "a.pub"))
	if _, err := gate.LoadPolicy(filepath.Join(dir, "gate.json")); err == nil || !strings.Contains(err.Error(), "a.pub") {
		t.Fatalf("missing key file: %v", err)
	}
	both := `{"log_key":"` + w.L.VKey + `","threshold":1,"keys":[{"name":"a","public_key":"x","public_key_file":"a.pub"}]}`
	if _, err := gate.ParsePolicy([]byte(both)); err == nil {
		t.Fatal("a key given twice was accepted")
	}
}

// TestGateStaleEvidence: a revocation the gate once saw proven applies to
// every later decision, a ledger whose answer does not verify is not a
// reason to fall back to older evidence, a fork is remembered, and
// max_bundle_age bounds offline decisions.
func TestGateStaleEvidence(t *testing.T) {
	w := newWorld(t, "a", "b")
	img1, img2 := []byte("image one"), []byte("image two")
	b1, i1 := w.build("one", img1, time.Now())
	b2, i2 := w.build("two", img2, time.Now())
	for _, k := range []string{"a", "b"} {
		w.attest(k, b1, i1, nil)
		w.attest(k, b2, i2, nil)
	}
	cache := t.TempDir()
	g := newGate(t, w.policy(2, "a", "b"), cache, false)
	if d, _ := g.Check(ctx, digest.Sum(img1)); !d.Admitted {
		t.Fatalf("image one: %s", d.Reason)
	}
	if _, err := w.Client.RevokeKey(ctx, "a", "lost", httpapitest.Admin); err != nil {
		t.Fatal(err)
	}
	if d, _ := g.Check(ctx, digest.Sum(img2)); d.Admitted { // learns the revocation
		t.Fatalf("image two admitted with a revoked key: %s", d.Reason)
	}
	// The ledger now answers garbage: no fallback to image one's old bundle.
	var garbage http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) })
	w.Swap(garbage)
	if d, _ := g.Check(ctx, digest.Sum(img1)); d.Admitted || !strings.Contains(d.Reason, "did not verify") {
		t.Fatalf("garbage answer: %s", d.Reason)
	}
	// Unreachable: the old bundle is used, with the revocation learned since.
	off := newGate(t, w.policy(2, "a", "b"), cache, true)
	if d, _ := off.Check(ctx, digest.Sum(img1)); d.Admitted || statuses(d)["a"] != gate.StatusRevoked {
		t.Fatalf("offline after the revocation: %s", d.Reason)
	}
	// max_bundle_age.
	doc, _ := json.Marshal(map[string]any{"log_key": w.L.VKey, "threshold": 1, "max_bundle_age": "1h",
		"keys": []map[string]any{{"name": "b", "public_key": string(w.Keys["b"].PublicKeyPEM())}}})
	aged, err := gate.ParsePolicy(doc)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := newGate(t, aged, cache, true).Check(ctx, digest.Sum(img1)); !d.Admitted {
		t.Fatalf("fresh bundle: %s", d.Reason)
	}
	path := filepath.Join(cache, "bundles", digest.Sum(img1).String()+".json")
	var bu gate.Bundle
	raw, _ := os.ReadFile(path)
	json.Unmarshal(raw, &bu)
	bu.Fetched = bu.Fetched.Add(-2 * time.Hour)
	raw, _ = json.Marshal(bu)
	os.WriteFile(path, raw, 0o600)
	if d, _ := newGate(t, aged, cache, true).Check(ctx, digest.Sum(img1)); d.Admitted || !strings.Contains(d.Reason, "max_bundle_age") {
		t.Fatalf("old bundle: %s", d.Reason)
	}
}

// TestGateRemembersFork: once a rewritten history is seen, every decision
// refuses until an operator removes the marker.
func TestGateRemembersFork(t *testing.T) {
	w := newWorld(t, "a")
	image := []byte("image")
	b, idx := w.build("web", image, time.Now())
	w.attest("a", b, idx, nil)
	cache := t.TempDir()
	g := newGate(t, w.policy(1, "a"), cache, false)
	if d, _ := g.Check(ctx, digest.Sum(image)); !d.Admitted {
		t.Fatal(d.Reason)
	}
	w.serveFork(t, 5)
	if d, _ := g.Check(ctx, digest.Sum(image)); d.Admitted || !strings.Contains(d.Reason, "rewrote its history") {
		t.Fatalf("fork: %s", d.Reason)
	}
	if d, _ := newGate(t, w.policy(1, "a"), cache, true).Check(ctx, digest.Sum(image)); d.Admitted || !strings.Contains(d.Reason, "INCONSISTENT") {
		t.Fatalf("after the fork, offline: %s", d.Reason)
	}
	os.Remove(filepath.Join(cache, "INCONSISTENT"))
	if d, _ := newGate(t, w.policy(1, "a"), cache, true).Check(ctx, digest.Sum(image)); !d.Admitted {
		t.Fatalf("after the operator's review: %s", d.Reason)
	}
}

// TestGateOlderBundleNeedsConsistency: a cached bundle whose checkpoint
// is older than the newest the gate accepted is admitted offline only
// with a proof that its checkpoint is a prefix of the newest one; a
// bundle from a forked history of the same key, smaller than the log the
// gate saw, is refused although its own signatures and proofs verify.
func TestGateOlderBundleNeedsConsistency(t *testing.T) {
	w := newWorld(t, "a")
	img1, img2 := []byte("image one"), []byte("image two")
	b1, i1 := w.build("one", img1, time.Now())
	w.attest("a", b1, i1, nil)
	cache := t.TempDir()
	g := newGate(t, w.policy(1, "a"), cache, false)
	if d, err := g.Check(ctx, digest.Sum(img1)); err != nil || !d.Admitted {
		t.Fatalf("image one: %+v %v", d, err)
	}
	path1 := filepath.Join(cache, "bundles", digest.Sum(img1).String()+".json")
	raw, _ := os.ReadFile(path1)
	var fresh gate.Bundle
	json.Unmarshal(raw, &fresh)
	if fresh.Consistency != nil {
		t.Fatalf("a bundle of the newest checkpoint carries a consistency proof: %+v", fresh.Consistency)
	}
	// The log grows; checking image two moves the gate's checkpoint on.
	b2, i2 := w.build("two", img2, time.Now())
	w.attest("a", b2, i2, nil)
	for range 3 {
		w.build("pad", []byte("pad"), time.Now())
	}
	if d, err := g.Check(ctx, digest.Sum(img2)); err != nil || !d.Admitted {
		t.Fatalf("image two: %+v %v", d, err)
	}

	off := newGate(t, w.policy(1, "a"), cache, true)
	if d, err := off.Check(ctx, digest.Sum(img1)); err != nil || !d.Admitted || !d.Offline {
		t.Fatalf("offline, image one's bundle refreshed with a proof: %+v %v", d, err)
	}
	raw, _ = os.ReadFile(path1)
	var orig gate.Bundle
	json.Unmarshal(raw, &orig)
	if orig.Consistency == nil || orig.Checkpoint != fresh.Checkpoint {
		t.Fatalf("image one's bundle after the gate moved on: %+v", orig.Consistency)
	}
	for _, c := range []struct {
		name   string
		edit   func(b *gate.Bundle)
		reason string
	}{
		{"no proof", func(b *gate.Bundle) { b.Consistency = nil }, "holds no proof"},
		{"proof element flipped", func(b *gate.Bundle) { b.Consistency.Proof[0][0] ^= 1 }, "does not verify"},
		{"proof element dropped", func(b *gate.Bundle) { b.Consistency.Proof = b.Consistency.Proof[1:] }, "does not verify"},
		{"proof to its own checkpoint", func(b *gate.Bundle) { b.Consistency.Checkpoint = b.Checkpoint }, "not to the newest"},
		{"unsigned target", func(b *gate.Bundle) {
			b.Consistency.Checkpoint = strings.Replace(b.Consistency.Checkpoint, "\n", "\n1", 1)
		}, "does not verify"},
	} {
		var bu gate.Bundle
		json.Unmarshal(raw, &bu)
		c.edit(&bu)
		data, _ := json.Marshal(bu)
		os.WriteFile(path1, data, 0o600)
		d, err := off.Check(ctx, digest.Sum(img1))
		if err != nil || d.Admitted || !strings.Contains(d.Reason, "older than the newest") || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("%s: %v\n%s", c.name, err, d.Reason)
		}
	}
	os.WriteFile(path1, raw, 0o600)

	// A history forked with the same log key, shorter than the log this
	// gate saw, attests image three. Its bundle verifies on its own.
	img3 := []byte("image three")
	forked := ledgertest.Reopen(t, t.TempDir(), w.L.SKey, w.L.VKey)
	defer forked.Close()
	fb, fidx := recordBuild(t, forked, "three", img3, time.Now())
	w.Serve(forked)
	w.Client.AddKey(ctx, "a", string(w.Keys["a"].PublicKeyPEM()), httpapitest.Admin)
	w.attest("a", fb, fidx, nil)
	elsewhere := t.TempDir()
	if d, err := newGate(t, w.policy(1, "a"), elsewhere, false).Check(ctx, digest.Sum(img3)); err != nil || !d.Admitted {
		t.Fatalf("the forked bundle does not verify on its own: %+v %v", d, err)
	}
	forgedPath := filepath.Join(elsewhere, "bundles", digest.Sum(img3).String()+".json")
	forged, err := os.ReadFile(forgedPath)
	if err != nil {
		t.Fatal(err)
	}
	w.Serve(w.L)
	dst := filepath.Join(cache, "bundles", digest.Sum(img3).String()+".json")
	if err := os.WriteFile(dst, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := off.Check(ctx, digest.Sum(img3))
	if err != nil || d.Admitted || !strings.Contains(d.Reason, "holds no proof") {
		t.Fatalf("a bundle of a shorter forked history: %+v %v", d, err)
	}
	// With a proof of the forked log's own making it is refused too.
	var fbu gate.Bundle
	json.Unmarshal(forged, &fbu)
	fbu.Consistency = &gate.Consistency{Checkpoint: orig.Consistency.Checkpoint, Proof: orig.Consistency.Proof}
	data, _ := json.Marshal(fbu)
	os.WriteFile(dst, data, 0o600)
	if d, err := off.Check(ctx, digest.Sum(img3)); err != nil || d.Admitted || !strings.Contains(d.Reason, "does not verify") {
		t.Fatalf("a forked bundle with another bundle's proof: %+v %v", d, err)
	}
}

// TestGateMarkerWriteFails: a rewritten history whose INCONSISTENT marker
// cannot be written is a failure of the gate (callers refuse), not a
// refusal that the next offline decision forgets; and a marker that
// cannot be read refuses every boot.
func TestGateMarkerWriteFails(t *testing.T) {
	w := newWorld(t, "a")
	image := []byte("image")
	b, idx := w.build("web", image, time.Now())
	w.attest("a", b, idx, nil)
	cache := t.TempDir()
	failMarker := func(path string, data []byte, perm fs.FileMode) error {
		if filepath.Base(path) == "INCONSISTENT" {
			return errors.New("injected: read-only file system")
		}
		return atomicfile.WriteFile(path, data, perm)
	}
	g, err := gate.New(gate.Config{Policy: w.policy(1, "a"), CacheDir: cache, WriteFile: failMarker})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := g.Check(ctx, digest.Sum(image)); err != nil || !d.Admitted {
		t.Fatalf("honest: %+v %v", d, err)
	}
	w.serveFork(t, 5)
	d, err := g.Check(ctx, digest.Sum(image))
	if err == nil || !strings.Contains(err.Error(), "read-only file system") || !strings.Contains(err.Error(), "rewrote its history") {
		t.Fatalf("fork with an unwritable marker: decision %+v, error %v", d, err)
	}
	if d != nil && d.Admitted {
		t.Fatalf("admitted: %+v", d)
	}

	// A marker that cannot be read (here: a directory) refuses.
	if err := os.MkdirAll(filepath.Join(cache, "INCONSISTENT", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	d, err = newGate(t, w.policy(1, "a"), cache, true).Check(ctx, digest.Sum(image))
	if err == nil || (d != nil && d.Admitted) {
		t.Fatalf("unreadable marker: %+v %v", d, err)
	}
}

// TestGateBuiltBy: "built by the farm and reproduced by k others". The
// farm's claim is not a reproduction, the farm's own rebuild does not
// count, and without the farm's claim the image is refused.
func TestGateBuiltBy(t *testing.T) {
	w := newWorld(t, "farm", "a", "b")
	image := []byte("\x7fELF a farm-built unikernel")
	b, idx := w.build("web", image, time.Now().Add(-time.Hour))
	imgPath := writeImage(t, image)
	img := digest.Sum(image)
	w.attest("a", b, idx, nil)
	w.attestAs("farm", b, idx, attest.Reproduced, img)

	p := w.policyBuiltBy(2, []string{"farm"}, "farm", "a", "b")
	d, err := newGate(t, p, t.TempDir(), false).Admit(ctx, imgPath)
	if err != nil || d.Admitted || !strings.Contains(d.Reason, "NOT BUILT by any of farm") || statuses(d)["farm"] != gate.StatusBuilderRebuild {
		t.Fatalf("before the farm's claim: %v\n%s", err, d.Reason)
	}
	w.attestAs("farm", b, idx, attest.Built, img)
	d, err = newGate(t, p, t.TempDir(), false).Admit(ctx, imgPath)
	if err != nil || d.Admitted || strings.Join(d.BuiltBy, ",") != "farm" || strings.Join(d.Agreeing, ",") != "a" {
		t.Fatalf("built, one rebuilder: %v %+v\n%s", err, d, d.Reason)
	}
	w.attest("b", b, idx, nil)
	d, err = newGate(t, p, t.TempDir(), false).Admit(ctx, imgPath)
	if err != nil || !d.Admitted || strings.Join(d.Agreeing, ",") != "a,b" || !strings.Contains(d.Reason, "built by: farm") {
		t.Fatalf("built and reproduced by two: %v\n%s", err, d.Reason)
	}
	// Without built_by the farm is one more rebuilder: its reproduction
	// counts, its claim of having built the image does not.
	d, err = newGate(t, w.policy(3, "farm", "a", "b"), t.TempDir(), false).Admit(ctx, imgPath)
	if err != nil || !d.Admitted || strings.Join(d.Agreeing, ",") != "a,b,farm" || len(d.BuiltBy) != 0 ||
		!strings.Contains(d.Reason, "by farm: built (the policy does not name this key in built_by)") {
		t.Fatalf("no built_by: %v\n%s", err, d.Reason)
	}
	// A built claim over other bytes is refused by the ledger itself.
	r := &attest.Rebuild{Job: b.Job, Build: b.UUID, Platform: b.Platform, LogIndex: int64(idx), Verdict: attest.Built,
		BuilderID: "https://farm.example", Subjects: []attest.Subject{{Name: *b.MainBinary, SHA256: digest.Sum([]byte("other"))}}}
	st, _ := r.Statement()
	env, _ := attest.Sign(ctx, st, w.Keys["farm"])
	if _, err := w.Client.SubmitAttestation(ctx, env); err == nil || !strings.Contains(err.Error(), "built") {
		t.Fatalf("a built claim over other bytes: %v", err)
	}
	for _, bad := range []string{
		`{"log_key":` + q(w.L.VKey) + `,"threshold":1,"keys":[{"name":"farm","public_key":` + q(string(w.Keys["farm"].PublicKeyPEM())) + `}],"built_by":["farm"]}`,
		`{"log_key":` + q(w.L.VKey) + `,"threshold":1,"keys":[{"name":"a","public_key":` + q(string(w.Keys["a"].PublicKeyPEM())) + `}],"built_by":["farm"]}`,
		`{"log_key":` + q(w.L.VKey) + `,"threshold":2,"uploader_counts":true,"keys":[{"name":"farm","public_key":` + q(string(w.Keys["farm"].PublicKeyPEM())) + `},{"name":"a","public_key":` + q(string(w.Keys["a"].PublicKeyPEM())) + `}],"built_by":["farm"]}`,
	} {
		if _, err := gate.ParsePolicy([]byte(bad)); !errors.Is(err, gate.ErrPolicy) {
			t.Errorf("policy %s: %v", bad, err)
		}
	}
}
