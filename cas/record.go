package cas

import (
	"encoding/binary"
	"fmt"
)

// Blob records (key c/b/<digest>) start with a kind byte:
//
//	0x00 <bytes>                                   inline blob, raw
//	0x01 <uvarint size> <zstd frame>               inline blob, compressed
//	0x02 <uvarint size> <uvarint chunks> <uvarint height> <ref>...  chunked blob
//	0x03 <uvarint size> <uvarint depth> <uvarint chain> <base> <patch>  patch (delta.go)
//
// A ref is <32-byte digest> <uvarint size>. A chunked blob's content is a
// tree of manifest pages of at most 1024 refs each: at height 0 the record's
// refs name chunks; at height h > 0 they name pages of level h-1, a page of
// level 0 lists chunk refs and a page of level l > 0 lists refs to pages of
// level l-1. A ref's size is the number of content bytes below it, so a
// reader can check every page against its parent and seek without reading
// the pages it skips. The record holds at most 1024 refs, so reading and
// writing any blob needs one page per level in memory.
const (
	recInlineRaw  = 0x00
	recInlineZstd = 0x01
	recChunked    = 0x02
)

// maxHeight bounds the tree: 1024^7 chunks is far beyond any MaxBlobSize.
const maxHeight = 6

// maxBlobLimit is the largest blob size a record may state.
const maxBlobLimit = 1 << 62

type ref struct {
	d    Digest
	size int64
}

func appendRef(dst []byte, r ref) []byte {
	dst = append(dst, r.d[:]...)
	return binary.AppendUvarint(dst, uint64(r.size))
}

// parseRefs decodes a run of refs filling all of b, checking that there are
// 1..pageFanout of them, that each size is in 1..maxSize and that their sizes
// add up to total. It appends to dst.
func parseRefs(dst []ref, b []byte, maxSize, total int64) ([]ref, string) {
	start := len(dst)
	var sum int64
	for len(b) > 0 {
		if len(dst)-start == pageFanout {
			return nil, fmt.Sprintf("more than %d references", pageFanout)
		}
		if len(b) < len(Digest{}) {
			return nil, "truncated reference"
		}
		var r ref
		copy(r.d[:], b)
		b = b[len(Digest{}):]
		n, w := binary.Uvarint(b)
		if w <= 0 {
			return nil, "bad reference size"
		}
		b = b[w:]
		if n == 0 || n > uint64(maxSize) {
			return nil, fmt.Sprintf("reference size %d out of range 1..%d", n, maxSize)
		}
		r.size = int64(n)
		sum += r.size
		if sum > total {
			return nil, fmt.Sprintf("references cover more than the %d bytes recorded", total)
		}
		dst = append(dst, r)
	}
	if len(dst) == start {
		return nil, "no references"
	}
	if sum != total {
		return nil, fmt.Sprintf("references cover %d bytes, want %d", sum, total)
	}
	return dst, ""
}

// record is a decoded blob record.
type record struct {
	kind   byte
	size   int64
	inline []byte       // kind recInlineRaw: the content; recInlineZstd: the frame
	chunks int64        // kind recChunked: number of chunk references
	height int          // kind recChunked: levels of pages below the record
	refs   []ref        // kind recChunked: the record's references
	delta  *deltaRecord // kind recDelta (delta.go)
}

// maxSizeAt is the largest size a ref at the given level may carry: a chunk
// at level 0, a full subtree above.
func maxSizeAt(level int) int64 {
	n := int64(maxChunkLimit)
	for range level {
		if n > maxBlobLimit/pageFanout {
			return maxBlobLimit
		}
		n *= pageFanout
	}
	return n
}

func parseRecord(b []byte) (record, string) {
	if len(b) == 0 {
		return record{}, "empty blob record"
	}
	r := record{kind: b[0]}
	b = b[1:]
	switch r.kind {
	case recInlineRaw:
		r.size, r.inline = int64(len(b)), b
		return r, ""
	case recInlineZstd:
		n, w := binary.Uvarint(b)
		if w <= 0 || n > maxChunkLimit {
			return r, "bad inline size"
		}
		r.size, r.inline = int64(n), b[w:]
		return r, ""
	case recChunked:
		var v [3]uint64
		for i := range v {
			n, w := binary.Uvarint(b)
			if w <= 0 {
				return r, "truncated chunked record header"
			}
			v[i], b = n, b[w:]
		}
		if v[2] > maxHeight {
			return r, fmt.Sprintf("tree height %d above %d", v[2], maxHeight)
		}
		if v[0] == 0 || v[0] > maxBlobLimit || v[1] == 0 || v[1] > v[0] {
			return r, fmt.Sprintf("size %d with %d chunks is impossible", v[0], v[1])
		}
		r.size, r.chunks, r.height = int64(v[0]), int64(v[1]), int(v[2])
		refs, reason := parseRefs(nil, b, maxSizeAt(r.height), r.size)
		if reason != "" {
			return r, "record: " + reason
		}
		r.refs = refs
		return r, ""
	case recDelta:
		return r, parseDeltaRecord(&r, b)
	default:
		return r, fmt.Sprintf("unknown blob record kind 0x%02x", r.kind)
	}
}

func appendChunkedRecord(dst []byte, size, chunks int64, height int, refs []ref) []byte {
	dst = append(dst, recChunked)
	dst = binary.AppendUvarint(dst, uint64(size))
	dst = binary.AppendUvarint(dst, uint64(chunks))
	dst = binary.AppendUvarint(dst, uint64(height))
	for _, r := range refs {
		dst = appendRef(dst, r)
	}
	return dst
}

// parseRecordSize reads just the kind and content size of a blob record.
func parseRecordSize(b []byte) (size int64, inline bool, reason string) {
	if len(b) == 0 {
		return 0, false, "empty blob record"
	}
	switch b[0] {
	case recInlineRaw:
		return int64(len(b) - 1), true, ""
	case recInlineZstd, recChunked, recDelta:
		n, w := binary.Uvarint(b[1:])
		if w <= 0 || n > maxBlobLimit {
			return 0, false, "bad size in blob record"
		}
		return int64(n), b[0] == recInlineZstd, ""
	default:
		return 0, false, fmt.Sprintf("unknown blob record kind 0x%02x", b[0])
	}
}
