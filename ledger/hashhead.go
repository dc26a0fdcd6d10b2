package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/buildledger/buildledger/cas"
)

// The digest head (p/hd/<sha256(32)>) answers the common reverse lookup —
// a digest with a few entries — and the newest build with the digest in
// one point read, where the hash index (p/h/) needs an iterator over every
// table of the store. Its value is
//
//	flags(1)       bit 0: newest is set; bit 1: overflow (entries omitted)
//	newest(16)     order of the newest build with an artifact of the digest
//	last(8)        log index of the last entry filed
//	entries        while not overflowed: every hash index entry of the
//	               digest in log order, each index(8) kind(1)
//	               uvarint(len(path)) path uvarint(len(value)) value
//
// Once a digest has more than headEntries entries, or they take more than
// headBytes, the head keeps only flags, newest and last, and lookups scan
// p/h/ (paged). Recording a build therefore reads and rewrites one bounded
// value per artifact; the value never grows with the digest's history.
// Filing is idempotent (an entry at or before last that is already listed
// is skipped), so a replay that repeats an event changes nothing.
const (
	headEntries = 16
	headBytes   = 1536

	headNewest   byte = 1
	headOverflow byte = 2
	headFixed         = 1 + orderLen + 8
)

func headKey(d cas.Digest) []byte { return key(pHashHd, d[:]) }

// digestHead is a decoded head.
type digestHead struct {
	flags   byte
	newest  []byte
	last    uint64
	entries []headEntry
}

type headEntry struct {
	index uint64
	kind  byte
	path  string
	value []byte
}

// complete reports whether entries are every entry of the digest.
func (h *digestHead) complete() bool { return h.flags&headOverflow == 0 }

func parseHead(v []byte) (digestHead, error) {
	var h digestHead
	if len(v) < headFixed || v[0]&^(headNewest|headOverflow) != 0 {
		return h, fmt.Errorf("%w: digest head of %d bytes", ErrCorrupt, len(v))
	}
	h.flags, h.newest, h.last = v[0], v[1:1+orderLen], binary.BigEndian.Uint64(v[1+orderLen:])
	rest := v[headFixed:]
	if !h.complete() && len(rest) > 0 {
		return h, fmt.Errorf("%w: overflowed digest head with entries", ErrCorrupt)
	}
	for len(rest) > 0 {
		if len(rest) < 9 {
			return h, fmt.Errorf("%w: truncated digest head entry", ErrCorrupt)
		}
		e := headEntry{index: binary.BigEndian.Uint64(rest), kind: rest[8]}
		rest = rest[9:]
		var field [2][]byte
		for i := range field {
			n, w := binary.Uvarint(rest)
			if w <= 0 || n > uint64(len(rest)-w) {
				return h, fmt.Errorf("%w: truncated digest head entry", ErrCorrupt)
			}
			field[i], rest = rest[w:w+int(n)], rest[w+int(n):]
		}
		e.path, e.value = string(field[0]), field[1]
		h.entries = append(h.entries, e)
	}
	return h, nil
}

func (h *digestHead) encode() []byte {
	v := make([]byte, headFixed, headFixed+64*len(h.entries))
	v[0] = h.flags
	copy(v[1:], h.newest)
	binary.BigEndian.PutUint64(v[1+orderLen:], h.last)
	if h.complete() {
		for _, e := range h.entries {
			v = binary.BigEndian.AppendUint64(v, e.index)
			v = append(v, e.kind)
			v = binary.AppendUvarint(v, uint64(len(e.path)))
			v = append(v, e.path...)
			v = binary.AppendUvarint(v, uint64(len(e.value)))
			v = append(v, e.value...)
		}
	}
	return v
}

// readHead returns the head of d; found is false if d has none.
func readHead(txn *badger.Txn, d cas.Digest) (h digestHead, found bool, err error) {
	item, err := txn.Get(headKey(d))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return h, false, nil
	}
	if err != nil {
		return h, false, err
	}
	err = item.Value(func(v []byte) error {
		h, err = parseHead(bytes.Clone(v))
		return err
	})
	return h, err == nil, err
}

// fileHead adds one hash index entry to d's head; order is the build's
// order for an artifact entry, nil otherwise. fresh, when not nil, holds
// every digest a head was filed for since the projections were dropped
// (replay): a digest it does not hold has no head to read.
func fileHead(txn *badger.Txn, fresh *digestFilter, d cas.Digest, index uint64, kind byte, path string, value, order []byte) error {
	var h digestHead
	var found bool
	if fresh == nil || fresh.has(d) {
		var err error
		if h, found, err = readHead(txn, d); err != nil {
			return err
		}
	}
	if fresh != nil {
		fresh.add(d)
	}
	if !found {
		h.newest = make([]byte, orderLen)
	}
	if order != nil && (h.flags&headNewest == 0 || bytes.Compare(order, h.newest) < 0) {
		h.flags |= headNewest
		h.newest = order
	}
	switch {
	case found && index < h.last:
		// Filed before (a replay repeating events).
	case h.complete() && found && index == h.last && h.has(index, kind, path):
	case h.complete():
		// Entries arrive in key order, as a scan of p/h/ lists them: events
		// in log order, a build's artifacts sorted by path (canonical
		// form), an attestation's subjects before its disputes.
		h.entries = append(h.entries, headEntry{index: index, kind: kind, path: path, value: value})
		if len(h.entries) > headEntries || len(h.encode()) > headFixed+headBytes {
			h.flags |= headOverflow
			h.entries = nil
		}
	}
	h.last = max(h.last, index)
	return txn.Set(headKey(d), h.encode())
}

func (h *digestHead) has(index uint64, kind byte, path string) bool {
	for _, e := range h.entries {
		if e.index == index && e.kind == kind && e.path == path {
			return true
		}
	}
	return false
}

// headInfo turns a complete head into the answer Hash gives.
func (l *Ledger) headInfo(txn *badger.Txn, d cas.Digest, h digestHead) (HashInfo, error) {
	var out HashInfo
	for _, e := range h.entries {
		switch e.kind {
		case hashArtifact:
			hit, err := parseHit(e.index, e.path, e.value)
			if err != nil {
				return out, err
			}
			out.Builds = append(out.Builds, hit)
		case hashSubject, hashDisputed:
			a, err := eventAs[*AttestationRecorded](l, txn, e.index)
			if err != nil {
				return out, err
			}
			if e.kind == hashSubject {
				out.Attestations = append(out.Attestations, Entry[*AttestationRecorded]{e.index, a})
			} else {
				out.Disputes = append(out.Disputes, Entry[*AttestationRecorded]{e.index, a})
			}
		default:
			return out, fmt.Errorf("%w: digest head entry kind %q of %s", ErrCorrupt, e.kind, d)
		}
	}
	return out, nil
}

// digestFilter is a Bloom filter of digests: has is false only for a
// digest never added. SHA-256 digests are uniform, so four of their 64-bit
// words serve as its four hash functions. With 2^26 bits (8 MiB) it
// answers wrongly for about 1 in 90,000 digests after a million and 1 in
// 25 after ten million; a wrong answer only costs the read it would have
// saved.
type digestFilter struct{ bits []uint64 }

const filterBits = 1 << 26

func newDigestFilter() *digestFilter { return &digestFilter{bits: make([]uint64, filterBits/64)} }

func (f *digestFilter) add(d cas.Digest) {
	for i := range 4 {
		b := binary.BigEndian.Uint64(d[8*i:]) % filterBits
		f.bits[b/64] |= 1 << (b % 64)
	}
}

func (f *digestFilter) has(d cas.Digest) bool {
	for i := range 4 {
		b := binary.BigEndian.Uint64(d[8*i:]) % filterBits
		if f.bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}
