package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
)

// ArtifactView is one output file of a build.
type ArtifactView struct {
	Path   string     `json:"path"`
	SHA256 cas.Digest `json:"sha256"`
	Size   int64      `json:"size"`
}

// BuildSummary is a build as listed on job pages.
type BuildSummary struct {
	Job        string        `json:"job"`
	UUID       uuid.UUID     `json:"uuid"`
	Platform   string        `json:"platform"`
	Started    time.Time     `json:"start_time"`
	Finished   time.Time     `json:"finish_time"`
	Result     string        `json:"result"`
	Succeeded  bool          `json:"succeeded"`
	MainBinary *ArtifactView `json:"main_binary"`
	LogIndex   uint64        `json:"log_index"`
}

// BuildView is the build page.
type BuildView struct {
	BuildSummary
	Script       cas.Digest        `json:"script"`
	Console      cas.Digest        `json:"console"`
	Inputs       ledger.Inputs     `json:"inputs"`
	InputID      cas.Digest        `json:"input_id"`
	Artifacts    []ArtifactView    `json:"artifacts"`
	ReproducedBy []BuildSummary    `json:"reproduced_by"`
	Differs      []BuildSummary    `json:"same_input_different_output"`
	Attestations []AttestationInfo `json:"attestations"`
	// AttestedBy names the distinct keys that attested a reproduction of
	// this build; DisputedBy those that got other bytes (a key in both
	// contradicted itself).
	AttestedBy    []string   `json:"attested_by"`
	DisputedBy    []string   `json:"disputed_by"`
	Checkpoint    string     `json:"checkpoint"`
	EventSHA256   cas.Digest `json:"event_sha256"`
	EventLeafHash []byte     `json:"leaf_hash"`
}

// attestedBy sorts the keys of a build's attestations into those that
// reproduced it and those that did not, each key once, by name (or id).
func attestedBy(atts []AttestationInfo) (agree, disagree []string) {
	seen := map[string]bool{}
	agree, disagree = []string{}, []string{}
	for _, a := range atts {
		name := a.KeyName
		if name == "" {
			name = a.KeyID.String()
		}
		if a.KeyName != "" && a.KeyStatus != ledger.KeyStatusActive {
			name += " (" + string(a.KeyStatus) + ", " + a.KeyID.String()[:8] + ")"
		}
		k := string(a.Verdict) + "\x00" + a.KeyID.String()
		if seen[k] {
			continue
		}
		seen[k] = true
		if a.Verdict == ledger.VerdictReproduced {
			agree = append(agree, name)
		} else {
			disagree = append(disagree, name)
		}
	}
	slices.Sort(agree)
	slices.Sort(disagree)
	return agree, disagree
}

func summary(e ledger.BuildEntry) BuildSummary {
	b := e.Event
	s := BuildSummary{Job: b.Job, UUID: b.UUID, Platform: b.Platform, Started: b.Started, Finished: b.Finished,
		Result: b.Result.String(), Succeeded: b.Succeeded(), LogIndex: e.Index}
	if b.MainBinary != nil {
		a, _ := b.Artifact(*b.MainBinary)
		s.MainBinary = &ArtifactView{a.Path, a.SHA256, a.Size}
	}
	return s
}

func summaries(es []ledger.BuildEntry) []BuildSummary {
	out := make([]BuildSummary, 0, len(es))
	for _, e := range es {
		out = append(out, summary(e))
	}
	return out
}

// JobView is a job with its builds.
type JobView struct {
	Job      string         `json:"job"`
	Synopsis string         `json:"synopsis"`
	Section  string         `json:"section"`
	Builds   []BuildSummary `json:"builds"`
}

// JobListing is the front page.
type JobListing struct {
	Jobs []JobLatest `json:"jobs"`
}

// JobLatest is a job with its latest successful build per platform.
type JobLatest struct {
	Job      string         `json:"name"`
	Synopsis string         `json:"synopsis"`
	Section  string         `json:"section"`
	Latest   []BuildSummary `json:"latest"`
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	jobs, err := s.cfg.Ledger.Jobs()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := JobListing{Jobs: []JobLatest{}}
	for _, j := range jobs {
		builds, err := s.cfg.Ledger.JobBuilds(j.Event.Job, ledger.BuildFilter{})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		jl := JobLatest{Job: j.Event.Job, Synopsis: j.Event.Synopsis, Section: j.Event.Section, Latest: []BuildSummary{}}
		seen := map[string]bool{}
		for _, b := range builds {
			if b.Event.Succeeded() && b.Event.MainBinary != nil && !seen[b.Event.Platform] {
				seen[b.Event.Platform] = true
				jl.Latest = append(jl.Latest, summary(b))
			}
		}
		out.Jobs = append(out.Jobs, jl)
	}
	s.render(w, r, "index", out)
}

func (s *Server) job(failed bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := mux.Vars(r)["job"]
		j, err := s.cfg.Ledger.Job(name)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		builds, err := s.cfg.Ledger.JobBuilds(name, ledger.BuildFilter{Platform: r.URL.Query().Get("platform")})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		v := JobView{Job: name, Synopsis: j.Event.Synopsis, Section: j.Event.Section, Builds: []BuildSummary{}}
		for _, b := range builds {
			if failed || b.Event.Succeeded() {
				v.Builds = append(v.Builds, summary(b))
			}
		}
		s.render(w, r, "job", v)
	}
}

func (s *Server) failedBuilds(w http.ResponseWriter, r *http.Request) {
	start, err := uintParam(r, "start", 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	count, err := uintParam(r, "count", 20)
	if err != nil || count > 1000 {
		s.fail(w, r, badRequest("count must be 0 to 1000"))
		return
	}
	builds, err := s.cfg.Ledger.FailedBuilds(ledger.BuildFilter{Platform: r.URL.Query().Get("platform"), Skip: int(start), Limit: int(count)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, "failed", struct {
		Builds []BuildSummary `json:"builds"`
	}{summaries(builds)})
}

// lookupBuild resolves {job}/{uuid} (or "latest") from the route.
func (s *Server) lookupBuild(r *http.Request) (ledger.BuildEntry, error) {
	v := mux.Vars(r)
	id, err := uuid.Parse(v["uuid"])
	if err != nil || len(v["uuid"]) != 36 {
		return ledger.BuildEntry{}, badRequest("%q is not a build UUID", v["uuid"])
	}
	b, err := s.cfg.Ledger.Build(id)
	if err != nil {
		return b, err
	}
	if b.Event.Job != v["job"] {
		return b, &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("build %s belongs to job %q, not %q", id, b.Event.Job, v["job"])}
	}
	return b, nil
}

func (s *Server) build(w http.ResponseWriter, r *http.Request) {
	b, err := s.lookupBuild(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data, err := s.cfg.Ledger.EventBytes(b.Index)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v := BuildView{
		BuildSummary: summary(b), Script: b.Event.Script, Console: b.Event.Console,
		Inputs: b.Event.Inputs, InputID: b.Event.InputID, Artifacts: []ArtifactView{},
		Attestations: []AttestationInfo{}, Checkpoint: string(s.cfg.Ledger.Checkpoint().Note),
		EventSHA256: cas.Sum(data),
	}
	leaf := leafHash(data)
	v.EventLeafHash = leaf[:]
	for _, a := range b.Event.Artifacts {
		v.Artifacts = append(v.Artifacts, ArtifactView{a.Path, a.SHA256, a.Size})
	}
	rp, err := s.cfg.Ledger.ReproductionsOf(b)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v.ReproducedBy, v.Differs = summaries(rp.Same), summaries(rp.Different)
	atts, err := s.cfg.Ledger.AttestationsOf(b.Event.UUID)
	if err == nil {
		v.Attestations, err = s.attestationInfos(atts, s.cfg.Ledger.Checkpoint().Size)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v.AttestedBy, v.DisputedBy = attestedBy(v.Attestations)
	s.render(w, r, "build", v)
}

// buildByUUID redirects /build/U to the build's page under its job, for
// clients that know only the UUID.
func (s *Server) buildByUUID(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(mux.Vars(r)["uuid"])
	if err != nil {
		s.fail(w, r, badRequest("%q is not a build UUID", mux.Vars(r)["uuid"]))
		return
	}
	b, err := s.cfg.Ledger.Build(id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Vary", "Accept")
	http.Redirect(w, r, buildURL(b.Event.Job, id), http.StatusTemporaryRedirect)
}

// latest redirects /job/J/build/latest[/REST] to the newest successful
// build with a main binary (on ?platform= if given), keeping REST, with 307
// as builder-web does.
func (s *Server) latest(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	if _, err := s.cfg.Ledger.Job(v["job"]); err != nil {
		s.fail(w, r, err)
		return
	}
	platform := r.URL.Query().Get("platform")
	builds, err := s.cfg.Ledger.JobBuilds(v["job"], ledger.BuildFilter{Platform: platform})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, b := range builds {
		if b.Event.Succeeded() && b.Event.MainBinary != nil {
			target := buildURL(b.Event.Job, b.Event.UUID)
			if rest := v["rest"]; rest != "" {
				target += "/" + rest
			}
			http.Redirect(w, r, target, http.StatusTemporaryRedirect)
			return
		}
	}
	msg := fmt.Sprintf("job %q has no successful build", v["job"])
	if platform != "" {
		msg += " on platform " + platform
	}
	s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: msg})
}

func (s *Server) mainBinary(w http.ResponseWriter, r *http.Request) {
	b, err := s.lookupBuild(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if b.Event.MainBinary == nil {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("build %s has no main binary", b.Event.UUID)})
		return
	}
	http.Redirect(w, r, buildURL(b.Event.Job, b.Event.UUID)+"/f/"+escapePath(*b.Event.MainBinary), http.StatusFound)
}

// artifact serves /job/J/build/U/f/PATH from the CAS: ETag is the quoted
// SHA-256 (If-None-Match gives 304), Range requests work, and the content
// type follows builder-web (text/plain for orb's text files).
func (s *Server) artifact(w http.ResponseWriter, r *http.Request) {
	b, err := s.lookupBuild(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := mux.Vars(r)["path"]
	a, ok := b.Event.Artifact(p)
	if !ok {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("build %s has no file %q", b.Event.UUID, p)})
		return
	}
	s.serveBlob(w, r, a.SHA256, contentType(p))
}

func (s *Server) console(w http.ResponseWriter, r *http.Request) {
	b, err := s.lookupBuild(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.serveBlob(w, r, b.Event.Console, "text/plain; charset=utf-8")
}

func (s *Server) script(w http.ResponseWriter, r *http.Request) {
	b, err := s.lookupBuild(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.serveBlob(w, r, b.Event.Script, "text/plain; charset=utf-8")
}

// escapePath escapes each segment of a slash-separated path for a URL.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// erringReader remembers the first error other than io.EOF.
type erringReader struct {
	io.ReadSeeker
	err error
}

func (e *erringReader) Read(p []byte) (int, error) {
	n, err := e.ReadSeeker.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, d cas.Digest, ctype string) {
	blob, err := s.cfg.Ledger.Store().Open(r.Context(), d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer blob.Close()
	rd := &erringReader{ReadSeeker: blob}
	defer func() {
		// Headers are gone by now: abort the response so the client sees
		// a truncated transfer, never a complete one with wrong bytes.
		var ie *cas.IntegrityError
		if errors.As(rd.err, &ie) {
			s.cfg.Logger.Error("stored blob failed verification while serving", "path", r.URL.Path, "err", rd.err)
			panic(http.ErrAbortHandler)
		}
	}()
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("ETag", `"`+d.String()+`"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Uploaded files are untrusted: never let one run script on this origin.
	w.Header().Set("Content-Security-Policy", "sandbox")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", time.Time{}, rd)
}

func contentType(p string) string {
	base := path.Base(p)
	switch {
	case base == "build-environment" || base == "opam-switch" || base == "system-packages" || strings.HasSuffix(base, ".build-hashes"):
		return "text/plain; charset=utf-8"
	case strings.HasPrefix(p, "bin/"):
		return "application/octet-stream"
	}
	if t := mime.TypeByExtension(path.Ext(base)); t != "" && !strings.HasPrefix(t, "text/html") {
		return t
	}
	return "application/octet-stream"
}
