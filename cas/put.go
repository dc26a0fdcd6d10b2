package cas

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	"github.com/dgraph-io/badger/v4"
)

// Put stores the content read from r until EOF and returns its Info. The
// blob is durable when Put returns. Content of at most InlineMax bytes
// becomes one inline record; larger content is split into chunks and
// streamed through a pipeline with bounded memory (see putJob). Chunks
// already in the store are not written again, and when the blob itself is
// already present Put writes nothing new (Info.Written is 0).
//
// Cancelling ctx stops Put between chunks (a Read blocked in r is not
// interrupted). A failed or cancelled Put may leave chunks that no record
// references; it never leaves a record whose chunks are missing.
func (s *Store) Put(ctx context.Context, r io.Reader) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	// Read enough to tell an inline blob, then a small one, from the rest.
	head, eof, err := readHead(r, make([]byte, 0, s.o.InlineMax+1), s.o.InlineMax+1)
	if err != nil {
		return Info{}, err
	}
	if eof {
		return s.putInline(ctx, head)
	}
	if int64(len(head)) < s.cut.largeFrom {
		if head, eof, err = readHead(r, head, int(s.cut.largeFrom)); err != nil {
			return Info{}, err
		}
	}
	sizes := s.cut.large
	if eof {
		sizes = s.cut.sizesFor(int64(len(head)))
	}
	return s.putStream(ctx, io.MultiReader(bytes.NewReader(head), r), sizes)
}

// readHead appends to head from r until head holds n bytes or r ends
// (eof true).
func readHead(r io.Reader, head []byte, n int) ([]byte, bool, error) {
	for len(head) < n {
		if len(head) == cap(head) {
			head = slices.Grow(head, min(max(2*cap(head), 64<<10), n)-len(head))
		}
		m, err := r.Read(head[len(head):min(cap(head), n)])
		head = head[:len(head)+m]
		if err == io.EOF {
			return head, true, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("cas: Put: read content: %w", err)
		}
	}
	return head, false, nil
}

// PutBytes stores b; see Put.
func (s *Store) PutBytes(ctx context.Context, b []byte) (Info, error) {
	if len(b) <= s.o.InlineMax {
		return s.putInline(ctx, b)
	}
	return s.putStream(ctx, bytes.NewReader(b), s.cut.sizesFor(int64(len(b))))
}

// Pipeline sizing, per Put. A segment carries about segmentSize bytes of
// consecutive chunks between stages; a Put holds at most segmentsPerPut of
// them (about 1 MiB each, plus compressed output), which bounds its memory.
// The writer commits every commitSegments segments that hold new chunks,
// with up to commitsInFlight commits in flight while it fills the next
// transaction. Badger syncs once per commit, and on the reference machine
// (see BenchmarkPut) 8 MiB per commit is where larger commits stop paying.
const (
	segmentSize     = 1 << 20
	segmentsPerPut  = 24
	commitSegments  = 8
	commitsInFlight = 2
)

// putJob runs one streaming Put across goroutines:
//
//	caller:  read r, cut chunks (FastCDC), pack them into segments
//	hasher:  SHA-256 of the whole content, segment by segment, in order
//	workers: per chunk SHA-256, lookup, zstd if it saves space
//	writer:  in order: manifest tree, badger transactions, the blob record
//
// Stages pass segments over channels sized so that sends never block; the
// segment tokens alone bound the memory. A segment returns to the pool once
// the hasher is done with it and the transaction holding its chunks has
// committed.
type putJob struct {
	s      *Store
	ctx    context.Context
	cancel context.CancelCauseFunc
	sizes  chunkSizes
	tokens chan struct{}

	hashCh, workCh, doneCh chan *segment
	digest                 chan Digest
}

type segment struct {
	job   *putJob
	seq   int
	buf   []byte // [encRaw][chunk][encRaw][chunk]...
	spans []span
	items []chunkItem
	keys  []byte // arena for chunk keys
	out   []byte // arena for compressed chunk values
	err   error
	users atomic.Int32 // hasher and writer; back to the pool when both are done
}

type span struct{ start, end int }

type chunkItem struct {
	d        Digest
	size     int
	key, val []byte // val is nil when the chunk is already stored
}

var segmentPool sync.Pool

func (j *putJob) newSegment() (*segment, error) {
	select {
	case j.tokens <- struct{}{}:
	case <-j.ctx.Done():
		return nil, context.Cause(j.ctx)
	}
	seg, _ := segmentPool.Get().(*segment)
	if seg == nil {
		seg = &segment{}
	}
	need := segmentSize + j.sizes.max + 1
	if cap(seg.buf) < need {
		seg.buf = make([]byte, 0, need)
	}
	seg.job, seg.buf, seg.spans, seg.items, seg.keys, seg.out, seg.err = j, seg.buf[:0], seg.spans[:0], seg.items[:0], seg.keys[:0], seg.out[:0], nil
	seg.users.Store(2)
	return seg, nil
}

// release drops one user of seg; the last returns it to the pool.
func (seg *segment) release() {
	if seg.users.Add(-1) > 0 {
		return
	}
	j := seg.job
	clear(seg.items) // drop references to values and keys
	seg.job = nil
	segmentPool.Put(seg)
	<-j.tokens
}

func (s *Store) putStream(ctx context.Context, r io.Reader, sizes chunkSizes) (Info, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	j := &putJob{
		s:      s,
		ctx:    ctx,
		cancel: cancel,
		sizes:  sizes,
		tokens: make(chan struct{}, segmentsPerPut),
		hashCh: make(chan *segment, segmentsPerPut),
		workCh: make(chan *segment, segmentsPerPut),
		doneCh: make(chan *segment, segmentsPerPut),
		digest: make(chan Digest, 1),
	}
	var wg sync.WaitGroup
	wg.Go(j.hash)
	var workers sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), 4) {
		workers.Go(j.work)
	}
	go func() { workers.Wait(); close(j.doneCh) }()
	var info Info
	var werr error
	wg.Go(func() { info, werr = j.write() })

	size, cerr := j.chunk(r)
	close(j.hashCh)
	close(j.workCh)
	if cerr != nil {
		cancel(cerr)
	}
	wg.Wait()
	if cerr != nil {
		return Info{}, cerr
	}
	if werr != nil {
		return Info{}, werr
	}
	if info.Size != size {
		return Info{}, fmt.Errorf("cas: Put: internal error: wrote %d of %d bytes", info.Size, size)
	}
	return info, nil
}

// chunk reads r, cuts it into chunks and sends segments of them down the
// pipeline. It returns the content length.
func (j *putJob) chunk(r io.Reader) (int64, error) {
	bufp := chunkBufPool.Get().(*[]byte)
	defer chunkBufPool.Put(bufp)
	if len(*bufp) < 2*j.sizes.max {
		*bufp = make([]byte, 2*j.sizes.max)
	}
	c, err := chunkers.NewChunkerBuffer(j.s.algo, r, j.sizes.opts(), *bufp)
	if err != nil {
		return 0, fmt.Errorf("cas: Put: %w", err)
	}
	var size int64
	seq := 0
	var seg *segment
	send := func() {
		seg.seq = seq
		seq++
		j.hashCh <- seg
		j.workCh <- seg
		seg = nil
	}
	defer func() {
		if seg != nil { // not sent: give back both users' shares
			seg.release()
			seg.release()
		}
	}()
	for {
		data, rerr := c.Next()
		if rerr != nil && rerr != io.EOF {
			return 0, fmt.Errorf("cas: Put: read content: %w", rerr)
		}
		if len(data) > 0 {
			size += int64(len(data))
			if size > j.s.o.MaxBlobSize {
				return 0, fmt.Errorf("cas: Put: content exceeds %d bytes: %w: raise Options.MaxBlobSize to store it", j.s.o.MaxBlobSize, ErrTooLarge)
			}
			if seg == nil {
				if seg, err = j.newSegment(); err != nil {
					return 0, err
				}
			}
			seg.buf = append(seg.buf, encRaw)
			start := len(seg.buf)
			seg.buf = append(seg.buf, data...)
			seg.spans = append(seg.spans, span{start, len(seg.buf)})
			if len(seg.buf) >= segmentSize {
				send()
				if err := context.Cause(j.ctx); err != nil {
					return 0, err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	if seg != nil {
		send()
	}
	return size, nil
}

var chunkBufPool = sync.Pool{New: func() any { return new([]byte) }}

// hash computes the whole-content digest.
func (j *putJob) hash() {
	h := sha256.New()
	for seg := range j.hashCh {
		if j.ctx.Err() == nil {
			for _, sp := range seg.spans {
				h.Write(seg.buf[sp.start:sp.end])
			}
		}
		seg.release()
	}
	j.digest <- Digest(h.Sum(nil))
}

// snapshotSegments is how many segments a worker looks chunks up in with one
// read transaction. Badger makes a transaction opened while a commit is in
// flight wait for it, and this Put commits every few segments, so workers
// keep their snapshot: a chunk written since is at worst written again.
const snapshotSegments = 256

// work hashes each chunk of a segment, looks it up and prepares the value
// to store for the new ones.
func (j *putJob) work() {
	var scratch []byte
	var txn *badger.Txn
	n := 0
	for seg := range j.workCh {
		if j.ctx.Err() == nil {
			if n%snapshotSegments == 0 {
				if txn != nil {
					txn.Discard()
				}
				txn = j.s.db.NewTransaction(false)
			}
			n++
			scratch = j.prepare(txn, seg, scratch)
		}
		j.doneCh <- seg
	}
	if txn != nil {
		txn.Discard()
	}
}

func (j *putJob) prepare(txn *badger.Txn, seg *segment, scratch []byte) []byte {
	s := j.s
	if need := len(seg.spans) * keyLen; cap(seg.keys) < need {
		seg.keys = make([]byte, 0, need+need/2)
	}
	for _, sp := range seg.spans {
		data := seg.buf[sp.start:sp.end]
		it := chunkItem{d: sha256.Sum256(data), size: len(data)}
		k := len(seg.keys)
		seg.keys = appendKey(seg.keys, chunkPrefix, it.d)
		it.key = seg.keys[k:len(seg.keys):len(seg.keys)]
		_, err := txn.Get(it.key)
		switch {
		case err == nil: // already stored
		case errors.Is(err, badger.ErrKeyNotFound):
			if cap(scratch) < 1+len(data)+zstdOverhead {
				scratch = make([]byte, 0, 1+j.sizes.max+zstdOverhead)
			}
			if v, ok := s.compressValue(scratch[:0], data); ok {
				o := len(seg.out)
				seg.out = append(seg.out, v...)
				it.val = seg.out[o:len(seg.out):len(seg.out)]
			} else {
				it.val = seg.buf[sp.start-1 : sp.end : sp.end] // raw: header byte already in place
			}
		default:
			seg.err = fmt.Errorf("cas: Put: look up chunk %s: %w", it.d, err)
			return scratch
		}
		seg.items = append(seg.items, it)
	}
	return scratch
}
