package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/builder"
)

// ocamlSignals maps OCaml's portable signal numbers (Sys.sigabrt = -1 …),
// which builder puts in signalled/stopped results, to Linux's numbers.
var ocamlSignals = map[int]int{
	-1: 6, -2: 14, -3: 8, -4: 1, -5: 4, -6: 2, -7: 9, -8: 13, -9: 3, -10: 11, -11: 15, -12: 10,
	-13: 12, -14: 17, -15: 18, -16: 19, -17: 20, -18: 21, -19: 22, -20: 26, -21: 27, -22: 7,
	-23: 29, -24: 31, -25: 5, -26: 23, -27: 24, -28: 25,
}

func resultFromExec(r builder.Result) (ledger.Result, error) {
	switch r.Kind {
	case builder.ResultExited:
		if r.Code < 0 || r.Code > 255 {
			return ledger.Result{}, badRequest("exit status %d is not 0…255", r.Code)
		}
		return ledger.Result{Kind: ledger.ResultExited, Code: r.Code}, nil
	case builder.ResultSignalled, builder.ResultStopped:
		code := r.Code
		if code < 0 {
			posix, ok := ocamlSignals[code]
			if !ok {
				return ledger.Result{}, badRequest("unknown OCaml signal number %d", code)
			}
			code = posix
		}
		if code > 255 {
			return ledger.Result{}, badRequest("signal %d is not 1…255", code)
		}
		kind := ledger.ResultSignalled
		if r.Kind == builder.ResultStopped {
			kind = ledger.ResultStopped
		}
		return ledger.Result{Kind: kind, Code: code}, nil
	case builder.ResultMsg:
		return ledger.Result{Kind: ledger.ResultMessage, Message: strings.ToValidUTF8(r.Msg, "\uFFFD")}, nil
	}
	return ledger.Result{}, badRequest("unknown result kind %v", r.Kind)
}

func resultToExec(r ledger.Result) builder.Result {
	switch r.Kind {
	case ledger.ResultSignalled, ledger.ResultStopped:
		code := r.Code
		for o, p := range ocamlSignals {
			if p == code {
				code = o
				break
			}
		}
		if r.Kind == ledger.ResultStopped {
			return builder.Result{Kind: builder.ResultStopped, Code: code}
		}
		return builder.Result{Kind: builder.ResultSignalled, Code: code}
	case ledger.ResultMessage:
		return builder.Result{Kind: builder.ResultMsg, Msg: r.Message}
	}
	return builder.Result{Kind: builder.ResultExited, Code: r.Code}
}

// formatConsole renders console lines the way builder-web stores them:
// "<seconds since start, 3 decimals>s:<line>\n", oldest first.
func formatConsole(lines []builder.Line) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		fmt.Fprintf(&b, "%.3fs:%s\n", l.Delta.Seconds(), l.Data)
	}
	return b.Bytes()
}

// parseConsole reads formatConsole's output back (millisecond precision).
// Lines that do not carry a time prefix are kept at the previous time.
func parseConsole(data []byte) []builder.Line {
	var out []builder.Line
	var last time.Duration
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if ts, rest, ok := strings.Cut(line, "s:"); ok {
			if secs, err := strconv.ParseFloat(ts, 64); err == nil && secs >= 0 {
				last = time.Duration(secs * float64(time.Second)).Round(time.Millisecond)
				line = rest
			}
		}
		out = append(out, builder.Line{Delta: last, Data: line})
	}
	return out
}

// upload serves POST /upload: builder's DER-encoded exec record, so an
// unchanged builder-server can use this ledger as its --upload target.
// Credentials, the Content-Length and an upload slot are checked before the
// body is read, the job's access list as soon as the job name is (see
// limits.go); the files go into the CAS as they arrive.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	// The Content-Type is not looked at: builder-web reads the body
	// whatever it says, and its documented upload (curl --data-binary,
	// also populate-local.sh) sends application/x-www-form-urlencoded.
	// The DER parser refuses anything that is not an exec record with 400.
	// The cheap refusal first: no password is hashed for a body refused
	// anyway.
	if err := s.checkLength(r); err != nil {
		s.fail(w, r, err)
		return
	}
	user, err := s.login(r)
	if err != nil {
		s.fail(w, r, err)
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
	store := s.cfg.Ledger.Store()
	sink := &uploadSink{s: s, user: user, ctx: ctx}
	ex, err := builder.Decode(body, builder.Limits{MaxTotal: s.cfg.MaxBody}, sink)
	if err != nil {
		s.fail(w, r, execError(err))
		return
	}
	platform := ex.Job.Platform
	if platform == "" {
		platform = "no-platform" // what builder itself reads for an absent platform
	}
	if err := ledger.CheckName(platform); err != nil {
		s.fail(w, r, badRequest("platform: %v", err))
		return
	}
	res, err := resultFromExec(ex.Result)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// A build whose UUID is recorded is not refused here: the same build
	// sent again (builder keeps a build whose upload got no answer and
	// sends it later) is answered with the recorded entry, and only
	// another build under that UUID is a conflict (409), which the ledger
	// decides once the record is complete. Its files are in the store by
	// then; identical ones cost nothing (content addressing).
	script, err := store.PutBytes(ctx, []byte(ex.Job.Script))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	console, err := store.PutBytes(ctx, formatConsole(ex.Console))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u := Upload{Job: ex.Job.Name, Platform: platform, UUID: ex.UUID, Script: script.Digest, Console: console.Digest,
		Started: ex.Started, Finished: ex.Finished, Result: res, Files: sink.files}
	rc, err := s.record(ctx, u)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", rc.URL)
	status := http.StatusCreated
	if rc.Existing {
		status = http.StatusOK // the same build sent again: nothing new was recorded
	}
	writeJSON(w, status, rc)
}

// uploadSink receives an exec record as builder.Decode reads it: it checks
// the job's access list as soon as the name is read and stores every output
// file in the CAS as it arrives. Job files (builder sends none) are not
// recorded.
type uploadSink struct {
	s     *Server
	job   string // once Job has accepted it
	user  auth.User
	ctx   context.Context
	files []StoredFile
}

func (k *uploadSink) Job(name string) error {
	if err := k.s.cfg.Users.Authorize(k.user, name); err != nil {
		return err
	}
	if err := ledger.CheckName(name); err != nil {
		return badRequest("job: %v", err)
	}
	k.job = name
	return nil
}

func (k *uploadSink) File(f builder.FileInfo, data io.Reader) error {
	if f.Job {
		return nil
	}
	if err := ledger.CheckArtifactPath(f.Path); err != nil {
		return badRequest("file %q: %v", f.Path, err)
	}
	// Stored as a patch against the job's previous build of this file
	// when that is smaller (cas.PutWithBase).
	info, err := k.s.cfg.Ledger.Store().PutWithBase(k.ctx, data, f.Size, k.s.deltaBase(k.job, "", f.Path))
	if err != nil {
		return err
	}
	k.files = append(k.files, StoredFile{Path: f.Path, Digest: info.Digest, Size: info.Size})
	return nil
}

// deltaBase is the file at path of the newest build of job (on platform,
// or on any platform with ""), which an upload of the same path is stored
// as a patch against when that is smaller; the zero Digest if there is none.
func (s *Server) deltaBase(job, platform, path string) cas.Digest {
	if job == "" {
		return cas.Digest{}
	}
	latest, err := s.cfg.Ledger.LatestBuilds(job, false)
	if err != nil {
		return cas.Digest{} // only a saving is lost
	}
	var base cas.Digest
	var started time.Time
	for _, b := range latest {
		a, ok := b.Event.Artifact(path)
		if ok && (platform == "" || b.Event.Platform == platform) && (base == cas.Digest{} || b.Event.Started.After(started)) {
			base, started = a.SHA256, b.Event.Started
		}
	}
	return base
}

// execError answers a failed builder.Decode: the record's faults are 400,
// or 413 when over a limit; a failed read of the body, the access check
// and the store answer as they say.
func execError(err error) error {
	var fe *builder.FormatError
	if errors.As(err, &fe) {
		if errors.Is(err, builder.ErrLimit) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Msg: err.Error()}
		}
		return badRequest("%v", err)
	}
	var re *builder.ReadError
	var he *Error
	switch {
	case errors.As(err, &he):
		return he // a cap's 413, a decoder's verdict, the access check
	case errors.As(err, &re):
		return &Error{Status: http.StatusBadRequest, Err: err, Msg: fmt.Sprintf("reading the request body failed after %d bytes", re.Offset)}
	}
	return err
}

// exportTextMax bounds the script and the console a re-export holds in
// memory (each): the console must be reversed, builder sending the newest
// line first. Uploads store at most builder.DefaultMaxText bytes of wire
// console, which formatConsole lengthens by well under half.
const exportTextMax = 4 * builder.DefaultMaxText

// exportHeavyText is the size of script and console above which an export
// takes a heavy-read slot (Config.MaxHeavyReads) while it runs.
const exportHeavyText = 1 << 20

// exportExec serves /job/J/build/U/exec: the build re-exported as builder's
// DER exec record (console at millisecond precision), which /upload of
// another ledger or builder-web accepts. The record's length follows from
// the sizes in the build's record, so it is sent with a Content-Length and
// the artifacts are streamed from the CAS (builder.Encoder): memory is
// O(script + console), not O(build) (TestLargeUploadAndExportMemoryBounded),
// and an export holding more than exportHeavyText of them takes a
// heavy-read slot (TestExecExportLargeConsoleTakesSlot). Every
// artifact is verified as it is read; one that fails stops the answer
// short of its Content-Length, so the client sees a broken transfer, never
// wrong bytes.
func (s *Server) exportExec(w http.ResponseWriter, r *http.Request) {
	b, err := s.lookupBuild(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	store := s.cfg.Ledger.Store()
	// A large script or console is held while the export runs: such
	// exports take a heavy-read slot, so that many clients asking for one
	// cannot make the server hold it many times over.
	var text int64
	for _, d := range []cas.Digest{b.Event.Script, b.Event.Console} {
		rd, err := store.Open(ctx, d) // reads the blob's record only
		if err != nil {
			s.fail(w, r, err)
			return
		}
		text += rd.Size()
		rd.Close()
	}
	// The files are streamed: a large one takes a download slot like any
	// large file served (MaxStreams), held until the export ends.
	if r.Method == http.MethodGet && slices.ContainsFunc(b.Event.Artifacts, func(a ledger.Artifact) bool { return a.Size >= streamMin }) {
		release, err := s.streamSlot()
		if err != nil {
			s.fail(w, r, err)
			return
		}
		defer release()
	}
	releaseHeavy := func() {}
	if text > exportHeavyText {
		release, err := s.heavyRead()
		if err != nil {
			var he *Error
			if errors.As(err, &he) {
				busy := *he
				busy.Msg = fmt.Sprintf("this build's script and console (%d bytes) are held in memory while it is exported, "+
					"and the server runs as many such exports and comparisons as it takes at once; retry in a few seconds", text)
				err = &busy
			}
			s.fail(w, r, err)
			return
		}
		// Given back once the script and console are written (AfterHead),
		// so a slow reader of the files holds no heavy-read slot.
		var once sync.Once
		releaseHeavy = func() { once.Do(release) }
		defer releaseHeavy()
	}
	script, err := store.Bytes(ctx, b.Event.Script, exportTextMax)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	console, err := store.Bytes(ctx, b.Event.Console, exportTextMax)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ex := &builder.Exec{
		Job:  builder.Job{Name: b.Event.Job, Script: string(script), Platform: b.Event.Platform},
		UUID: b.Event.UUID, Console: parseConsole(console), Started: b.Event.Started, Finished: b.Event.Finished,
		Result: resultToExec(b.Event.Result),
	}
	script, console = nil, nil
	files := make([]builder.StreamFile, len(b.Event.Artifacts))
	for i, a := range b.Event.Artifacts {
		// Missing content is a 404 before anything is sent.
		if ok, err := store.Has(a.SHA256); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("artifact %q (%s) of build %s is not in this server's store: %w", a.Path, a.SHA256, b.Event.UUID, fs.ErrNotExist)
			}
			s.fail(w, r, err)
			return
		}
		files[i] = builder.StreamFile{Path: a.Path, Size: a.Size, Open: func() (io.ReadCloser, error) {
			rd, err := store.Open(ctx, a.SHA256)
			if err != nil {
				return nil, err
			}
			if rd.Size() != a.Size {
				rd.Close()
				return nil, &cas.IntegrityError{Digest: a.SHA256, Reason: fmt.Sprintf("stored blob has %d bytes, the build records %d", rd.Size(), a.Size)}
			}
			return rd, nil
		}}
	}
	enc, err := builder.NewEncoder(ex, files)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ex = nil
	enc.AfterHead = releaseHeavy
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(enc.Size(), 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", b.Event.UUID.String()+".exec"))
	if r.Method == http.MethodHead {
		return
	}
	if _, err := enc.WriteTo(w); err != nil && ctx.Err() == nil {
		s.cfg.Logger.Error("exec export stopped", "path", r.URL.Path, "err", err)
	}
}
