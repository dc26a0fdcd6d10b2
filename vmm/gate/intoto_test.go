package gate_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	intoto "github.com/in-toto/in-toto-golang/in_toto"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/httpapi/httpapitest"
	"github.com/buildledger/buildledger/ledger/event"
	"github.com/buildledger/buildledger/rebuilder"
	"github.com/buildledger/buildledger/vmm/gate"
)

// link has key name submit an in-toto rebuild link of b whose main binary
// came out as got.
func (w *world) link(name string, b *event.BuildRecorded, got digest.Digest) {
	w.t.Helper()
	ik, err := attest.LoadInTotoKey(w.KeyPEMs[name])
	if err != nil {
		w.t.Fatal(err)
	}
	main, _ := b.Artifact(*b.MainBinary)
	actual := []event.Artifact{{Path: main.Path, SHA256: got, Size: main.Size}}
	c := rebuilder.Compare(b.Artifacts, actual)
	v := attest.Differs
	if c.Reproducible() {
		v = attest.Reproduced
	}
	mb, err := rebuilder.Link(&rebuilder.Outcome{Build: b, Result: &rebuilder.Result{}, Verdict: v, Comparison: c}, ik)
	if err != nil {
		w.t.Fatal(err)
	}
	data, _ := json.Marshal(mb)
	if _, err := w.Client.SubmitAttestation(ctx, data); err != nil {
		w.t.Fatal(err)
	}
}

// intotoPolicy writes a standing layout (threshold k over the named keys,
// expiring at expires), signs it with a fresh layout key, and returns the
// policy file naming it, the layout key and a fresh recorder key.
func (w *world) intotoPolicy(k int, expires time.Time, names ...string) string {
	w.t.Helper()
	dir := w.t.TempDir()
	var keys []rebuilder.LayoutKey
	for _, n := range names {
		keys = append(keys, rebuilder.LayoutKey{Name: n, PEM: string(w.Keys[n].PublicKeyPEM())})
	}
	recPEM, _ := attest.GenerateKey(attest.Ed25519)
	rec, _ := attest.LoadSigner(recPEM, nil)
	layoutPEM, _ := attest.GenerateKey(attest.ECDSAP256)
	ls, _ := attest.LoadSigner(layoutPEM, nil)
	mb, _, err := rebuilder.StandingLayout(keys, k, rebuilder.LayoutKey{Name: "vmm", PEM: string(rec.PublicKeyPEM())}, expires)
	if err != nil {
		w.t.Fatal(err)
	}
	lk, err := attest.LoadInTotoKey(layoutPEM)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := mb.Sign(lk); err != nil {
		w.t.Fatal(err)
	}
	if err := mb.Dump(filepath.Join(dir, "root.layout")); err != nil {
		w.t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "layout.pub"), ls.PublicKeyPEM(), 0o644)
	os.WriteFile(filepath.Join(dir, "recorder.key"), recPEM, 0o600)
	doc, _ := json.Marshal(map[string]any{"ledger": w.URL, "log_key": w.L.VKey,
		"intoto": map[string]any{"layout_file": "root.layout", "layout_key_files": []string{"layout.pub"}, "recorder_key_file": "recorder.key"}})
	p := filepath.Join(dir, "policy.json")
	os.WriteFile(p, doc, 0o644)
	return p
}

// TestGateInTotoLayout: a signed in-toto layout as the gate's policy. K
// agreeing links admit, online and offline; one key of the layout that
// got other bytes vetoes (where the JSON policy counts agreement and
// admits); links of too few keys, DSSE attestations alone, a revoked key,
// and layouts that are expired, unsigned, or need commands are refused.
func TestGateInTotoLayout(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	image := []byte("\x7fELF a unikernel rebuilt by in-toto functionaries")
	b, idx := w.build("web", image, time.Now().Add(-time.Hour))
	img := digest.Sum(image)
	imgPath := writeImage(t, image)
	policyFile := w.intotoPolicy(2, time.Now().Add(24*time.Hour), "a", "b", "c")
	load := func() *gate.Policy {
		t.Helper()
		p, err := gate.LoadPolicy(policyFile)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// DSSE attestations do not count for an in-toto policy; one link is
	// not two.
	w.attest("a", b, idx, nil)
	w.attest("b", b, idx, nil)
	w.link("a", b, img)
	d, err := newGate(t, load(), t.TempDir(), false).Admit(ctx, imgPath)
	if err != nil || d.Admitted || !strings.Contains(d.Reason, "in-toto refuses build "+b.UUID.String()) || !strings.Contains(d.Reason, "policy: in-toto layout") {
		t.Fatalf("one link: %v\n%s", err, d.Reason)
	}

	w.link("b", b, img)
	cache := t.TempDir()
	d, err = newGate(t, load(), cache, false).Admit(ctx, imgPath)
	if err != nil || !d.Admitted || len(d.Agreeing) != 2 {
		t.Fatalf("two agreeing links: %v %+v\n%s", err, d, d.Reason)
	}
	// Offline, from the cached bundle.
	d, err = newGate(t, load(), cache, true).Admit(ctx, imgPath)
	if err != nil || !d.Admitted || !d.Offline {
		t.Fatalf("offline: %v\n%s", err, d.Reason)
	}

	// c rebuilds and gets other bytes: in-toto's links of a step must
	// agree, so c vetoes; the JSON policy (2 of a, b, c) still admits and
	// reports the dispute.
	w.link("c", b, digest.Sum([]byte("other bytes")))
	d, err = newGate(t, load(), t.TempDir(), false).Admit(ctx, imgPath)
	if err != nil || d.Admitted {
		t.Fatalf("a disagreeing functionary: %v\n%s", err, d.Reason)
	}
	jp := w.policy(2, "a", "b", "c")
	d, err = newGate(t, jp, t.TempDir(), false).Admit(ctx, imgPath)
	if err != nil || !d.Admitted {
		t.Fatalf("the JSON policy over the same evidence: %v\n%s", err, d.Reason)
	}

	// A layout without c admits again; revoking a in the ledger takes
	// its link away.
	policyFile = w.intotoPolicy(2, time.Now().Add(24*time.Hour), "a", "b")
	if d, err = newGate(t, load(), t.TempDir(), false).Admit(ctx, imgPath); err != nil || !d.Admitted {
		t.Fatalf("a layout without c: %v\n%s", err, d.Reason)
	}
	if _, err := w.Client.RevokeKey(ctx, "a", "compromised", httpapitest.Admin); err != nil {
		t.Fatal(err)
	}
	if d, err = newGate(t, load(), t.TempDir(), false).Admit(ctx, imgPath); err != nil || d.Admitted || !strings.Contains(d.Reason, gate.StatusRevoked) {
		t.Fatalf("after revoking a: %v\n%s", err, d.Reason)
	}

	// Layouts the gate refuses to load.
	expired := w.intotoPolicy(1, time.Now().Add(-time.Minute), "b")
	if _, err := gate.LoadPolicy(expired); !errors.Is(err, gate.ErrPolicy) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired layout: %v", err)
	}
	dir := filepath.Dir(policyFile)
	other, _ := attest.GenerateKey(attest.ECDSAP256)
	os.WriteFile(filepath.Join(dir, "layout.pub"), pubOf(t, other), 0o644)
	if _, err := gate.LoadPolicy(policyFile); !errors.Is(err, gate.ErrPolicy) || !strings.Contains(err.Error(), "not signed by every layout key") {
		t.Errorf("layout signed by another key: %v", err)
	}
	md, _ := intoto.LoadMetadata(filepath.Join(dir, "root.layout"))
	l := md.GetPayload().(intoto.Layout)
	l.Inspect = []intoto.Inspection{{Type: "inspection", Run: []string{"sh", "-c", "true"}, SupplyChainItem: intoto.SupplyChainItem{Name: "x"}}}
	lk, _ := attest.LoadInTotoKey(other)
	signed := &intoto.Metablock{Signed: l}
	signed.Sign(lk)
	signed.Dump(filepath.Join(dir, "root.layout"))
	if _, err := gate.LoadPolicy(policyFile); !errors.Is(err, gate.ErrPolicy) || !strings.Contains(err.Error(), "runs no commands") {
		t.Errorf("layout with an inspection: %v", err)
	}
	mixed := `{"log_key":` + q(w.L.VKey) + `,"threshold":1,"keys":[{"name":"a","public_key":` + q(string(w.Keys["a"].PublicKeyPEM())) +
		`}],"intoto":{"layout_file":"x","layout_key_files":["y"],"recorder_key_file":"z"}}`
	if _, err := gate.ParsePolicy([]byte(mixed)); !errors.Is(err, gate.ErrPolicy) || !strings.Contains(err.Error(), "decides by its layout alone") {
		t.Errorf("in-toto and threshold together: %v", err)
	}
	if _, err := gate.ParsePolicy([]byte(`{"log_key":` + q(w.L.VKey) + `}`)); !errors.Is(err, gate.ErrPolicy) {
		t.Errorf("neither threshold nor intoto: %v", err)
	}
}

func pubOf(t *testing.T, privPEM []byte) []byte {
	t.Helper()
	s, err := attest.LoadSigner(privPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKeyPEM()
}

func loadPolicy(t *testing.T, f string) *gate.Policy {
	t.Helper()
	p, err := gate.LoadPolicy(f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
