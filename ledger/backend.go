package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Backend is a transparency log of record that the ledger writes through,
// for when one machine's store is not enough (package ledger/trillianlog
// puts it on a Trillian cluster). Without one (Config.Backend nil) the
// embedded tree in badger is the log.
//
// With a backend the ledger still keeps the tree in badger, as a projection
// of the backend's log that serves tiles and proofs; the backend holds the
// leaves that count. An append batch is checked against the projections,
// given indices after the log's current size, written to the backend
// (Integrate) and only when the backend has integrated it, with the root
// the ledger computed, committed locally and acknowledged. So projections
// only ever reflect integrated leaves. A crash after Integrate and before
// the local commit leaves the backend ahead; Open (and a later Integrate
// that finds its indices taken, ErrBehind) then catches up by reading the
// missing leaves back, checking and projecting them like new events, so
// nothing is lost or counted twice. The appends of that batch were not
// acknowledged: a client that retries gets the event's existing receipt
// or a conflict, never a second copy.
//
// A catch-up commits chunk by chunk, every call to the backend bounded on
// its own (backendTimeout), so one of any length makes progress. When the
// backend fails part-way (unreachable, a read cut off), what was caught up
// stays committed, Open still opens (serving reads) and the append that
// found the backend ahead is answered ErrBackend; the next append resumes
// the catch-up before anything else. Only a security error (ErrCorrupt)
// stops the ledger. TestCatchUpResumes in ledger/trillianlog injects the
// failure into a real Trillian's reads, during an append and at Open.
type Backend interface {
	// Root returns the size and RFC 6962 root hash of the integrated log.
	Root(ctx context.Context) (uint64, [32]byte, error)
	// Integrate makes leaves the log's entries first, first+1, ... and
	// returns once they are integrated, after checking that the log's root
	// at size first+len(leaves) is root. If an index is already taken by
	// other data it returns an error wrapping ErrBehind. Adding a leaf
	// again at the index it already has is not an error.
	Integrate(ctx context.Context, first uint64, leaves [][]byte, root [32]byte) error
	// Leaves returns the integrated leaves from, ..., to-1.
	Leaves(ctx context.Context, from, to uint64) ([][]byte, error)
	// ConsistencyProof proves that the log at size a is a prefix of the
	// log at size b (RFC 6962).
	ConsistencyProof(ctx context.Context, a, b uint64) ([][]byte, error)
	// InclusionProof proves leaf index in the log at size.
	InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error)
}

// ErrBehind: the backend holds entries the ledger has not projected yet.
var ErrBehind = errors.New("ledger: the log backend is ahead of this ledger")

// ErrBackend: the log backend did not take an append (it is unreachable or
// slow); nothing was acknowledged and the append may be retried.
var ErrBackend = errors.New("ledger: log backend unavailable")

// backendTimeout bounds one call to the backend from the committer.
const backendTimeout = 2 * time.Minute

// keyPending holds the batch being written to the backend: first index
// (8 bytes), then each leaf as a 4-byte length and its bytes. It is
// written (and synced) before the batch goes to the backend and deleted
// with the commit that projects it. While it exists no other batch may be
// sent: the ledger first resends it (a backend may hold all, some or none
// of it) and catches up, so the backend's log can only ever continue with
// exactly that batch.
var keyPending = []byte("l/pending")

func (l *Ledger) savePending(first uint64, leaves [][]byte) error {
	v := binary.BigEndian.AppendUint64(nil, first)
	for _, lf := range leaves {
		v = binary.BigEndian.AppendUint32(v, uint32(len(lf)))
		v = append(v, lf...)
	}
	if err := l.db.Update(func(txn *badger.Txn) error { return txn.Set(keyPending, v) }); err != nil {
		return err
	}
	l.pending.Store(true)
	return nil
}

func (l *Ledger) loadPending() (uint64, [][]byte, bool, error) {
	var v []byte
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyPending)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if err != nil || v == nil {
		return 0, nil, false, err
	}
	if len(v) < 8 {
		return 0, nil, false, fmt.Errorf("%w: pending batch record", ErrCorrupt)
	}
	first := binary.BigEndian.Uint64(v)
	var leaves [][]byte
	for rest := v[8:]; len(rest) > 0; {
		if len(rest) < 4 || uint64(len(rest)-4) < uint64(binary.BigEndian.Uint32(rest)) {
			return 0, nil, false, fmt.Errorf("%w: pending batch record", ErrCorrupt)
		}
		n := binary.BigEndian.Uint32(rest)
		leaves = append(leaves, rest[4:4+n])
		rest = rest[4+n:]
	}
	return first, leaves, true, nil
}

// resolvePending settles what an earlier attempt (or process) left
// unfinished before any new batch is sent: a batch sent without being
// committed, or a catch-up that failed half-way (a transient error of the
// backend). It is called while l.pending is set, and clears it once the
// ledger and the backend hold the same log again; on an error it stays
// set, and the next append tries again from the progress committed so far.
func (l *Ledger) resolvePending(ctx context.Context) error {
	if err := l.syncBackend(ctx); err != nil {
		return err
	}
	l.pending.Store(false)
	return nil
}

// resendPending finishes a batch sent without being committed: it resends
// it at its indices, waits for the backend to integrate it, projects what
// the backend holds and forgets it.
func (l *Ledger) resendPending(ctx context.Context) error {
	first, leaves, ok, err := l.loadPending()
	if err != nil || !ok {
		return err
	}
	if end := first + uint64(len(leaves)); end > l.tree.Size() {
		if first != l.tree.Size() {
			return fmt.Errorf("%w: the pending batch starts at %d, the log has %d entries", ErrCorrupt, first, l.tree.Size())
		}
		cctx, cancel := context.WithTimeout(ctx, backendTimeout)
		err := l.backend.Integrate(cctx, first, leaves, [32]byte{})
		cancel()
		if err != nil {
			return fmt.Errorf("log backend: resending entries %d…%d: %w", first, end-1, err)
		}
		bsize, broot, err := l.backendRoot(ctx)
		if err != nil {
			return err
		}
		if err := l.catchUp(ctx, bsize, broot); err != nil {
			return err
		}
	}
	return l.db.Update(func(txn *badger.Txn) error { return txn.Delete(keyPending) })
}

// backendRoot asks the backend for its root, bounded by backendTimeout.
func (l *Ledger) backendRoot(ctx context.Context) (uint64, [32]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, backendTimeout)
	defer cancel()
	size, root, err := l.backend.Root(ctx)
	if err != nil {
		return 0, [32]byte{}, fmt.Errorf("log backend: %w", err)
	}
	return size, root, nil
}

// openBackend brings the ledger level with its backend at Open. Only a
// security error (ErrCorrupt: the backend's log is not this ledger's)
// stops Open. Any other failure (the backend unreachable, a read that
// failed half-way through a catch-up) leaves the ledger open at the
// progress it committed, serving reads, with l.pending set: the next
// append resumes the catch-up before anything else (resolvePending).
func (l *Ledger) openBackend() error {
	if err := l.syncBackend(context.Background()); err != nil {
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		l.pending.Store(true)
	}
	return nil
}

// syncBackend brings the ledger and its backend to the same log: it
// finishes a pending batch, projects entries only the backend has, or
// writes entries only the ledger has (a ledger moving onto a backend), and
// checks that the roots agree. Every chunk is committed as it is done and
// every call to the backend is bounded by backendTimeout, so a catch-up of
// any length makes progress, and one cut short resumes where it stopped.
func (l *Ledger) syncBackend(ctx context.Context) error {
	if err := l.resendPending(ctx); err != nil {
		return err
	}
	bsize, broot, err := l.backendRoot(ctx)
	if err != nil {
		return err
	}
	size, root := l.tree.Head()
	switch {
	case bsize > size:
		return l.catchUp(ctx, bsize, broot)
	case bsize < size:
		leaves, err := l.localLeaves(bsize, size)
		if err != nil {
			return err
		}
		for from := bsize; from < size; from += 1000 {
			to := min(from+1000, size)
			r, err := l.tree.RootAt(to)
			if err != nil {
				return err
			}
			cctx, cancel := context.WithTimeout(ctx, backendTimeout)
			err = l.backend.Integrate(cctx, from, leaves[from-bsize:to-bsize], r)
			cancel()
			if err != nil {
				return fmt.Errorf("log backend: writing the ledger's entries %d…%d: %w", from, to-1, err)
			}
		}
		return nil
	case broot != root:
		return fmt.Errorf("%w: SECURITY: the log backend's root for size %d is %x, this ledger's is %x", ErrCorrupt, size, broot, root)
	}
	return nil
}

func (l *Ledger) localLeaves(from, to uint64) ([][]byte, error) {
	var out [][]byte
	err := l.view(func(txn *badger.Txn) error {
		for i := from; i < to; i++ {
			d, err := eventDigest(txn, i)
			if err != nil {
				return err
			}
			data, err := l.store.GetTxn(txn, d)
			if err != nil {
				return err
			}
			out = append(out, data)
		}
		return nil
	})
	return out, err
}

// catchUp projects the backend's entries from the ledger's size up to
// bsize, whose root is broot, in chunks, each checked like a new append and
// each proven a prefix of the backend's log before it is committed. The
// backend's calls for one chunk are bounded by backendTimeout.
func (l *Ledger) catchUp(ctx context.Context, bsize uint64, broot [32]byte) error {
	for l.tree.Size() < bsize {
		if err := l.catchUpChunk(ctx, bsize, broot); err != nil {
			return err
		}
	}
	return nil
}

func (l *Ledger) catchUpChunk(ctx context.Context, bsize uint64, broot [32]byte) error {
	ctx, cancel := context.WithTimeout(ctx, backendTimeout)
	defer cancel()
	from := l.tree.Size()
	to := min(from+256, bsize)
	leaves, err := l.backend.Leaves(ctx, from, to)
	if err != nil {
		return fmt.Errorf("log backend: reading entries %d…%d: %w", from, to-1, err)
	}
	if uint64(len(leaves)) != to-from {
		return fmt.Errorf("log backend: asked for entries %d…%d, got %d", from, to-1, len(leaves))
	}
	verify := func(size uint64, root [32]byte) error {
		if size == bsize {
			if root != broot {
				return fmt.Errorf("%w: SECURITY: the log backend's entries up to %d give root %x, the backend says %x", ErrCorrupt, size, root, broot)
			}
			return nil
		}
		p, err := l.backend.ConsistencyProof(ctx, size, bsize)
		if err != nil {
			return fmt.Errorf("log backend: %w", err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size, bsize, p, root[:], broot[:]); err != nil {
			return fmt.Errorf("%w: SECURITY: the log backend's entries up to %d are not a prefix of its log: %v", ErrCorrupt, size, err)
		}
		return nil
	}
	sign := func(size uint64, root [32]byte) (*Checkpoint, error) {
		return signCheckpoint(l.signer, l.origin, size, root)
	}
	return l.applyLeaves(from, leaves, verify, sign)
}

// applyLeaves commits leaves as the entries from, ... after checking each
// as an append and verifying the resulting root (verify). checkpoint gives
// the checkpoint to install for the new size, or nil to keep the current
// one (a replica between two of its primary's checkpoints).
func (l *Ledger) applyLeaves(from uint64, leaves [][]byte, verify func(uint64, [32]byte) error, checkpoint func(uint64, [32]byte) (*Checkpoint, error)) error {
	if err := l.checkSpace(); err != nil {
		return err
	}
	// Every entry is decoded with every check (Decode) and prepared for
	// writing, on all cores, before any is applied.
	evs := make([]Event, len(leaves))
	reqs := make([]*request, len(leaves))
	preps := make([]error, len(leaves))
	errs := make([]error, len(leaves))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(max(runtime.GOMAXPROCS(0), 1), len(leaves)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(leaves); i = int(next.Add(1) - 1) {
				evs[i], errs[i] = Decode(leaves[i])
				if errs[i] == nil {
					reqs[i] = &request{ev: evs[i], data: leaves[i]}
					preps[i] = l.prepare(reqs[i])
				}
			}
		})
	}
	wg.Wait()
	txn := l.db.NewTransaction(true)
	defer txn.Discard()
	tb := l.tree.Begin()
	for i := range leaves {
		index := from + uint64(i)
		if err := errs[i]; err != nil {
			return fmt.Errorf("%w: SECURITY: entry %d is not a valid event: %v", ErrCorrupt, index, err)
		}
		if err := preps[i]; err != nil {
			return fmt.Errorf("entry %d: %w", index, err)
		}
		req := reqs[i]
		existing, err := l.check(txn, req, tb.Size())
		if err == nil && existing >= 0 {
			err = fmt.Errorf("repeats entry %d", existing)
		}
		if err != nil {
			return fmt.Errorf("%w: SECURITY: entry %d is an event this ledger refuses: %v", ErrCorrupt, index, err)
		}
		if _, err := l.write(txn, tb, req); err != nil {
			return err
		}
	}
	size := tb.Size()
	root, err := tb.Root()
	if err != nil {
		return err
	}
	if err := verify(size, root); err != nil {
		return err
	}
	cp, err := checkpoint(size, root)
	if err != nil {
		return err
	}
	if cp != nil {
		if err := txn.Set(keyCheckpoint, cp.Note); err != nil {
			return err
		}
	}
	if err := l.setApplied(txn, size); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		l.fail(fmt.Errorf("commit failed: %v", err))
		return err
	}
	if err := l.tree.Install(tb); err != nil {
		l.fail(err)
		return err
	}
	l.invalidateHashes(evs)
	if cp != nil {
		l.cp.Store(cp)
	}
	return nil
}

// checkSpace asks Config.CheckSpace whether a write may go ahead.
func (l *Ledger) checkSpace() error {
	if l.space == nil {
		return nil
	}
	return l.space()
}

// integrate writes a committed-to-be batch through the backend. With
// ErrBehind it catches up first and reports that the batch must be checked
// again.
func (l *Ledger) integrate(first uint64, leaves [][]byte, root [32]byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), backendTimeout)
	defer cancel()
	if err := l.savePending(first, leaves); err != nil {
		return false, err
	}
	err = l.backend.Integrate(ctx, first, leaves, root)
	if !errors.Is(err, ErrBehind) {
		return false, err
	}
	// Only the first leaf was sent and it collided: nothing of this batch
	// is in the backend.
	if err := l.db.Update(func(txn *badger.Txn) error { return txn.Delete(keyPending) }); err != nil {
		return false, err
	}
	l.pending.Store(false)
	// Catch up, each chunk committed and bounded on its own. A transient
	// failure (the backend unreachable half-way) leaves the progress made
	// and l.pending set, so the next append resumes the catch-up first;
	// only a security error stops the ledger.
	bsize, broot, err := l.backendRoot(context.Background())
	if err != nil {
		l.pending.Store(true)
		return false, err
	}
	if err := l.catchUp(context.Background(), bsize, broot); err != nil {
		if errors.Is(err, ErrCorrupt) {
			l.fail(err)
		} else {
			l.pending.Store(true)
		}
		return false, err
	}
	if l.tree.Size() == first {
		return false, fmt.Errorf("%w: index %d is taken but not integrated yet; retry shortly", ErrBackend, first)
	}
	return true, nil
}
