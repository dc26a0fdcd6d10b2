// Package replica keeps a read replica of a ledger in step with its
// primary over HTTP, the way event sourcing allows: read the primary's
// signed checkpoint, verify it against the primary's log key and prove it
// consistent with the last one the replica holds; fetch the new entries
// from its C2SP entry bundles; fetch every blob those events name (by
// digest, verified) that the replica lacks; then let the ledger check,
// project and commit the entries, which it does only when the tree they
// make has the checkpoint's root (or, for a prefix, is proven consistent
// with it from the primary's tiles). A primary that rewrote its history is
// a security error (an *httpapi.InconsistencyError showing both
// checkpoints) that stops the replica.
package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/client"
	"github.com/buildledger/buildledger/ledger"
)

// Replica follows a primary.
type Replica struct {
	Client *httpapi.Client // the primary, with its log key pinned
	Ledger *ledger.Ledger  // opened with Config.ReplicaOf
	// Poll is the pause between two looks at the primary. Default 2 s.
	Poll time.Duration
	// Chunk is how many entries one commit takes. Default 1024.
	Chunk int
	// Progress, if set, is called with the replica's log size after each
	// chunk it has committed.
	Progress func(size uint64)
	Log      *slog.Logger

	status status
}

// Sync brings the replica up to the primary's current checkpoint and
// returns how many entries it applied.
func (r *Replica) Sync(ctx context.Context) (int, error) {
	c, l := r.Client, r.Ledger
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		return 0, err
	}
	if last := l.Checkpoint(); last.Note != nil {
		if cp.Size < last.Size {
			// A stale answer (a cache in front of the primary): wait for a
			// current one. A rewritten history shows once it is longer.
			return 0, fmt.Errorf("the primary served an older checkpoint (size %d) than this replica holds (%d); retrying", cp.Size, last.Size)
		}
		if err := c.CheckConsistency(ctx, last, cp); err != nil {
			return 0, err
		}
	}
	size, root := l.Tree().Head()
	if size > cp.Size {
		return 0, &httpapi.InconsistencyError{Old: l.Checkpoint(), New: cp, Reason: fmt.Sprintf("the primary's log (%d entries) is shorter than this replica's (%d)", cp.Size, size)}
	}
	prove := func(n uint64, root [32]byte) error { return c.ProveConsistent(ctx, n, root, cp) }
	if err := prove(size, root); err != nil {
		return 0, err
	}
	r.saw(cp.Size)
	chunk := r.Chunk
	if chunk <= 0 {
		chunk = 1024
	}
	// Two stages: the next chunk is fetched, verified against the
	// checkpoint (from where the previous chunk ends, before either is
	// stored) and its blobs fetched while the current one is applied.
	v, err := l.NewEntryVerifier()
	if err != nil {
		return 0, err
	}
	type fetched struct {
		entries [][]byte
		err     error
	}
	fctx, cancel := context.WithCancel(ctx)
	next := make(chan fetched, 1)
	// On every return the producer is stopped and waited for: nothing of
	// this Sync runs after it (a server closes the ledger next).
	defer func() {
		cancel()
		for range next {
		}
	}()
	fprove := func(n uint64, root [32]byte) error { return c.ProveConsistent(fctx, n, root, cp) }
	go func() {
		defer close(next)
		for from := size; from < cp.Size; {
			to := min(from+uint64(chunk), cp.Size)
			entries, err := c.Entries(fctx, from, to, cp)
			// Nothing is fetched for entries that are not in the log.
			if err == nil {
				err = v.Verify(entries, cp.Note, fprove)
			}
			if err == nil {
				err = r.fetchBlobs(fctx, from, entries)
			}
			select {
			case next <- fetched{entries, err}:
			case <-fctx.Done():
				return
			}
			if err != nil {
				return
			}
			from = to
		}
	}()
	applied := 0
	for f := range next {
		if f.err != nil {
			return applied, f.err
		}
		before := l.Tree().Size()
		err := l.Replicate(ctx, f.entries, cp.Note, prove)
		// Counted by what was committed: a failed Replicate may have
		// committed part of the chunk.
		if after := l.Tree().Size(); after > before {
			applied += int(after - before)
			if r.Progress != nil {
				r.Progress(after)
			}
		}
		if err != nil {
			return applied, err
		}
	}
	if err := ctx.Err(); err != nil {
		return applied, err
	}
	if l.Tree().Size() < cp.Size {
		return applied, fmt.Errorf("catching up stopped at %d of %d entries", l.Tree().Size(), cp.Size)
	}
	// At the checkpoint's size (also when nothing was missing): install it.
	if err := l.Replicate(ctx, nil, cp.Note, prove); err != nil {
		return applied, err
	}
	r.synced()
	return applied, nil
}

// fetchBlobs stores every blob the entries' events name that the store
// lacks: a build's artifacts, script and console, an attestation's
// envelope. The event bytes themselves are stored by Replicate. Blobs are
// fetched by a few workers at once; small ones are stored together in few
// transactions (one sync each), large ones streamed one by one.
func (r *Replica) fetchBlobs(ctx context.Context, from uint64, entries [][]byte) error {
	store := r.Ledger.Store()
	type want struct {
		d     cas.Digest
		size  int64 // -1: not known from the event
		entry uint64
	}
	seen := map[cas.Digest]bool{}
	var todo []want
	for i, data := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		ev, err := ledger.Decode(data)
		if err != nil {
			return fmt.Errorf("SECURITY: the primary's entry %d is not a valid event: %w", from+uint64(i), err)
		}
		var need []want
		switch e := ev.(type) {
		case *ledger.BuildRecorded:
			need = append(need, want{e.Script, -1, 0}, want{e.Console, -1, 0})
			for _, a := range e.Artifacts {
				need = append(need, want{a.SHA256, a.Size, 0})
			}
		case *ledger.AttestationRecorded:
			need = append(need, want{e.Envelope, -1, 0})
		}
		for _, w := range need {
			if seen[w.d] {
				continue
			}
			seen[w.d] = true
			if ok, err := store.Has(w.d); err != nil {
				return err
			} else if !ok {
				w.entry = from + uint64(i)
				todo = append(todo, w)
			}
		}
	}
	// Blobs too large for a batch (by their recorded size) are streamed
	// one by one; the others, most of a build's files, come
	// client.MaxBatchDigests to a request (GET /blobs), verified there,
	// and are stored together. Those the batch answers too large (a
	// script or console whose size the event does not state) are then
	// streamed too.
	var single, batched []want
	for _, w := range todo {
		if w.size > client.MaxBatchBlob {
			single = append(single, w)
		} else {
			batched = append(batched, w)
		}
	}
	inline := store.Options().InlineMax
	var mu sync.Mutex
	var small [][]byte
	entryOf := map[cas.Digest]uint64{}
	for _, w := range batched {
		entryOf[w.d] = w.entry
	}
	keep := func(d cas.Digest, b []byte) error {
		if len(b) > inline {
			_, err := store.PutBytes(ctx, b)
			return err
		}
		mu.Lock()
		small = append(small, bytes.Clone(b))
		mu.Unlock()
		return nil
	}
	type job struct {
		batch []want
		one   want
	}
	work := make(chan job)
	errc := make(chan error, fetchWorkers)
	var wg sync.WaitGroup
	for range fetchWorkers {
		wg.Go(func() {
			for j := range work {
				if j.batch == nil {
					if err := r.fetch(ctx, j.one.d, j.one.size); err != nil {
						errc <- fmt.Errorf("entry %d: %w", j.one.entry, err)
						return
					}
					continue
				}
				ds := make([]cas.Digest, len(j.batch))
				for i, w := range j.batch {
					ds[i] = w.d
				}
				large, err := r.Client.StoredBlobs(ctx, ds, keep)
				if err != nil {
					errc <- fmt.Errorf("entries %d…: %w", j.batch[0].entry, err)
					return
				}
				for _, d := range large {
					// Its size is not recorded: at most maxBuffered.
					if err := r.fetch(ctx, d, maxBuffered); err != nil {
						errc <- fmt.Errorf("entry %d: %w", entryOf[d], err)
						return
					}
				}
			}
		})
	}
	var jobs []job
	for _, w := range single {
		jobs = append(jobs, job{one: w})
	}
	for len(batched) > 0 {
		n := min(len(batched), client.MaxBatchDigests)
		jobs = append(jobs, job{batch: batched[:n]})
		batched = batched[n:]
	}
	var err error
feed:
	for _, j := range jobs {
		select {
		case work <- j:
		case err = <-errc:
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	if err != nil {
		return err
	}
	return store.PutSmall(ctx, small)
}

// syncTimeout bounds one round of Run, so a stalled primary cannot hang
// the replica.
const syncTimeout = 30 * time.Minute

const (
	fetchWorkers = 8
	// maxBuffered bounds a blob held in memory whose size the event does
	// not state (script, console, envelope).
	maxBuffered = 64 << 20
)

// limitWriter fails writes beyond n bytes.
type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, errors.New("the blob is larger than the event says (or than a replica holds in memory)")
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

// fetch streams one blob from the primary into the store; the store's
// digest must be the one asked for.
func (r *Replica) fetch(ctx context.Context, d cas.Digest, size int64) error {
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := r.Client.StoredBlob(ctx, d, &limitWriter{w: pw, n: size})
		pw.CloseWithError(err)
		errc <- err
	}()
	info, err := r.Ledger.Store().Put(ctx, pr)
	pr.CloseWithError(err)
	if ferr := <-errc; ferr != nil {
		return ferr
	}
	if err != nil {
		return err
	}
	if info.Digest != d {
		return fmt.Errorf("SECURITY: blob %s arrived as %s", d, info.Digest)
	}
	return nil
}

// Run syncs until ctx ends (nil) or the primary proves inconsistent with
// what the replica holds, which stops it with that security error. Other
// errors (the primary unreachable) are logged and retried.
func (r *Replica) Run(ctx context.Context) error {
	poll := r.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	for {
		sctx, cancel := context.WithTimeout(ctx, syncTimeout)
		n, err := r.Sync(sctx)
		cancel()
		var ie *httpapi.InconsistencyError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &ie), errors.Is(err, ledger.ErrCorrupt):
			return err
		case err != nil:
			log.Error("replica: sync failed; retrying", "err", err)
		case n > 0:
			log.Info("replica: synced", "entries", n, "size", r.Ledger.Size())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// Bounds on one answer from the primary: tiles and entry bundles are small
// by construction (an entry bundle holds 256 events of at most 64 KiB),
// blobs are bounded by what a ledger accepts.
const (
	maxTileAnswer = 20 << 20
	maxAnswer     = 2 << 30
)

// HTTPClient is the client a replica should talk to its primary with: a
// connection and header timeout, and answers cut off (with an error) beyond
// the bounds above, so a hostile primary cannot make the replica read
// without end.
func HTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	return &http.Client{Transport: limitTransport{t}}
}

type limitTransport struct{ next http.RoundTripper }

func (l limitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	max := int64(maxAnswer)
	if strings.HasPrefix(r.URL.Path, "/tile/") || strings.Contains(r.URL.Path, "/tile/") {
		max = maxTileAnswer
	}
	resp.Body = &limitedBody{Closer: resp.Body, r: io.LimitReader(resp.Body, max+1), max: max, url: r.URL.String()}
	return resp, nil
}

// limitedBody fails a read that goes past the bound.
type limitedBody struct {
	io.Closer
	r         io.Reader
	read, max int64
	url       string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if b.read += int64(n); b.read > b.max {
		return n, fmt.Errorf("the primary's answer to %s is larger than a replica reads (%d bytes)", b.url, b.max)
	}
	return n, err
}
