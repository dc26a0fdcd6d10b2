package httpapi

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is a Server's Prometheus registry (one per Server, so many
// servers can run in one process) and the instruments the middleware
// updates. Everything else is read when scraped. TestMetrics parses
// GET /metrics with the Prometheus text parser.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec   // route, method, code
	duration *prometheus.HistogramVec // route
	handler  http.Handler
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "buildledger_http_requests_total",
		Help: "HTTP requests answered, by route template (\"unmatched\" for no route), method and status code.",
	}, []string{"route", "method", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "buildledger_http_request_duration_seconds",
		Help:    "Time from the request's arrival until its handler returned, by route template.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"route"})
	m.reg.MustRegister(m.requests, m.duration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&ledgerCollector{s: s})
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// observe counts one answered request.
func (m *metrics) observe(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, statusLabel(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

func statusLabel(code int) string {
	if code < 100 || code > 999 {
		return "other"
	}
	return string([]byte{byte('0' + code/100), byte('0' + code/10%10), byte('0' + code%10)})
}

// methodLabel keeps the method label's values few: a client chooses it.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch:
		return m
	}
	return "other"
}

// serveMetrics serves GET /metrics in the Prometheus exposition format.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	s.metrics.handler.ServeHTTP(w, r)
}

// ledgerCollector reads the ledger, the login guard and the replica when
// scraped.
type ledgerCollector struct{ s *Server }

var (
	descAppend = prometheus.NewDesc("buildledger_ledger_append_duration_seconds",
		"Time an append (upload, attestation, key change) took, waiting for its group commit included.", nil, nil)
	descBatch = prometheus.NewDesc("buildledger_ledger_commit_batch_size",
		"Appends decided by each group commit.", nil, nil)
	descQueue = prometheus.NewDesc("buildledger_ledger_commit_queue_depth",
		"Appends waiting for the committer.", nil, nil)
	descEntries = prometheus.NewDesc("buildledger_ledger_entries",
		"Entries in the log (the tree size).", nil, nil)
	descUnavailable = prometheus.NewDesc("buildledger_ledger_unavailable",
		"1 while the ledger refuses appends after a storage failure, else 0.", nil, nil)
	descStore = prometheus.NewDesc("buildledger_store_bytes",
		"Size of the database on disk (CAS blobs, log and projections) as badger last computed it, by part (lsm, vlog).", []string{"part"}, nil)
	descLoginFailures = prometheus.NewDesc("buildledger_login_failures_total",
		"Logins refused for a wrong user name or password.", nil, nil)
	descLoginRefused = prometheus.NewDesc("buildledger_login_refused_total",
		"Logins refused before their password was checked, by reason (rate_limited: 429, busy: 503).", []string{"reason"}, nil)
	descLoginCache = prometheus.NewDesc("buildledger_login_cache_hits_total",
		"Logins verified from the cache of recent successful logins, without hashing.", nil, nil)
	descHashes = prometheus.NewDesc("buildledger_login_password_hashes_total",
		"Passwords hashed (scrypt) to check logins.", nil, nil)
	descReplicaLag = prometheus.NewDesc("buildledger_replica_lag_entries",
		"Entries the replica is behind the newest checkpoint of its primary it has seen.", nil, nil)
	descReplicaPrimary = prometheus.NewDesc("buildledger_replica_primary_entries",
		"Size of the newest checkpoint of its primary the replica has seen.", nil, nil)
	descReplicaSync = prometheus.NewDesc("buildledger_replica_last_sync_timestamp_seconds",
		"When the replica last caught up with its primary (Unix time; 0: never).", nil, nil)
)

func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAppend, descBatch, descQueue, descEntries, descUnavailable, descStore,
		descLoginFailures, descLoginRefused, descLoginCache, descHashes, descReplicaLag, descReplicaPrimary, descReplicaSync} {
		ch <- d
	}
}

func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.s.cfg.Ledger
	m := l.Metrics()
	hist := func(d *prometheus.Desc, bounds []float64, counts []uint64, count uint64, sum float64) {
		b := make(map[float64]uint64, len(bounds))
		for i, ub := range bounds {
			b[ub] = counts[i]
		}
		ch <- prometheus.MustNewConstHistogram(d, count, sum, b)
	}
	hist(descAppend, m.AppendSeconds.Bounds, m.AppendSeconds.Counts, m.AppendSeconds.Count, m.AppendSeconds.Sum)
	hist(descBatch, m.BatchSize.Bounds, m.BatchSize.Counts, m.BatchSize.Count, m.BatchSize.Sum)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descQueue, float64(m.QueueDepth))
	gauge(descEntries, float64(l.Size()))
	unavailable := 0.0
	if l.Err() != nil {
		unavailable = 1
	}
	gauge(descUnavailable, unavailable)
	gauge(descStore, float64(m.LSMBytes), "lsm")
	gauge(descStore, float64(m.VLogBytes), "vlog")
	if g := c.s.logins; g != nil {
		st := g.Stats()
		counter(descLoginFailures, st.Failures)
		counter(descLoginRefused, st.Limited, "rate_limited")
		counter(descLoginRefused, st.Busy, "busy")
		counter(descLoginCache, st.CacheHits)
		counter(descHashes, st.Hashes)
	}
	if f := c.s.cfg.Replica; f != nil {
		st := f.State()
		gauge(descReplicaLag, float64(st.Lag()))
		gauge(descReplicaPrimary, float64(st.PrimarySize))
		var ts float64
		if !st.LastSync.IsZero() {
			ts = float64(st.LastSync.UnixNano()) / 1e9
		}
		gauge(descReplicaSync, ts)
	}
}
