package trillianlog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// flaky is a Trillian log whose reads fail once, as a connection to
// Trillian does when the server restarts: Leaves answers okBefore calls,
// then fails one with codes.Unavailable.
type flaky struct {
	ledger.Backend
	mu       sync.Mutex
	okBefore int // -1: never fail
}

func (f *flaky) failAfter(n int) {
	f.mu.Lock()
	f.okBefore = n
	f.mu.Unlock()
}

func (f *flaky) Leaves(ctx context.Context, from, to uint64) ([][]byte, error) {
	f.mu.Lock()
	fail := f.okBefore == 0
	if f.okBefore >= 0 {
		f.okBefore--
	}
	f.mu.Unlock()
	if fail {
		return nil, status.Error(codes.Unavailable, "injected: connection reset by peer")
	}
	return f.Backend.Leaves(ctx, from, to)
}

// writeAhead integrates n job definitions into the Trillian log behind the
// ledger's back (another writer, or a crash after Integrate).
func writeAhead(t *testing.T, b ledger.Backend, first uint64, n int, tag string) {
	t.Helper()
	ctx := context.Background()
	all, err := b.Leaves(ctx, 0, first)
	if err != nil {
		t.Fatal(err)
	}
	var leaves [][]byte
	for i := range n {
		data, err := ledger.Encode(&ledger.JobDefined{Job: fmt.Sprintf("%s-%04d", tag, i)})
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, data)
	}
	if err := b.Integrate(ctx, first, leaves, rootOf(append(all, leaves...)...)); err != nil {
		t.Fatal(err)
	}
}

// TestCatchUpResumes: catching up with 600 entries only Trillian has, the
// ledger's second read of them fails (Unavailable). During an append
// (ErrBehind) the append is answered ErrBackend, not a stopped ledger, the
// first chunk stays committed, and the next append finishes the catch-up
// and lands after them. At Open the same failure does not stop the ledger
// from opening: it opens at the committed chunk and the next append
// resumes. Every entry is projected once (ledgertest.Check replays).
func TestCatchUpResumes(t *testing.T) {
	f := &flaky{Backend: newLog(t), okBefore: -1}
	skey, vkey, err := ledger.GenerateLogKey(ledgertest.Origin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l, err := ledgertest.ReopenWith(dir, skey, vkey, f)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 5 {
		if _, err := l.Append(ctx, &ledger.JobDefined{Job: fmt.Sprint("job-", i)}); err != nil {
			t.Fatal(err)
		}
	}

	// During an append.
	writeAhead(t, f.Backend, 5, 600, "ahead")
	f.failAfter(1)
	_, err = l.Append(ctx, &ledger.JobDefined{Job: "after-ahead"})
	if !errors.Is(err, ledger.ErrBackend) || l.Err() != nil {
		t.Fatalf("append whose catch-up failed half-way: %v (ledger: %v); want ErrBackend and a ledger still taking appends", err, l.Err())
	}
	if got := l.Size(); got != 5+256 {
		t.Fatalf("after the failed catch-up the ledger holds %d entries, want the first chunk committed (%d)", got, 5+256)
	}
	r, err := l.Append(ctx, &ledger.JobDefined{Job: "after-ahead"})
	if err != nil {
		t.Fatalf("the next append: %v", err)
	}
	if r.Index != 5+600 {
		t.Fatalf("the next append got index %d, want %d", r.Index, 5+600)
	}
	ledgertest.Check(t, l)
	size := l.Size()
	l.Close()

	// At Open.
	writeAhead(t, f.Backend, size, 600, "behind")
	f.failAfter(1)
	l, err = ledgertest.ReopenWith(dir, skey, vkey, f)
	if err != nil {
		t.Fatalf("open whose catch-up failed half-way: %v", err)
	}
	defer l.Close()
	if got := l.Size(); got != size+256 {
		t.Fatalf("opened with %d entries, want the first chunk committed (%d)", got, size+256)
	}
	if _, err := l.Job("behind-0000"); err != nil {
		t.Fatalf("the committed chunk is not served: %v", err)
	}
	r, err = l.Append(ctx, &ledger.JobDefined{Job: "after-behind"})
	if err != nil {
		t.Fatalf("the first append after the open: %v", err)
	}
	if r.Index != size+600 {
		t.Fatalf("it got index %d, want %d", r.Index, size+600)
	}
	ledgertest.Check(t, l)
}
