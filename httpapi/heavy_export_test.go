package httpapi

// CompareCacheHits reports how many comparisons s answered from its cache.
func CompareCacheHits(s *Server) uint64 { return s.limits.compareHits.Load() }

// HoldHeavyReads takes every heavy-read slot of s, as that many slow
// comparisons would, until release is called.
func HoldHeavyReads(s *Server) (release func()) {
	for range cap(s.limits.heavy) {
		s.limits.heavy <- struct{}{}
	}
	return func() {
		for range cap(s.limits.heavy) {
			<-s.limits.heavy
		}
	}
}

// HoldStreams takes every download slot of s until release is called.
func HoldStreams(s *Server) (release func()) {
	for range cap(s.limits.streams) {
		s.limits.streams <- struct{}{}
	}
	return func() {
		for range cap(s.limits.streams) {
			<-s.limits.streams
		}
	}
}

// ComparisonsComputed reports how many comparisons s computed (rather
// than answered from its cache or from another request's computation).
func ComparisonsComputed(s *Server) uint64 { return s.limits.diffsRun.Load() }

// SetCompareHooks makes s call onCompute when a request starts computing
// a comparison and onWait when one waits for another's.
func SetCompareHooks(s *Server, onCompute, onWait func()) {
	s.limits.onCompute, s.limits.onWait = onCompute, onWait
}
