package benchmarks

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/replica"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
)

// StoredBuildEvent is BuildEvent(i) with every blob it names stored in
// store (small stand-ins for the files), so a replica can fetch them.
func StoredBuildEvent(ctx context.Context, store *cas.Store, i int) (*ledger.BuildRecorded, error) {
	b := BuildEvent(i)
	put := func(s string) (cas.Digest, int64, error) {
		info, err := store.PutBytes(ctx, []byte(s))
		return info.Digest, info.Size, err
	}
	var err error
	if b.Script, _, err = put(fmt.Sprint("script ", i%10)); err != nil {
		return nil, err
	}
	if b.Console, _, err = put(fmt.Sprint("console ", i)); err != nil {
		return nil, err
	}
	for k := range b.Artifacts {
		a := &b.Artifacts[k]
		if a.SHA256, a.Size, err = put(fmt.Sprintf("%s of build %d", a.Path, i)); err != nil {
			return nil, err
		}
	}
	env, sw, pk := b.Artifacts[1].SHA256, b.Artifacts[2].SHA256, b.Artifacts[3].SHA256
	b.Inputs = ledger.Inputs{BuildEnvironment: &env, OpamSwitch: &sw, SystemPackages: &pk}
	return b, nil
}

// ReplicaResult is one replica catch-up run.
type ReplicaResult struct {
	Events          int
	Elapsed         time.Duration
	ReplayPerSecond float64 // baseline: the primary replaying its own log
}

// ReplicaCatchUp records n builds on a primary served on loopback, then
// measures a fresh replica catching up over HTTP (checkpoint, entry
// bundles, blobs, checks, projections) against the primary's own Replay of
// the same log.
func ReplicaCatchUp(n int) (ReplicaResult, error) {
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	ctx := context.Background()
	p, err := openTempLedger("replicabench", &closers)
	if err != nil {
		return ReplicaResult{}, err
	}
	if _, err := p.l.DefineJob(ctx, "bench"); err != nil {
		return ReplicaResult{}, err
	}
	if err := appendConcurrently(ctx, p.l, n, func(i int) (*ledger.BuildRecorded, error) {
		return StoredBuildEvent(ctx, p.store, i)
	}); err != nil {
		return ReplicaResult{}, err
	}
	s, err := httpapi.New(httpapi.Config{Ledger: p.l, VKey: p.vkey})
	if err != nil {
		return ReplicaResult{}, err
	}
	url, err := serve(s, &closers)
	if err != nil {
		return ReplicaResult{}, err
	}

	dir, err := os.MkdirTemp("", "replica")
	if err != nil {
		return ReplicaResult{}, err
	}
	closers = append(closers, func() { os.RemoveAll(dir) })
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		return ReplicaResult{}, err
	}
	closers = append(closers, func() { db.Close() })
	store, err := cas.New(db, cas.Options{})
	if err != nil {
		return ReplicaResult{}, err
	}
	rl, err := ledger.Open(db, store, ledger.Config{ReplicaOf: p.vkey})
	if err != nil {
		return ReplicaResult{}, err
	}
	closers = append(closers, func() { rl.Close() })
	c, err := httpapi.NewClient(url, p.vkey, nil)
	if err != nil {
		return ReplicaResult{}, err
	}
	start := time.Now()
	got, err := (&replica.Replica{Client: c, Ledger: rl}).Sync(ctx)
	if err != nil {
		return ReplicaResult{}, err
	}
	res := ReplicaResult{Events: got, Elapsed: time.Since(start)}
	start = time.Now()
	if err := p.l.Replay(ctx); err != nil {
		return ReplicaResult{}, err
	}
	res.ReplayPerSecond = float64(p.l.Size()) / time.Since(start).Seconds()
	return res, nil
}
