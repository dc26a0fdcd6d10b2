package gate_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas"
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
// gate, and is decided offline from what verifies.
func FuzzCheckBundle(f *testing.F) {
	w := newWorld(f, "a")
	image := []byte("fuzzed image")
	b, idx := w.build("web", image, time.Now())
	w.attest("a", b, idx, nil)
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
	d := cas.Sum(image)
	if dec, err := g.Check(ctx, d); err != nil || !dec.Admitted {
		f.Fatalf("seed not admitted: %v %v", err, dec)
	}
	path := filepath.Join(cache, "bundles", d.String()+".json")
	seed, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	off, err := gate.New(gate.Config{Policy: pol, CacheDir: cache, Offline: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, bundle []byte) {
		if err := os.WriteFile(path, bundle, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := off.Check(ctx, d); err != nil {
			t.Fatalf("gate failure instead of a decision: %v", err)
		}
	})
}
