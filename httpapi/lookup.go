package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger/tree"
)

func errorsIsRange(err error) bool { return errors.Is(err, tree.ErrRange) }

// HashHit is one build artifact carrying a looked-up digest.
type HashHit struct {
	Job        string    `json:"job"`
	UUID       uuid.UUID `json:"uuid"`
	Platform   string    `json:"platform"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	LogIndex   uint64    `json:"log_index"`
	Path       string    `json:"path"`
	Size       int64     `json:"size"`
	MainBinary bool      `json:"main_binary"`
}

// HashLookup is the JSON answer of GET /hash.
type HashLookup struct {
	SHA256       cas.Digest        `json:"sha256"`
	Builds       []HashHit         `json:"builds"`
	Attestations []AttestationInfo `json:"attestations"`
	// Disputes are "differs" attestations of builds that recorded this
	// digest: rebuilders that got other bytes.
	Disputes []AttestationInfo `json:"disputes"`
	// Checkpoint is the signed checkpoint the log indices refer to.
	Checkpoint string `json:"checkpoint"`
}

// hash is the reverse hash lookup. HTML clients (albatross, browsers) get a
// redirect to the newest build containing the digest, as from builder-web;
// JSON clients get every build and path carrying it, with attestations.
func (s *Server) hash(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("sha256")
	if q == "" {
		s.fail(w, r, badRequest("give the digest as /hash?sha256=<64 hex digits>"))
		return
	}
	d, err := cas.ParseDigest(q)
	if err != nil {
		s.fail(w, r, badRequest("sha256=%q: %v", q, err))
		return
	}
	cp := s.cfg.Ledger.Checkpoint()
	info, err := s.cfg.Ledger.Hash(d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	hits := info.Builds
	if len(hits) == 0 {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: "no recorded build produced an artifact with SHA-256 " + d.String()})
		return
	}
	if !wantsJSON(r) {
		newest := hits[0]
		for _, h := range hits[1:] {
			if h.Started.After(newest.Started) {
				newest = h
			}
		}
		http.Redirect(w, r, "/job/"+url.PathEscape(newest.Job)+"/build/"+newest.UUID.String(), http.StatusFound)
		return
	}
	out := HashLookup{SHA256: d, Builds: []HashHit{}, Attestations: []AttestationInfo{}, Checkpoint: string(cp.Note)}
	for _, h := range hits {
		if h.Index >= cp.Size {
			continue // newer than the checkpoint we answer with
		}
		out.Builds = append(out.Builds, HashHit{
			Job: h.Job, UUID: h.UUID, Platform: h.Platform, Started: h.Started, Finished: h.Finished,
			LogIndex: h.Index, Path: h.Path, Size: h.Size, MainBinary: h.MainBinary,
		})
	}
	if out.Attestations, err = s.attestationInfos(info.Attestations, cp.Size); err == nil {
		out.Disputes, err = s.attestationInfos(info.Disputes, cp.Size)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
