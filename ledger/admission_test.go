package ledger_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas"
	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// TestRecordBuildIsOneOperation: a build whose job is not defined yet is
// recorded together with its job definition, and a refused build leaves
// neither behind.
func TestRecordBuildIsOneOperation(t *testing.T) {
	l := ledgertest.Open(t)
	bad := build("newjob", "debian-12", "in", "out", time.Now().UTC())
	bad.Result = ledger.Result{Kind: ledger.ResultMessage, Message: strings.Repeat("x", 5000)}
	if _, err := l.RecordBuild(ctx, bad); err == nil {
		t.Fatal("a build with a 5,000-byte result message was accepted")
	}
	if l.Size() != 0 {
		t.Fatalf("a refused build left %d events in the log", l.Size())
	}
	if _, err := l.Job("newjob"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("refused build defined its job: %v", err)
	}

	b := build("newjob", "debian-12", "in", "out", time.Now().UTC())
	r, err := l.RecordBuild(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Index != 1 || l.Size() != 2 || r.Checkpoint.Size != 2 {
		t.Fatalf("want job at 0 and build at 1 in one checkpoint: %+v, size %d", r, l.Size())
	}
	if j, err := l.Job("newjob"); err != nil || j.Index != 0 {
		t.Fatalf("job: %+v %v", j, err)
	}
	// A second build of the job, and a refused duplicate, add nothing else.
	r2, err := l.RecordBuild(ctx, build("newjob", "debian-12", "in2", "out2", time.Now().UTC()))
	if err != nil || r2.Index != 2 {
		t.Fatalf("second build: %+v %v", r2, err)
	}
	dup := *b
	dup.Platform = "other"
	if _, err := l.RecordBuild(ctx, &dup); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("duplicate UUID: %v", err)
	}
	if l.Size() != 3 {
		t.Fatalf("size %d after a refused duplicate, want 3", l.Size())
	}
	// A build of a job not defined yet that the committer refuses (its
	// UUID is taken, which only the log's state can tell) defines no job
	// either.
	ghost := *b
	ghost.Job = "ghost"
	if _, err := l.RecordBuild(ctx, &ghost); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("a taken UUID under a new job: %v", err)
	}
	if _, err := l.Job("ghost"); !errors.Is(err, ledger.ErrNotFound) || l.Size() != 3 {
		t.Fatalf("a refused build defined its job: %v, size %d", err, l.Size())
	}
}

// TestRecordBuildConcurrentFirstBuilds: many first builds of one new job
// in one group commit define the job exactly once.
func TestRecordBuildConcurrentFirstBuilds(t *testing.T) {
	l := ledgertest.Open(t)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.RecordBuild(ctx, build("burst", "debian-12", "in", string(rune('a'+i)), time.Now().UTC()))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	jobs := 0
	for i := range l.Size() {
		ev, err := l.Event(i)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := ev.(*ledger.JobDefined); ok {
			jobs++
		}
	}
	if jobs != 1 || l.Size() != 33 {
		t.Fatalf("%d job definitions in %d events, want 1 in 33", jobs, l.Size())
	}
}

// TestInvisibleCharactersRefused: names that display as something else
// (bidi overrides, zero-width characters) are refused on append.
func TestInvisibleCharactersRefused(t *testing.T) {
	l := ledgertest.Open(t)
	mustAppend(t, l, &ledger.JobDefined{Job: "names"})
	for _, name := range []string{"bin/evil\u202Eexe.txt", "bin/a\u200Bb", "bin/line\u2028sep", "bin/soft\u00ADhyphen", "bin/bom\uFEFF",
		"bin/hangul\u3164filler", "bin/cgj\u034F", "bin/vs\uFE0F", "bin/braille\u2800blank", "bin/nbsp\u00A0x", "bin/ideo\u3000space", "bin/vs\U000E0100"} {
		b := build("names", "debian-12", "in", name, time.Now().UTC())
		b.Artifacts[0].Path = name
		b.MainBinary = &b.Artifacts[0].Path
		var inv *ledger.InvalidEventError
		if _, err := l.Append(ctx, b); !errors.As(err, &inv) || !strings.Contains(err.Error(), "invisible") {
			t.Errorf("%+q: %v", name, err)
		}
		if err := ledger.CheckArtifactPath(name); err == nil {
			t.Errorf("CheckArtifactPath(%+q) accepted it", name)
		}
	}
	ok := build("names", "debian-12", "in", "x", time.Now().UTC())
	ok.Artifacts[0].Path = "bin/héllo-ünïcode.txt"
	ok.MainBinary = &ok.Artifacts[0].Path
	mustAppend(t, l, ok)
}

// TestGroupCommitOfLargeEvents: a group of appends too large for one badger
// transaction is committed in several, and every append is answered with
// its own index (a batch cut short must never leave a caller waiting). A
// 1 MiB memtable makes badger's transaction limit (15% of it) hold two or
// three of these 60 KB events.
func TestGroupCommitOfLargeEvents(t *testing.T) {
	l := openWith(t, badger.DefaultOptions(t.TempDir()).WithMemTableSize(1<<20).WithValueThreshold(2048), ledger.Config{})
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "big"}); err != nil {
		t.Fatal(err)
	}
	const n = 64
	events := make([]*ledger.BuildRecorded, n)
	for i := range events {
		b := build("big", "debian-12", fmt.Sprint("in", i), fmt.Sprint("out", i), time.Now().UTC())
		for j := range 230 {
			b.Artifacts = append(b.Artifacts, ledger.Artifact{Path: fmt.Sprintf("share/%0150d", j), SHA256: d(fmt.Sprint(i, j)), Size: 1})
		}
		events[i] = b
	}
	var wg sync.WaitGroup
	got := make(chan uint64, n)
	start := make(chan struct{})
	for _, b := range events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := l.Append(ctx, b)
			if err != nil {
				t.Error(err)
				return
			}
			got <- r.Index
		}()
	}
	close(start)
	wg.Wait()
	close(got)
	seen := map[uint64]bool{}
	for idx := range got {
		if seen[idx] {
			t.Fatalf("index %d answered twice", idx)
		}
		seen[idx] = true
	}
	if len(seen) != n || l.Size() != n+1 {
		t.Fatalf("%d answers, log size %d; want %d and %d", len(seen), l.Size(), n, n+1)
	}
	if err := l.Replay(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReplayChecksSpaceBeforeCommits: rebuilding the projections writes as
// much as they hold, so the free-space check is asked before its commits,
// not only when it starts.
func TestReplayChecksSpaceBeforeCommits(t *testing.T) {
	full := errors.New("the disk is full")
	var calls atomic.Int32
	allow := int32(1 << 30)
	space := func() error {
		if calls.Add(1) > allow {
			return full
		}
		return nil
	}
	l := openWith(t, badger.DefaultOptions(t.TempDir()), ledger.Config{CheckSpace: space})
	if _, err := l.RecordBuild(ctx, build("space", "debian-12", "in", "out", time.Now().UTC())); err != nil {
		t.Fatal(err)
	}
	calls.Store(0)
	allow = 1 // the check at the start passes; the disk fills while it runs
	if err := l.Replay(ctx); !errors.Is(err, full) {
		t.Fatalf("replay onto a disk that filled up: %v", err)
	}
}

// TestNewestBuildWith: the newest build by start time with an artifact of
// a digest, whatever the order the builds were logged in; ErrNotFound for
// a digest nobody built; the projection replays to the same answer.
func TestNewestBuildWith(t *testing.T) {
	l := ledgertest.Open(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var newest *ledger.BuildRecorded
	for _, h := range []int{5, 9, 1, 7} { // logged out of start order
		b := build("img", "debian-12", fmt.Sprint("in", h), "same image", t0.Add(time.Duration(h)*time.Hour))
		if _, err := l.RecordBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
		if h == 9 {
			newest = b
		}
	}
	for range 2 {
		got, err := l.NewestBuildWith(d("same image"))
		if err != nil || got.UUID != newest.UUID || got.Path != *newest.MainBinary {
			t.Fatalf("newest: %+v %v, want %s", got, err, newest.UUID)
		}
		if err := l.Replay(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.NewestBuildWith(d("never built")); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("unknown digest: %v", err)
	}
}

// openWith opens a ledger on badger options of the test's choosing (and
// no background GC), closed when the test ends.
func openWith(t *testing.T, opts badger.Options, cfg ledger.Config) *ledger.Ledger {
	t.Helper()
	db, err := badger.Open(opts.WithSyncWrites(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := cas.New(db, cas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	skey, _, err := ledger.GenerateLogKey(ledgertest.Origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Origin, cfg.Signer, cfg.GC = ledgertest.Origin, signer, ledger.GCConfig{Interval: -1}
	l, err := ledger.Open(db, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
