// Package ledgertest opens real ledgers (badger in a temporary directory)
// for tests, and checks their invariants when the test ends: the Merkle
// root recomputed from the stored events equals the tree's, and replaying
// the log reproduces every projection key and value exactly.
package ledgertest

import (
	"bytes"
	"context"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
)

// Origin is the checkpoint origin of test ledgers.
const Origin = "test.buildledger.dev/log"

// Ledger is an open test ledger with everything a test needs to inspect it.
type Ledger struct {
	*ledger.Ledger
	Dir   string
	DB    *badger.DB
	Store *cas.Store
	// VKey is the log's verifier key in signed-note form.
	VKey string
	SKey string
}

// Open opens a fresh ledger in tb.TempDir() and registers the invariant
// check and Close with tb.Cleanup.
func Open(tb testing.TB) *Ledger {
	tb.Helper()
	skey, vkey, err := ledger.GenerateLogKey(Origin)
	if err != nil {
		tb.Fatal(err)
	}
	l := Reopen(tb, tb.TempDir(), skey, vkey)
	tb.Cleanup(func() {
		Check(tb, l)
		l.Close()
	})
	return l
}

// Reopen opens the ledger stored in dir with the given key. The caller
// closes it (Close).
func Reopen(tb testing.TB, dir, skey, vkey string) *Ledger {
	tb.Helper()
	l, err := ReopenWith(dir, skey, vkey, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// ReopenWith opens the ledger stored in dir with the given key and log
// backend (nil: the embedded tree only).
func ReopenWith(dir, skey, vkey string, backend ledger.Backend) (*Ledger, error) {
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		return nil, err
	}
	store, err := cas.New(db, cas.Options{})
	if err != nil {
		db.Close()
		return nil, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		db.Close()
		return nil, err
	}
	lg, err := ledger.Open(db, store, ledger.Config{Origin: Origin, Signer: signer, Backend: backend})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Ledger{Ledger: lg, Dir: dir, DB: db, Store: store, VKey: vkey, SKey: skey}, nil
}

// Close closes the ledger and its database.
func (l *Ledger) Close() {
	l.Ledger.Close()
	l.DB.Close()
}

// Projections returns every projection key and value, in key order.
func (l *Ledger) Projections(tb testing.TB) [][2][]byte {
	tb.Helper()
	var out [][2][]byte
	err := l.DB.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("p/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, [2][]byte{it.Item().KeyCopy(nil), v})
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// Check replays the ledger (which verifies every event against the tree)
// and fails tb unless the projections come out byte for byte the same.
func Check(tb testing.TB, l *Ledger) {
	tb.Helper()
	before := l.Projections(tb)
	if err := l.Replay(context.Background()); err != nil {
		tb.Fatalf("replay: %v", err)
	}
	after := l.Projections(tb)
	if len(before) != len(after) {
		tb.Fatalf("replay produced %d projection keys, the live ledger had %d", len(after), len(before))
	}
	for i := range before {
		if !bytes.Equal(before[i][0], after[i][0]) || !bytes.Equal(before[i][1], after[i][1]) {
			tb.Fatalf("replay differs at key %q: live %x, replayed %q=%x", before[i][0], before[i][1], after[i][0], after[i][1])
		}
	}
}
