// Package kv opens the one badger database that holds a ledger's state: CAS
// blobs, the embedded Merkle tree and the projections all live in it, so a
// single badger transaction can update them together.
//
// Durability: the database is opened with SyncWrites, so a transaction's
// Commit returns only after badger has synced its write-ahead log and value
// log. Callers that want many writes to share one sync (group commit) put them
// in one transaction.
package kv

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Options tune Open. The zero value is what production uses.
type Options struct {
	// InMemory keeps everything in memory (benchmarks of CPU cost only).
	InMemory bool
	// Logger receives badger's own log lines; nil discards them.
	Logger badger.Logger
	// ReadOnly opens the database without writing anything to it (for a
	// full disk). It fails (badger.ErrTruncateNeeded) when the database
	// was not closed cleanly: replaying its logs needs a writable open.
	ReadOnly bool
}

// ValueThreshold is the size above which badger keeps a value in its value
// log instead of the LSM tree. CAS chunks (kilobytes) go to the value log,
// tree nodes, index keys and small events stay inline.
const ValueThreshold = 2048

// Open opens (creating if needed) the badger database in dir.
func Open(dir string, o Options) (*badger.DB, error) {
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithValueThreshold(ValueThreshold).
		WithDetectConflicts(false).
		WithLogger(o.Logger).
		WithMetricsEnabled(false)
	if o.InMemory {
		bo = bo.WithInMemory(true).WithDir("").WithValueDir("")
	}
	if o.ReadOnly {
		bo = bo.WithReadOnly(true)
	}
	// A read-only open writes nothing, so it removes nothing either; badger
	// itself refuses a store whose logs need a writable open.
	if !o.InMemory && !o.ReadOnly {
		if _, err := removeEmptyLogs(dir); err != nil {
			return nil, fmt.Errorf("open store %s: %w", dir, err)
		}
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return db, nil
}
