package benchmarks

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
)

// LookupFixture is a ledger of many builds served over real HTTP on
// loopback, next to a bare net/http handler returning a fixed body.
type LookupFixture struct {
	Digests   []cas.Digest // main binary digest of every build
	LedgerURL string
	BareURL   string
	close     []func()
	VKey      string
	l         *ledger.Ledger
	store     *cas.Store
}

// Close stops the servers and removes the store.
func (f *LookupFixture) Close() {
	for i := len(f.close) - 1; i >= 0; i-- {
		f.close[i]()
	}
}

// NewLookupFixture records n builds (64 concurrent appenders) and starts
// both servers.
func NewLookupFixture(n int) (*LookupFixture, error) {
	f := &LookupFixture{}
	tl, err := openTempLedger("lookupbench", &f.close)
	if err != nil {
		return nil, err
	}
	l, vkey := tl.l, tl.vkey
	f.l, f.store, f.VKey = l, tl.store, vkey
	ctx := context.Background()
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "bench"}); err != nil {
		return nil, err
	}
	f.Digests = make([]cas.Digest, n)
	if err := appendConcurrently(ctx, l, n, func(i int) (*ledger.BuildRecorded, error) {
		b := BuildEvent(i)
		f.Digests[i] = b.Artifacts[0].SHA256
		return b, nil
	}); err != nil {
		return nil, err
	}
	s, err := httpapi.New(httpapi.Config{Ledger: l, VKey: vkey})
	if err != nil {
		return nil, err
	}
	// The bare handler serves the bytes of a real answer.
	probe := httptest.NewRequest(http.MethodGet, "/hash?sha256="+f.Digests[0].String(), nil)
	probe.Header.Set("Accept", "application/json")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, probe)
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("GET /hash: %d %s", rec.Code, rec.Body)
	}
	body := rec.Body.Bytes()
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	if f.LedgerURL, err = serve(s, &f.close); err != nil {
		return nil, err
	}
	if f.BareURL, err = serve(bare, &f.close); err != nil {
		return nil, err
	}
	return f, nil
}

// appendConcurrently appends the builds build(0), ..., build(n-1) from 64
// goroutines (so they share group commits).
func appendConcurrently(ctx context.Context, l *ledger.Ledger, n int, build func(int) (*ledger.BuildRecorded, error)) error {
	return concurrently(64, n, func(i int) error {
		b, err := build(i)
		if err == nil {
			_, err = l.Append(ctx, b)
		}
		return err
	})
}

// concurrently calls f(0), ..., f(n-1) from workers goroutines, each taking
// the next index, and returns the first error (the goroutine that met it
// stops; the others finish the indices).
func concurrently(workers, n int, f func(int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// tempLedger is a ledger in a temporary directory.
type tempLedger struct {
	l     *ledger.Ledger
	db    *badger.DB
	vkey  string
	store *cas.Store
}

// openTempLedger opens a fresh ledger; its closers are appended to closers.
func openTempLedger(name string, closers *[]func()) (*tempLedger, error) {
	dir, err := os.MkdirTemp("", name)
	if err != nil {
		return nil, err
	}
	*closers = append(*closers, func() { os.RemoveAll(dir) })
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		return nil, err
	}
	*closers = append(*closers, func() { db.Close() })
	store, err := cas.New(db, cas.Options{})
	if err != nil {
		return nil, err
	}
	skey, vkey, err := ledger.GenerateLogKey("bench/log")
	if err != nil {
		return nil, err
	}
	signer, _ := note.NewSigner(skey)
	l, err := ledger.Open(db, store, ledger.Config{Origin: "bench/log", Signer: signer})
	if err != nil {
		return nil, err
	}
	*closers = append(*closers, func() { l.Close() })
	return &tempLedger{l: l, db: db, vkey: vkey, store: store}, nil
}

// serve serves h on a loopback port until the closers run.
func serve(h http.Handler, closers *[]func()) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	*closers = append(*closers, func() { srv.Close() })
	return "http://" + ln.Addr().String(), nil
}

// LoadResult is what a load run measured.
type LoadResult struct {
	Requests int
	RPS      float64
	P50, P99 time.Duration
}

func (r LoadResult) String() string {
	return fmt.Sprintf("%.0f req/s, p50 %s, p99 %s", r.RPS, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond))
}

// Load sends GET requests from conc keep-alive clients for d and measures
// throughput and latency. url(i) gives the i-th request's URL; every
// response must be 200.
func Load(url func(i int) string, header http.Header, conc int, d time.Duration) (LoadResult, error) {
	tr := &http.Transport{MaxIdleConns: conc, MaxIdleConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var n atomic.Int64
	lat := make([][]time.Duration, conc)
	errc := make(chan error, conc)
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				i := int(n.Add(1))
				req, _ := http.NewRequest(http.MethodGet, url(i), nil)
				req.Header = header
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					errc <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errc <- fmt.Errorf("GET %s: %s", req.URL, resp.Status)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errc)
	if err := <-errc; err != nil {
		return LoadResult{}, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return LoadResult{}, fmt.Errorf("no requests completed")
	}
	return LoadResult{Requests: len(all), RPS: float64(len(all)) / elapsed.Seconds(),
		P50: all[len(all)/2], P99: all[len(all)*99/100]}, nil
}
