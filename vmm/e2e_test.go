package vmm_test

import (
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/buildledger/buildledger/ledger/ledgertest"
	"github.com/buildledger/buildledger/rebuilder"
	"github.com/buildledger/buildledger/vmm"
	"github.com/buildledger/buildledger/vmm/gate"
)

// farm is a real ledger server (httpapitest), a build farm that builds
// with the rebuilder package and uploads, and rebuilders with their own
// keys.
type farm struct {
	*httpapitest.Server
	t    *testing.T
	root string
}

var admin = httpapitest.Admin

func newFarm(t *testing.T, keys ...string) *farm {
	f := &farm{Server: httpapitest.New(t), t: t, root: filepath.Join(t.TempDir(), "root")}
	for _, k := range keys {
		f.Key(k, true)
	}
	return f
}

// build runs a job whose output is a "unikernel" for the process tender
// (a shell script that announces its version and stays up), uploads it
// and returns the build and the image bytes.
func (f *farm) build(version string) (*event.BuildRecorded, []byte) {
	f.t.Helper()
	script := fmt.Sprintf("mkdir -p bin\nprintf '#!/bin/sh\\necho web %s up\\nexec sleep 600\\n' > bin/web.hvt\nchmod 755 bin/web.hvt\n", version)
	res, err := rebuilder.Run(ctx, rebuilder.Spec{Job: "web", Script: []byte(script), SourceDateEpoch: 1700000000},
		rebuilder.Options{Root: f.root, SkipSystem: true})
	if err != nil {
		f.t.Fatal(err)
	}
	der, err := res.Exec.Marshal()
	if err != nil {
		f.t.Fatal(err)
	}
	_, b, err := f.Client.Upload(ctx, der, res.Exec.UUID, httpapitest.Farm)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, o := range res.Exec.Output {
		if o.Path == "bin/web.hvt" {
			return b, o.Data
		}
	}
	f.t.Fatal("no image built")
	return nil, nil
}

// rebuild has key rebuild build b for real and attest the verdict.
func (f *farm) rebuild(key string, b *event.BuildRecorded) {
	f.t.Helper()
	r := &rebuilder.Rebuilder{Client: f.Client, Signer: f.Keys[key], BuilderID: "https://rebuilders.example/" + key,
		Options: rebuilder.Options{Root: f.root, SkipSystem: true}}
	o, err := r.Rebuild(ctx, b.UUID)
	if err != nil || o.Verdict != attest.Reproduced {
		f.t.Fatalf("rebuild by %s: %v\n%v", key, err, o)
	}
}

// disagree has key attest that it got other bytes for build b's image.
func (f *farm) disagree(key string, b *event.BuildRecorded) {
	f.t.Helper()
	be, err := f.L.Build(b.UUID)
	if err != nil {
		f.t.Fatal(err)
	}
	r := &attest.Rebuild{Job: b.Job, Build: b.UUID, Platform: b.Platform, LogIndex: int64(be.Index), Verdict: attest.Differs,
		BuilderID: "https://rebuilders.example/" + key,
		Subjects:  []attest.Subject{{Name: "bin/web.hvt", SHA256: attest.Sum([]byte("what " + key + " built"))}}}
	st, err := r.Statement()
	if err != nil {
		f.t.Fatal(err)
	}
	env, err := attest.Sign(ctx, st, f.Keys[key])
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.Client.SubmitAttestation(ctx, env); err != nil {
		f.t.Fatal(err)
	}
}

func (f *farm) gate(k int, cache string, offline bool, trusted ...string) *gate.Gate {
	f.t.Helper()
	var keys []map[string]any
	for _, n := range trusted {
		keys = append(keys, map[string]any{"name": n, "public_key": string(f.Keys[n].PublicKeyPEM())})
	}
	doc, _ := json.Marshal(map[string]any{"ledger": f.URL, "log_key": f.L.VKey, "threshold": k, "keys": keys})
	p, err := gate.ParsePolicy(doc)
	if err != nil {
		f.t.Fatal(err)
	}
	g, err := gate.New(gate.Config{Policy: p, CacheDir: cache, Offline: offline})
	if err != nil {
		f.t.Fatal(err)
	}
	return g
}

func writeExec(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "web.hvt")
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitConsole waits until the unikernel printed want.
func waitConsole(t *testing.T, e *env, name, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []string
		e.c.Console(ctx, name, vmm.ConsoleQuery{}, func(l vmm.Line) error { got = append(got, l.Text); return nil })
		if strings.Contains(strings.Join(got, "\n"), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never printed %q; console: %q", name, want, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func refused(t *testing.T, err error, want ...string) {
	t.Helper()
	if !errors.Is(err, vmm.ErrRefused) {
		t.Fatalf("want a refusal, got %v", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("refusal does not say %q:\n%v", w, err)
		}
	}
}

// TestGatedBootEndToEnd: a real ledger, builds made and rebuilt by the
// rebuilder package with real keys, the real gate and the process tender.
func TestGatedBootEndToEnd(t *testing.T) {
	f := newFarm(t, "a", "b", "c")
	v1, img1 := f.build("v1")
	f.rebuild("a", v1)
	f.rebuild("b", v1)
	cache := t.TempDir()
	g2 := f.gate(2, cache, false, "a", "b", "c")
	e := newEnv(t, func(c *vmm.Config) { c.Gate = g2 })
	path1 := writeExec(t, img1)

	// k=2 with two agreeing rebuilders boots.
	info := e.mustCreate(vmm.Spec{Name: "web", Tender: "process"}, path1)
	if info.State != vmm.StateRunning || info.Image != digest.Sum(img1) || info.Admission == nil ||
		strings.Join(info.Admission.Agreeing, ",") != "a,b" || info.Admission.Build == nil || info.Admission.Build.UUID != v1.UUID {
		t.Fatalf("k=2: %+v", info)
	}
	waitConsole(t, e, "web", "web v1 up")

	// k=3 refuses, with the reason.
	e3 := newEnv(t, func(c *vmm.Config) { c.Gate = f.gate(3, t.TempDir(), false, "a", "b", "c") })
	_, err := e3.create(vmm.Spec{Name: "web", Tender: "process", MemMB: 32}, path1)
	refused(t, err, "2 of 3 required", "job web, build "+v1.UUID.String())

	// One flipped byte refuses.
	flipped := append([]byte(nil), img1...)
	flipped[len(flipped)-2] ^= 1
	_, err = e.create(vmm.Spec{Name: "flipped", Tender: "process", MemMB: 32}, writeExec(t, flipped))
	refused(t, err, "no build in the ledger has")

	// A disagreeing rebuilder is reported.
	f.disagree("c", v1)
	_, err = e3.create(vmm.Spec{Name: "web", Tender: "process", MemMB: 32}, path1)
	refused(t, err, "OTHER BYTES", "by c: different digest")

	// Update to a newer attested build swaps; to an unattested one refuses.
	v2, img2 := f.build("v2")
	f.rebuild("a", v2)
	f.rebuild("b", v2)
	rep, err := e.c.Update(ctx, "web", true, nil)
	if err != nil || rep.New == nil || rep.Updated || rep.New.New.UUID != v2.UUID || !strings.Contains(rep.New.CompareURL, "/compare/"+v1.UUID.String()+"/"+v2.UUID.String()) {
		t.Fatalf("dry run: %+v %v", rep, err)
	}
	if rep, err = e.c.Update(ctx, "web", false, nil); err != nil || !rep.Updated {
		t.Fatalf("update to v2: %+v %v", rep, err)
	}
	if got := e.info("web"); got.Image != digest.Sum(img2) || got.State != vmm.StateRunning {
		t.Fatalf("after the update: %+v", got)
	}
	waitConsole(t, e, "web", "web v2 up")
	v3, _ := f.build("v3")
	_, err = e.c.Update(ctx, "web", false, nil)
	refused(t, err, "0 of 2 required", v3.UUID.String())
	if got := e.info("web"); got.Image != digest.Sum(img2) || got.State != vmm.StateRunning {
		t.Fatalf("a refused update changed the running image: %+v", got)
	}

	// Offline: with the cached bundle it boots; without one it refuses.
	eoff := newEnv(t, func(c *vmm.Config) { c.Gate = f.gate(2, cache, true, "a", "b", "c") })
	if i := eoff.mustCreate(vmm.Spec{Name: "web", Tender: "process"}, path1); i.Admission == nil || !i.Admission.Offline {
		t.Fatalf("offline with a bundle: %+v", i)
	}
	enone := newEnv(t, func(c *vmm.Config) { c.Gate = f.gate(2, t.TempDir(), true, "a", "b", "c") })
	_, err = enone.create(vmm.Spec{Name: "web", Tender: "process", MemMB: 32}, path1)
	refused(t, err, "no bundle")

	// A revoked key no longer counts.
	if _, err := f.Client.RevokeKey(ctx, "b", "key lost", admin); err != nil {
		t.Fatal(err)
	}
	_, err = e.create(vmm.Spec{Name: "web-again", Tender: "process", MemMB: 32}, path1)
	refused(t, err, "1 of 2 required", "by b: revoked")

	// A ledger that rewrites its log is caught.
	forked := ledgertest.Reopen(t, t.TempDir(), f.L.SKey, f.L.VKey)
	defer forked.Close()
	for i := range 30 {
		t0 := time.Unix(1.7e9, 0)
		forged := &event.BuildRecorded{Job: "web", UUID: uuid.New(), Platform: "debian-12", Started: t0, Finished: t0,
			Result: event.Result{Kind: event.ResultExited}, Script: digest.Sum(nil), Console: digest.Sum(nil),
			Artifacts: []event.Artifact{{Path: "bin/web.hvt", SHA256: digest.Sum([]byte(fmt.Sprint("forged", i))), Size: 1}}}
		forked.DefineJob(ctx, "web")
		if _, err := forked.Append(ctx, forged); err != nil {
			t.Fatal(err)
		}
	}
	f.Serve(forked)
	_, err = e.create(vmm.Spec{Name: "web-forked", Tender: "process", MemMB: 32}, path1)
	refused(t, err, "rewrote its history")
}
