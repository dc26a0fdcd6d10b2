package replica_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/replica"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
)

// producerAlive reports whether a goroutine started by Sync is running.
func producerAlive() bool {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Contains(string(buf[:n]), "replica.(*Replica).Sync.func")
}

// TestSyncStopsItsFetcher: when applying a chunk fails (CheckSpace refuses
// the first commit) while the next chunk is being verified, Sync stops and
// waits for the goroutine fetching ahead before it returns, so nothing of
// it runs while the caller closes the ledger.
func TestSyncStopsItsFetcher(t *testing.T) {
	p := newPrimary(t)
	for i := range 15 {
		p.record(t, "web", map[string]string{"bin/web.hvt": fmt.Sprint("image ", i)})
	}
	var armed atomic.Bool
	spaceCalled, inProve, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once1, once2 sync.Once
	var bundles atomic.Int32
	h, err := httpapi.New(httpapi.Config{Ledger: p.L.Ledger, VKey: p.L.VKey})
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/tile/entries/"):
			if bundles.Add(1) == 2 {
				<-spaceCalled // the producer's second chunk waits for the consumer's commit
			}
		case strings.HasPrefix(r.URL.Path, "/tile/"):
			select {
			case <-spaceCalled: // only the producer proves after that
				once2.Do(func() { close(inProve) })
				<-release
			default:
			}
		}
		h.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	c, _ := httpapi.NewClient(proxy.URL, p.L.VKey, nil)

	dir := t.TempDir()
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := cas.New(db, cas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(db, store, ledger.Config{ReplicaOf: p.L.VKey, GC: ledger.GCConfig{Interval: -1}, CheckSpace: func() error {
		if !armed.Load() {
			return nil
		}
		once1.Do(func() { close(spaceCalled) })
		<-inProve
		return errors.New("disk full")
	}})
	if err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	n, err := (&replica.Replica{Client: c, Ledger: l, Chunk: 7}).Sync(ctx)
	if n != 0 || err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Sync: %d, %v; want 0 and the refusal", n, err)
	}
	if producerAlive() {
		t.Errorf("the fetching goroutine is still running after Sync returned")
	}
	l.Close()
	db.Close()
	close(release)
}
