package ledgertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
)

// NewBackend returns a fresh, empty log backend for a new ledger, or nil
// for the embedded log.
type NewBackend func(t testing.TB) ledger.Backend

// Conformance is the one test suite every log backend passes: appends from
// many goroutines, inclusion and consistency proofs against signed
// checkpoints (also the backend's own proofs), restarts, replay, and, with
// a backend, entries the backend holds that the ledger has not projected
// (a crash between the two) and a backend whose history differs.
func Conformance(t *testing.T, newBackend NewBackend) {
	t.Run("AppendsAndProofs", func(t *testing.T) { conformAppends(t, newBackend) })
	t.Run("RestartAndReplay", func(t *testing.T) { conformRestart(t, newBackend) })
	t.Run("BackendAhead", func(t *testing.T) { conformAhead(t, newBackend) })
	t.Run("DifferentHistory", func(t *testing.T) { conformDifferent(t, newBackend) })
}

var ctx = context.Background()

func openFresh(t *testing.T, b ledger.Backend) *Ledger {
	t.Helper()
	skey, vkey, err := ledger.GenerateLogKey(Origin)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ReopenWith(t.TempDir(), skey, vkey, b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// build is a successful build of job with one artifact, content out.
func build(job, out string) *ledger.BuildRecorded {
	main := "bin/" + job + ".hvt"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &ledger.BuildRecorded{Job: job, UUID: uuid.New(), Platform: "debian-12", Started: t0, Finished: t0.Add(time.Minute),
		Result: ledger.Result{Kind: ledger.ResultExited}, Script: cas.Sum([]byte("script")), Console: cas.Sum([]byte(out)),
		Artifacts: []ledger.Artifact{{Path: main, SHA256: cas.Sum([]byte(out)), Size: int64(len(out))}}, MainBinary: &main}
}

func appendBuilds(t *testing.T, l *Ledger, job string, n, workers int) []ledger.Receipt {
	t.Helper()
	if _, err := l.DefineJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	out := make([]ledger.Receipt, n)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				r, err := l.Append(ctx, build(job, fmt.Sprint(job, i)))
				if err != nil {
					errs <- err
					return
				}
				out[i] = r
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	return out
}

// checkProofs verifies every receipt against its own checkpoint and the
// latest one, with the ledger's proofs and (with a backend) the backend's.
func checkProofs(t *testing.T, l *Ledger, b ledger.Backend, rs []ledger.Receipt) {
	t.Helper()
	h := rfc6962.DefaultHasher
	last := l.Checkpoint()
	if _, err := ledger.OpenCheckpoint(last.Note, Origin, l.VKey); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	for i, r := range rs {
		if i%17 != 0 && i != len(rs)-1 {
			continue
		}
		p, err := l.Tree().InclusionProof(r.Index, r.Checkpoint.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(h, r.Index, r.Checkpoint.Size, r.LeafHash[:], p, r.Checkpoint.Hash[:]); err != nil {
			t.Fatalf("receipt %d: %v", r.Index, err)
		}
		c, err := l.Tree().ConsistencyProof(r.Checkpoint.Size, last.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(h, r.Checkpoint.Size, last.Size, c, r.Checkpoint.Hash[:], last.Hash[:]); err != nil {
			t.Fatalf("consistency %d→%d: %v", r.Checkpoint.Size, last.Size, err)
		}
		if b == nil {
			continue
		}
		bp, err := b.InclusionProof(ctx, r.Index, last.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(h, r.Index, last.Size, r.LeafHash[:], bp, last.Hash[:]); err != nil {
			t.Fatalf("backend's inclusion proof of %d: %v", r.Index, err)
		}
		bc, err := b.ConsistencyProof(ctx, r.Checkpoint.Size, last.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(h, r.Checkpoint.Size, last.Size, bc, r.Checkpoint.Hash[:], last.Hash[:]); err != nil {
			t.Fatalf("backend's consistency proof %d→%d: %v", r.Checkpoint.Size, last.Size, err)
		}
	}
	if b != nil {
		size, root, err := b.Root(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if size != last.Size || root != last.Hash {
			t.Fatalf("backend at %d %x, checkpoint at %d %x", size, root, last.Size, last.Hash)
		}
	}
}

func conformAppends(t *testing.T, newBackend NewBackend) {
	b := newBackend(t)
	l := openFresh(t, b)
	defer l.Close()
	rs := appendBuilds(t, l, "conform", 300, 16)
	idx := make([]uint64, len(rs))
	for i, r := range rs {
		idx[i] = r.Index
	}
	slices.Sort(idx)
	for i, x := range idx {
		if x != uint64(i+1) { // index 0 is the job
			t.Fatalf("indices are not 1…300: %v", idx)
		}
	}
	checkProofs(t, l, b, rs)
	// Idempotent and refused appends leave the log as it was.
	size := l.Size()
	if r, err := l.DefineJob(ctx, "conform"); err != nil || !r.Existing {
		t.Fatalf("define again: %+v %v", r, err)
	}
	if _, err := l.Append(ctx, build("undefined-job", "x")); err == nil {
		t.Fatal("build of an undefined job accepted")
	}
	if l.Size() != size {
		t.Fatalf("log grew from %d to %d", size, l.Size())
	}
	Check(t, l)
}

func conformRestart(t *testing.T, newBackend NewBackend) {
	b := newBackend(t)
	l := openFresh(t, b)
	rs := appendBuilds(t, l, "restart", 50, 4)
	cp := l.Checkpoint()
	dir, skey, vkey := l.Dir, l.SKey, l.VKey
	l.Close()
	l, err := ReopenWith(dir, skey, vkey, b)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Checkpoint(); got.Size != cp.Size || got.Hash != cp.Hash {
		t.Fatalf("after restart: %d %x, before %d %x", got.Size, got.Hash, cp.Size, cp.Hash)
	}
	more := appendBuilds(t, l, "restart", 20, 4)
	checkProofs(t, l, b, append(rs, more...))
	Check(t, l) // replay reproduces the projections
}

// conformAhead writes entries to the backend behind the ledger's back, as
// if it had crashed after Integrate: reopening projects them, once; then,
// with the ledger open, an append that finds its index taken catches up
// and is checked again.
func conformAhead(t *testing.T, newBackend NewBackend) {
	b := newBackend(t)
	if b == nil {
		t.Skip("the embedded log has no backend to be ahead of it; its crash recovery is TestCrashRecovery")
	}
	l := openFresh(t, b)
	appendBuilds(t, l, "ahead", 10, 2)
	dir, skey, vkey := l.Dir, l.SKey, l.VKey
	l.Close()

	// Entries only the backend has.
	ghost := build("ahead", "written before a crash")
	if err := writeBehind(t, dir, skey, vkey, b, []ledger.Event{ghost}); err != nil {
		t.Fatal(err)
	}
	l, err := ReopenWith(dir, skey, vkey, b)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got, err := l.Build(ghost.UUID)
	if err != nil {
		t.Fatalf("the backend's entry was not projected: %v", err)
	}
	// The same build sent again answers with the recorded entry (an
	// idempotent retry), never a second copy.
	if r, err := l.Append(ctx, ghost); err == nil && (!r.Existing || r.Index != got.Index) {
		t.Fatalf("the same build recorded twice: %+v", r)
	}
	// While open: the next index is taken by another writer's entry.
	ghost2 := build("ahead", "second ghost")
	if err := integrateEvents(b, l.Size(), l, []ledger.Event{ghost2}); err != nil {
		t.Fatal(err)
	}
	r, err := l.Append(ctx, build("ahead", "after the ghosts"))
	if err != nil {
		t.Fatalf("append after the backend moved ahead: %v", err)
	}
	if r.Index != got.Index+2 {
		t.Fatalf("append got index %d, want %d", r.Index, got.Index+2)
	}
	if _, err := l.Build(ghost2.UUID); err != nil {
		t.Fatalf("the second ghost was not projected: %v", err)
	}
	checkProofs(t, l, b, []ledger.Receipt{r})
	Check(t, l)
}

// writeBehind integrates events into the backend as the ledger in dir
// would have, without committing them locally.
func writeBehind(t *testing.T, dir, skey, vkey string, b ledger.Backend, evs []ledger.Event) error {
	// A scratch copy of the ledger computes the root the backend will have.
	l, err := ReopenWith(dir, skey, vkey, nil)
	if err != nil {
		return err
	}
	defer l.Close()
	return integrateEvents(b, l.Size(), l, evs)
}

// integrateEvents adds events at first in the backend, computing the root
// from the backend's own leaves.
func integrateEvents(b ledger.Backend, first uint64, _ *Ledger, evs []ledger.Event) error {
	var leaves [][]byte
	for _, e := range evs {
		data, err := ledger.Encode(e)
		if err != nil {
			return err
		}
		leaves = append(leaves, data)
	}
	all, err := b.Leaves(ctx, 0, first)
	if err != nil {
		return err
	}
	root := rootOf(append(all, leaves...))
	return b.Integrate(ctx, first, leaves, root)
}

// rootOf is the RFC 6962 root of leaves, computed with
// transparency-dev/merkle's compact ranges.
func rootOf(leaves [][]byte) [32]byte {
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for _, l := range leaves {
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(l), nil); err != nil {
			panic(err)
		}
	}
	if len(leaves) == 0 {
		return [32]byte(rfc6962.DefaultHasher.EmptyRoot())
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		panic(err)
	}
	return [32]byte(root)
}

func conformDifferent(t *testing.T, newBackend NewBackend) {
	b := newBackend(t)
	if b == nil {
		t.Skip("the embedded log has no backend whose history could differ; a rewritten tree is caught by Replay")
	}
	l := openFresh(t, b)
	appendBuilds(t, l, "one", 5, 1)
	l.Close()
	// Another ledger with other entries on the same backend cannot open.
	other := openFreshDir(t)
	if err := other.fill(); err != nil {
		t.Fatal(err)
	}
	_, err := ReopenWith(other.dir, other.skey, other.vkey, b)
	if err == nil || !strings.Contains(err.Error(), "SECURITY") {
		t.Fatalf("a ledger with another history opened on the backend: %v", err)
	}
}

type scratch struct{ dir, skey, vkey string }

func openFreshDir(t *testing.T) scratch {
	skey, vkey, err := ledger.GenerateLogKey(Origin)
	if err != nil {
		t.Fatal(err)
	}
	return scratch{t.TempDir(), skey, vkey}
}

// fill writes a different history of the same length (1 job + 5 builds).
func (s scratch) fill() error {
	l, err := ReopenWith(s.dir, s.skey, s.vkey, nil)
	if err != nil {
		return err
	}
	defer l.Close()
	if _, err := l.DefineJob(ctx, "other"); err != nil {
		return err
	}
	for i := range 5 {
		if _, err := l.Append(ctx, build("other", fmt.Sprint(i))); err != nil {
			return err
		}
	}
	return nil
}
