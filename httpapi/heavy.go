package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Fair service for anonymous readers: requests whose work grows with the
// stored data (a comparison parses input files, an /exec export holds its
// console) take a slot of a small limiter, and downloads of large files
// (each holds the CAS reader's read-ahead, about 1.4 MiB) one of a larger
// one; both are refused at once with 503 and Retry-After when no slot is
// free, instead of queueing until the machine runs out of memory. Every
// connection is dropped when its client stops sending the request body or
// stops reading the response for a while, however long a transfer that
// keeps moving takes, so stalled readers give their slots back.
// TestHeavyReadLimit, TestStreamLimit, TestStalledReaderIsDropped,
// TestSlowDownloadCompletes and TestStalledBodyIsDropped prove them.

const (
	defaultMaxHeavyReads = 4
	defaultMaxStreams    = 256
	// streamMin is the size from which a download takes a stream slot:
	// smaller blobs are one chunk or stored inline and hold little.
	streamMin = 1 << 20
	// streamRetryAfter is the Retry-After of a refused download.
	streamRetryAfter = 10 * time.Second
	defaultIdle      = time.Minute
	// heavyRetryAfter is the Retry-After of a refused heavy read: about
	// the time a comparison takes.
	heavyRetryAfter = 5 * time.Second
	// writeChunk is the largest piece written under one deadline, so a
	// large Write (a long JSON answer) needs progress, not a fast client.
	writeChunk = 64 << 10
)

// limits is the Server's state for fair service.
type limits struct {
	heavy       chan struct{}
	streams     chan struct{}
	compares    *lru.Cache[compareKey, *InputDiff]
	compareHits atomic.Uint64 // for tests: comparisons answered from the cache
	diffsRun    atomic.Uint64 // for tests: comparisons computed

	flightMu sync.Mutex
	flights  map[compareKey]*flight // comparisons being computed
	// onCompute and onWait, if set (tests), are called when a request
	// starts computing a comparison and when one waits for another's.
	onCompute, onWait func()
}

func (s *Server) initLimits() error {
	if s.cfg.MaxHeavyReads <= 0 {
		s.cfg.MaxHeavyReads = defaultMaxHeavyReads
	}
	if s.cfg.MaxStreams <= 0 {
		s.cfg.MaxStreams = defaultMaxStreams
	}
	if s.cfg.ReadIdle <= 0 {
		s.cfg.ReadIdle = defaultIdle
	}
	if s.cfg.WriteIdle <= 0 {
		s.cfg.WriteIdle = defaultIdle
	}
	c, err := lru.New[compareKey, *InputDiff](compareCacheSize)
	if err != nil {
		return err
	}
	s.limits.heavy = make(chan struct{}, s.cfg.MaxHeavyReads)
	s.limits.streams = make(chan struct{}, s.cfg.MaxStreams)
	s.limits.compares = c
	s.limits.flights = map[compareKey]*flight{}
	return nil
}

// heavyRead takes a slot for a request doing work proportional to stored
// data, or answers that the server is busy. Call release when done.
func (s *Server) heavyRead() (release func(), err error) {
	select {
	case s.limits.heavy <- struct{}{}:
		return func() { <-s.limits.heavy }, nil
	default:
		return nil, &Error{Status: http.StatusServiceUnavailable, RetryAfter: heavyRetryAfter,
			Msg: fmt.Sprintf("the server is busy with %d expensive reads (comparisons, exports with large consoles), as many as it runs at once; retry in a few seconds", cap(s.limits.heavy))}
	}
}

// streamSlot takes a slot for sending a large file, or answers that the
// server is busy. Call release when the response is done.
func (s *Server) streamSlot() (release func(), err error) {
	select {
	case s.limits.streams <- struct{}{}:
		return func() { <-s.limits.streams }, nil
	default:
		return nil, &Error{Status: http.StatusServiceUnavailable, RetryAfter: streamRetryAfter,
			Msg: fmt.Sprintf("the server is sending %d large files already, as many as it sends at once; retry in a few seconds", cap(s.limits.streams))}
	}
}

// idleDeadlines wraps a request so that its body must keep arriving and
// its response must keep being read: before every read of the body the
// connection's read deadline moves to ReadIdle from now, before every
// write (of at most writeChunk bytes) the write deadline to WriteIdle from
// now. A client that stalls longer loses the connection; one that keeps
// moving is never cut off, so a 2 GB download at any steady pace
// completes. (http.Server's ReadTimeout and WriteTimeout bound a whole
// request instead, which no timeout both short enough to drop stalled
// clients and long enough for large transfers can do.)
func (s *Server) idleDeadlines(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	rc := http.NewResponseController(w)
	if r.Body != nil && r.Body != http.NoBody {
		b := &idleBody{ReadCloser: r.Body, rc: rc, idle: s.cfg.ReadIdle}
		// A body the handler never reads is still discarded by the
		// server afterwards: bound that too.
		b.extend()
		r.Body = b
	}
	return &idleWriter{ResponseWriter: w, rc: rc, idle: s.cfg.WriteIdle}
}

// idleBody moves the read deadline before each read of a request body.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	done bool // the body ended: net/http now reads the connection itself
}

func (b *idleBody) extend() { b.rc.SetReadDeadline(time.Now().Add(b.idle)) }

func (b *idleBody) Read(p []byte) (int, error) {
	if b.done {
		// After the end of the body the server watches the connection
		// for the client going away; a deadline here would cancel the
		// request's context.
		return b.ReadCloser.Read(p)
	}
	b.extend()
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.done = true
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("the request body stopped arriving for %s: %w", b.idle, err)
		}
	}
	return n, err
}

// idleWriter moves the write deadline before each chunk it writes.
type idleWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (w *idleWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), writeChunk)]
		w.rc.SetWriteDeadline(time.Now().Add(w.idle))
		m, err := w.ResponseWriter.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		p = p[m:]
	}
	return n, nil
}

// Unwrap lets http.ResponseController reach the connection (Flush,
// deadlines).
func (w *idleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
