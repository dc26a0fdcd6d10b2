package cas

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/semaphore"
)

// Delta storage. A build's artifact is usually its previous build's with a
// little changed; chunking finds little to share when the changes are
// scattered (every touched chunk is stored again). PutWithBase therefore
// also tries a zstd patch against a base blob — zstd with the base as raw
// dictionary, as `zstd --patch-from` — and keeps it when it is smaller:
//
//	0x03 <uvarint size> <uvarint depth> <uvarint chain> <base digest> <patch digest>
//
// The patch is a blob of its own (chunked, deduplicated, verified like any
// other); depth is the number of patches between the blob and a blob
// stored whole (1 for a patch against one), and chain the sum of their
// sizes. A reader rebuilds the blob in memory: the whole blob at the root
// of its chain, then each patch in turn, checking every step's SHA-256
// against its digest before using it as the next dictionary, so a damaged
// patch or base is an *IntegrityError, never wrong bytes. The chain is
// bounded twice: a new blob is stored whole instead of as a patch when its
// chain would exceed MaxDeltaDepth patches, or when the chain's patches
// would outweigh one and a half times the blob's own compressed size, so
// that the bytes stored stay within 1.5× the patches plus one whole copy
// per chain (TestDeltaChain), and a read applies at most MaxDeltaDepth
// patches. Only blobs of at most MaxDeltaSize bytes, with bases of at most
// that size, take part; all rebuilds and patch encodings together hold at
// most deltaMemory bytes by their estimate (encodeWeight, rebuildWeight):
// rebuilds wait for their share, encodings that find none store the blob
// whole. A patch is never itself a patch (a patch whose bytes are found
// stored as one is not used), so a chain is always readable.
const (
	recDelta = 0x03

	// MaxDeltaSize is the largest blob stored as a patch, and the largest
	// base.
	MaxDeltaSize = 32 << 20
	// MaxDeltaDepth is the most patches a read applies.
	MaxDeltaDepth = 128

	// deltaMemory bounds the bytes held by patch encodings and rebuilds.
	deltaMemory = 256 << 20
	// chainRatio: a chain's patches may weigh at most chainRatio/2 times
	// the blob's compressed size.
	chainRatio = 3
)

// deltaRecord is a parsed delta record.
type deltaRecord struct {
	depth, chain int64
	base, patch  Digest
}

func appendDeltaRecord(dst []byte, size int64, d deltaRecord) []byte {
	dst = append(dst, recDelta)
	dst = binary.AppendUvarint(dst, uint64(size))
	dst = binary.AppendUvarint(dst, uint64(d.depth))
	dst = binary.AppendUvarint(dst, uint64(d.chain))
	dst = append(dst, d.base[:]...)
	return append(dst, d.patch[:]...)
}

func parseDeltaRecord(r *record, b []byte) string {
	var v [3]uint64
	for i := range v {
		n, w := binary.Uvarint(b)
		if w <= 0 {
			return "truncated delta record"
		}
		v[i], b = n, b[w:]
	}
	switch {
	case len(b) != 2*len(Digest{}):
		return fmt.Sprintf("delta record has %d bytes of digests, not %d", len(b), 2*len(Digest{}))
	case v[0] == 0 || v[0] > MaxDeltaSize:
		return fmt.Sprintf("delta record of a blob of %d bytes (at most %d)", v[0], MaxDeltaSize)
	case v[1] == 0 || v[1] > MaxDeltaDepth:
		return fmt.Sprintf("delta depth %d (1 to %d)", v[1], MaxDeltaDepth)
	case v[2] > maxBlobLimit:
		return "delta chain size out of range"
	}
	r.size = int64(v[0])
	r.delta = &deltaRecord{depth: int64(v[1]), chain: int64(v[2])}
	copy(r.delta.base[:], b)
	copy(r.delta.patch[:], b[len(Digest{}):])
	return ""
}

// deltaBudget is shared by every Store: rebuilds and encodings in this
// process hold at most deltaMemory bytes.
var deltaBudget = semaphore.NewWeighted(deltaMemory)

// encodeWeight is what storing a blob of size bytes as a patch against a
// base of base bytes holds: both, the base's rebuild (its base and the
// output, when the base is itself a patch), and the encoder's window twice
// (its history and tables at the best level).
func encodeWeight(size, base int64) int64 {
	return min(2*size+2*base+2*int64(patchWindow(int(size+base))), deltaMemory)
}

// rebuildWeight is what rebuilding a chain whose largest blob has max bytes
// holds: a base, the output and the decoder's window over both.
func rebuildWeight(max int64) int64 {
	return min(2*max+int64(patchWindow(int(2*max))), deltaMemory)
}

// PutWithBase stores the content of r (size bytes, as the caller was told)
// like Put, or as a zstd patch against blob base when that is smaller (see
// above). base may be the zero Digest or a blob that is not stored: the
// content is then stored as Put stores it, and so it is when either is
// larger than MaxDeltaSize, when the content is longer than size, and when
// the patch budget is in use. The content is read into memory (at most
// MaxDeltaSize bytes) before any budget is taken, so a slow sender holds
// none.
func (s *Store) PutWithBase(ctx context.Context, r io.Reader, size int64, base Digest) (Info, error) {
	if size <= int64(s.o.InlineMax) || size > MaxDeltaSize || base == (Digest{}) {
		return s.Put(ctx, r)
	}
	var baseRec record
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		baseRec, err = s.loadRecord(txn, base)
		return err
	})
	if errors.Is(err, ErrNotFound) || err == nil && baseRec.size > MaxDeltaSize {
		return s.Put(ctx, r)
	}
	if err != nil {
		return Info{}, err
	}
	buf := make([]byte, size+1)
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		// Longer than the caller said: not a candidate.
		return s.Put(ctx, io.MultiReader(bytes.NewReader(buf), r))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		buf = buf[:n]
	default:
		return Info{}, err
	}
	return s.putDelta(ctx, buf, base, baseRec)
}

// putDelta stores b, whole or as a patch against base.
func (s *Store) putDelta(ctx context.Context, b []byte, base Digest, baseRec record) (Info, error) {
	d := Sum(b)
	whole := func() (Info, error) { return s.Put(ctx, bytes.NewReader(b)) }
	if has, err := s.Has(d); err != nil {
		return Info{}, err
	} else if has {
		return Info{Digest: d, Size: int64(len(b))}, nil
	}
	if len(b) <= s.o.InlineMax {
		return whole()
	}
	var depth, chain int64
	if baseRec.delta != nil {
		depth, chain = baseRec.delta.depth, baseRec.delta.chain
	}
	if depth >= MaxDeltaDepth {
		return whole()
	}
	w := encodeWeight(int64(len(b)), baseRec.size)
	if !deltaBudget.TryAcquire(w) {
		return whole()
	}
	defer deltaBudget.Release(w)
	baseBytes, err := s.rebuild(ctx, base, baseRec, false)
	if err != nil {
		if ctx.Err() != nil {
			return Info{}, err
		}
		// A base that does not read back is no base: this blob must not
		// depend on it.
		return whole()
	}
	patch, err := encodePatch(baseBytes, b)
	if err != nil {
		return Info{}, err
	}
	// A patch must save a sixteenth of what storing the blob whole would
	// write (its chunks not stored yet, compressed as Put compresses
	// them), and the chain stays within chainRatio/2 whole copies.
	wholeSize, err := s.wholeCost(b)
	if err != nil {
		return Info{}, err
	}
	if p := int64(len(patch)); p >= wholeSize-wholeSize/16 || 2*(chain+p) > chainRatio*s.compressedSize(b) {
		return whole()
	}
	pinfo, err := s.Put(ctx, bytes.NewReader(patch))
	if err != nil {
		return Info{}, err
	}
	// The patch's bytes may already be stored, and stored as a patch
	// themselves (anyone can upload any bytes): a patch must be a blob
	// stored whole, or this blob could never be read.
	if pd, err := s.PatchDepth(pinfo.Digest); err != nil || pd > 0 {
		return whole()
	}
	rec := appendDeltaRecord(nil, int64(len(b)), deltaRecord{depth: depth + 1, chain: chain + int64(len(patch)), base: base, patch: pinfo.Digest})
	info := Info{Digest: d, Size: int64(len(b)), Chunks: pinfo.Chunks, Written: pinfo.Written}
	if err := s.checkSpace(); err != nil {
		return Info{}, err
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(blobKey(d)); err == nil {
			return nil // stored meanwhile
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		info.Written += int64(keyLen + len(rec))
		return txn.Set(blobKey(d), rec)
	})
	if err != nil {
		return Info{}, fmt.Errorf("cas: store blob %s: %w", d, err)
	}
	return info, nil
}

// wholeCost is about what Put would write for b: the chunks of b not
// stored yet, each compressed as Put compresses it (kept raw when that saves
// under 3%).
func (s *Store) wholeCost(b []byte) (int64, error) {
	sizes := s.cut.sizesFor(int64(len(b)))
	c, err := chunkers.NewChunker(s.algo, bytes.NewReader(b), sizes.opts())
	if err != nil {
		return 0, fmt.Errorf("cas: %w", err)
	}
	var n int64
	seen := make(map[Digest]bool)
	err = s.db.View(func(txn *badger.Txn) error {
		for {
			data, err := c.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			d := Sum(data)
			if seen[d] {
				continue
			}
			seen[d] = true
			if _, err := txn.Get(chunkKey(d)); err == nil {
				continue
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			stored := len(data)
			if z := len(s.enc.EncodeAll(data, nil)); compressed(z, len(data)) {
				stored = z
			}
			n += int64(keyLen + 1 + stored)
		}
	})
	return n, err
}

// compressedSize is b's size compressed whole (fast), what a chain of
// patches is weighed against.
func (s *Store) compressedSize(b []byte) int64 { return int64(len(s.enc.EncodeAll(b, nil))) }

// encodePatch is target as one zstd frame with base as raw dictionary,
// its window spanning both (what `zstd --patch-from` does).
func encodePatch(base, target []byte) ([]byte, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false), // the result is checked by SHA-256
		zstd.WithWindowSize(patchWindow(len(base)+len(target))),
		zstd.WithEncoderDictRaw(1, base))
	if err != nil {
		return nil, fmt.Errorf("cas: patch encoder: %w", err)
	}
	defer enc.Close()
	return enc.EncodeAll(target, make([]byte, 0, len(target)/8)), nil
}

// patchWindow is the smallest power of two of at least n bytes (zstd's
// minimum 1 KiB).
func patchWindow(n int) int {
	w := zstd.MinWindowSize
	for w < n {
		w <<= 1
	}
	return w
}

// rebuild returns the verified content of blob d, whose record is rec,
// rebuilding it from its chain if it is a patch. With reserve it first
// takes its weight from the patch budget (waiting for it), and gives it back
// through the returned slice's lifetime being the caller's: the budget is
// released before rebuild returns.
func (s *Store) rebuild(ctx context.Context, d Digest, rec record, reserve bool) (out []byte, err error) {
	defer func() {
		// Damage anywhere in the chain is damage to d.
		var ie *IntegrityError
		if errors.As(err, &ie) && ie.Digest != d {
			err = &IntegrityError{Digest: d, Chunk: ie.Chunk, Reason: fmt.Sprintf("blob %s of its delta chain: %s", ie.Digest, ie.Reason)}
		}
	}()
	if rec.delta == nil {
		return s.Bytes(ctx, d, MaxDeltaSize)
	}
	if b, ok := s.rebuilt.get(d); ok {
		return b, nil
	}
	// The chain, from d down to the blob stored whole.
	type link struct {
		d   Digest
		rec record
	}
	chain := []link{{d, rec}}
	var content []byte // of the last link, when the cache has it
	err = s.db.View(func(txn *badger.Txn) error {
		for cur := chain[0]; cur.rec.delta != nil; {
			if b, ok := s.rebuilt.get(cur.rec.delta.base); ok {
				content = b
				chain = append(chain, link{d: cur.rec.delta.base})
				return nil
			}
			base := cur.rec.delta.base
			brec, err := s.loadRecord(txn, base)
			if errors.Is(err, ErrNotFound) {
				return &IntegrityError{Digest: cur.d, Reason: fmt.Sprintf("delta base %s is missing", base)}
			}
			if err != nil {
				return err
			}
			// Depths fall by one along the chain, so it ends.
			baseDepth := int64(0)
			if brec.delta != nil {
				baseDepth = brec.delta.depth
			}
			if baseDepth != cur.rec.delta.depth-1 {
				return &IntegrityError{Digest: cur.d, Reason: fmt.Sprintf("delta depth %d on a base of depth %d", cur.rec.delta.depth, baseDepth)}
			}
			if brec.size > MaxDeltaSize {
				return &IntegrityError{Digest: cur.d, Reason: fmt.Sprintf("delta base of %d bytes (at most %d)", brec.size, MaxDeltaSize)}
			}
			cur = link{base, brec}
			chain = append(chain, cur)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if reserve {
		largest := int64(0)
		for _, l := range chain {
			largest = max(largest, l.rec.size)
		}
		w := rebuildWeight(max(largest, int64(len(content))))
		if err := deltaBudget.Acquire(ctx, w); err != nil {
			return nil, err
		}
		defer deltaBudget.Release(w)
	}
	if content == nil {
		if content, err = s.Bytes(ctx, chain[len(chain)-1].d, MaxDeltaSize); err != nil {
			return nil, err
		}
	}
	for i := len(chain) - 2; i >= 0; i-- {
		l := chain[i]
		if content, err = s.applyPatch(ctx, l.d, l.rec, content); err != nil {
			return nil, err
		}
	}
	s.rebuilt.add(d, content)
	return content, nil
}

// applyPatch rebuilds blob d (record rec) from its verified base content.
func (s *Store) applyPatch(ctx context.Context, d Digest, rec record, base []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var prec record
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		prec, err = s.loadRecord(txn, rec.delta.patch)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, &IntegrityError{Digest: d, Reason: fmt.Sprintf("patch %s is missing", rec.delta.patch)}
	}
	if err != nil {
		return nil, err
	}
	if prec.delta != nil || prec.size > rec.size {
		// putDelta writes patches only when smaller than the blob
		// compressed, and never as patches.
		return nil, &IntegrityError{Digest: d, Reason: "patch is itself a patch, or larger than the blob"}
	}
	pr, err := s.Open(ctx, rec.delta.patch)
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	patch := pr.inline
	if patch == nil {
		if patch, err = io.ReadAll(io.LimitReader(pr, pr.Size()+1)); err != nil {
			return nil, err
		}
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(uint64(rec.size)),
		zstd.WithDecoderMaxWindow(uint64(patchWindow(2*MaxDeltaSize))),
		zstd.WithDecodeAllCapLimit(true),
		zstd.IgnoreChecksum(true),
		zstd.WithDecoderDictRaw(1, base))
	if err != nil {
		return nil, fmt.Errorf("cas: patch decoder: %w", err)
	}
	defer dec.Close()
	out, err := dec.DecodeAll(patch, make([]byte, 0, rec.size))
	if err != nil {
		return nil, &IntegrityError{Digest: d, Reason: "patch does not decode: " + err.Error()}
	}
	if int64(len(out)) != rec.size || Sum(out) != d {
		return nil, &IntegrityError{Digest: d, Reason: "patched content does not match the blob digest"}
	}
	return out, nil
}

// PatchDepth is the number of patches a read of blob d applies: 0 for a
// blob stored whole.
func (s *Store) PatchDepth(d Digest) (int, error) {
	var rec record
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		rec, err = s.loadRecord(txn, d)
		return err
	})
	if err != nil || rec.delta == nil {
		return 0, err
	}
	return int(rec.delta.depth), nil
}
