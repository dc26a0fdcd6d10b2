// Package decomp opens the compressed streams of packages (gzip, xz,
// zstd) with memory bounded whatever their headers ask for: a zstd window
// or an xz dictionary of at most 64 MiB (what `xz -9` and `zstd --ultra
// -22` use), one zstd decoding goroutine, and a Close that frees them.
package decomp

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	xz "github.com/xi2/xz"
)

// MaxWindow bounds a zstd window and an xz dictionary.
const MaxWindow = 64 << 20

// Codecs.
const (
	Gzip = "gzip"
	Xz   = "xz"
	Zstd = "zstd"
)

// Reader decompresses r, compressed with codec; call the returned
// function when done.
func Reader(codec string, r io.Reader) (io.Reader, func(), error) {
	switch codec {
	case Gzip:
		g, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return g, func() { g.Close() }, nil
	case Xz:
		// xi2/xz refuses a dictionary above dictMax before allocating it
		// (ulikunitz/xz allocates whatever the header names, up to 4 GiB).
		x, err := xz.NewReader(r, MaxWindow)
		if err != nil {
			return nil, nil, err
		}
		return x, func() {}, nil
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxWindow), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, nil, err
		}
		return d, d.Close, nil
	}
	return nil, nil, fmt.Errorf("decomp: unknown codec %q", codec)
}
