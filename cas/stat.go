package cas

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Stat describes blob d without reading its content: size, chunk count and
// StoredBytes. It reads and verifies the manifest pages and looks up every
// chunk (missing ones are an *IntegrityError), so it costs one lookup per
// chunk and memory for the set of distinct chunk digests.
func (s *Store) Stat(d Digest) (Info, error) { return s.stat(d, true) }

// stat is Stat; a patch's patch blob is stated with patchOK false, so a
// damaged record naming a patch as patch is an error, not a loop.
func (s *Store) stat(d Digest, patchOK bool) (Info, error) {
	var info Info
	var patch *Digest
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(blobKey(d))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return notFound(d)
		}
		if err != nil {
			return fmt.Errorf("cas: stat blob %s: %w", d, err)
		}
		val, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("cas: stat blob %s: %w", d, err)
		}
		rec, reason := parseRecord(val)
		if reason != "" {
			return &IntegrityError{Digest: d, Reason: reason}
		}
		info = Info{Digest: d, Size: rec.size, Chunks: rec.chunks, StoredBytes: int64(keyLen + len(val))}
		if rec.delta != nil {
			if !patchOK {
				return &IntegrityError{Digest: d, Reason: "the patch of a patch is itself a patch"}
			}
			patch = &rec.delta.patch
		}
		if rec.kind != recChunked {
			return nil
		}
		seen := make(map[Digest]struct{})
		w := newWalker(s, d, rec)
		w.onPage = func(p Digest, n int) {
			if _, ok := seen[p]; !ok {
				seen[p] = struct{}{}
				info.StoredBytes += int64(keyLen + n)
			}
		}
		for {
			r, ok, err := w.next(txn)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if _, ok := seen[r.d]; ok {
				continue
			}
			seen[r.d] = struct{}{}
			item, err := txn.Get(chunkKey(r.d))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return &IntegrityError{Digest: d, Chunk: r.d, Reason: "chunk is missing"}
			}
			if err != nil {
				return fmt.Errorf("cas: stat chunk %s of blob %s: %w", r.d, d, err)
			}
			info.StoredBytes += int64(keyLen) + item.ValueSize()
		}
	})
	if err == nil && patch != nil {
		// A patch's bytes are the patch blob's (its base is a blob of its
		// own).
		var p Info
		if p, err = s.stat(*patch, false); err == nil {
			info.Chunks, info.StoredBytes = p.Chunks, info.StoredBytes+p.StoredBytes
		}
	}
	if err != nil {
		return Info{}, err
	}
	return info, nil
}

// Usage summarises the whole store; LogicalBytes/StoredBytes is the saving
// from dedup and compression together.
type Usage struct {
	Blobs        int64 // blob records
	InlineBlobs  int64 // of which inline
	LogicalBytes int64 // sum of blob sizes
	Chunks       int64 // distinct chunks stored
	ChunkBytes   int64 // their keys and stored values
	Pages        int64 // manifest pages stored
	RecordBytes  int64 // keys and values of blob records (inline content included)
	PageBytes    int64 // keys and values of manifest pages
	StoredBytes  int64 // RecordBytes + ChunkBytes + PageBytes
	Unknown      int64 // keys under Prefix that are none of the above
}

// Usage scans every key under Prefix. It reads blob records (for their
// sizes) but not chunks; sizes of values kept in badger's value log are as
// badger reports them, which may be off by a byte or two per value. Chunks
// left unreferenced by failed Puts are counted.
func (s *Store) Usage() (Usage, error) {
	var u Usage
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(Prefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			n := int64(len(k)) + item.ValueSize()
			switch {
			case len(k) != keyLen:
				u.Unknown++
				continue
			case string(k[:len(blobPrefix)]) == blobPrefix:
				var size int64
				var inline bool
				err := item.Value(func(v []byte) error {
					var reason string
					size, inline, reason = parseRecordSize(v)
					if reason != "" {
						var d Digest
						copy(d[:], k[len(blobPrefix):])
						return &IntegrityError{Digest: d, Reason: reason}
					}
					return nil
				})
				if err != nil {
					return err
				}
				u.Blobs++
				if inline {
					u.InlineBlobs++
				}
				u.LogicalBytes += size
				u.RecordBytes += n
			case string(k[:len(chunkPrefix)]) == chunkPrefix:
				u.Chunks++
				u.ChunkBytes += n
			case string(k[:len(pagePrefix)]) == pagePrefix:
				u.Pages++
				u.PageBytes += n
			default:
				u.Unknown++
				continue
			}
			u.StoredBytes += n
		}
		return nil
	})
	if err != nil {
		return Usage{}, fmt.Errorf("cas: usage: %w", err)
	}
	return u, nil
}
