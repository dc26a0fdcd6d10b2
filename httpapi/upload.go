package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/ledger"
)

// StoredFile is an uploaded file already in the CAS.
type StoredFile struct {
	Path   string
	Digest cas.Digest
	Size   int64
}

// Upload is a finished build as a build farm delivers it, its files already
// stored.
type Upload struct {
	Job, Platform     string
	UUID              uuid.UUID
	Script, Console   cas.Digest
	Started, Finished time.Time
	Result            ledger.Result
	Files             []StoredFile
	// MainBinary names the main binary explicitly; "" applies MainBinary's
	// rule.
	MainBinary string
}

// MainBinary picks a build's main binary from its artifact paths: the only
// file under bin/; among several, the one whose name without extension is
// the job's name, if exactly one is; otherwise none. Unlike builder-web, a
// build with several binaries is not failed; it just has no main binary
// unless the uploader names one.
func MainBinary(job string, paths []string) *string {
	var bins, named []string
	for _, p := range paths {
		if path.Dir(p) != "bin" {
			continue
		}
		bins = append(bins, p)
		base := path.Base(p)
		if strings.TrimSuffix(base, path.Ext(base)) == job {
			named = append(named, p)
		}
	}
	switch {
	case len(bins) == 1:
		return &bins[0]
	case len(named) == 1:
		return &named[0]
	}
	return nil
}

// record turns an upload into a build_recorded event (defining the job if
// it is new) and returns its receipt with an inclusion proof.
func (s *Server) record(ctx context.Context, u Upload) (*UploadReceipt, error) {
	b := &ledger.BuildRecorded{
		Job: u.Job, UUID: u.UUID, Platform: u.Platform, Started: u.Started, Finished: u.Finished,
		Result: u.Result, Script: u.Script, Console: u.Console, Artifacts: []ledger.Artifact{},
	}
	var paths []string
	for _, f := range u.Files {
		if err := ledger.CheckArtifactPath(f.Path); err != nil {
			return nil, badRequest("file %q: %v", f.Path, err)
		}
		d := f.Digest
		switch f.Path {
		case "opam-switch":
			b.Inputs.OpamSwitch = &d
		case "build-environment":
			b.Inputs.BuildEnvironment = &d
		case "system-packages":
			b.Inputs.SystemPackages = &d
		}
		b.Artifacts = append(b.Artifacts, ledger.Artifact{Path: f.Path, SHA256: f.Digest, Size: f.Size})
		paths = append(paths, f.Path)
	}
	sort.Strings(paths)
	for i := 1; i < len(paths); i++ {
		if paths[i] == paths[i-1] {
			return nil, badRequest("file %q uploaded twice", paths[i])
		}
	}
	if u.MainBinary != "" {
		if !containsString(paths, u.MainBinary) {
			return nil, badRequest("main binary %q is not one of the uploaded files", u.MainBinary)
		}
		b.MainBinary = &u.MainBinary
	} else {
		b.MainBinary = MainBinary(u.Job, paths)
	}
	r, err := s.cfg.Ledger.RecordBuild(ctx, b)
	if err != nil {
		return nil, err
	}
	p, err := s.cfg.Ledger.Tree().InclusionProof(r.Index, r.Checkpoint.Size)
	if err != nil {
		return nil, err
	}
	return &UploadReceipt{
		Job: u.Job, UUID: u.UUID, LogIndex: r.Index, Event: r.Digest.String(), LeafHash: r.LeafHash[:],
		Checkpoint: string(r.Checkpoint.Note), Inclusion: p, MainBinary: b.MainBinary,
		URL: buildURL(u.Job, u.UUID), Existing: r.Existing,
	}, nil
}

func containsString(sorted []string, s string) bool {
	i := sort.SearchStrings(sorted, s)
	return i < len(sorted) && sorted[i] == s
}

func buildURL(job string, id uuid.UUID) string {
	return "/job/" + url.PathEscape(job) + "/build/" + id.String()
}

// login checks the request's credentials against the uploader accounts:
// an API token ("Authorization: Bearer TOKEN", or as the password of HTTP
// Basic credentials, as builder's upload sends them, with the token's
// user name), or a user name and password (HTTP Basic).
func (s *Server) login(r *http.Request) (auth.User, error) {
	if s.cfg.Users == nil {
		return auth.User{}, &Error{Status: http.StatusForbidden, Msg: "uploads are disabled on this server"}
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return s.tokenLogin(r, "", strings.TrimSpace(h[7:]))
	}
	name, pw, ok := r.BasicAuth()
	if !ok {
		return auth.User{}, &Error{Status: http.StatusUnauthorized, Msg: "uploads need an API token (Authorization: Bearer) or HTTP Basic credentials of an uploader account"}
	}
	if auth.IsToken(pw) {
		return s.tokenLogin(r, name, pw)
	}
	return s.authenticate(r, name, pw)
}

// tokenLogin checks an API token; name, if given, must be its user's.
func (s *Server) tokenLogin(r *http.Request, name, token string) (auth.User, error) {
	u, err := s.logins.LoginToken(s.clientAddr(r), token)
	var pe *auth.PushbackError
	if errors.As(err, &pe) {
		return u, &Error{Status: http.StatusTooManyRequests, Err: err, RetryAfter: pe.RetryAfter, Msg: "too many failed logins; wait before trying again"}
	}
	if err == nil && name != "" && name != u.Name {
		return auth.User{}, auth.ErrUnauthorized
	}
	return u, err
}

// limitBody caps the request body; reading past it fails with an error
// errorStatus maps to 413.
func (s *Server) limitBody(w http.ResponseWriter, r *http.Request) io.Reader {
	return &maxBytesReader{r: http.MaxBytesReader(w, r.Body, s.cfg.MaxBody), limit: s.cfg.MaxBody}
}

type maxBytesReader struct {
	r     io.Reader
	limit int64
}

func (m *maxBytesReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request body exceeds the server's limit of %d bytes", m.limit), Err: err}
	}
	return n, err
}

// manualUpload serves POST /job/{job}/platform/{platform}/upload?binary_name=N
// (builder-web's manual upload): the body is one binary, recorded as a
// build with a new UUID, the script "# This artifact was manually built",
// exit 0 and the single artifact bin/N (default N: <job>.bin). The job's
// access list is checked before the body is read, which goes into the CAS
// as it arrives, decoded if it has a Content-Encoding (see limits.go).
func (s *Server) manualUpload(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	job, platform := v["job"], v["platform"]
	if err := ledger.CheckName(job); err != nil {
		s.fail(w, r, badRequest("job: %v", err))
		return
	}
	if err := ledger.CheckName(platform); err != nil {
		s.fail(w, r, badRequest("platform: %v", err))
		return
	}
	// The cheap refusal first: no password is hashed for a body refused
	// anyway.
	if err := s.checkLength(r); err != nil {
		s.fail(w, r, err)
		return
	}
	user, err := s.login(r)
	if err == nil {
		err = s.cfg.Users.Authorize(user, job)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	name := r.URL.Query().Get("binary_name")
	if name == "" {
		name = job + ".bin"
	}
	if strings.ContainsAny(name, "/\\") || ledger.CheckArtifactPath(name) != nil {
		s.fail(w, r, badRequest("binary_name %q must be a plain file name", name))
		return
	}
	release, err := s.uploadSlot()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer release()
	body, closeBody, err := s.uploadBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer closeBody()
	ctx := r.Context()
	now := time.Now().UTC()
	// Into the CAS as it arrives (limits.go).
	path := "bin/" + name
	var bin cas.Info
	if r.ContentLength > 0 {
		bin, err = s.cfg.Ledger.Store().PutWithBase(ctx, body, r.ContentLength, s.deltaBase(job, platform, path))
	} else {
		bin, err = s.cfg.Ledger.Store().Put(ctx, body)
	}
	if err != nil {
		s.fail(w, r, execError(err))
		return
	}
	script, err := s.cfg.Ledger.Store().PutBytes(ctx, []byte("# This artifact was manually built\n"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	console, err := s.cfg.Ledger.Store().PutBytes(ctx, nil)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rc, err := s.record(ctx, Upload{
		Job: job, Platform: platform, UUID: uuid.New(), Script: script.Digest, Console: console.Digest,
		Started: now, Finished: now, Result: ledger.Result{Kind: ledger.ResultExited},
		Files: []StoredFile{{Path: path, Digest: bin.Digest, Size: bin.Size}},
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", rc.URL)
	writeJSON(w, http.StatusCreated, rc)
}
