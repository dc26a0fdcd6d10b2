package replica_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi/replica"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
)

func openWithSpace(t *testing.T, vkey string, space func() error) *ledger.Ledger {
	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := cas.New(db, cas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(db, store, ledger.Config{ReplicaOf: vkey, GC: ledger.GCConfig{Interval: -1}, CheckSpace: space})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); db.Close() })
	return l
}

// TestReplicateWrongOffset: entries given at another offset than where
// they are in the log are refused and nothing is stored; no entries short
// of the checkpoint is nothing to do, not an error.
func TestReplicateWrongOffset(t *testing.T) {
	p := newPrimary(t)
	for i := range 15 {
		p.record(t, "web", map[string]string{"bin/web.hvt": fmt.Sprint("image ", i)})
	}
	l := openWithSpace(t, p.L.VKey, nil)
	if _, err := (&replica.Replica{Client: p.Client, Ledger: l}).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// A second replica, brought to 7 entries, then given entries 0..N-7 at offset 7.
	cp, err := p.Client.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all, err := p.Client.Entries(ctx, 0, cp.Size, cp)
	if err != nil {
		t.Fatal(err)
	}
	prove := func(n uint64, root [32]byte) error { return p.Client.ProveConsistent(ctx, n, root, cp) }
	r2 := openWithSpace(t, p.L.VKey, nil)
	if err := r2.Replicate(ctx, all[:7], cp.Note, prove); err != nil {
		t.Fatal(err)
	}
	if err := r2.Replicate(ctx, nil, cp.Note, prove); err != nil {
		t.Fatalf("Replicate(nil) at 7 < %d: %v", cp.Size, err)
	}
	for _, k := range []int{7, int(cp.Size) - 7} {
		err := r2.Replicate(ctx, all[:k], cp.Note, prove)
		if err == nil || r2.Size() != 7 {
			t.Logf("Replicate(entries 0..%d at 7): %v; size now %d", k, err, r2.Size())
			t.Fatal("wrong-offset run accepted")
		}
	}
}

// TestSyncCountsPartialChunks: when applying a chunk fails after its first
// 256-entry commit, Sync counts and reports the 256 committed.
func TestSyncCountsPartialChunks(t *testing.T) {
	p := newPrimary(t)
	for i := range 300 {
		p.record(t, "web", map[string]string{"bin/web.hvt": fmt.Sprint("image ", i)})
	}
	var calls atomic.Int32
	var armed atomic.Bool
	l := openWithSpace(t, p.L.VKey, func() error {
		if armed.Load() && calls.Add(1) == 2 {
			return errors.New("disk full")
		}
		return nil
	})
	var progress []uint64
	armed.Store(true)
	n, err := (&replica.Replica{Client: p.Client, Ledger: l, Progress: func(s uint64) { progress = append(progress, s) }}).Sync(ctx)
	if n != 256 || err == nil || l.Size() != 256 || len(progress) != 1 || progress[0] != 256 {
		t.Fatalf("Sync: n=%d err=%v, size=%d, progress=%v; want 256 committed and reported", n, err, l.Size(), progress)
	}
}
