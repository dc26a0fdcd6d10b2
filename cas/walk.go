package cas

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// walker enumerates the chunk references of a chunked blob in order,
// loading and verifying manifest pages as it descends. It holds one page of
// references per tree level. Each call takes the transaction to read pages
// with, so a caller can read a long blob in several short transactions.
type walker struct {
	s      *Store
	blob   Digest
	rec    record
	stack  []walkLevel
	spare  [][]ref // reusable ref slices, by depth
	chunks int64   // chunk references returned so far
	seeked bool    // positioned by seek: the chunk count cannot be checked
	// onPage, if set, is told of every page loaded and its stored size.
	onPage func(d Digest, storedLen int)
}

type walkLevel struct {
	refs  []ref
	i     int // next reference to visit
	level int // 0: refs name chunks; l > 0: refs name pages of level l-1
}

func newWalker(s *Store, blob Digest, rec record) *walker {
	w := &walker{s: s, blob: blob, rec: rec}
	w.reset()
	return w
}

func (w *walker) reset() {
	w.stack = append(w.stack[:0], walkLevel{refs: w.rec.refs, level: w.rec.height})
	w.chunks, w.seeked = 0, false
}

func (w *walker) fail(chunk Digest, reason string) error {
	return &IntegrityError{Digest: w.blob, Chunk: chunk, Reason: reason}
}

// next returns the next chunk reference, or ok false after the last one.
func (w *walker) next(txn *badger.Txn) (r ref, ok bool, err error) {
	for len(w.stack) > 0 {
		top := &w.stack[len(w.stack)-1]
		if top.i == len(top.refs) {
			w.stack = w.stack[:len(w.stack)-1]
			continue
		}
		r := top.refs[top.i]
		top.i++
		if top.level == 0 {
			w.chunks++
			if !w.seeked && w.chunks > w.rec.chunks {
				return ref{}, false, w.fail(Digest{}, fmt.Sprintf("manifest lists more than the %d chunks recorded", w.rec.chunks))
			}
			return r, true, nil
		}
		if err := w.push(txn, r, top.level-1); err != nil {
			return ref{}, false, err
		}
	}
	if !w.seeked && w.chunks != w.rec.chunks {
		return ref{}, false, w.fail(Digest{}, fmt.Sprintf("manifest lists %d chunks, the record says %d", w.chunks, w.rec.chunks))
	}
	return ref{}, false, nil
}

// push loads page r, of the given level, as the new innermost level.
func (w *walker) push(txn *badger.Txn, r ref, level int) error {
	depth := len(w.stack)
	for len(w.spare) <= depth {
		w.spare = append(w.spare, nil)
	}
	refs, n, err := w.s.loadPage(txn, w.blob, r, level, w.spare[depth][:0])
	if err != nil {
		return err
	}
	if w.onPage != nil {
		w.onPage(r.d, n)
	}
	w.spare[depth] = refs
	w.stack = append(w.stack, walkLevel{refs: refs, level: level})
	return nil
}

// seek positions the walker so that next returns the chunk holding content
// offset off, and returns off's position within that chunk. At off == size
// next reports the end at once.
func (w *walker) seek(txn *badger.Txn, off int64) (int64, error) {
	w.reset()
	w.seeked = true
	for {
		top := &w.stack[len(w.stack)-1]
		for top.i < len(top.refs) && off >= top.refs[top.i].size {
			off -= top.refs[top.i].size
			top.i++
		}
		if top.i == len(top.refs) || top.level == 0 {
			return off, nil
		}
		r := top.refs[top.i]
		top.i++
		if err := w.push(txn, r, top.level-1); err != nil {
			return 0, err
		}
	}
}

// maxPageValue is the largest stored page: header byte plus fanout refs.
const maxPageValue = 1 + pageFanout*(len(Digest{})+10)

// loadPage reads page r of the given level and returns its references,
// appended to dst, after checking the page's digest and that its references
// add up to r.size. It also returns the stored value's length.
func (s *Store) loadPage(txn *badger.Txn, blob Digest, r ref, level int, dst []ref) ([]ref, int, error) {
	item, err := txn.Get(pageKey(r.d))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, 0, &IntegrityError{Digest: blob, Chunk: r.d, Reason: "manifest page is missing"}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("cas: read manifest page %s of blob %s: %w", r.d, blob, err)
	}
	var reason string
	n := 0
	err = item.Value(func(v []byte) error {
		n = len(v)
		switch {
		case len(v) == 0 || v[0] != encRaw:
			reason = "manifest page has an unknown encoding"
		case len(v) > maxPageValue:
			reason = fmt.Sprintf("manifest page of %d bytes exceeds %d", len(v), maxPageValue)
		case sha256.Sum256(v[1:]) != r.d:
			reason = "manifest page does not match its digest"
		default:
			dst, reason = parseRefs(dst, v[1:], maxSizeAt(level), r.size)
			if reason != "" {
				reason = "manifest page: " + reason
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("cas: read manifest page %s of blob %s: %w", r.d, blob, err)
	}
	if reason != "" {
		return nil, 0, &IntegrityError{Digest: blob, Chunk: r.d, Reason: reason}
	}
	return dst, n, nil
}

// appendChunk reads chunk r, appends its content to dst (growing it as
// needed) and verifies the appended bytes against r's digest.
func (s *Store) appendChunk(txn *badger.Txn, blob Digest, r ref, dst []byte) ([]byte, error) {
	item, err := txn.Get(chunkKey(r.d))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return dst, &IntegrityError{Digest: blob, Chunk: r.d, Reason: "chunk is missing"}
	}
	if err != nil {
		return dst, fmt.Errorf("cas: read chunk %s of blob %s: %w", r.d, blob, err)
	}
	size := int(r.size)
	start := len(dst)
	if cap(dst)-start < size {
		dst = append(dst[:start:start], make([]byte, max(size, cap(dst)))...)[:start]
	}
	var reason string
	err = item.Value(func(v []byte) error {
		if len(v) > 0 && v[0] == encRaw {
			if len(v)-1 != size {
				reason = fmt.Sprintf("stored raw chunk has %d bytes, want %d", len(v)-1, size)
				return nil
			}
			dst = append(dst, v[1:]...)
			return nil
		}
		var out []byte
		if out, reason = s.decodeValue(v, size, dst[start:start]); reason == "" {
			dst = dst[:start+len(out)]
		}
		return nil
	})
	if err != nil {
		return dst[:start], fmt.Errorf("cas: read chunk %s of blob %s: %w", r.d, blob, err)
	}
	if reason != "" {
		return dst[:start], &IntegrityError{Digest: blob, Chunk: r.d, Reason: reason}
	}
	if sha256.Sum256(dst[start:]) != r.d {
		return dst[:start], &IntegrityError{Digest: blob, Chunk: r.d, Reason: "chunk content does not match its digest"}
	}
	return dst, nil
}
