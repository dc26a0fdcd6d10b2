package httpapi

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi/viz"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/orb"
)

// Visualizations (package viz) are computed off the request path, one at
// a time, and cached by what they are computed from (the binary's or the
// opam switch's digest), as builder-web caches them by input: a page shows
// a cached one, or says it is being computed and starts that.

// Bounds of a visualization's input.
const (
	maxVizBinary = 1 << 30  // bytes of a binary copied to a temporary file for its symbols
	maxVizSwitch = 16 << 20 // bytes of an opam-switch file
	vizTimeout   = 2 * time.Minute
)

type vizKind string

const (
	vizTreemap vizKind = "treemap"
	vizDeps    vizKind = "dependencies"
)

type vizKey struct {
	kind vizKind
	d    cas.Digest
	root string // dependencies: the root package
}

// vizResult is a finished visualization: an SVG, or why there is none.
type vizResult struct {
	SVG     template.HTML
	Summary string
	Err     string
}

// vizState is a visualization as a page shows it.
type vizState struct {
	vizResult
	Pending bool // being computed
	None    string
}

type vizCache struct {
	mu      sync.Mutex
	done    *lru.Cache[vizKey, vizResult]
	pending map[vizKey]bool
	slot    chan struct{} // one computation at a time
}

// maxVizResult bounds a kept visualization's SVG (the treemap draws at
// most 30×15 boxes, the graph at most viz.MaxEdges edges); with
// vizCacheEntries the cache holds at most 128 MiB.
const (
	maxVizResult    = 1 << 20
	vizCacheEntries = 128
)

func newVizCache() *vizCache {
	c, _ := lru.New[vizKey, vizResult](vizCacheEntries)
	return &vizCache{done: c, pending: map[vizKey]bool{}, slot: make(chan struct{}, 1)}
}

// get returns the cached visualization of k, or starts computing it.
func (s *Server) viz(k vizKey) vizState {
	c := s.vizzes
	if r, ok := c.done.Get(k); ok {
		return vizState{vizResult: r}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.done.Get(k); ok {
		return vizState{vizResult: r}
	}
	if !c.pending[k] {
		if len(c.pending) >= 64 {
			return vizState{Pending: true} // a backlog: asked for again on a later view
		}
		c.pending[k] = true
		go s.computeViz(k)
	}
	return vizState{Pending: true}
}

func (s *Server) computeViz(k vizKey) {
	c := s.vizzes
	c.slot <- struct{}{}
	defer func() { <-c.slot }()
	ctx, cancel := context.WithTimeout(context.Background(), vizTimeout)
	defer cancel()
	r, err := s.vizComputeSafely(ctx, k)
	if err == nil && len(r.SVG) > maxVizResult {
		r, err = vizResult{}, fmt.Errorf("%w: its drawing would take %d bytes, more than %d", errVizInput, len(r.SVG), maxVizResult)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, k)
	switch {
	case err == nil:
		c.done.Add(k, r)
	case errors.Is(err, errVizInput):
		c.done.Add(k, vizResult{Err: err.Error()}) // it will not change
	default:
		s.cfg.Logger.Warn("visualization", "kind", k.kind, "sha256", k.d, "err", err) // a later view tries again
	}
}

// vizComputeSafely is vizCompute, with a panic (of a parser, on a crafted
// file) turned into a refusal of the input: it runs on its own goroutine,
// where a panic would end the server.
func (s *Server) vizComputeSafely(ctx context.Context, k vizKey) (r vizResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.cfg.Logger.Error("visualization panicked", "kind", k.kind, "sha256", k.d, "panic", p)
			r, err = vizResult{}, fmt.Errorf("%w: the input could not be read", errVizInput)
		}
	}()
	return s.vizCompute(ctx, k)
}

// errVizInput marks an input that has no visualization (not ELF, too
// large, not a switch export): cached, since it will not change.
var errVizInput = errors.New("no visualization")

func (s *Server) vizCompute(ctx context.Context, k vizKey) (vizResult, error) {
	switch k.kind {
	case vizTreemap:
		f, err := os.CreateTemp("", "buildledger-viz-*")
		if err != nil {
			return vizResult{}, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		blob, err := s.cfg.Ledger.Store().Open(ctx, k.d)
		if err != nil {
			return vizResult{}, err
		}
		n, err := io.Copy(f, io.LimitReader(blob, maxVizBinary+1))
		blob.Close()
		if err != nil {
			return vizResult{}, err
		}
		if n > maxVizBinary {
			return vizResult{}, fmt.Errorf("%w: the binary is larger than %d bytes", errVizInput, maxVizBinary)
		}
		comp, err := viz.ELFComposition(f, n)
		if err != nil {
			return vizResult{}, fmt.Errorf("%w: %v", errVizInput, err)
		}
		sum := fmt.Sprintf("%d bytes; its symbols account for %d (%.1f%%) in %d libraries; the rest (headers, string and debug sections) is not attributed.",
			comp.FileSize, comp.Attributed, 100*float64(comp.Attributed)/float64(max(comp.FileSize, 1)), len(comp.Libraries))
		if comp.Attributed == 0 {
			sum = fmt.Sprintf("%d bytes and no symbol table (a stripped binary): nothing can be attributed.", comp.FileSize)
		}
		return vizResult{SVG: template.HTML(viz.TreemapSVG(comp, 960, 540)), Summary: sum}, nil
	case vizDeps:
		b, err := s.cfg.Ledger.Store().Bytes(ctx, k.d, maxVizSwitch)
		if errors.Is(err, cas.ErrTooLarge) {
			return vizResult{}, fmt.Errorf("%w: the opam-switch is larger than %d bytes", errVizInput, maxVizSwitch)
		}
		if err != nil {
			return vizResult{}, err
		}
		sw, err := orb.ParseSwitch(b)
		if err != nil {
			return vizResult{}, fmt.Errorf("%w: %v", errVizInput, err)
		}
		g, err := viz.Dependencies(sw, k.root)
		if err != nil && k.root != "" {
			g, err = viz.Dependencies(sw, "")
		}
		if err != nil {
			return vizResult{}, fmt.Errorf("%w: %v", errVizInput, err)
		}
		return vizResult{SVG: template.HTML(viz.GraphSVG(g, 800)),
			Summary: fmt.Sprintf("%s and its dependencies: %d installed packages.", g.Root, len(g.Packages))}, nil
	}
	return vizResult{}, fmt.Errorf("%w: unknown kind %q", errVizInput, k.kind)
}

// buildVizzes returns the visualizations of build b: the treemap of its
// main binary's ELF symbols (of BINARY.debug when the build has one: the
// symbols a stripped binary lacks) and the dependency graph of its
// opam-switch.
func (s *Server) buildVizzes(b *ledger.BuildRecorded) (treemap, deps vizState) {
	treemap.None, deps.None = "This build has no main binary.", "This build recorded no opam-switch."
	if b.MainBinary != nil {
		if a, ok := b.Artifact(*b.MainBinary); ok {
			if dbg, ok := b.Artifact(strings.TrimSuffix(a.Path, ".hvt") + ".debug"); ok {
				a = dbg
			}
			treemap = s.viz(vizKey{kind: vizTreemap, d: a.SHA256})
		}
	}
	if b.Inputs.OpamSwitch != nil {
		deps = s.viz(vizKey{kind: vizDeps, d: *b.Inputs.OpamSwitch, root: b.Job})
	}
	return treemap, deps
}

// vizPage serves a build's visualization alone (builder-web's
// /viztreemap and /vizdependencies): 200 with the SVG in a page, or 503
// with Retry-After while it is computed.
func (s *Server) vizPage(kind vizKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := s.lookupBuild(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		tm, deps := s.buildVizzes(b.Event)
		st := tm
		if kind == vizDeps {
			st = deps
		}
		switch {
		case st.Pending:
			s.fail(w, r, &Error{Status: http.StatusServiceUnavailable, RetryAfter: 2 * time.Second,
				Msg: fmt.Sprintf("the %s of build %s is being computed; retry in a moment", kind, b.Event.UUID)})
			return
		case st.SVG == "" && st.Err == "":
			s.fail(w, r, fmt.Errorf("%s: %w", st.None, ledger.ErrNotFound))
			return
		}
		s.renderHTML(w, r, "viz", struct {
			Build *ledger.BuildRecorded
			Kind  vizKind
			State vizState
		}{b.Event, kind, st})
	}
}
