package httpapi

import (
	"net/http"
	"time"
)

// ReplicaState is a read replica's progress.
type ReplicaState struct {
	// PrimarySize is the size of the newest checkpoint of the primary the
	// replica has seen (verified); 0 before the first.
	PrimarySize uint64
	// Size is how many entries the replica holds.
	Size uint64
	// LastSync is when the replica last caught up with the primary; zero
	// before the first time.
	LastSync time.Time
}

// Lag is how many entries the replica is behind the primary's newest
// checkpoint it has seen.
func (s ReplicaState) Lag() uint64 {
	if s.PrimarySize > s.Size {
		return s.PrimarySize - s.Size
	}
	return 0
}

// Follower reports a read replica's progress to /readyz and /metrics; a
// *replica.Replica is one. State must be safe for concurrent use.
type Follower interface {
	State() ReplicaState
}

// healthz serves GET /healthz: the process is up and serving HTTP.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte("ok\n"))
}

// readiness returns why the server should not take traffic, or nil: the
// ledger failed (Ledger.Err), or, for a read replica, it holds no
// checkpoint of its primary yet or is further behind than MaxReplicaLag.
func (s *Server) readiness() []string {
	var why []string
	l := s.cfg.Ledger
	if err := l.Err(); err != nil {
		why = append(why, "the ledger is unavailable after a storage failure")
	}
	if s.cfg.Primary != "" {
		if cp := l.Checkpoint(); cp == nil || cp.Note == nil {
			why = append(why, "the replica holds no checkpoint of its primary yet")
		}
		if s.cfg.Replica != nil {
			st := s.cfg.Replica.State()
			if lag := st.Lag(); lag > s.cfg.MaxReplicaLag {
				why = append(why, sprintf("the replica is %d entries behind its primary (at most %d allowed)", lag, s.cfg.MaxReplicaLag))
			}
		}
	}
	return why
}

// readyz serves GET /readyz: 200 when the server can answer as it should,
// 503 (with the reasons) when it cannot; see readiness. TestReadyz.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	why := s.readiness()
	w.Header().Set("Cache-Control", "no-store")
	if len(why) == 0 {
		if wantsJSON(r) {
			writeJSON(w, http.StatusOK, map[string]any{"ready": true})
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ready\n"))
		return
	}
	w.Header().Set("Retry-After", "5")
	if wantsJSON(r) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reasons": why})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	for _, reason := range why {
		w.Write([]byte("not ready: " + reason + "\n"))
	}
}
