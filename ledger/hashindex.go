package ledger

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/dgraph-io/badger/v4"

	"github.com/buildledger/buildledger/cas"
)

// The hash index (the reverse lookup) is one key per (digest, log index,
// kind[, path]):
//
//	p/h/<sha256(32)><index(8)>a<path>  hitValue of the build at index
//	p/h/<sha256(32)><index(8)>s        attestation at index names the digest
//	p/h/<sha256(32)><index(8)>x        attestation at index disputes it
//
// Recording a build of a digest therefore writes one small key, whatever
// the digest's history (a digest rebuilt every day used to rewrite one
// ever-growing value, so n builds cost O(n²) bytes written;
// BenchmarkHashIndexAppend shows the cost per append no longer grows).
// Writes are idempotent, so replaying an event twice is harmless. A lookup
// seeks to the first index wanted and scans in log order, which is what
// HashPage's cursor is. TestHashPage checks that the pages of a digest,
// read from the store and from the cache, add up to Hash's answer.

// hashCacheHits bounds the answers Hash keeps in its cache: a digest with
// more hits is read from the store, a page at a time, on every request, so
// the cache holds at most this many hits per digest.
const hashCacheHits = 64

func hashPrefix(d cas.Digest) []byte { return key(pHash, d[:]) }

// setHashEntry files one entry in the hash index and in the digest's head; order is the build's for an artifact, else nil.
func (l *Ledger) setHashEntry(txn *badger.Txn, d cas.Digest, index uint64, kind byte, path string, v, order []byte) error {
	if err := txn.Set(key(pHash, d[:], u64(index), []byte{kind}, []byte(path)), v); err != nil {
		return err
	}
	return fileHead(txn, l.freshHeads, d, index, kind, path, v, order)
}

// HashInfo is everything the log knows about one SHA-256 (or one page of
// it, see HashPage).
type HashInfo struct {
	// Builds lists every build and path that produced an artifact with
	// this digest, oldest log entry first.
	Builds []ArtifactHit
	// Attestations lists every attestation naming it as a subject.
	Attestations []Entry[*AttestationRecorded]
	// Disputes lists the attestations of builds that recorded this digest
	// whose rebuilder got other bytes for that artifact ("differs").
	Disputes []Entry[*AttestationRecorded]
}

// Hits returns the number of entries in h.
func (h HashInfo) Hits() int { return len(h.Builds) + len(h.Attestations) + len(h.Disputes) }

// Hash is the reverse hash lookup: every build and attestation for a
// digest, read in one scan of one snapshot. Its size grows with the
// digest's history; HashPage bounds it.
// Answers of up to 64 hits are cached per digest (popular images are looked
// up again and again) and dropped when an event touching the digest
// commits; the slices of a cached answer are shared and must not be
// modified.
func (l *Ledger) Hash(d cas.Digest) (HashInfo, error) {
	if h, ok := l.hashes.Get(d); ok {
		return h, nil
	}
	gen := l.hashGeneration()
	var out HashInfo
	err := l.view(func(txn *badger.Txn) error {
		var err error
		if h, found, err := readHead(txn, d); err != nil || !found || h.complete() {
			if err == nil && found {
				out, err = l.headInfo(txn, d, h)
			}
			return err
		}
		out, _, err = l.hashTxn(txn, d, 0, 0)
		return err
	})
	if err == nil {
		l.cacheHash(d, gen, out)
	}
	return out, err
}

// HashPage is Hash one page at a time: the entries for digest d whose log
// index is at least from, in log order, at most limit hits (builds,
// attestations and disputes together) — except that the hits of one log
// entry (a build with the digest under several paths) are never split, so
// a page may exceed limit by those. next is the log index to pass as from
// for the next page, or 0 when there are no more entries; the first page
// is from 0. Each page is read from one snapshot, and its work is bounded
// by limit, not by the digest's history. limit must be positive.
func (l *Ledger) HashPage(d cas.Digest, from uint64, limit int) (h HashInfo, next uint64, err error) {
	if limit < 1 {
		return HashInfo{}, 0, fmt.Errorf("ledger: hash page limit %d is not positive", limit)
	}
	if h, ok := l.hashes.Get(d); ok {
		h, next = h.page(from, limit)
		return h, next, nil
	}
	gen := l.hashGeneration()
	err = l.view(func(txn *badger.Txn) error {
		if from == 0 {
			// The first page of a digest with few entries is its head.
			head, found, err := readHead(txn, d)
			if err != nil || !found {
				return err
			}
			if head.complete() {
				if h, err = l.headInfo(txn, d, head); err == nil {
					l.cacheHash(d, gen, h)
					h, next = h.page(0, limit)
				}
				return err
			}
		}
		var err error
		h, next, err = l.hashTxn(txn, d, from, limit)
		return err
	})
	if err == nil && from == 0 && next == 0 {
		l.cacheHash(d, gen, h) // the whole answer
	}
	return h, next, err
}

// page cuts a complete answer like HashPage cuts the store's entries.
func (h HashInfo) page(from uint64, limit int) (HashInfo, uint64) {
	if from == 0 && h.Hits() <= limit {
		return h, 0 // all of it: nothing to cut
	}
	b := sort.Search(len(h.Builds), func(i int) bool { return h.Builds[i].Index >= from })
	a := sort.Search(len(h.Attestations), func(i int) bool { return h.Attestations[i].Index >= from })
	x := sort.Search(len(h.Disputes), func(i int) bool { return h.Disputes[i].Index >= from })
	var out HashInfo
	for {
		idx, more := uint64(0), false
		for _, c := range []struct {
			at  int
			len int
			idx func(int) uint64
		}{
			{b, len(h.Builds), func(i int) uint64 { return h.Builds[i].Index }},
			{a, len(h.Attestations), func(i int) uint64 { return h.Attestations[i].Index }},
			{x, len(h.Disputes), func(i int) uint64 { return h.Disputes[i].Index }},
		} {
			if c.at < c.len && (!more || c.idx(c.at) < idx) {
				idx, more = c.idx(c.at), true
			}
		}
		if !more {
			return out, 0
		}
		if out.Hits() >= limit {
			return out, idx
		}
		for ; b < len(h.Builds) && h.Builds[b].Index == idx; b++ {
			out.Builds = append(out.Builds, h.Builds[b])
		}
		for ; a < len(h.Attestations) && h.Attestations[a].Index == idx; a++ {
			out.Attestations = append(out.Attestations, h.Attestations[a])
		}
		for ; x < len(h.Disputes) && h.Disputes[x].Index == idx; x++ {
			out.Disputes = append(out.Disputes, h.Disputes[x])
		}
	}
}

// hashTxn reads the entries of d from log index from on, at most limit
// hits (0: all) without splitting a log entry's; next as in HashPage.
func (l *Ledger) hashTxn(txn *badger.Txn, d cas.Digest, from uint64, limit int) (out HashInfo, next uint64, err error) {
	prefix := hashPrefix(d)
	var cur uint64 // log index of the entry last added to out
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer it.Close()
	for it.Seek(key(prefix, u64(from))); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if len(k) < len(prefix)+9 {
			return out, 0, fmt.Errorf("%w: hash index key %x", ErrCorrupt, k)
		}
		idx, kind := binary.BigEndian.Uint64(k[len(prefix):]), k[len(prefix)+8]
		if limit > 0 && out.Hits() >= limit && idx != cur {
			return out, idx, nil
		}
		cur = idx
		switch kind {
		case hashArtifact:
			path := string(k[len(prefix)+9:])
			var h ArtifactHit
			if err := item.Value(func(v []byte) error {
				var err error
				h, err = parseHit(idx, path, v)
				return err
			}); err != nil {
				return out, 0, err
			}
			out.Builds = append(out.Builds, h)
		case hashSubject, hashDisputed:
			a, err := eventAs[*AttestationRecorded](l, txn, idx)
			if err != nil {
				return out, 0, err
			}
			if kind == hashSubject {
				out.Attestations = append(out.Attestations, Entry[*AttestationRecorded]{idx, a})
			} else {
				out.Disputes = append(out.Disputes, Entry[*AttestationRecorded]{idx, a})
			}
		default:
			return out, 0, fmt.Errorf("%w: hash index entry kind %q of %s", ErrCorrupt, kind, d)
		}
	}
	return out, 0, nil
}

func (l *Ledger) hashGeneration() uint64 {
	l.hashMu.Lock()
	defer l.hashMu.Unlock()
	return l.hashGen
}

// cacheHash keeps a complete answer for d read when the commit generation
// was gen, unless a commit has happened since (it may have changed the
// answer after the read's snapshot) or the answer is large.
func (l *Ledger) cacheHash(d cas.Digest, gen uint64, h HashInfo) {
	if h.Hits() > hashCacheHits {
		return
	}
	l.hashMu.Lock()
	defer l.hashMu.Unlock()
	if l.hashGen == gen {
		l.hashes.Add(d, h)
	}
}

// invalidateHashes drops the cached lookups the committed events change:
// the digests of a build's artifacts; for an attestation (rare, and a
// dispute touches digests of another build) all of them.
func (l *Ledger) invalidateHashes(evs []Event) {
	l.hashMu.Lock()
	defer l.hashMu.Unlock()
	l.hashGen++
	for _, ev := range evs {
		switch e := ev.(type) {
		case *BuildRecorded:
			for _, a := range e.Artifacts {
				l.hashes.Remove(a.SHA256)
			}
		case *AttestationRecorded:
			l.hashes.Purge()
			return
		}
	}
}

// hasArtifact reports whether some recorded build has an artifact with
// digest d. It reads keys only, and stops at the first artifact entry.
func hasArtifact(txn *badger.Txn, d cas.Digest) (bool, error) {
	prefix := hashPrefix(d)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) < len(prefix)+9 {
			return false, fmt.Errorf("%w: hash index key %x", ErrCorrupt, k)
		}
		if k[len(prefix)+8] == hashArtifact {
			return true, nil
		}
	}
	return false, nil
}
