package benchmarks

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/cas/castest"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/vmm/gate"
)

// GateFixture is a ledger server with one build attested by three trusted
// keys, and a boot gate (k=3) whose bundle for the image is cached.
type GateFixture struct {
	Image   cas.Digest
	Offline *gate.Gate // decides from the warm bundle only
	close   []func()
}

// Close stops the server and removes the stores.
func (f *GateFixture) Close() {
	for i := len(f.close) - 1; i >= 0; i-- {
		f.close[i]()
	}
}

// NewGateFixture builds the ledger, the attestations and the warm bundle.
func NewGateFixture() (*GateFixture, error) {
	f := &GateFixture{}
	tl, err := openTempLedger("gatebench", &f.close)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	users := auth.New(tl.db)
	if err := users.AddAdmin("root", "bench-password"); err != nil {
		return nil, err
	}
	s, err := httpapi.New(httpapi.Config{Ledger: tl.l, VKey: tl.vkey, Users: users})
	if err != nil {
		return nil, err
	}
	url, err := serve(s, &f.close)
	if err != nil {
		return nil, err
	}
	c, err := httpapi.NewClient(url, tl.vkey, nil)
	if err != nil {
		return nil, err
	}
	image := []byte("a unikernel image for the gate benchmark")
	info, err := tl.store.PutBytes(ctx, image)
	if err != nil {
		return nil, err
	}
	f.Image = info.Digest
	main := "bin/web.hvt"
	b := &ledger.BuildRecorded{Job: "web", UUID: uuid.New(), Platform: "debian-12", Started: time.Unix(1.7e9, 0), Finished: time.Unix(1.7e9+60, 0),
		Result: ledger.Result{Kind: ledger.ResultExited}, Script: cas.Sum(nil), Console: cas.Sum(nil),
		Artifacts: []ledger.Artifact{{Path: main, SHA256: f.Image, Size: int64(len(image))}}, MainBinary: &main}
	if _, err := tl.l.DefineJob(ctx, "web"); err != nil {
		return nil, err
	}
	rc, err := tl.l.Append(ctx, b)
	if err != nil {
		return nil, err
	}
	var keys []map[string]any
	for i := range 3 {
		p, err := attest.GenerateKey(attest.ECDSAP256)
		if err != nil {
			return nil, err
		}
		sg, err := attest.LoadSigner(p, nil)
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("rebuilder-%d", i)
		if _, err := c.AddKey(ctx, name, string(sg.PublicKeyPEM()), httpapi.Credentials{User: "root", Password: "bench-password"}); err != nil {
			return nil, err
		}
		keys = append(keys, map[string]any{"name": name, "public_key": string(sg.PublicKeyPEM())})
		st, err := (&attest.Rebuild{Job: "web", Build: b.UUID, Platform: "debian-12", LogIndex: int64(rc.Index), Verdict: attest.Reproduced,
			BuilderID: "https://rebuilder.example/" + name, Subjects: []attest.Subject{{Name: main, SHA256: f.Image}}}).Statement()
		if err != nil {
			return nil, err
		}
		env, err := attest.Sign(ctx, st, sg)
		if err != nil {
			return nil, err
		}
		if _, err := c.SubmitAttestation(ctx, env); err != nil {
			return nil, err
		}
	}
	doc, _ := json.Marshal(map[string]any{"ledger": url, "log_key": tl.vkey, "threshold": 3, "keys": keys})
	pol, err := gate.ParsePolicy(doc)
	if err != nil {
		return nil, err
	}
	cache, err := os.MkdirTemp("", "gatecache")
	if err != nil {
		return nil, err
	}
	f.close = append(f.close, func() { os.RemoveAll(cache) })
	online, err := gate.New(gate.Config{Policy: pol, CacheDir: cache})
	if err != nil {
		return nil, err
	}
	if d, err := online.Check(ctx, f.Image); err != nil || !d.Admitted {
		return nil, fmt.Errorf("gate fixture not admitted: %v %v", err, d)
	}
	if f.Offline, err = gate.New(gate.Config{Policy: pol, CacheDir: cache, Offline: true}); err != nil {
		return nil, err
	}
	return f, nil
}

// GateDecision measures one k=3 decision from the warm bundle: reading
// and verifying it, three envelopes and the policy (no image hashing).
func GateDecision(b *testing.B, f *GateFixture) {
	ctx := context.Background()
	for b.Loop() {
		d, err := f.Offline.Check(ctx, f.Image)
		if err != nil || !d.Admitted {
			b.Fatalf("%v %v", err, d)
		}
	}
}

// ImageFile writes n bytes of incompressible data to a temporary file.
func ImageFile(n int, closers *[]func()) (string, []byte, error) {
	dir, err := os.MkdirTemp("", "image")
	if err != nil {
		return "", nil, err
	}
	*closers = append(*closers, func() { os.RemoveAll(dir) })
	data := castest.RandBytes(7, n)
	p := filepath.Join(dir, "image.hvt")
	return p, data, os.WriteFile(p, data, 0o644)
}

// HashImage measures gate.HashFile (read from the page cache, hash).
func HashImage(b *testing.B, path string, size int) {
	b.SetBytes(int64(size))
	for b.Loop() {
		if _, err := gate.HashFile(path); err != nil {
			b.Fatal(err)
		}
	}
}

// SHA256Memory is the baseline: crypto/sha256 over the same bytes in memory.
func SHA256Memory(b *testing.B, data []byte) {
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sha256.Sum256(data)
	}
}
