package benchmarks

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
)

// BuildEvent returns a realistic build_recorded event (about 1 KB encoded)
// distinct for every i.
func BuildEvent(i int) *ledger.BuildRecorded {
	d := func(s string) cas.Digest { return cas.Sum(fmt.Appendf(nil, "%s %d", s, i)) }
	pd := func(s string) *cas.Digest { x := d(s); return &x }
	main := "bin/bench.hvt"
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	return &ledger.BuildRecorded{
		Job: "bench", UUID: uuid.New(), Platform: "debian-12",
		Started: start, Finished: start.Add(95 * time.Second),
		Result: ledger.Result{Kind: ledger.ResultExited},
		Script: d("script"), Console: d("console"),
		Inputs: ledger.Inputs{OpamSwitch: pd("switch"), BuildEnvironment: pd("env"), SystemPackages: pd("pkgs")},
		Artifacts: []ledger.Artifact{
			{Path: main, SHA256: d("bin"), Size: 4 << 20},
			{Path: "build-environment", SHA256: d("env"), Size: 812},
			{Path: "opam-switch", SHA256: d("switch"), Size: 48211},
			{Path: "system-packages", SHA256: d("pkgs"), Size: 20310},
		},
		MainBinary: &main,
	}
}

// openLedger opens a ledger in a fresh temporary directory.
func openLedger(b *testing.B) (*ledger.Ledger, func()) {
	return openLedgerWith(b, nil)
}

// openLedgerWith opens a ledger on a log backend (nil: embedded).
func openLedgerWith(b *testing.B, backend ledger.Backend) (*ledger.Ledger, func()) {
	dir, err := os.MkdirTemp("", "ledgerbench")
	if err != nil {
		b.Fatal(err)
	}
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		b.Fatal(err)
	}
	store, err := cas.New(db, cas.Options{})
	if err != nil {
		b.Fatal(err)
	}
	skey, _, err := ledger.GenerateLogKey("bench/log")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	l, err := ledger.Open(db, store, ledger.Config{Origin: "bench/log", Signer: signer, Backend: backend})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := l.Append(context.Background(), &ledger.JobDefined{Job: "bench"}); err != nil {
		b.Fatal(err)
	}
	return l, func() { l.Close(); db.Close(); os.RemoveAll(dir) }
}

// Append measures durable appends of build events from the given number of
// concurrent appenders; every append waits for its commit's sync.
func Append(b *testing.B, appenders int) {
	AppendOn(b, appenders, nil)
}

// AppendOn is Append on a log backend: newBackend makes a fresh one for
// each run (nil: the embedded log).
func AppendOn(b *testing.B, appenders int, newBackend func() (ledger.Backend, error)) {
	var backend ledger.Backend
	if newBackend != nil {
		var err error
		if backend, err = newBackend(); err != nil {
			b.Fatal(err)
		}
	}
	l, done := openLedgerWith(b, backend)
	defer done()
	events := make([]*ledger.BuildRecorded, b.N)
	for i := range events {
		events[i] = BuildEvent(i)
	}
	ctx := context.Background()
	b.ResetTimer()
	err := concurrently(appenders, b.N, func(i int) error {
		_, err := l.Append(ctx, events[i])
		return err
	})
	b.StopTimer()
	if err != nil {
		b.Error(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// RawBadgerWrites is the baseline for Append: the same encoded event bytes
// written straight into badger (SyncWrites, as the ledger's store) in
// transactions of up to batch entries, one sync each — no CAS, tree,
// projections or checkpoint.
func RawBadgerWrites(b *testing.B, batch int) {
	dir, err := os.MkdirTemp("", "badgerbench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	vals := make([][]byte, b.N)
	for i := range vals {
		if vals[i], err = ledger.Encode(BuildEvent(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; {
		txn := db.NewTransaction(true)
		for j := 0; j < batch && i < b.N; j++ {
			if err := txn.Set(binary.BigEndian.AppendUint64([]byte("raw/"), uint64(i)), vals[i]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		if err := txn.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

var _ = badger.ErrKeyNotFound

// Replay measures rebuilding every projection from a log of n build
// events (Ledger.Replay, what `ledger verify --data` runs).
func Replay(b *testing.B, n int) {
	l, done := openLedger(b)
	defer done()
	ctx := context.Background()
	if err := appendConcurrently(ctx, l, n, func(i int) (*ledger.BuildRecorded, error) { return BuildEvent(i), nil }); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := l.Replay(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)*float64(l.Size())/b.Elapsed().Seconds(), "events/s")
}

// ReplayResult is a replay's rate and the most heap it held.
type ReplayResult struct {
	Events   uint64
	PerSec   float64
	PeakHeap uint64 // bytes in use at the highest sample (every 5 ms)
}

// ReplayRun records n build events, then replays them once, sampling the
// Go heap in use while it runs.
func ReplayRun(n int) (ReplayResult, error) {
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	tl, err := openTempLedger("replaybench", &closers)
	if err != nil {
		return ReplayResult{}, err
	}
	ctx := context.Background()
	if _, err := tl.l.DefineJob(ctx, "bench"); err != nil {
		return ReplayResult{}, err
	}
	if err := appendConcurrently(ctx, tl.l, n, func(i int) (*ledger.BuildRecorded, error) { return BuildEvent(i), nil }); err != nil {
		return ReplayResult{}, err
	}
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	err = tl.l.Replay(ctx)
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	return ReplayResult{Events: tl.l.Size(), PerSec: float64(tl.l.Size()) / elapsed.Seconds(), PeakHeap: peak.Load()}, err
}
