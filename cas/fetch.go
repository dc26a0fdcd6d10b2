package cas

import (
	"context"
	"io"
	"runtime"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Read-ahead sizing: a Reader fetches chunks in batches of about batchBytes
// of content (at most batchRefs chunks) and holds at most readAhead batches.
// Each goroutine renews its read transaction every snapshotBatches batches:
// short enough not to pin old versions of the database for long, rare
// enough not to wait often (badger makes a new transaction wait for commits
// in flight).
const (
	readAhead       = 8
	batchBytes      = 256 << 10
	batchRefs       = 64
	snapshotBatches = 64
)

// fetchBatch is a run of consecutive chunks on its way to the reader. The
// batches of a fetcher circulate: free list, then the ordered queue and a
// loader, then the reader, then the free list again.
type fetchBatch struct {
	refs []ref
	skip int64  // bytes at the start of the batch the reader does not want
	buf  []byte // the chunks' verified content, concatenated
	err  error  // a load failed; or, without refs, the walk ended (io.EOF) or failed
	done chan struct{}
}

// fetcher reads a chunked blob ahead of its Reader: one goroutine walks the
// manifest and queues batches of chunk references in order, loaders fetch,
// decompress and verify them in parallel, and the reader takes them in order.
type fetcher struct {
	order chan *fetchBatch // in content order, to the reader
	work  chan *fetchBatch // to the loaders
	free  chan *fetchBatch
	quit  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// startFetch starts reading blob d from content offset off.
func (s *Store) startFetch(ctx context.Context, d Digest, rec record, off int64) *fetcher {
	f := &fetcher{
		order: make(chan *fetchBatch, readAhead+1),
		work:  make(chan *fetchBatch, readAhead),
		free:  make(chan *fetchBatch, readAhead),
		quit:  make(chan struct{}),
	}
	for range readAhead {
		f.free <- &fetchBatch{done: make(chan struct{}, 1)}
	}
	f.wg.Go(func() { f.walk(ctx, s, d, rec, off) })
	for range min(runtime.GOMAXPROCS(0), 4) {
		f.wg.Go(func() { f.load(ctx, s, d) })
	}
	return f
}

// walk queues the chunk references from offset off to the end, then a final
// batch carrying io.EOF or the error that stopped it. No send blocks: the
// queues have room for every batch there is.
func (f *fetcher) walk(ctx context.Context, s *Store, d Digest, rec record, off int64) {
	defer close(f.work)
	w := newWalker(s, d, rec)
	txn := s.db.NewTransaction(false)
	defer func() { txn.Discard() }()
	var skip int64
	var err error
	if off > 0 {
		skip, err = w.seek(txn, off)
	}
	for n := 1; err == nil; n++ {
		var b *fetchBatch
		select {
		case b = <-f.free:
		case <-f.quit:
			return
		case <-ctx.Done():
			err = ctx.Err()
			continue
		}
		if n%snapshotBatches == 0 {
			txn.Discard()
			txn = s.db.NewTransaction(false)
		}
		b.refs, b.skip, b.err = b.refs[:0], skip, nil
		skip = 0
		var size int64
		for size < batchBytes && len(b.refs) < batchRefs {
			r, ok, werr := w.next(txn)
			if werr != nil || !ok {
				err = werr
				if err == nil {
					err = io.EOF
				}
				break
			}
			b.refs = append(b.refs, r)
			size += r.size
		}
		if len(b.refs) > 0 {
			f.order <- b
			f.work <- b
		} else {
			f.free <- b
		}
	}
	end := &fetchBatch{err: err, done: make(chan struct{}, 1)}
	end.done <- struct{}{}
	f.order <- end
}

// load fetches and verifies queued batches.
func (f *fetcher) load(ctx context.Context, s *Store, d Digest) {
	var txn *badger.Txn
	defer func() {
		if txn != nil {
			txn.Discard()
		}
	}()
	n := 0
	for b := range f.work {
		b.buf = b.buf[:0]
		if b.err = ctx.Err(); b.err != nil {
			b.done <- struct{}{}
			continue
		}
		if n%snapshotBatches == 0 {
			if txn != nil {
				txn.Discard()
			}
			txn = s.db.NewTransaction(false)
		}
		n++
		for _, r := range b.refs {
			if b.buf, b.err = s.appendChunk(txn, d, r, b.buf); b.err != nil {
				break
			}
		}
		b.done <- struct{}{}
	}
}

// next returns the next batch in content order once it is loaded.
func (f *fetcher) next(ctx context.Context) (*fetchBatch, error) {
	var b *fetchBatch
	select {
	case b = <-f.order:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return b, nil
}

func (f *fetcher) recycle(b *fetchBatch) {
	select {
	case f.free <- b:
	default:
	}
}

// stop ends the goroutines and waits for them: the walker exits on quit,
// closing the loaders' queue.
func (f *fetcher) stop() {
	f.once.Do(func() { close(f.quit) })
	f.wg.Wait()
}
