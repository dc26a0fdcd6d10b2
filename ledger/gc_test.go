package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// openSmallVlog opens a ledger on a badger database with 1 MiB value-log
// files and memtables, so a few megabytes of overwritten values spread
// over several value-log files and reach the LSM tree's compactions
// (which is where badger learns what is garbage).
func openSmallVlog(t *testing.T, cfg ledger.Config) *ledgertest.Ledger {
	t.Helper()
	skey, vkey, err := ledger.GenerateLogKey(ledgertest.Origin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(dir).WithSyncWrites(true).WithValueThreshold(kv.ValueThreshold).
		WithValueLogFileSize(1 << 20).WithMemTableSize(1 << 20).WithNumLevelZeroTables(1).WithNumLevelZeroTablesStall(2).
		WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	store, err := cas.New(db, cas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Origin, cfg.Signer = ledgertest.Origin, signer
	lg, err := ledger.Open(db, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := &ledgertest.Ledger{Ledger: lg, Dir: dir, DB: db, Store: store, VKey: vkey, SKey: skey}
	t.Cleanup(func() {
		ledgertest.Check(t, l)
		l.Close()
	})
	return l
}

var errDiskFull = errors.New("disk full")

func vlogBytes(t *testing.T, dir string) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// churn writes 8 MiB of values above the value threshold next to the
// ledger's keys, overwrites each of them three times, and has badger
// compact its tree so that it knows the first versions are garbage.
func churn(t *testing.T, db *badger.DB) {
	t.Helper()
	val := func(i, round int) []byte { return bytes.Repeat([]byte{byte(round)}, 64<<10+i) }
	write := func(k func(int) string, v func(int) []byte, n int) {
		wb := db.NewWriteBatch()
		defer wb.Cancel()
		for i := range n {
			if err := wb.Set([]byte(k(i)), v(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := wb.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 4 {
		write(func(i int) string { return fmt.Sprintf("test/%03d", i) }, func(i int) []byte { return val(i, round) }, 128)
	}
	// The old versions are garbage once a compaction drops them, and a
	// compaction only sees what left the memtable: fill it with small
	// values (kept in the tree, not the value log) until it is flushed.
	write(func(i int) string { return fmt.Sprintf("fill/%04d", i) }, func(int) []byte { return make([]byte, 1024) }, 4096)
	if err := db.Flatten(1); err != nil {
		t.Fatal(err)
	}
}

// TestCollectGarbage: after values are overwritten, CollectGarbage
// rewrites value-log files and the value log shrinks; every value and every
// event is still there (the cleanup replays the log and compares
// projections).
func TestCollectGarbage(t *testing.T) {
	var full atomic.Bool
	l := openSmallVlog(t, ledger.Config{GC: ledger.GCConfig{Interval: -1}, CheckSpace: func() error {
		if full.Load() {
			return errDiskFull
		}
		return nil
	}})
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	before := vlogBytes(t, l.Dir)
	churn(t, l.DB)
	grown := vlogBytes(t, l.Dir)
	full.Store(true) // nothing is rewritten on a full disk
	if n, err := l.CollectGarbage(ctx); !errors.Is(err, errDiskFull) || n != 0 || vlogBytes(t, l.Dir) != grown {
		t.Fatalf("collection on a full disk: %d files rewritten, %v", n, err)
	}
	full.Store(false)
	n, err := l.CollectGarbage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := vlogBytes(t, l.Dir)
	t.Logf("value log: %d bytes, %d after churn, %d after rewriting %d files", before, grown, after, n)
	if n == 0 || after >= grown {
		t.Fatalf("no garbage collected: %d files rewritten, value log %d -> %d bytes", n, grown, after)
	}
	for i := range 128 {
		if err := l.DB.View(func(txn *badger.Txn) error {
			item, err := txn.Get([]byte(fmt.Sprintf("test/%03d", i)))
			if err != nil {
				return err
			}
			return item.Value(func(v []byte) error {
				if len(v) != 64<<10+i || v[0] != 3 {
					return fmt.Errorf("value %d: %d bytes of %d", i, len(v), v[0])
				}
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, l, &ledger.JobDefined{Job: "after-gc"})
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.CollectGarbage(c); err == nil {
		t.Fatal("cancelled collection reported success")
	}
}

// TestGCLoop: the loop Open starts collects garbage by itself, and Close
// stops it.
func TestGCLoop(t *testing.T) {
	rewrote := make(chan int, 100)
	l := openSmallVlog(t, ledger.Config{GC: ledger.GCConfig{Interval: 20 * time.Millisecond, Done: func(n int, err error) {
		if err != nil {
			t.Error(err)
		}
		if n > 0 {
			select {
			case rewrote <- n:
			default:
			}
		}
	}}})
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	churn(t, l.DB)
	<-rewrote // a run of the loop rewrote value-log files
}
