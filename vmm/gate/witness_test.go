package gate_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/internal/witnesstest"
	"github.com/buildledger/buildledger/ledger/witnessing"
	"github.com/buildledger/buildledger/vmm/gate"
)

// TestGateWitnesses: with witness_policy_file the gate boots only from
// checkpoints cosigned by a quorum of real witnesses, online and offline;
// a cached bundle whose cosignature was removed is refused offline, and a
// policy the ledger's checkpoints do not meet refuses online.
func TestGateWitnesses(t *testing.T) {
	w := newWorld(t, "a", "b")
	image := []byte("\x7fELF a witnessed unikernel")
	b, idx := w.build("web", image, time.Now().Add(-time.Hour))
	w.attest("a", b, idx, nil)
	w.attest("b", b, idx, nil)
	lw := witnesstest.Start(t, "witness.example/one", w.L.VKey)
	policy := fmt.Sprintf("witness one %s %s\nquorum one\n", lw.VKey, lw.URL)
	wit, err := witnessing.New(witnessing.Config{Policy: []byte(policy), Prover: w.L.Tree()})
	if err != nil {
		t.Fatal(err)
	}
	if c := wit.Cosign(ctx, w.L.Checkpoint()); !c.Quorum {
		t.Fatalf("cosigning: %+v", c)
	}
	w.Witness(wit)

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "witnesses"), []byte(policy), 0o644)
	write := func(name, witnesses string) string {
		var keys []map[string]any
		for _, n := range []string{"a", "b"} {
			keys = append(keys, map[string]any{"name": n, "public_key": string(w.Keys[n].PublicKeyPEM())})
		}
		doc, _ := json.Marshal(map[string]any{"ledger": w.URL, "log_key": w.L.VKey, "threshold": 2, "keys": keys, "witness_policy_file": witnesses})
		p := filepath.Join(dir, name)
		os.WriteFile(p, doc, 0o644)
		return p
	}
	p, err := gate.LoadPolicy(write("policy.json", "witnesses"))
	if err != nil {
		t.Fatal(err)
	}
	imgPath := writeImage(t, image)
	cache := t.TempDir()
	d, err := newGate(t, p, cache, false).Admit(ctx, imgPath)
	if err != nil || !d.Admitted {
		t.Fatalf("online with witnesses: %v\n%s", err, d.Reason)
	}
	if d, err = newGate(t, p, cache, true).Admit(ctx, imgPath); err != nil || !d.Admitted || !d.Offline {
		t.Fatalf("offline with witnesses: %v\n%s", err, d.Reason)
	}
	// The cached bundle without its cosignature.
	bp := filepath.Join(cache, "bundles", digest.Sum(image).String()+".json")
	raw, err := os.ReadFile(bp)
	if err != nil {
		t.Fatal(err)
	}
	var bundle map[string]any
	json.Unmarshal(raw, &bundle)
	note := bundle["checkpoint"].(string)
	i := strings.Index(note, "— witness.example/one ")
	if i < 0 {
		t.Fatalf("the bundle's checkpoint carries no cosignature:\n%s", note)
	}
	j := i + strings.Index(note[i:], "\n") + 1
	bundle["checkpoint"] = note[:i] + note[j:]
	raw, _ = json.Marshal(bundle)
	os.WriteFile(bp, raw, 0o600)
	if d, err = newGate(t, p, cache, true).Admit(ctx, imgPath); err != nil || d.Admitted || !strings.Contains(d.Reason, "lacks the witness cosignatures") {
		t.Fatalf("offline, cosignature removed: %v\n%s", err, d.Reason)
	}
	// A policy requiring a witness the ledger never asked.
	other := witnesstest.Start(t, "witness.example/two", w.L.VKey)
	os.WriteFile(filepath.Join(dir, "strict"), []byte(fmt.Sprintf("witness one %s %s\nwitness two %s %s\ngroup both all one two\nquorum both\n", lw.VKey, lw.URL, other.VKey, other.URL)), 0o644)
	strict, err := gate.LoadPolicy(write("strict.json", "strict"))
	if err != nil {
		t.Fatal(err)
	}
	if d, err = newGate(t, strict, t.TempDir(), false).Admit(ctx, imgPath); err != nil || d.Admitted || !strings.Contains(d.Reason, "lacks the witness cosignatures") {
		t.Fatalf("online, the ledger lacks the quorum: %v\n%s", err, d.Reason)
	}
}
