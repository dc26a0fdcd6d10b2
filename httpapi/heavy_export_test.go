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

// SetClientHashPage makes the client ask for reverse lookup pages of n
// hits until restore is called.
func SetClientHashPage(n int) (restore func()) {
	old := clientHashPage
	clientHashPage = n
	return func() { clientHashPage = old }
}
