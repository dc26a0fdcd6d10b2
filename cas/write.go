package cas

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// maxRecent bounds the writer's memory of chunks it has already queued in
// this Put; beyond it the set is cleared (a repeat then costs a redundant,
// harmless write).
const maxRecent = 1 << 16

// writer is the last stage of a Put: it takes prepared segments in order,
// builds the manifest tree and writes chunks and pages in batches.
type writer struct {
	j       *putJob
	txn     *badger.Txn
	held    []*segment // segments whose values are in txn
	recent  map[Digest]struct{}
	tree    treeBuilder
	written int64
	digestd bool // the hasher's result has been received

	// cur is the segment being queued, curQueued whether any of its values
	// are in txn yet: a commit forced by a full transaction midway through
	// cur must keep cur alive too.
	cur       *segment
	curQueued bool

	inflight chan struct{} // a token per commit in flight
	mu       sync.Mutex
	err      error // first failed commit
}

func (j *putJob) write() (Info, error) {
	w := &writer{
		j:        j,
		txn:      j.s.db.NewTransaction(true),
		recent:   make(map[Digest]struct{}),
		inflight: make(chan struct{}, commitsInFlight),
	}
	w.tree.writePage = w.writePage
	w.tree.fanout = j.s.fanout
	info, err := w.run()
	if err != nil {
		j.cancel(err)
		w.txn.Discard()
		w.wait()
		w.releaseHeld()
		for seg := range j.doneCh { // drain what the workers still send
			seg.release()
		}
		if !w.digestd {
			<-j.digest
		}
		return Info{}, err
	}
	return info, nil
}

func (w *writer) run() (Info, error) {
	j := w.j
	pending := make(map[int]*segment)
	next := 0
	for seg := range j.doneCh {
		pending[seg.seq] = seg
		for {
			seg, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if err := w.add(seg); err != nil {
				for _, seg := range pending {
					seg.release()
				}
				return Info{}, err
			}
		}
	}
	if err := context.Cause(j.ctx); err != nil {
		return Info{}, err
	}
	if len(pending) > 0 {
		return Info{}, errors.New("cas: Put: internal error: pipeline lost a segment")
	}
	d := <-j.digest
	w.digestd = true
	return w.finish(d)
}

// add queues the new chunks of seg and commits when enough are queued. It
// takes over the writer's share of seg: released at once if seg adds
// nothing to the transaction, else once the transaction holding its values
// has committed (or, on failure, once no commit is in flight).
func (w *writer) add(seg *segment) error {
	w.cur, w.curQueued = seg, false
	err := w.queue(seg)
	queued := w.curQueued
	w.cur = nil
	if !queued {
		seg.release()
		return err
	}
	w.held = append(w.held, seg)
	if err != nil {
		return err
	}
	if len(w.held) >= commitSegments {
		return w.commit()
	}
	return nil
}

func (w *writer) queue(seg *segment) error {
	if err := context.Cause(w.j.ctx); err != nil {
		return err
	}
	if seg.err != nil {
		return seg.err
	}
	for i := range seg.items {
		it := &seg.items[i]
		if err := w.tree.addChunk(ref{d: it.d, size: int64(it.size)}); err != nil {
			return err
		}
		if it.val == nil {
			continue
		}
		if _, ok := w.recent[it.d]; ok {
			continue
		}
		if len(w.recent) >= maxRecent {
			clear(w.recent)
		}
		w.recent[it.d] = struct{}{}
		if err := w.set(it.key, it.val); err != nil {
			return err
		}
		w.curQueued = true
	}
	return nil
}

// set adds one entry to the current transaction, committing first when it
// is full.
func (w *writer) set(k, v []byte) error {
	err := w.txn.Set(k, v)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err := w.commit(); err != nil {
			return err
		}
		err = w.txn.Set(k, v)
	}
	if err != nil {
		return fmt.Errorf("cas: Put: %w", err)
	}
	w.written += int64(len(k) + len(v))
	return nil
}

func (w *writer) writePage(d Digest, val []byte) error {
	k := pageKey(d)
	if _, err := w.txn.Get(k); err == nil {
		return nil
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("cas: Put: look up manifest page %s: %w", d, err)
	}
	return w.set(k, val)
}

// commit sends the current transaction to badger without waiting for it,
// once the previous one is done, and continues in a new one. The segments it
// references are released when it completes.
//
// The new transaction is opened before the current one is sent: badger makes
// a transaction opened while a commit is in flight wait for that commit, and
// the writer's reads (page lookups) are content-addressed, so an older
// snapshot only risks rewriting a page that was just written.
func (w *writer) commit() error {
	w.inflight <- struct{}{}
	if err := w.firstErr(); err != nil {
		<-w.inflight
		return err
	}
	if err := w.j.s.checkSpace(); err != nil {
		<-w.inflight
		return err
	}
	segs := w.held
	w.held = nil
	if w.cur != nil && w.curQueued {
		w.cur.users.Add(1) // released by this commit and by the next
		segs = append(segs, w.cur)
		w.curQueued = false
	}
	txn := w.txn
	w.txn = w.j.s.db.NewTransaction(true)
	txn.CommitWith(func(err error) {
		if err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = fmt.Errorf("cas: Put: commit chunks: %w", err)
			}
			w.mu.Unlock()
		}
		for _, seg := range segs {
			seg.release()
		}
		<-w.inflight
	})
	return nil
}

func (w *writer) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// wait blocks until no commit is in flight and returns the first commit
// error.
func (w *writer) wait() error {
	for range cap(w.inflight) {
		w.inflight <- struct{}{}
	}
	for range cap(w.inflight) {
		<-w.inflight
	}
	return w.firstErr()
}

func (w *writer) releaseHeld() {
	for _, seg := range w.held {
		seg.release()
	}
	w.held = nil
}

// finish writes the remaining pages and, unless the blob is already stored,
// its record, in a transaction committed only after every earlier one
// succeeded.
func (w *writer) finish(d Digest) (Info, error) {
	height, refs, err := w.tree.finish()
	if err != nil {
		return Info{}, err
	}
	if err := w.wait(); err != nil {
		return Info{}, err
	}
	k := blobKey(d)
	_, err = w.txn.Get(k)
	switch {
	case err == nil:
		// Already stored. Anything queued replaces chunks that were
		// missing, so it is still committed.
	case errors.Is(err, badger.ErrKeyNotFound):
		v := appendChunkedRecord(nil, w.tree.size, w.tree.chunks, height, refs)
		if err := w.set(k, v); err != nil {
			return Info{}, err
		}
		if err := w.wait(); err != nil { // set may have committed a full txn
			return Info{}, err
		}
	default:
		return Info{}, fmt.Errorf("cas: Put: look up blob %s: %w", d, err)
	}
	if err := w.j.s.checkSpace(); err != nil {
		return Info{}, err
	}
	if err := w.txn.Commit(); err != nil {
		return Info{}, fmt.Errorf("cas: Put: commit blob %s: %w", d, err)
	}
	w.releaseHeld()
	return Info{Digest: d, Size: w.tree.size, Chunks: w.tree.chunks, Written: w.written}, nil
}
