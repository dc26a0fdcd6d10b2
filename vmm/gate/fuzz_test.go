package gate_test

import (
	"bytes"
	"encoding/json"
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

// FuzzCheckBundle: a cached bundle mutated in any way never panics the
// gate, and is admitted only while the evidence of the valid bundle is
// intact: its build record, its attestation and the proof that its
// checkpoint is a prefix of the newest one seen, byte for byte, with the
// same build and agreeing party decided.
func FuzzCheckBundle(f *testing.F) {
	w := newWorld(f, "a", "b")
	image := []byte("fuzzed image")
	b, idx := w.build("web", image, time.Now())
	w.attest("a", b, idx, nil)
	w.attest("b", b, idx, nil) // registered in the ledger, not trusted by the policy
	cache, err := os.MkdirTemp("", "gatefuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(cache) })
	pol := w.policy(1, "a")
	g, err := gate.New(gate.Config{Policy: pol, CacheDir: cache})
	if err != nil {
		f.Fatal(err)
	}
	d := digest.Sum(image)
	want, err := g.Check(ctx, d)
	if err != nil || !want.Admitted || want.Build == nil || want.Build.UUID != b.UUID {
		f.Fatalf("seed not admitted: %v %v", err, want)
	}
	// The log grows and the gate accepts a newer checkpoint: the cached
	// bundle is older and carries a consistency proof to it.
	pad := []byte("a later build")
	w.build("pad", pad, time.Now())
	if _, err := g.Check(ctx, digest.Sum(pad)); err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(cache, "bundles", d.String()+".json")
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
		if pe.Index == idx {
			build = pe
		}
	}
	var valid []gate.ProvenAttestation
	for _, pa := range orig.Attestations {
		ev, err := event.Decode(pa.Event)
		if ar, ok := ev.(*event.AttestationRecorded); err == nil && ok && ar.KeyID == w.Keys["a"].KeyID() {
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
	off, err := gate.New(gate.Config{Policy: pol, CacheDir: cache, Offline: true})
	if err != nil {
		f.Fatal(err)
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
