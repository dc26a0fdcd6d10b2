// Package castest provides helpers for testing and benchmarking code that
// uses package cas: a Store on a real badger database in a test's temporary
// directory, deterministic generators of incompressible and text-like
// content, and the bodies of the cas benchmarks, exported so that a summary
// command can run them through testing.Benchmark.
package castest

import (
	"testing"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/dgraph-io/badger/v4"
)

// Open opens a badger database with kv.Open in tb's temporary directory and
// a Store on it with options o. Both are closed when the test ends.
func Open(tb testing.TB, o cas.Options) (*cas.Store, *badger.DB) {
	tb.Helper()
	return OpenDir(tb, tb.TempDir(), o)
}

// OpenDir is Open on a database in dir.
func OpenDir(tb testing.TB, dir string, o cas.Options) (*cas.Store, *badger.DB) {
	tb.Helper()
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close database: %v", err)
		}
	})
	s, err := cas.New(db, o)
	if err != nil {
		tb.Fatal(err)
	}
	return s, db
}
