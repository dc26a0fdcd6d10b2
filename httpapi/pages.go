package httpapi

import (
	"cmp"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"maps"
	"math"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi/api"
	"github.com/buildledger/buildledger/httpapi/viz"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/pkgrepo/publish"
	"github.com/buildledger/buildledger/vmm/solo5"
)

// attestedBy sorts the keys of a build's attestations into those that
// reproduced it, those that did not and those that say they built it (a
// build farm's claim, which is not a reproduction), each key once, by name
// (or id).
func attestedBy(atts []AttestationInfo) (agree, disagree, built []string) {
	seen := map[string]bool{}
	agree, disagree, built = []string{}, []string{}, []string{}
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
		switch a.Verdict {
		case ledger.VerdictReproduced:
			agree = append(agree, name)
		case ledger.VerdictBuilt:
			built = append(built, name)
		default:
			disagree = append(disagree, name)
		}
	}
	slices.Sort(agree)
	slices.Sort(disagree)
	slices.Sort(built)
	return agree, disagree, built
}

func summary(e ledger.BuildEntry) BuildSummary {
	b := e.Event
	s := BuildSummary{Job: b.Job, UUID: b.UUID, Platform: b.Platform, Started: b.Started, Finished: b.Finished,
		Result: b.Result.String(), Succeeded: b.Succeeded(), LogIndex: e.Index}
	if b.MainBinary != nil {
		a, _ := b.Artifact(*b.MainBinary)
		s.MainBinary = api.NewMainBinaryView(ArtifactView{Path: a.Path, SHA256: a.SHA256, Size: a.Size})
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

// JobListing is the front page (and /all-builds). Its members are a
// superset of builder-web's: "jobs" lists the jobs with a successful build,
// each with the newest one as "latest", and "jobs_by_section" the same jobs
// by section; jobs without a successful build, which builder-web does not
// list, are "jobs_without_success".
type JobListing struct {
	Jobs          []JobLatest            `json:"jobs"`
	JobsBySection map[string][]JobLatest `json:"jobs_by_section"`
	Unbuilt       []JobLatest            `json:"jobs_without_success"`
	Page
}

// JobLatest is a job with its latest successful build per platform.
type JobLatest struct {
	Job      string `json:"name"`
	Synopsis string `json:"synopsis"`
	Section  string `json:"section"`
	// Latest is the newest successful build on any platform (builder-web's
	// "latest"); null only among the jobs without success.
	Latest *LatestBuild `json:"latest"`
	// PerPlatform is the latest successful build on each platform, newest
	// first.
	PerPlatform []BuildSummary `json:"latest_per_platform"`
}

// LatestBuild is builder-web's "latest" of a job: {"uuid",
// "solo5_manifest", "solo5_abi"} with the build's summary added. The solo5
// members are the notes of the main binary (see Server.solo5), null for a
// binary without them, as builder-web's are.
type LatestBuild struct {
	BuildSummary
	Solo5Manifest json.RawMessage `json:"solo5_manifest"`
	Solo5ABI      json.RawMessage `json:"solo5_abi"`
}

// uncategorized is builder-web's section of jobs that have none.
const uncategorized = "Uncategorized"

// index lists the jobs (a page of them, by name) with their latest
// successful build per platform, read from the ledger's latest-build
// projection: one key per platform, whatever the number of builds. Both /
// and /all-builds answer it: builder-web's front page leaves out jobs
// without a build for 30 days, which this ledger does not.
func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	var key string
	if !wantsJSON(r) {
		if key = s.pageKey(r, "start", "count"); s.cachedPage(w, key) {
			return
		}
	}
	start, count, err := pageParams(r, maxPage)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	jobs, err := s.cfg.Ledger.Jobs()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	more := len(jobs) > start+count
	jobs = jobs[min(start, len(jobs)):min(start+count, len(jobs))]
	out := JobListing{Jobs: []JobLatest{}, JobsBySection: map[string][]JobLatest{}, Unbuilt: []JobLatest{}, Page: page(r, start, count, more)}
	for _, j := range jobs {
		latest, err := s.cfg.Ledger.LatestBuilds(j.Event.Job, true)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		// Newest first, as the page listed them before.
		slices.SortStableFunc(latest, func(a, b ledger.BuildEntry) int { return b.Event.Started.Compare(a.Event.Started) })
		jl := JobLatest{Job: j.Event.Job, Synopsis: j.Event.Synopsis, Section: j.Event.Section, PerPlatform: summaries(latest)}
		if len(latest) == 0 {
			out.Unbuilt = append(out.Unbuilt, jl)
			continue
		}
		jl.Latest = &LatestBuild{BuildSummary: jl.PerPlatform[0]}
		if m := jl.Latest.MainBinary; m != nil {
			n := s.solo5(r.Context(), m.SHA256)
			jl.Latest.Solo5Manifest, jl.Latest.Solo5ABI = n.Manifest, n.ABI
		}
		out.Jobs = append(out.Jobs, jl)
		section := cmp.Or(jl.Section, uncategorized)
		out.JobsBySection[section] = append(out.JobsBySection[section], jl)
	}
	if wantsJSON(r) {
		s.render(w, r, "index", out)
		return
	}
	ip := indexPage{JobListing: out}
	for _, name := range slices.Sorted(maps.Keys(out.JobsBySection)) {
		sec := indexSection{Name: name}
		for _, jl := range out.JobsBySection[name] {
			ij := indexJob{JobLatest: jl}
			for _, b := range jl.PerPlatform {
				row := indexRow{BuildSummary: b}
				if row.Agreeing, row.Disputing, err = s.attestationCounts(b.UUID); err != nil {
					s.fail(w, r, err)
					return
				}
				ij.Rows = append(ij.Rows, row)
			}
			sec.Jobs = append(sec.Jobs, ij)
		}
		ip.Sections = append(ip.Sections, sec)
	}
	s.renderCachedHTML(w, r, key, "index", ip)
}

// indexPage is the front page's HTML: its JSON (JobListing) and the jobs
// by section with the reproducibility of each latest build.
type indexPage struct {
	JobListing
	Sections []indexSection
}

type indexSection struct {
	Name string
	Jobs []indexJob
}

type indexJob struct {
	JobLatest
	Rows []indexRow
}

type indexRow struct {
	BuildSummary
	Agreeing, Disputing int // distinct keys that reproduced it, that got other bytes
}

// attestationCounts counts the distinct active keys whose attestations of
// build id, under the checkpoint, say it reproduced, and those that say
// they got other bytes. A revoked key counts for nothing.
func (s *Server) attestationCounts(id uuid.UUID) (agree, dispute int, err error) {
	atts, err := s.cfg.Ledger.AttestationsOf(id)
	if err != nil {
		return 0, 0, err
	}
	size := s.cfg.Ledger.Checkpoint().Size
	seen := map[string]bool{}
	for _, a := range atts {
		k := string(a.Event.Verdict) + a.Event.KeyID.String()
		if seen[k] || a.Index >= size {
			continue
		}
		if _, st := s.keyName(a.Event.KeyID); st != ledger.KeyStatusActive {
			continue
		}
		seen[k] = true
		switch a.Event.Verdict {
		case ledger.VerdictReproduced:
			agree++
		case ledger.VerdictDiffers:
			dispute++
		}
	}
	return agree, dispute, nil
}

// robotsTxt keeps crawlers off what builder-web's robots.txt keeps them
// off (files, logs, exec records, comparisons) and off this ledger's
// equivalents (blobs, tiles, proofs).
const robotsTxt = `User-agent: *
Disallow: /job/*/build/*/f/
Disallow: /job/*/build/*/main-binary
Disallow: /job/*/build/*/script
Disallow: /job/*/build/*/console
Disallow: /job/*/build/*/exec
Disallow: /compare/
Disallow: /blob/
Disallow: /tile/
Disallow: /proof/
`

func (s *Server) robots(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, robotsTxt)
}

// Pages of build lists: /job/J and /job/J/failed list jobPage builds by
// default, /failed-builds failedPage (builder-web's 20); count= may ask
// for 1 to maxPage. count=0, a negative count or one above maxPage is a
// 400 that says so (builder-web read count=0 as "all", which on a large
// ledger is a request that decodes every build).
const (
	jobPage    = 100
	failedPage = 20
	maxPage    = api.MaxPage
)

// pageParams reads start= and count= for a list of builds.
func pageParams(r *http.Request, def int) (start, count int, err error) {
	st, err := uintParam(r, "start", 0)
	if err != nil {
		return 0, 0, err
	}
	q := r.URL.Query().Get("count")
	n, perr := strconv.ParseInt(q, 10, 64)
	switch {
	case q == "":
		n = int64(def)
	case perr != nil || n < 1 || n > maxPage:
		return 0, 0, badRequest("count=%q: give a page size from 1 to %d, and start= to page through the list", q, maxPage)
	}
	if st > math.MaxInt32 {
		return 0, 0, badRequest("start=%d is beyond any list of builds", st)
	}
	return int(st), int(n), nil
}

// page returns the Page of a list read with Skip start and Limit count+1
// (the extra build tells whether there is a next page), with links that
// keep the request's other parameters.
func page(r *http.Request, start, count int, more bool) Page {
	p := Page{Start: start, Count: count}
	link := func(st int) string {
		q := r.URL.Query()
		q.Set("start", strconv.Itoa(st))
		q.Set("count", strconv.Itoa(count))
		return r.URL.EscapedPath() + "?" + q.Encode()
	}
	if more {
		p.Next = link(start + count)
	}
	if start > 0 {
		p.Prev = link(max(start-count, 0))
	}
	return p
}

// job lists a page of a job's builds, newest first. A page covers count
// builds of the job's list (on ?platform= if given); /job/J shows the
// successful ones among them, /job/J/failed all, so both page the same
// list with the same start=.
func (s *Server) job(failed bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var key string
		if !wantsJSON(r) {
			if key = s.pageKey(r, "start", "count", "platform"); s.cachedPage(w, key) {
				return
			}
		}
		name := mux.Vars(r)["job"]
		start, count, err := pageParams(r, jobPage)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		j, err := s.cfg.Ledger.Job(name)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		builds, err := s.cfg.Ledger.JobBuilds(name, ledger.BuildFilter{Platform: r.URL.Query().Get("platform"), Skip: start, Limit: count + 1})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		more := len(builds) > count
		v := JobView{Job: name, Synopsis: j.Event.Synopsis, Section: j.Event.Section, Builds: []BuildSummary{}, Page: page(r, start, count, more)}
		var shown []ledger.BuildEntry
		for _, b := range builds[:min(len(builds), count)] {
			if failed || b.Event.Succeeded() {
				v.Builds = append(v.Builds, summary(b))
				shown = append(shown, b)
			}
		}
		if wantsJSON(r) {
			s.render(w, r, "job", v)
			return
		}
		jp, err := s.jobPage(v, shown, failed, r.URL.Query().Get("platform"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if d := j.Event.Readme; d != nil {
			b, err := s.cfg.Ledger.Store().Bytes(r.Context(), *d, maxReadme)
			switch {
			case errors.Is(err, cas.ErrTooLarge):
				jp.Readme = fmt.Sprintf("(The job's README is larger than %d bytes; it is blob %s.)", maxReadme, d)
			case err != nil:
				s.fail(w, r, err)
				return
			default:
				jp.Readme = strings.ToValidUTF8(string(b), "\uFFFD")
			}
		}
		s.renderCachedHTML(w, r, key, "job", jp)
	}
}

// maxReadme bounds a job README shown on its page.
const maxReadme = 64 << 10

// jobPageData is the job page's HTML: its JSON (JobView) and what only
// the page shows.
type jobPageData struct {
	JobView
	Readme    string // the job's README, as text
	Rows      []jobRow
	Failed    bool
	Platform  string   // the filter, "" for all
	Platforms []string // the job's platforms
	Charts    []template.HTML
}

// jobRow is a build of the job page with the build before it on the same
// platform, to compare with.
type jobRow struct {
	BuildSummary
	Previous *BuildSummary
}

func (s *Server) jobPage(v JobView, shown []ledger.BuildEntry, failed bool, platform string) (jobPageData, error) {
	jp := jobPageData{JobView: v, Failed: failed, Platform: platform}
	latest, err := s.cfg.Ledger.LatestBuilds(v.Job, false)
	if err != nil {
		return jp, err
	}
	for _, b := range latest {
		jp.Platforms = append(jp.Platforms, b.Event.Platform)
	}
	for i, b := range shown {
		row := jobRow{BuildSummary: v.Builds[i]}
		// The previous build on its platform: further down this page, or
		// else a seek in the ledger.
		for _, o := range shown[i+1:] {
			if o.Event.Platform == b.Event.Platform && (failed || o.Event.Succeeded()) {
				ps := summary(o)
				row.Previous = &ps
				break
			}
		}
		if row.Previous == nil {
			n, err := s.cfg.Ledger.Neighbours(b)
			if err != nil {
				return jp, err
			}
			prev := n.Previous
			if !failed {
				prev = n.PreviousSucceeded
			}
			if prev != nil {
				ps := summary(*prev)
				row.Previous = &ps
			}
		}
		jp.Rows = append(jp.Rows, row)
	}
	// Main binary size and duration of the builds on this page, oldest
	// first.
	var sizes, durations []viz.Point
	for i := len(shown) - 1; i >= 0; i-- {
		b := v.Builds[i]
		href := "/job/" + url.PathEscape(b.Job) + "/build/" + b.UUID.String()
		label := b.Started.UTC().Format("2006-01-02 15:04") + " " + b.Platform
		if b.MainBinary != nil {
			sizes = append(sizes, viz.Point{Time: b.Started, Value: float64(b.MainBinary.Size), Label: label, Href: href})
		}
		durations = append(durations, viz.Point{Time: b.Started, Value: b.Finished.Sub(b.Started).Seconds(), Label: label, Href: href})
	}
	if len(sizes) > 1 {
		jp.Charts = append(jp.Charts, template.HTML(viz.ChartSVG("Main binary size of the builds on this page", sizes, viz.Bytes, 480, 160)))
	}
	if len(durations) > 1 {
		jp.Charts = append(jp.Charts, template.HTML(viz.ChartSVG("Duration of the builds on this page", durations, viz.Seconds, 480, 160)))
	}
	return jp, nil
}

// FailedBuildList is the answer of /failed-builds.
type FailedBuildList struct {
	Builds []BuildSummary `json:"builds"`
	Page
}

func (s *Server) failedBuilds(w http.ResponseWriter, r *http.Request) {
	start, count, err := pageParams(r, failedPage)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	builds, err := s.cfg.Ledger.FailedBuilds(ledger.BuildFilter{Platform: r.URL.Query().Get("platform"), Skip: start, Limit: count + 1})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	more := len(builds) > count
	s.render(w, r, "failed", FailedBuildList{Builds: summaries(builds[:min(len(builds), count)]), Page: page(r, start, count, more)})
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
	var key string
	if !wantsJSON(r) {
		if key = s.pageKey(r); s.cachedPage(w, key) {
			return
		}
	}
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
	sum := summary(b)
	v := BuildView{
		BuildSummary: sum, MainBinary: sum.MainBinary != nil, MainArtifact: sum.MainBinary,
		Script: b.Event.Script, Console: b.Event.Console,
		Inputs: b.Event.Inputs, InputID: b.Event.InputID, Artifacts: []ArtifactView{},
		Attestations: []AttestationInfo{}, Checkpoint: string(s.cfg.Ledger.Checkpoint().Note),
		EventSHA256: cas.Sum(data),
	}
	leaf := leafHash(data)
	v.EventLeafHash = leaf[:]
	// Sent as main_binary_artifact; "main_binary" is builder-web's bool.
	v.BuildSummary.MainBinary = nil
	complete := true // every lookup answered: the page may be kept
	if v.MainArtifact != nil {
		// Read to the end even if the client goes: the notes are kept.
		n, ok := s.solo5Notes(context.WithoutCancel(r.Context()), v.MainArtifact.SHA256)
		v.Solo5Manifest, v.Solo5ABI = n.Manifest, n.ABI
		complete = complete && ok
	}
	for _, a := range b.Event.Artifacts {
		v.Artifacts = append(v.Artifacts, ArtifactView{Path: a.Path, SHA256: a.SHA256, Size: a.Size})
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
	v.AttestedBy, v.DisputedBy, v.BuiltBy = attestedBy(v.Attestations)
	if wantsJSON(r) {
		s.render(w, r, "build", v)
		return
	}
	page := buildPage{BuildView: v}
	n, err := s.cfg.Ledger.Neighbours(b)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, e := range []struct {
		from *ledger.BuildEntry
		to   **BuildSummary
	}{{n.Previous, &page.Previous}, {n.Next, &page.Next}, {n.PreviousOtherMain, &page.PreviousOtherMain}} {
		if e.from != nil {
			bs := summary(*e.from)
			*e.to = &bs
		}
	}
	page.Treemap, page.Dependencies = s.buildVizzes(b.Event)
	if v.Solo5Manifest != nil {
		var m solo5.Manifest
		if json.Unmarshal(v.Solo5Manifest, &m) == nil {
			page.Solo5Devices = m.Devices
		}
	}
	if v.Solo5ABI != nil {
		var abi struct {
			Target  string `json:"target"`
			Version uint32 `json:"version"`
		}
		if json.Unmarshal(v.Solo5ABI, &abi) == nil {
			page.Solo5Target = fmt.Sprintf("%s (ABI version %d)", abi.Target, abi.Version)
		}
	}
	for _, a := range v.Attestations {
		complete = complete && a.KeyStatus != ledger.KeyStatusUnknown
	}
	if p := s.cfg.Packages; p != nil && v.MainArtifact != nil && (strings.HasSuffix(v.MainArtifact.Path, ".deb") || strings.HasSuffix(v.MainArtifact.Path, ".pkg")) && b.Event.Succeeded() {
		switch rec, err := p.PublishedAs(b.Event.Platform, v.MainArtifact.SHA256); {
		case err == nil:
			page.Apt = &rec
		case errors.Is(err, publish.ErrNotFound):
			complete = complete && p.Applied() > b.Index // not published yet
		default:
			s.fail(w, r, err)
			return
		}
	}
	if page.Treemap.Pending || page.Dependencies.Pending || !complete {
		w.Header().Set("Vary", "Accept")
		s.renderHTML(w, r, "build", page) // not final or not complete: not kept
		return
	}
	s.renderCachedHTML(w, r, key, "build", page)
}

// buildPage is the build page's HTML: its JSON (BuildView) and what only
// the page shows.
type buildPage struct {
	BuildView
	Previous, Next, PreviousOtherMain *BuildSummary
	Treemap, Dependencies             vizState
	Solo5Target                       string         // a unikernel's solo5 target and ABI, from its ELF note
	Solo5Devices                      []solo5.Device // the devices its solo5 manifest asks for
	// Apt is how the main binary, a .deb or FreeBSD .pkg, is published
	// (see aptroutes.go).
	Apt *publish.Record
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
// as builder-web does. The ledger's latest-build projection answers it
// with one key per platform.
func (s *Server) latest(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	if _, err := s.cfg.Ledger.Job(v["job"]); err != nil {
		s.fail(w, r, err)
		return
	}
	platform := r.URL.Query().Get("platform")
	b, err := s.cfg.Ledger.LatestBuild(v["job"], platform, true)
	if errors.Is(err, fs.ErrNotExist) {
		msg := fmt.Sprintf("job %q has no successful build", v["job"])
		if platform != "" {
			msg += " on platform " + platform
		}
		s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: msg, Err: err})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	target := buildURL(b.Event.Job, b.Event.UUID)
	if rest := v["rest"]; rest != "" {
		target += "/" + rest
	}
	http.Redirect(w, r, target, http.StatusTemporaryRedirect)
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
	s.serveBlobAs(w, r, d, ctype, "public, max-age=31536000, immutable", time.Time{})
}

// serveBlobAs serves blob d under a name whose content may change (a
// package repository's Release): with the given Cache-Control and, if
// modified is set, Last-Modified (pkg asks for it, and sends
// If-Modified-Since).
func (s *Server) serveBlobAs(w http.ResponseWriter, r *http.Request, d cas.Digest, ctype, cacheControl string, modified time.Time) {
	// Opening reads the record only: a blob stored as a patch is rebuilt on
	// its first read, so HEAD and 304 answers rebuild nothing, and a
	// download rebuilds after taking its stream slot.
	blob, err := s.cfg.Ledger.Store().Open(r.Context(), d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer blob.Close()
	etag := `"` + d.String() + `"`
	if blob.Size() >= streamMin && r.Method == http.MethodGet && !noneMatch(r.Header.Get("If-None-Match"), etag) {
		release, err := s.streamSlot()
		if err != nil {
			s.fail(w, r, err)
			return
		}
		defer release()
	}
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
	w.Header().Set("ETag", etag)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Uploaded files are untrusted: never let one run script on this origin.
	w.Header().Set("Content-Security-Policy", "sandbox")
	w.Header().Set("Cache-Control", cacheControl)
	http.ServeContent(w, r, "", modified, rd)
}

// noneMatch reports whether an If-None-Match header names etag (or is
// "*"), comparing whole entity tags weakly as RFC 9110 §13.1.2 says, so
// that http.ServeContent answers 304 without a body. A header that merely
// contains the tag somewhere does not count: the body would be sent.
func noneMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
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

// builder-web answers a unikernel's solo5 notes with its main binary
// ("solo5_manifest": the devices it needs, "solo5_abi": its target), and
// deployers read them there (mollymawk picks hvt unikernels from
// /all-builds by solo5_abi.target). They are read from the ELF notes of
// the stored binary with the VMM's parsers, which reads the ELF and
// section headers and the two notes, not the binary; the answer is
// cached by the binary's digest, so a front page reads each binary once.

// solo5Cache maps a main binary's digest to its notes. The key is the
// content, so one cache serves every server in the process.
var solo5Cache, _ = lru.New[cas.Digest, solo5Notes](4096)

// solo5Notes is the JSON of a binary's notes; nil (null) where it has
// none or is no ELF file.
type solo5Notes struct {
	Manifest, ABI json.RawMessage
}

// maxNote bounds a note section read (a solo5 manifest of 64 entries has
// under 7 KiB).
const maxNote = 64 << 10

// solo5 returns the notes of the binary d; a binary that cannot be read
// now (a storage error, a cancelled request) has none this time and is
// not cached.
func (s *Server) solo5(ctx context.Context, d cas.Digest) solo5Notes {
	n, _ := s.solo5Notes(ctx, d)
	return n
}

// solo5Notes is solo5, also reporting whether the binary was read (false:
// the notes are missing for now, not for good).
func (s *Server) solo5Notes(ctx context.Context, d cas.Digest) (solo5Notes, bool) {
	if n, ok := solo5Cache.Get(d); ok {
		return n, true
	}
	blob, err := s.cfg.Ledger.Store().Open(ctx, d)
	if err != nil {
		return solo5Notes{}, false
	}
	defer blob.Close()
	r := &noteReader{r: blob, left: maxNoteRead}
	n := readSolo5(r)
	if r.err == nil {
		solo5Cache.Add(d, n)
	}
	return n, r.err == nil
}

// maxNoteRead bounds the bytes read from a binary for its notes: the ELF
// header, the section headers, their names and two notes take a few KiB
// in a real unikernel, and a file whose headers ask for more (a crafted
// upload) has no notes this server reads.
const maxNoteRead = 1 << 20

var errNoteRead = errors.New("httpapi: the ELF headers ask for more than a solo5 note needs")

// noteReader reads at most left bytes, and remembers the first error other
// than io.EOF and running out, to tell a file that has no notes (which is
// cached) from one that could not be read now.
type noteReader struct {
	r    io.ReaderAt
	left int64
	err  error
}

func (e *noteReader) ReadAt(p []byte, off int64) (int, error) {
	if int64(len(p)) > e.left {
		e.left = 0
		return 0, errNoteRead
	}
	e.left -= int64(len(p))
	n, err := e.r.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

func readSolo5(r io.ReaderAt) solo5Notes {
	f, err := elf.NewFile(r)
	if err != nil {
		return solo5Notes{}
	}
	section := func(name string) []byte {
		sec := f.Section(name)
		if sec == nil || sec.Size > maxNote || sec.Type == elf.SHT_NOBITS {
			return nil
		}
		b, err := sec.Data()
		if err != nil {
			return nil
		}
		return b
	}
	var out solo5Notes
	if b := section(".note.solo5.manifest"); b != nil {
		if m, err := solo5.ParseManifestNote(b); err == nil {
			out.Manifest, _ = json.Marshal(m)
		}
	}
	if b := section(".note.solo5.abi"); b != nil {
		if a, err := solo5.ParseABINote(b); err == nil {
			out.ABI, _ = json.Marshal(map[string]any{"type": "solo5.abi", "target": a.Target, "version": a.Version})
		}
	}
	return out
}
