package httpapi

import (
	"fmt"
	"net/http"
	"slices"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Pages are a function of the log's prefix: the HTML of the front page,
// a job page or a build page (once its visualizations are computed) for
// a given request does not change while the log does not grow. They are
// kept, per request URI and log size, so a page read again costs a
// lookup; every append makes new keys, and old entries age out.

// pageCacheEntries and maxCachedPage bound the cache (at most 64 MiB).
const (
	pageCacheEntries = 256
	maxCachedPage    = 256 << 10
)

func newPageCache() *lru.Cache[string, []byte] {
	c, _ := lru.New[string, []byte](pageCacheEntries)
	return c
}

// pageKey is the cache key of an HTML page request at the log's current
// size and checkpoint, or "" (not kept) when the query has parameters
// other than known ones: the pages' links repeat them, and random ones
// must not push the others out.
func (s *Server) pageKey(r *http.Request, known ...string) string {
	for name := range r.URL.Query() {
		if !slices.Contains(known, name) {
			return ""
		}
	}
	return fmt.Sprintf("%d/%d %s", s.cfg.Ledger.Size(), s.cfg.Ledger.Checkpoint().Size, r.URL.RequestURI())
}

// cachedPage answers from the cache and reports whether it did.
func (s *Server) cachedPage(w http.ResponseWriter, key string) bool {
	if key == "" {
		return false
	}
	b, ok := s.pages.Get(key)
	if !ok {
		return false
	}
	w.Header().Set("Vary", "Accept")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b)
	return true
}

// renderCachedHTML renders an HTML page and keeps it under key.
func (s *Server) renderCachedHTML(w http.ResponseWriter, r *http.Request, key, page string, data any) {
	b, err := s.executeTemplate(page, data)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if key != "" && len(b) <= maxCachedPage {
		s.pages.Add(key, b)
	}
	w.Header().Set("Vary", "Accept")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b)
}
