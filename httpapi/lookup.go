package httpapi

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi/api"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/tree"
)

func errorsIsRange(err error) bool { return errors.Is(err, tree.ErrRange) }

// Reverse lookups are paged by log index: GET /hash?sha256=D&after=I&limit=N
// answers the entries after log index I (from the start without after=),
// at most N hits (builds, attestations and disputes together; default
// hashPage, at most maxHashPage), never splitting the hits of one log
// entry. The work and the answer are bounded by the page, not by how often
// the digest was built (a digest in 16,500 builds answered 3.7 MB at
// once). TestHashPaging.
const (
	hashPage    = 1000
	maxHashPage = api.MaxHashPage
)

// hashParams reads after= and limit=; paged reports whether either was
// given.
func hashParams(q url.Values) (from uint64, limit int, paged bool, err error) {
	if a := q.Get("after"); a != "" {
		after, err := strconv.ParseUint(a, 10, 64)
		if err != nil || after == math.MaxUint64 {
			return 0, 0, false, badRequest("after=%q: give the log index of the last entry seen (the next member of the previous page)", a)
		}
		from, paged = after+1, true
	}
	limit = hashPage
	if l := q.Get("limit"); l != "" {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil || n < 1 || n > maxHashPage {
			return 0, 0, false, badRequest("limit=%q: give a page size from 1 to %d, and after= to page", l, maxHashPage)
		}
		limit, paged = int(n), true
	}
	return from, limit, paged, nil
}

// hash is the reverse hash lookup. HTML clients (albatross, browsers) get a
// redirect to the newest build containing the digest, as from builder-web,
// unless they ask for a page (after= or limit=), which lists the builds;
// JSON clients get a page of the builds and paths carrying it, with
// attestations.
func (s *Server) hash(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	q := query.Get("sha256")
	if q == "" {
		s.fail(w, r, badRequest("give the digest as /hash?sha256=<64 hex digits>"))
		return
	}
	d, err := cas.ParseDigest(q)
	if err != nil {
		s.fail(w, r, badRequest("sha256=%q: %v", q, err))
		return
	}
	from, limit, paged, err := hashParams(query)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	notFound := func() error {
		return &Error{Status: http.StatusNotFound, Msg: "no recorded build produced an artifact with SHA-256 " + d.String()}
	}
	asJSON := wantsJSON(r)
	if !asJSON && !paged {
		// One point read however many builds share the digest.
		newest, err := s.cfg.Ledger.NewestBuildWith(d)
		if errors.Is(err, ledger.ErrNotFound) {
			s.fail(w, r, notFound())
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, buildURL(newest.Job, newest.UUID), http.StatusFound)
		return
	}
	cp := s.cfg.Ledger.Checkpoint()
	info, next, err := s.cfg.Ledger.HashPage(d, from, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := HashLookup{SHA256: d, Builds: make([]HashHit, 0, len(info.Builds)), Attestations: []AttestationInfo{}, Checkpoint: string(cp.Note)}
	for _, h := range info.Builds {
		if h.Index >= cp.Size {
			continue // newer than the checkpoint we answer with
		}
		out.Builds = append(out.Builds, HashHit{
			Job: h.Job, UUID: h.UUID, Platform: h.Platform, Started: h.Started, Finished: h.Finished,
			LogIndex: h.Index, Path: h.Path, Size: h.Size, MainBinary: h.MainBinary,
		})
	}
	if from == 0 && len(out.Builds) == 0 {
		// A digest's first entry is a build (an attestation names a
		// recorded artifact), so an empty first page means none.
		s.fail(w, r, notFound())
		return
	}
	if out.Attestations, err = s.attestationInfos(info.Attestations, cp.Size); err == nil {
		out.Disputes, err = s.attestationInfos(info.Disputes, cp.Size)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if next != 0 && next < cp.Size {
		after := next - 1
		out.Next = &after
	}
	if !asJSON {
		s.render(w, r, "hash", out)
		return
	}
	// The JSON answer, written without reflection into a pooled buffer
	// around the checkpoint encoded once.
	buf := jsonBuffers.Get().(*[]byte)
	defer jsonBuffers.Put(buf)
	b, err := out.AppendJSON((*buf)[:0], s.checkpointJSON(cp))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	*buf = append(b, '\n')
	w.Header().Set("Vary", "Accept")
	w.Header().Set("Content-Type", "application/json")
	w.Write(*buf)
}

var jsonBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// encodedCheckpoint is a checkpoint's note as a JSON string.
type encodedCheckpoint struct {
	cp   *ledger.Checkpoint
	json []byte
}

// checkpointJSON returns cp's note as a JSON string, encoding it once per
// checkpoint.
func (s *Server) checkpointJSON(cp *ledger.Checkpoint) []byte {
	if e := s.cpJSON.Load(); e != nil && e.cp == cp {
		return e.json
	}
	j, err := json.Marshal(string(cp.Note))
	if err != nil {
		return nil
	}
	s.cpJSON.Store(&encodedCheckpoint{cp: cp, json: j})
	return j
}
