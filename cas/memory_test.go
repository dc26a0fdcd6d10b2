package cas_test

import (
	"context"
	"crypto/sha256"
	"io"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/cas/castest"
)

// heapPeak samples runtime.MemStats.HeapInuse until stop is called and
// returns the largest value seen.
func heapPeak() (stop func() uint64) {
	var mu sync.Mutex
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			mu.Lock()
			peak = max(peak, m.HeapInuse)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// TestLargeBlobMemory puts 1 GiB generated on the fly and reads it back,
// checking that the heap in use never grows by more than 64 MiB over what
// the open database already holds: Put and Open stream with bounded memory.
// The collector runs at GOGC=10 meanwhile, so that the heap in use tracks
// live memory rather than garbage awaiting collection (the database alone
// holds ~85 MiB, which at the default GOGC=100 would let as much garbage
// pile up before a collection).
func TestLargeBlobMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads 1 GiB")
	}
	const size = 1 << 30
	const bound = 64 << 20
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	ctx := context.Background()
	s, _ := castest.Open(t, cas.Options{})
	mib := func(n uint64) float64 { return float64(n) / (1 << 20) }
	base := func() runtime.MemStats {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m
	}

	before := base()
	stop := heapPeak()
	h := sha256.New()
	start := time.Now()
	info, err := s.Put(ctx, io.TeeReader(castest.RandReader(7, size), h))
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	peak := stop()
	if info.Digest != cas.Digest(h.Sum(nil)) || info.Size != size {
		t.Fatalf("Put: %+v", info)
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	t.Logf("Put: %.0f MB/s, heap in use peak +%.1f MiB, allocated %.1f MiB in all (%d chunks)",
		size/elapsed.Seconds()/1e6, mib(peak-before.HeapInuse), mib(m.TotalAlloc-before.TotalAlloc), info.Chunks)
	if peak > before.HeapInuse+bound {
		t.Errorf("Put: heap in use grew by %.1f MiB, bound %d MiB", mib(peak-before.HeapInuse), bound>>20)
	}

	before = base()
	stop = heapPeak()
	start = time.Now()
	r, err := s.Open(ctx, info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r) // verifies every chunk and the digest
	r.Close()
	if err != nil || n != size {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	elapsed = time.Since(start)
	peak = stop()
	runtime.ReadMemStats(&m)
	t.Logf("Get: %.0f MB/s, heap in use peak +%.1f MiB, allocated %.1f MiB in all",
		size/elapsed.Seconds()/1e6, mib(peak-before.HeapInuse), mib(m.TotalAlloc-before.TotalAlloc))
	if peak > before.HeapInuse+bound {
		t.Errorf("Get: heap in use grew by %.1f MiB, bound %d MiB", mib(peak-before.HeapInuse), bound>>20)
	}
}
