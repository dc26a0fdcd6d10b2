package cas

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Stored values (chunks, pages, inline records) start with one header byte
// saying how the rest is encoded.
const (
	encRaw  = 0x00 // the rest is the raw bytes
	encZstd = 0x01 // the rest is one zstd frame of the raw bytes
)

// minCompress is the smallest input worth trying to compress: below it the
// zstd frame overhead eats any gain.
const minCompress = 64

// compressed reports whether a zstd output of n bytes for a raw input of raw
// bytes is worth storing: it must save at least 3%.
func compressed(n, raw int) bool { return n < raw-raw/32 }

var (
	encoderOnce = sync.OnceValues(func() (*zstd.Encoder, error) {
		// EncodeAll on one shared encoder is safe for concurrent use; the
		// concurrency option sizes its pool of block encoders.
		return zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(4),
			zstd.WithEncoderCRC(false), // every value is verified by SHA-256
			zstd.WithWindowSize(maxChunkLimit),
			zstd.WithZeroFrames(true),
		)
	})
	decoderOnce = sync.OnceValues(func() (*zstd.Decoder, error) {
		// DecodeAllCapLimit makes DecodeAll stop at cap(dst): every caller
		// passes a dst whose capacity is the size recorded for the value, so
		// a frame that claims or produces more is rejected, not allocated.
		return zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(4),
			zstd.WithDecoderMaxMemory(maxChunkLimit),
			zstd.WithDecoderMaxWindow(maxChunkLimit),
			zstd.WithDecodeAllCapLimit(true),
			zstd.IgnoreChecksum(true),
		)
	})
)

func codecs() (*zstd.Encoder, *zstd.Decoder, error) {
	enc, err := encoderOnce()
	if err != nil {
		return nil, nil, fmt.Errorf("cas: create zstd encoder: %w", err)
	}
	dec, err := decoderOnce()
	if err != nil {
		return nil, nil, fmt.Errorf("cas: create zstd decoder: %w", err)
	}
	return enc, dec, nil
}

// compressValue appends the zstd stored form of raw (header byte included)
// to dst and returns it, or returns dst unchanged and false when compression
// would not save space. With spare capacity for len(raw)+zstdOverhead+1 bytes
// in dst it does not allocate.
func (s *Store) compressValue(dst, raw []byte) ([]byte, bool) {
	if len(raw) < minCompress {
		return dst, false
	}
	start := len(dst)
	out := s.enc.EncodeAll(raw, append(dst, encZstd))
	if !compressed(len(out)-start-1, len(raw)) {
		return dst, false
	}
	return out, true
}

// decodeValue decodes a stored value whose raw form must be exactly size
// bytes. It returns raw bytes aliasing val (raw encoding) or written into
// buf's backing array (zstd; buf is grown if its capacity is below size). The
// result is not yet checked against its digest. A failure is reported as
// reason text for an IntegrityError.
func (s *Store) decodeValue(val []byte, size int, buf []byte) (out []byte, reason string) {
	if len(val) == 0 {
		return nil, "empty stored value"
	}
	switch val[0] {
	case encRaw:
		if len(val)-1 != size {
			return nil, fmt.Sprintf("stored raw value has %d bytes, want %d", len(val)-1, size)
		}
		return val[1:], ""
	case encZstd:
		return s.decodeZstd(val[1:], size, buf)
	default:
		return nil, fmt.Sprintf("unknown value encoding 0x%02x", val[0])
	}
}

// decodeZstd decompresses frame, which must yield exactly size bytes, into
// buf's backing array (grown if its capacity is below size). Decoding stops
// at size bytes, so a frame that would expand further costs no memory.
func (s *Store) decodeZstd(frame []byte, size int, buf []byte) (out []byte, reason string) {
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	out, err := s.dec.DecodeAll(frame, buf[:0:size])
	if err != nil {
		return nil, "cannot decompress: " + err.Error()
	}
	if len(out) != size {
		return nil, fmt.Sprintf("decompresses to %d bytes, want %d", len(out), size)
	}
	return out, ""
}
