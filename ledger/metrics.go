package ledger

import (
	"sync/atomic"
	"time"
)

// Metrics is a snapshot of the ledger's work since Open, for monitoring
// (httpapi exports it in the Prometheus format). TestMetrics checks it.
type Metrics struct {
	// AppendSeconds is the time Append, DefineJob and RecordBuild took,
	// waiting for the group commit included (refused appends too).
	AppendSeconds Histogram
	// BatchSize is the number of appends each group commit took.
	BatchSize Histogram
	// QueueDepth is the number of appends waiting for the committer.
	QueueDepth int
	// LSMBytes and VLogBytes are the database's size on disk as badger
	// last computed it (about once a minute): the CAS, the log and the
	// projections together.
	LSMBytes, VLogBytes int64
}

// Histogram is a cumulative histogram of observations.
type Histogram struct {
	Bounds []float64 // upper bounds of the buckets, ascending
	Counts []uint64  // Counts[i]: observations ≤ Bounds[i]
	Count  uint64    // all observations
	Sum    float64   // their sum
}

// Metrics returns the ledger's metrics.
func (l *Ledger) Metrics() Metrics {
	lsm, vlog := l.db.Size()
	return Metrics{
		AppendSeconds: l.stats.append.snapshot(appendBounds, 1e-9),
		BatchSize:     l.stats.batch.snapshot(batchBounds, 1),
		QueueDepth:    len(l.reqs),
		LSMBytes:      lsm,
		VLogBytes:     vlog,
	}
}

var (
	appendBounds = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	batchBounds  = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
)

// stats is the ledger's counters; the zero value is ready.
type stats struct {
	append histogram // nanoseconds
	batch  histogram // requests
}

// now is the start of a timed operation: `defer l.stats.appended(now())`.
func now() time.Time { return time.Now() }

func (s *stats) appended(start time.Time) {
	d := time.Since(start)
	s.append.observe(appendBounds, d.Seconds(), int64(d))
}

func (s *stats) committed(n int) { s.batch.observe(batchBounds, float64(n), int64(n)) }

// histogram counts observations into buckets (at most 16 bounds); the sum
// is kept as an integer in the unit the caller chose.
type histogram struct {
	counts [17]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Int64
}

func (h *histogram) observe(bounds []float64, v float64, units int64) {
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(units)
}

func (h *histogram) snapshot(bounds []float64, unit float64) Histogram {
	out := Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds))}
	var c uint64
	for i := range bounds {
		c += h.counts[i].Load()
		out.Counts[i] = c
	}
	out.Count = c + h.counts[len(bounds)].Load()
	out.Sum = float64(h.sum.Load()) * unit
	return out
}
