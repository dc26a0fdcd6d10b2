package cas

import (
	"errors"
	"fmt"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
)

// Defaults.
const (
	DefaultInlineMax   = 64 << 10
	DefaultMaxBlobSize = 64 << 30
	// SmallBlobLimit is where the default chunking switches from small to
	// large chunks: blobs shorter than this (package lists, switch exports,
	// logs) use 2/4/32 KiB chunks, longer ones 4/16/64 KiB.
	SmallBlobLimit = 4 << 20
)

// The default FastCDC sizes, measured by TestDedupChunkSizes and
// BenchmarkPutChunkSizes (see doc.go): 4 KiB chunks store a day's edits to
// package lists in 30% less space than 8 KiB ones (and smaller chunks gain
// nothing, the manifest growing as fast as the chunks shrink), while large
// blobs cut into 16 KiB chunks have half as many as with 8 KiB ones.
var (
	smallChunks = chunkSizes{min: 2 << 10, normal: 4 << 10, max: 32 << 10}
	largeChunks = chunkSizes{min: 4 << 10, normal: 16 << 10, max: 64 << 10}
)

// Format limits: what a store accepts from Options and from stored records.
const (
	maxChunkLimit = 1 << 20 // largest chunk (and inline blob) the format allows
	pageFanout    = 1024    // most references in one manifest page or blob record
	minChunkLimit = 64      // smallest MinChunk FastCDC accepts
)

// Options configure a Store. The zero value selects the defaults.
type Options struct {
	// MinChunk, NormalChunk and MaxChunk, when set, are the FastCDC chunk
	// size bounds in bytes for every blob. NormalChunk must be a power of
	// two and 64 <= MinChunk < NormalChunk < MaxChunk <= 1 MiB. When all
	// three are zero, the sizes depend on the blob's length (see
	// SmallBlobLimit). Chunk sizes do not affect reading existing blobs,
	// only how new blobs share chunks with old ones.
	MinChunk, NormalChunk, MaxChunk int
	// InlineMax is the largest blob stored as a single record (and the
	// largest PutTxn accepts). At most 1 MiB; default 64 KiB.
	InlineMax int
	// MaxBlobSize is the largest blob Put accepts; default 64 GiB.
	MaxBlobSize int64
	// CheckSpace, if set, is asked before each transaction Put, PutBytes
	// and PutSmall commit; its error stops the Put (see space.go).
	CheckSpace func() error
}

// chunkSizes are FastCDC's bounds.
type chunkSizes struct{ min, normal, max int }

func (c chunkSizes) opts() *chunkers.ChunkerOpts {
	return &chunkers.ChunkerOpts{MinSize: c.min, NormalSize: c.normal, MaxSize: c.max}
}

func (c chunkSizes) validate() error {
	switch {
	case c.min < minChunkLimit || c.min >= c.normal || c.normal >= c.max || c.max > maxChunkLimit:
		return fmt.Errorf("cas: chunk sizes min %d, normal %d, max %d: want %d <= min < normal < max <= %d (or all zero for the defaults)",
			c.min, c.normal, c.max, minChunkLimit, maxChunkLimit)
	case c.normal&(c.normal-1) != 0:
		return fmt.Errorf("cas: normal chunk size %d is not a power of two", c.normal)
	}
	return nil
}

// chunking says how a Store cuts blobs: blobs shorter than largeFrom with
// small, others with large (largeFrom 0: always large).
type chunking struct {
	small, large chunkSizes
	largeFrom    int64
}

func (o Options) withDefaults() (Options, chunking, error) {
	var c chunking
	if o.MinChunk == 0 && o.NormalChunk == 0 && o.MaxChunk == 0 {
		c = chunking{small: smallChunks, large: largeChunks, largeFrom: SmallBlobLimit}
	} else {
		c.large = chunkSizes{min: o.MinChunk, normal: o.NormalChunk, max: o.MaxChunk}
		c.small = c.large
		if err := c.large.validate(); err != nil {
			return o, c, err
		}
	}
	if o.InlineMax == 0 {
		o.InlineMax = DefaultInlineMax
	}
	if o.MaxBlobSize == 0 {
		o.MaxBlobSize = DefaultMaxBlobSize
	}
	switch {
	case o.InlineMax < 0 || o.InlineMax > maxChunkLimit:
		return o, c, fmt.Errorf("cas: InlineMax %d out of range: want 0 (default) to %d", o.InlineMax, maxChunkLimit)
	case o.MaxBlobSize < 0:
		return o, c, errors.New("cas: MaxBlobSize is negative: use 0 for the default")
	}
	return o, c, nil
}

// sizesFor returns the chunk sizes for a blob of n bytes.
func (c chunking) sizesFor(n int64) chunkSizes {
	if n < c.largeFrom {
		return c.small
	}
	return c.large
}
