package cas

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// zstdOverhead bounds what a zstd frame adds to incompressible input of at
// most maxChunkLimit bytes (frame header plus one 3-byte header per block).
const zstdOverhead = 64

// inlineRecord returns the blob record holding b inline: compressed when that
// saves space, raw otherwise. One allocation.
func (s *Store) inlineRecord(b []byte) []byte {
	val := make([]byte, 0, 1+binary.MaxVarintLen64+len(b)+zstdOverhead)
	val = append(val, recInlineZstd)
	val = binary.AppendUvarint(val, uint64(len(b)))
	if hdr := len(val); len(b) >= minCompress {
		if out := s.enc.EncodeAll(b, val); compressed(len(out)-hdr, len(b)) {
			return out
		}
	}
	val = append(val[:0], recInlineRaw)
	return append(val, b...)
}

// PutTxn stores b (at most InlineMax bytes) as an inline blob inside the
// caller's transaction, so it commits or vanishes together with the caller's
// other writes: the blob is durable once txn.Commit returns, and absent if the
// transaction is discarded. It writes exactly one key, compressing only when
// that saves space; it does not look for an existing copy (rewriting the same
// record is harmless and cheaper than the lookup, see BenchmarkPutTxn). When
// the transaction is full the error wraps badger.ErrTxnTooBig: commit it and
// retry in a new one.
func (s *Store) PutTxn(txn *badger.Txn, b []byte) (Digest, error) {
	in, err := s.PrepareInline(b)
	if err != nil {
		return Digest{}, err
	}
	return in.Digest, s.PutInlineTxn(txn, in)
}

// Inline is a small blob made ready for PutInlineTxn: its digest and its
// stored (possibly compressed) record. Preparing is the CPU-bound part of
// PutTxn and needs no transaction, so callers that funnel writes through one
// committer can prepare on their own goroutines.
type Inline struct {
	Digest Digest
	rec    []byte
}

// PrepareInline hashes and compresses b (at most InlineMax bytes) for
// PutInlineTxn.
func (s *Store) PrepareInline(b []byte) (Inline, error) {
	if len(b) > s.o.InlineMax {
		return Inline{}, fmt.Errorf("cas: PutTxn of %d bytes: %w: the limit is InlineMax (%d); store larger blobs with Put", len(b), ErrTooLarge, s.o.InlineMax)
	}
	return Inline{Digest: Sum(b), rec: s.inlineRecord(b)}, nil
}

// PutInlineTxn writes a prepared blob into txn, as PutTxn does.
func (s *Store) PutInlineTxn(txn *badger.Txn, in Inline) error {
	if in.rec == nil {
		return errors.New("cas: PutInlineTxn of a blob not made by PrepareInline")
	}
	if err := txn.Set(blobKey(in.Digest), in.rec); err != nil {
		return fmt.Errorf("cas: store blob %s in transaction: %w", in.Digest, err)
	}
	return nil
}

// putInline stores a small blob in its own transaction unless it is already
// present.
func (s *Store) putInline(ctx context.Context, b []byte) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	if int64(len(b)) > s.o.MaxBlobSize {
		return Info{}, fmt.Errorf("cas: Put: content of %d bytes exceeds %d: %w: raise Options.MaxBlobSize to store it", len(b), s.o.MaxBlobSize, ErrTooLarge)
	}
	if err := s.checkSpace(); err != nil {
		return Info{}, err
	}
	d := Sum(b)
	info := Info{Digest: d, Size: int64(len(b))}
	err := s.db.Update(func(txn *badger.Txn) error {
		_, err := txn.Get(blobKey(d))
		if err == nil {
			return nil
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		k, v := blobKey(d), s.inlineRecord(b)
		info.Written = int64(len(k) + len(v))
		return txn.Set(k, v)
	})
	if err != nil {
		return Info{}, fmt.Errorf("cas: store blob %s: %w", d, err)
	}
	return info, nil
}

// GetTxn returns the bytes of blob d read inside the caller's transaction
// (which sees the caller's own uncommitted PutTxn writes), verified against
// d. Blobs larger than InlineMax are refused with ErrTooLarge: stream them
// with Open.
func (s *Store) GetTxn(txn *badger.Txn, d Digest) ([]byte, error) {
	rec, err := s.loadRecord(txn, d)
	if err != nil {
		return nil, err
	}
	if rec.size > int64(s.o.InlineMax) {
		return nil, fmt.Errorf("cas: GetTxn of blob %s (%d bytes): %w: the limit is InlineMax (%d); read it with Open", d, rec.size, ErrTooLarge, s.o.InlineMax)
	}
	if rec.kind != recChunked {
		return s.inlineContent(d, rec)
	}
	out := make([]byte, 0, rec.size)
	w := newWalker(s, d, rec)
	for {
		r, ok, err := w.next(txn)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if out, err = s.appendChunk(txn, d, r, out); err != nil {
			return nil, err
		}
	}
	if Sum(out) != d {
		return nil, &IntegrityError{Digest: d, Reason: "reassembled content does not match the blob digest"}
	}
	return out, nil
}

// loadRecord reads and parses the record of blob d.
func (s *Store) loadRecord(txn *badger.Txn, d Digest) (record, error) {
	item, err := txn.Get(blobKey(d))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return record{}, notFound(d)
	}
	if err != nil {
		return record{}, fmt.Errorf("cas: read blob %s: %w", d, err)
	}
	val, err := item.ValueCopy(nil)
	if err != nil {
		return record{}, fmt.Errorf("cas: read blob %s: %w", d, err)
	}
	rec, reason := parseRecord(val)
	if reason != "" {
		return record{}, &IntegrityError{Digest: d, Reason: reason}
	}
	return rec, nil
}

// inlineContent returns the verified content of an inline record; rec must
// not alias memory owned by badger.
func (s *Store) inlineContent(d Digest, rec record) ([]byte, error) {
	b := rec.inline
	if rec.kind == recInlineZstd {
		var reason string
		b, reason = s.decodeZstd(rec.inline, int(rec.size), nil)
		if reason != "" {
			return nil, &IntegrityError{Digest: d, Reason: "inline record " + reason}
		}
	}
	if Sum(b) != d {
		return nil, &IntegrityError{Digest: d, Reason: "inline content does not match the blob digest"}
	}
	return b, nil
}

// PutSmall stores blobs of at most InlineMax bytes each in as few
// transactions (and syncs) as fit them, for callers with many small blobs at
// once (a replica catching up). Larger blobs are refused with ErrTooLarge:
// store them with Put.
func (s *Store) PutSmall(ctx context.Context, blobs [][]byte) error {
	for len(blobs) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.checkSpace(); err != nil {
			return err
		}
		n := 0
		txn := s.db.NewTransaction(true)
		for _, b := range blobs {
			if _, err := s.PutTxn(txn, b); errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
				break
			} else if err != nil {
				txn.Discard()
				return err
			}
			n++
		}
		if err := txn.Commit(); err != nil {
			return fmt.Errorf("cas: store %d blobs: %w", n, err)
		}
		blobs = blobs[n:]
	}
	return nil
}
