package cas

import (
	"errors"
	"fmt"
)

// Default sizes. The chunk sizes were chosen with TestDedupChunkSizes (see
// doc.go): on daily system-packages and opam-switch exports that differ in a
// few lines they keep most of the dedup of smaller chunks while keeping the
// per-chunk cost of large artifacts low.
const (
	DefaultMinChunk    = 2 << 10
	DefaultNormalChunk = 8 << 10
	DefaultMaxChunk    = 64 << 10
	DefaultInlineMax   = 64 << 10
	DefaultMaxBlobSize = 64 << 30
)

// Format limits: what a store accepts from Options and from stored records.
const (
	maxChunkLimit = 1 << 20 // largest chunk (and inline blob) the format allows
	pageFanout    = 1024    // most references in one manifest page or blob record
	minChunkLimit = 64      // smallest MinChunk FastCDC accepts
)

// Options configure a Store. The zero value selects the defaults.
type Options struct {
	// MinChunk, NormalChunk and MaxChunk are the FastCDC chunk size bounds
	// in bytes. NormalChunk must be a power of two and
	// 64 <= MinChunk < NormalChunk < MaxChunk <= 1 MiB. Changing them does not
	// affect reading existing blobs, only how new blobs share chunks with
	// old ones.
	MinChunk, NormalChunk, MaxChunk int
	// InlineMax is the largest blob stored as a single record (and the
	// largest PutTxn accepts). At most 1 MiB.
	InlineMax int
	// MaxBlobSize is the largest blob Put accepts.
	MaxBlobSize int64
}

func (o Options) withDefaults() (Options, error) {
	if o.MinChunk == 0 && o.NormalChunk == 0 && o.MaxChunk == 0 {
		o.MinChunk, o.NormalChunk, o.MaxChunk = DefaultMinChunk, DefaultNormalChunk, DefaultMaxChunk
	}
	if o.InlineMax == 0 {
		o.InlineMax = DefaultInlineMax
	}
	if o.MaxBlobSize == 0 {
		o.MaxBlobSize = DefaultMaxBlobSize
	}
	switch {
	case o.MinChunk < minChunkLimit || o.MinChunk >= o.NormalChunk || o.NormalChunk >= o.MaxChunk || o.MaxChunk > maxChunkLimit:
		return o, fmt.Errorf("cas: chunk sizes min %d, normal %d, max %d: want %d <= min < normal < max <= %d (or all zero for the defaults)",
			o.MinChunk, o.NormalChunk, o.MaxChunk, minChunkLimit, maxChunkLimit)
	case o.NormalChunk&(o.NormalChunk-1) != 0:
		return o, fmt.Errorf("cas: normal chunk size %d is not a power of two", o.NormalChunk)
	case o.InlineMax < 0 || o.InlineMax > maxChunkLimit:
		return o, fmt.Errorf("cas: InlineMax %d out of range: want 0 (default) to %d", o.InlineMax, maxChunkLimit)
	case o.MaxBlobSize < 0:
		return o, errors.New("cas: MaxBlobSize is negative: use 0 for the default")
	}
	return o, nil
}
