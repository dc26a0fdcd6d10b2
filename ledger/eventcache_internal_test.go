package ledger

import (
	"context"
	"errors"
	"io/fs"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger/event"
)

// openInternal opens a ledger on badger in a temporary directory for tests
// that need the committer's view (ledgertest cannot be imported here).
func openInternal(t *testing.T) *Ledger {
	t.Helper()
	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := cas.New(db, cas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	skey, _, err := GenerateLogKey("test.buildledger.dev/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(db, store, Config{Origin: "test.buildledger.dev/log", Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func testRequest(t *testing.T, e Event) *request {
	t.Helper()
	norm, data, err := event.Canonical(e)
	if err != nil {
		t.Fatal(err)
	}
	return &request{ev: norm, data: data, reply: make(chan result, 1)}
}

// TestEventCacheDiscardedTxn: a transaction writes a job definition at the
// next index and reads it back (as checking a redefinition in the same
// batch does), then is discarded, as after a backend's ErrBehind or a
// failed batch. Another event committed at that index is what Event and
// Job answer afterwards, not the discarded one.
func TestEventCacheDiscardedTxn(t *testing.T) {
	l := openInternal(t)
	ctx := context.Background()
	if _, err := l.Append(ctx, &JobDefined{Job: "first"}); err != nil {
		t.Fatal(err)
	}
	next := l.Size()

	l.commitMu.Lock() // the committer's place
	txn := l.db.NewTransaction(true)
	tb := l.tree.Begin()
	if _, err := l.write(txn, tb, testRequest(t, &JobDefined{Job: "discarded", Synopsis: "never logged"})); err != nil {
		t.Fatal(err)
	}
	if _, err := l.check(txn, testRequest(t, &JobDefined{Job: "discarded", Synopsis: "redefined"}), next+1); err != nil {
		t.Fatal(err)
	}
	if ev, err := l.eventTxn(txn, next); err != nil || ev.(*JobDefined).Job != "discarded" {
		t.Fatalf("inside the transaction: %v %v", ev, err)
	}
	txn.Discard()
	l.commitMu.Unlock()

	r, err := l.Append(ctx, &JobDefined{Job: "committed"})
	if err != nil || r.Index != next {
		t.Fatalf("append: %+v %v", r, err)
	}
	ev, err := l.Event(next)
	if err != nil || ev.(*JobDefined).Job != "committed" {
		t.Fatalf("Event(%d) = %+v, %v; want the committed job", next, ev, err)
	}
	j, err := l.Job("committed")
	if err != nil || j.Index != next || j.Event.Job != "committed" {
		t.Fatalf("Job(committed) = %d %+v, %v", j.Index, j.Event, err)
	}
	if _, err := l.Job("discarded"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Job(discarded): %v", err)
	}
}
