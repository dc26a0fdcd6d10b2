package gate_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/event"

	"github.com/buildledger/buildledger/vmm/gate"
)

// FuzzParsePolicy: any policy document is parsed or refused with an error.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"log_key":"a+00000000+AAAA","threshold":1,"keys":[{"name":"a","public_key":"x"}]}`))
	f.Add([]byte(`{"ledger":"http://x","log_key":"x","threshold":2,"keys":[],"max_bundle_age":"1h","uploader_counts":true}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := gate.ParsePolicy(doc)
		if err == nil && (p.Threshold < 1 || len(p.Keys) == 0) {
			t.Fatalf("accepted an unusable policy: %+v", p)
		}
	})
}

// The fixture FuzzCheckBundle mutates, made from a real ledger by
// 'go test ./vmm/gate -run TestFuzzFixture -update': the gate's state
// (its newest checkpoint), the cached bundle of an image attested by the
// trusted key a and the untrusted key b, older than that checkpoint and
// carrying the consistency proof to it, the policy (k=1 of a) and the log
// indexes of the evidence that admits. Fuzzing needs no ledger then: no
// server or database runs in the fuzzing process.
const fixtureDir = "testdata/fuzzbundle"

var update = flag.Bool("update", false, "rewrite "+fixtureDir+" from a real ledger")

type evidence struct {
	Image       digest.Digest `json:"image"`
	Build       uint64        `json:"build_index"`
	Attestation uint64        `json:"attestation_index"`
}

// TestFuzzFixture checks (and with -update first rewrites) the fixture:
// offline, the gate admits its bundle, which is older than the gate's
// checkpoint and proven consistent with it.
func TestFuzzFixture(t *testing.T) {
	if *update {
		writeFuzzFixture(t)
	}
	g, ev, bundlePath := openFuzzFixture(t)
	dec, err := g.Check(ctx, ev.Image)
	if err != nil || !dec.Admitted || !dec.Offline || dec.Build == nil || dec.Build.LogIndex != ev.Build || !slices.Equal(dec.Agreeing, []string{"a"}) {
		t.Fatalf("fixture not admitted: %+v %v", dec, err)
	}
	var b gate.Bundle
	raw, _ := os.ReadFile(bundlePath)
	if err := json.Unmarshal(raw, &b); err != nil || b.Consistency == nil || len(b.Attestations) != 2 {
		t.Fatalf("fixture bundle: %v, consistency %v, %d attestations", err, b.Consistency, len(b.Attestations))
	}
}

func writeFuzzFixture(t *testing.T) {
	w := newWorld(t, "a", "b")
	image := []byte("fuzzed image")
	b, idx := w.build("web", image, time.Now())
	w.attest("a", b, idx, nil)
	w.attest("b", b, idx, nil) // registered in the ledger, not trusted by the policy
	cache := t.TempDir()
	g := newGate(t, w.policy(1, "a"), cache, false)
	d := digest.Sum(image)
	if dec, err := g.Check(ctx, d); err != nil || !dec.Admitted {
		t.Fatalf("not admitted: %+v %v", dec, err)
	}
	// The log grows and the gate accepts a newer checkpoint: the cached
	// bundle is older and gets a consistency proof to it.
	pad := []byte("a later build")
	w.build("pad", pad, time.Now())
	if _, err := g.Check(ctx, digest.Sum(pad)); err != nil {
		t.Fatal(err)
	}
	bundle, err := os.ReadFile(filepath.Join(cache, "bundles", d.String()+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var bu gate.Bundle
	json.Unmarshal(bundle, &bu)
	ev := evidence{Image: d, Build: idx}
	for _, pa := range bu.Attestations {
		e, err := event.Decode(pa.Event)
		if ar, ok := e.(*event.AttestationRecorded); err == nil && ok && ar.KeyID == w.Keys["a"].KeyID() {
			ev.Attestation = pa.Index
		}
	}
	state, err := os.ReadFile(filepath.Join(cache, "checkpoint.json"))
	if err != nil {
		t.Fatal(err)
	}
	policy, _ := json.MarshalIndent(map[string]any{"log_key": w.L.VKey, "threshold": 1,
		"keys": []map[string]any{{"name": "a", "public_key": string(w.Keys["a"].PublicKeyPEM())}}}, "", "  ")
	evj, _ := json.MarshalIndent(ev, "", "  ")
	if err := os.MkdirAll(fixtureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"bundle.json": bundle, "checkpoint.json": state, "policy.json": policy, "evidence.json": evj} {
		if err := os.WriteFile(filepath.Join(fixtureDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// openFuzzFixture copies the fixture into a new cache directory and
// returns an offline gate on it.
func openFuzzFixture(tb testing.TB) (*gate.Gate, evidence, string) {
	tb.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(fixtureDir, name))
		if err != nil {
			tb.Fatalf("%v; make the fixture with 'go test ./vmm/gate -run TestFuzzFixture -update'", err)
		}
		return b
	}
	var ev evidence
	if err := json.Unmarshal(read("evidence.json"), &ev); err != nil {
		tb.Fatal(err)
	}
	pol, err := gate.ParsePolicy(read("policy.json"))
	if err != nil {
		tb.Fatal(err)
	}
	cache := tb.TempDir()
	bundlePath := filepath.Join(cache, "bundles", ev.Image.String()+".json")
	if err := os.MkdirAll(filepath.Dir(bundlePath), 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cache, "checkpoint.json"), read("checkpoint.json"), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(bundlePath, read("bundle.json"), 0o600); err != nil {
		tb.Fatal(err)
	}
	g, err := gate.New(gate.Config{Policy: pol, CacheDir: cache, Offline: true})
	if err != nil {
		tb.Fatal(err)
	}
	return g, ev, bundlePath
}

// FuzzCheckBundle: a cached bundle mutated in any way never panics the
// gate, and is admitted only while the evidence of the valid bundle is
// intact: its build record, its attestation and the proof that its
// checkpoint is a prefix of the newest one seen, byte for byte, with the
// same build and agreeing party decided.
func FuzzCheckBundle(f *testing.F) {
	off, ev, path := openFuzzFixture(f)
	d := ev.Image
	want, err := off.Check(ctx, d)
	if err != nil || !want.Admitted || want.Build == nil || want.Build.LogIndex != ev.Build {
		f.Fatalf("fixture not admitted: %v %v", err, want)
	}
	seed, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	var orig gate.Bundle
	if err := json.Unmarshal(seed, &orig); err != nil {
		f.Fatal(err)
	}
	// The evidence that admits: the build record and a's attestation.
	var build gate.ProvenEvent
	for _, pe := range orig.Builds {
		if pe.Index == ev.Build {
			build = pe
		}
	}
	var valid []gate.ProvenAttestation
	for _, pa := range orig.Attestations {
		if pa.Index == ev.Attestation {
			valid = append(valid, pa)
		}
	}
	if build.Event == nil || len(valid) != 1 || len(orig.Attestations) != 2 || orig.Consistency == nil {
		f.Fatalf("seed bundle: build %v, %d valid of %d attestations, consistency %v", build.Index, len(valid), len(orig.Attestations), orig.Consistency)
	}
	f.Add(seed)
	for _, edit := range []func(b *gate.Bundle){
		func(b *gate.Bundle) { b.Attestations[0], b.Attestations[1] = b.Attestations[1], b.Attestations[0] },
		func(b *gate.Bundle) {
			b.Attestations[0].Envelope, b.Attestations[1].Envelope = b.Attestations[1].Envelope, b.Attestations[0].Envelope
		},
		func(b *gate.Bundle) { b.Attestations = append(b.Attestations, b.Attestations...) },
		func(b *gate.Bundle) { b.KeyEvents = nil },
		func(b *gate.Bundle) { b.Builds[0].Index++ },
		func(b *gate.Bundle) { b.Consistency.Proof = b.Consistency.Proof[1:] },
		func(b *gate.Bundle) { b.Consistency.Checkpoint = b.Checkpoint },
	} {
		var bu gate.Bundle
		json.Unmarshal(seed, &bu)
		edit(&bu)
		data, _ := json.Marshal(bu)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, bundle []byte) {
		if err := os.WriteFile(path, bundle, 0o600); err != nil {
			t.Fatal(err)
		}
		dec, err := off.Check(ctx, d)
		if err != nil {
			t.Fatalf("gate failure instead of a decision: %v", err)
		}
		if !dec.Admitted {
			return
		}
		// Admitted: the valid evidence must be there, unchanged.
		var m gate.Bundle
		if err := json.Unmarshal(bundle, &m); err != nil {
			t.Fatalf("admitted a bundle that does not parse: %v", err)
		}
		if m.Checkpoint != orig.Checkpoint {
			t.Fatalf("admitted under another checkpoint:\n%s", m.Checkpoint)
		}
		if m.Consistency == nil || m.Consistency.Checkpoint != orig.Consistency.Checkpoint ||
			!slices.EqualFunc(m.Consistency.Proof, orig.Consistency.Proof, bytes.Equal) {
			t.Fatalf("admitted with another consistency proof: %+v", m.Consistency)
		}
		if !slices.ContainsFunc(m.Builds, func(pe gate.ProvenEvent) bool {
			return pe.Index == build.Index && bytes.Equal(pe.Event, build.Event)
		}) {
			t.Fatalf("admitted without the build record at %d", build.Index)
		}
		if !slices.ContainsFunc(m.Attestations, func(pa gate.ProvenAttestation) bool {
			return pa.Index == valid[0].Index && bytes.Equal(pa.Event, valid[0].Event) && bytes.Equal(pa.Envelope, valid[0].Envelope)
		}) {
			t.Fatalf("admitted without a's attestation at %d", valid[0].Index)
		}
		if dec.Build == nil || *dec.Build != *want.Build || !slices.Equal(dec.Agreeing, want.Agreeing) {
			t.Fatalf("admitted with build %+v agreeing %v; the valid bundle gives %+v, %v", dec.Build, dec.Agreeing, want.Build, want.Agreeing)
		}
		n := 0
		for _, v := range dec.Verdicts {
			if v.Status == gate.StatusValid {
				n++
				if v.LogIndex != valid[0].Index || v.KeyName != "a" {
					t.Fatalf("valid verdict for %+v", v)
				}
			}
		}
		if n == 0 {
			t.Fatalf("admitted with no valid verdict: %+v", dec.Verdicts)
		}
	})
}
