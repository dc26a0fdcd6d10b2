package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// TestMetrics: every append is timed once, every appended event is in
// exactly one group commit, and the histograms are cumulative.
func TestMetrics(t *testing.T) {
	l := ledgertest.Open(t)
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.DefineJob(context.Background(), fmt.Sprintf("job-%d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	m := l.Metrics()
	if m.AppendSeconds.Count != n || m.AppendSeconds.Sum <= 0 {
		t.Fatalf("append latency: %+v", m.AppendSeconds)
	}
	if m.BatchSize.Sum != n || m.BatchSize.Count < 1 || m.BatchSize.Count > n {
		t.Fatalf("batch sizes: %+v", m.BatchSize)
	}
	for _, h := range [...]struct {
		name string
		c    []uint64
		all  uint64
	}{{"append", m.AppendSeconds.Counts, m.AppendSeconds.Count}, {"batch", m.BatchSize.Counts, m.BatchSize.Count}} {
		for i := 1; i < len(h.c); i++ {
			if h.c[i] < h.c[i-1] || h.c[i] > h.all {
				t.Fatalf("%s buckets not cumulative: %v of %d", h.name, h.c, h.all)
			}
		}
	}
	if m.QueueDepth != 0 {
		t.Fatalf("queue depth %d with nothing appending", m.QueueDepth)
	}
}
