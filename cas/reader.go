package cas

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Reader streams one blob. It reads ahead in a background goroutine that
// fetches, decompresses and verifies chunks (at most readAhead of them in
// memory), while the caller's goroutine hashes the whole blob. Bytes reach
// the caller only after their chunk matched its digest; when the content was
// read from offset 0 to the end, the final Read returns an *IntegrityError
// instead of io.EOF if the whole blob does not match its digest.
//
// Reader implements io.ReadSeekCloser, io.WriterTo and io.ReaderAt. After a
// Seek to a non-zero offset (or a ReadAt), chunks and manifest pages are still
// verified but the whole-blob digest is not, since not all of the blob is
// read; Seek back to 0 to verify again. A Reader is not safe for concurrent
// use, except ReadAt, which may be called concurrently with anything but Close.
// Close it to stop the read-ahead.
type Reader struct {
	s      *Store
	ctx    context.Context
	d      Digest
	rec    record
	pos    int64  // offset of the next byte Read returns
	inline []byte // the content of an inline blob, verified
	shared bool   // inline is a rebuilt blob others share: never hand it out
	patch  record // of a blob stored as a patch, rebuilt by load
	loaded sync.Once
	lerr   error

	f      *fetcher    // read-ahead of a chunked blob; nil until needed
	cur    *fetchBatch // chunks being returned
	data   []byte      // the part of cur not yet returned
	h      hash.Hash   // whole-blob hash while reading sequentially from 0
	err    error       // sticky error, io.EOF included
	closed bool
}

var (
	_ io.ReadSeekCloser = (*Reader)(nil)
	_ io.WriterTo       = (*Reader)(nil)
	_ io.ReaderAt       = (*Reader)(nil)
)

// Open returns a Reader for blob d, or an error wrapping ErrNotFound. An
// inline blob is verified here; a chunked one as it is read. ctx governs the
// whole life of the Reader: once it is done, reads fail with its error.
func (s *Store) Open(ctx context.Context, d Digest) (*Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var rec record
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		rec, err = s.loadRecord(txn, d)
		return err
	})
	if err != nil {
		return nil, err
	}
	r := &Reader{s: s, ctx: ctx, d: d, rec: rec}
	if rec.delta != nil {
		// Rebuilt and verified in memory on the first read (a caller that
		// needs only the size, as for HEAD or 304, rebuilds nothing), then
		// read like an inline blob.
		r.patch = rec
		r.rec = record{kind: recInlineRaw, size: rec.size}
		r.shared = true
		return r, nil
	}
	if rec.kind != recChunked {
		if r.inline, err = s.inlineContent(d, rec); err != nil {
			return nil, err
		}
		return r, nil
	}
	r.h = sha256.New()
	return r, nil
}

// load rebuilds a blob stored as a patch into inline, once (ReadAt may
// race with the other reads).
func (r *Reader) load() error {
	if r.patch.delta == nil {
		return nil
	}
	r.loaded.Do(func() { r.inline, r.lerr = r.s.rebuild(r.ctx, r.d, r.patch, true) })
	return r.lerr
}

// Bytes returns the whole content of blob d, verified, refusing with an error
// wrapping ErrTooLarge if it is larger than max bytes.
func (s *Store) Bytes(ctx context.Context, d Digest, max int64) ([]byte, error) {
	r, err := s.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if r.Size() > max {
		return nil, fmt.Errorf("cas: blob %s has %d bytes: %w: the caller allows %d", d, r.Size(), ErrTooLarge, max)
	}
	if r.rec.kind != recChunked {
		if err := r.load(); err != nil {
			return nil, err
		}
		if r.shared {
			return bytes.Clone(r.inline), nil
		}
		return r.inline, nil
	}
	b := make([]byte, r.Size())
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	// The read that hits the end checks the whole-blob digest.
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = &IntegrityError{Digest: d, Reason: "blob is longer than its record says"}
		}
		return nil, err
	}
	return b, nil
}

// Digest returns the digest of the blob being read.
func (r *Reader) Digest() Digest { return r.d }

// Size returns the blob's length in bytes.
func (r *Reader) Size() int64 { return r.rec.size }

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.rec.kind != recChunked {
		return r.readInline(p)
	}
	n := 0
	for n < len(p) {
		if len(r.data) == 0 {
			if n > 0 && r.f != nil && len(r.f.order) == 0 {
				break // return what we have rather than wait
			}
			if err := r.nextBatch(); err != nil {
				if n > 0 && err == io.EOF {
					break
				}
				return n, err
			}
		}
		m := copy(p[n:], r.data)
		r.data = r.data[m:]
		r.pos += int64(m)
		n += m
	}
	return n, nil
}

func (r *Reader) readInline(p []byte) (int, error) {
	if r.closed {
		return 0, errClosed
	}
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if err := r.load(); err != nil {
		return 0, err
	}
	if r.pos >= int64(len(r.inline)) {
		return 0, io.EOF
	}
	n := copy(p, r.inline[r.pos:])
	r.pos += int64(n)
	return n, nil
}

var errClosed = errors.New("cas: read from a closed Reader")

// nextBatch makes the next batch of verified chunks current, hashing it
// into the whole-blob hash. At the end it checks that hash and returns
// io.EOF or an *IntegrityError.
func (r *Reader) nextBatch() error {
	if r.err != nil {
		return r.err
	}
	if r.closed {
		return errClosed
	}
	if err := r.ctx.Err(); err != nil {
		return err
	}
	if r.f == nil {
		r.f = r.s.startFetch(r.ctx, r.d, r.rec, r.pos)
	}
	if r.cur != nil {
		r.f.recycle(r.cur)
		r.cur = nil
	}
	it, err := r.f.next(r.ctx)
	if err != nil {
		r.err = err
		return err
	}
	if it.err != nil {
		r.err = it.err
		if it.err == io.EOF && r.h != nil {
			if r.pos != r.rec.size {
				r.err = &IntegrityError{Digest: r.d, Reason: fmt.Sprintf("chunks hold %d bytes, the record says %d", r.pos, r.rec.size)}
			} else if Digest(r.h.Sum(nil)) != r.d {
				r.err = &IntegrityError{Digest: r.d, Reason: "reassembled content does not match the blob digest"}
			}
		}
		return r.err
	}
	if r.h != nil {
		r.h.Write(it.buf)
		// Check the whole-blob digest before the last bytes are handed
		// out, so a reader that stops at the blob's size (http.ServeContent
		// copies exactly Content-Length bytes) never gets unverified data.
		if end := r.pos + int64(len(it.buf)); end >= r.rec.size {
			if end > r.rec.size {
				r.err = &IntegrityError{Digest: r.d, Reason: fmt.Sprintf("chunks hold more than the %d bytes the record says", r.rec.size)}
			} else if Digest(r.h.Sum(nil)) != r.d {
				r.err = &IntegrityError{Digest: r.d, Reason: "reassembled content does not match the blob digest"}
			}
			if r.err != nil {
				r.f.recycle(it)
				return r.err
			}
		}
	}
	r.cur, r.data = it, it.buf[it.skip:]
	return nil
}

// WriteTo implements io.WriterTo: io.Copy uses it to hand verified chunks to
// w without an intermediate copy. w must not retain the slices it is given.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	if r.rec.kind != recChunked {
		if r.closed {
			return 0, errClosed
		}
		if err := r.ctx.Err(); err != nil {
			return 0, err
		}
		if err := r.load(); err != nil {
			return 0, err
		}
		if r.pos >= int64(len(r.inline)) {
			return 0, nil
		}
		n, err := w.Write(r.inline[r.pos:])
		r.pos += int64(n)
		return int64(n), err
	}
	var total int64
	for {
		if len(r.data) == 0 {
			if err := r.nextBatch(); err != nil {
				if err == io.EOF {
					err = nil
				}
				return total, err
			}
		}
		n, err := w.Write(r.data)
		r.data = r.data[n:]
		r.pos += int64(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}

// Seek implements io.Seeker. Seeking to the current offset is free and keeps
// the whole-blob verification; seeking to 0 restarts it; any other offset
// turns it off for the rest of the read.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	if r.closed {
		return 0, errClosed
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.rec.size
	default:
		return r.pos, fmt.Errorf("cas: Seek: invalid whence %d", whence)
	}
	if offset < 0 {
		return r.pos, fmt.Errorf("cas: Seek to negative offset %d", offset)
	}
	if offset == r.pos {
		return r.pos, nil
	}
	if r.rec.kind == recChunked {
		r.stopFetch()
		if offset == 0 {
			r.h = sha256.New()
		} else {
			r.h = nil
		}
		r.err = nil
	}
	r.pos = offset
	return offset, nil
}

func (r *Reader) stopFetch() {
	if r.f != nil {
		r.f.stop()
		r.f = nil
	}
	r.cur, r.data = nil, nil
}

// ReadAt implements io.ReaderAt. It reads synchronously in its own
// transaction and verifies every chunk and page it reads, but not the
// whole-blob digest.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("cas: ReadAt negative offset %d", off)
	}
	if r.rec.kind != recChunked {
		if err := r.load(); err != nil {
			return 0, err
		}
		if off >= int64(len(r.inline)) {
			return 0, io.EOF
		}
		n := copy(p, r.inline[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	if off >= r.rec.size {
		return 0, io.EOF
	}
	n := 0
	err := r.s.db.View(func(txn *badger.Txn) error {
		w := newWalker(r.s, r.d, r.rec)
		skip, err := w.seek(txn, off)
		if err != nil {
			return err
		}
		var buf []byte
		for n < len(p) {
			if err := r.ctx.Err(); err != nil {
				return err
			}
			c, ok, err := w.next(txn)
			if err != nil {
				return err
			}
			if !ok {
				return io.EOF
			}
			if buf, err = r.s.appendChunk(txn, r.d, c, buf[:0]); err != nil {
				return err
			}
			n += copy(p[n:], buf[skip:])
			skip = 0
		}
		return nil
	})
	return n, err
}

// Close stops the read-ahead and releases its buffers. It always returns nil.
func (r *Reader) Close() error {
	if !r.closed {
		r.closed = true
		r.stopFetch()
	}
	return nil
}
