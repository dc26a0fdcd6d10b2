package httpapi

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Uploads with bounded memory. A request body is never held whole: the
// builder exec record is decoded as a stream (builder.Decode) with every
// file copied straight into the CAS, and a manual upload is put into the
// CAS as it arrives, so an upload costs its buffers (the CAS pipeline's,
// a decoder's window), not its size. Before any of the body is read:
// credentials are checked, a Content-Length over MaxBody is answered 413,
// and a slot of MaxUploads is taken or 503 answered with Retry-After. The
// job's access list is checked as soon as the job name, the first field of
// the record, has been read (403 after a few bytes of a 200 MB body).
// Compressed bodies are decoded as streams, zstd with a window of at most
// maxZstdWindow, and the decoded bytes are capped at MaxBody like the raw
// ones: a compression bomb is refused with 413 after at most MaxBody bytes
// of work and a window's memory.
//
// Why a streaming parser rather than spooling the body to a temporary file
// and parsing it by offsets: the record's one large part, the files, can go
// to the CAS in the one pass that receives them; spooling would write every
// byte to disk twice and need room for a second copy on a disk that may be
// nearly full; and the access check needs the job name before the body is
// read, which a parser reading as the bytes arrive gives for free.
//
// Tests: TestUploadReadsOnlyAPrefixWhenForbidden, TestUploadEarly413,
// TestUploadSlots, TestUploadBombsBounded, TestUploadTruncatedBody and
// TestLargeUploadAndExportMemoryBounded (a 64 MiB build in and out with
// the heap in use bounded; ledgerbench -only memory for ten at once).

const (
	defaultMaxUploads = 4
	// uploadRetryAfter is the Retry-After of an upload refused for want
	// of a slot: about what a large upload takes on the reference machine.
	uploadRetryAfter = 5 * time.Second
	// maxZstdWindow is the largest zstd window accepted: the decoder holds
	// one window of history. It is what the zstd format asks every decoder
	// to support, and what the reference zstd uses up to level 19.
	maxZstdWindow = 8 << 20
)

// uploadSlots bounds the uploads in progress.
type uploadSlots struct {
	once  sync.Once
	slots chan struct{}
}

// uploadSlot takes a slot for an upload, or answers at once that the
// server is busy. Call release when the upload is done.
func (s *Server) uploadSlot() (release func(), err error) {
	s.uploads.once.Do(func() {
		n := s.cfg.MaxUploads
		if n <= 0 {
			n = defaultMaxUploads
		}
		s.uploads.slots = make(chan struct{}, n)
	})
	select {
	case s.uploads.slots <- struct{}{}:
		return func() { <-s.uploads.slots }, nil
	default:
		return nil, &Error{Status: http.StatusServiceUnavailable, RetryAfter: uploadRetryAfter,
			Msg: fmt.Sprintf("the server is receiving %d uploads already, as many as it takes at once; retry in a few seconds", cap(s.uploads.slots))}
	}
}

// tooLarge is the answer to a body over MaxBody, raw or decoded.
func (s *Server) tooLarge(what string) error {
	return &Error{Status: http.StatusRequestEntityTooLarge,
		Msg: fmt.Sprintf("%s exceeds the server's limit of %d bytes", what, s.cfg.MaxBody)}
}

// checkLength refuses a body whose Content-Length is over MaxBody before
// any of it is read.
func (s *Server) checkLength(r *http.Request) error {
	if r.ContentLength > s.cfg.MaxBody {
		return s.tooLarge(fmt.Sprintf("request body of %d bytes", r.ContentLength))
	}
	return nil
}

// uploadBody returns the request body capped at MaxBody, decoded as its
// Content-Encoding says (gzip, zstd or none) with the decoded bytes capped
// at MaxBody too. Reading past a cap fails with a 413 *Error. Call close
// when done.
func (s *Server) uploadBody(w http.ResponseWriter, r *http.Request) (body io.Reader, close func(), err error) {
	raw := s.limitBody(w, r)
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	var dec io.Reader
	close = func() {}
	switch enc {
	case "", "identity":
		return &readFailure{r: raw}, close, nil
	case "gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return nil, nil, bodyError(err, enc)
		}
		dec, close = zr, func() { zr.Close() }
	case "zstd":
		zr, err := zstd.NewReader(raw, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(maxZstdWindow))
		if err != nil {
			return nil, nil, err
		}
		dec, close = zr, zr.Close
	default:
		return nil, nil, &Error{Status: http.StatusUnsupportedMediaType, Msg: fmt.Sprintf("Content-Encoding %q is not supported (gzip, zstd or none)", enc)}
	}
	return &readFailure{r: &decodedBody{r: dec, left: s.cfg.MaxBody, s: s, enc: enc}}, close, nil
}

// readFailure makes every failure to read a body an answer: the caps' and
// decoders' as they are, anything else (the client went away, or sent less
// than its Content-Length) 400, rather than the internal error that a
// failed Put would otherwise be.
type readFailure struct {
	r io.Reader
	n int64
}

func (f *readFailure) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	f.n += int64(n)
	var he *Error
	if err != nil && err != io.EOF && !errors.As(err, &he) {
		err = &Error{Status: http.StatusBadRequest, Err: err, Msg: fmt.Sprintf("reading the request body failed after %d bytes", f.n)}
	}
	return n, err
}

// decodedBody caps the decoded bytes of a compressed body and turns the
// decoder's errors into answers.
type decodedBody struct {
	r    io.Reader
	left int64
	s    *Server
	enc  string
}

func (d *decodedBody) Read(p []byte) (int, error) {
	if d.left <= 0 {
		// One byte past the cap tells a body of exactly MaxBody bytes
		// from a longer one.
		var b [1]byte
		n, err := d.r.Read(b[:])
		switch {
		case n > 0:
			return 0, d.s.tooLarge("decoded " + d.enc + " body")
		case err == io.EOF:
			return 0, io.EOF
		case err != nil:
			return 0, bodyError(err, d.enc)
		}
		return 0, nil
	}
	if int64(len(p)) > d.left {
		p = p[:d.left]
	}
	n, err := d.r.Read(p)
	d.left -= int64(n)
	if err != nil && err != io.EOF {
		err = bodyError(err, d.enc)
	}
	return n, err
}

// bodyError turns an error of a decoder into an answer: the caps' 413s
// pass as they are, a zstd window over maxZstdWindow is 413, anything else
// the decoder says about its input is 400.
func bodyError(err error, enc string) error {
	var he *Error
	switch {
	case errors.As(err, &he):
		return err
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return &Error{Status: http.StatusRequestEntityTooLarge, Err: err,
			Msg: fmt.Sprintf("the zstd body needs a window of more than %d MiB to decode, more than the server allows; compress with a smaller window (zstd up to level 19 does)", maxZstdWindow>>20)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Status: http.StatusBadRequest, Err: err, Msg: "the " + enc + " body ends before its end"}
	}
	return &Error{Status: http.StatusBadRequest, Err: err, Msg: fmt.Sprintf("the body is not valid %s: %v", enc, err)}
}
