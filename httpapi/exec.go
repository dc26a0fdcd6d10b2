package httpapi

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

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

// readBody reads an upload body within the size limit, decoding a gzip or
// zstd Content-Encoding with the same limit on the decoded bytes (so a
// compression bomb is refused with 413 rather than filling memory).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := s.limitBody(w, r)
	var rd io.Reader = body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, badRequest("body is not gzip: %v", err)
		}
		defer zr.Close()
		rd = zr
	case "zstd":
		zr, err := zstd.NewReader(body, zstd.WithDecoderMaxMemory(uint64(s.cfg.MaxBody)), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		rd = zr
	default:
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Msg: fmt.Sprintf("Content-Encoding %q is not supported (gzip, zstd or none)", enc)}
	}
	data, err := io.ReadAll(io.LimitReader(rd, s.cfg.MaxBody+1))
	if err != nil {
		var he *Error
		if errors.As(err, &he) {
			return nil, err
		}
		if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("zstd body needs more than the server's limit of %d bytes to decode", s.cfg.MaxBody)}
		}
		return nil, badRequest("reading the body: %v", err)
	}
	if int64(len(data)) > s.cfg.MaxBody {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("decoded body exceeds the server's limit of %d bytes", s.cfg.MaxBody)}
	}
	return data, nil
}

// upload serves POST /upload: builder's DER-encoded exec record, so an
// unchanged builder-server can use this ledger as its --upload target.
// Credentials are checked before the body is parsed, the job's access list
// after.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/octet-stream" && mt != "application/x-der" && mt != "application/der") {
			s.fail(w, r, &Error{Status: http.StatusUnsupportedMediaType, Msg: fmt.Sprintf("Content-Type %q: /upload takes builder's DER exec record as application/octet-stream", ct)})
			return
		}
	}
	user, err := s.login(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ex, err := builder.Parse(data, builder.Limits{MaxTotal: s.cfg.MaxBody})
	if err != nil {
		if errors.Is(err, builder.ErrLimit) {
			s.fail(w, r, &Error{Status: http.StatusRequestEntityTooLarge, Msg: err.Error()})
			return
		}
		s.fail(w, r, badRequest("%v", err))
		return
	}
	if err := s.cfg.Users.Authorize(user, ex.Job.Name); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := ledger.CheckName(ex.Job.Name); err != nil {
		s.fail(w, r, badRequest("job: %v", err))
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
	if _, err := s.cfg.Ledger.Build(ex.UUID); err == nil {
		s.fail(w, r, fmt.Errorf("%w: build %s is already recorded", ledger.ErrConflict, ex.UUID))
		return
	}
	ctx := r.Context()
	store := s.cfg.Ledger.Store()
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
		Started: ex.Started, Finished: ex.Finished, Result: res}
	for _, f := range ex.Output {
		info, err := store.PutBytes(ctx, f.Data)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		u.Files = append(u.Files, StoredFile{Path: f.Path, Digest: info.Digest, Size: info.Size})
	}
	rc, err := s.record(ctx, u)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", rc.URL)
	writeJSON(w, http.StatusCreated, rc)
}

// exportExec serves /job/J/build/U/exec: the build re-exported as builder's
// DER exec record (console at millisecond precision), which /upload of
// another ledger or builder-web accepts.
func (s *Server) exportExec(w http.ResponseWriter, r *http.Request) {
	b, err := s.lookupBuild(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	store := s.cfg.Ledger.Store()
	script, err := store.Bytes(ctx, b.Event.Script, s.cfg.MaxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	console, err := store.Bytes(ctx, b.Event.Console, s.cfg.MaxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ex := &builder.Exec{
		Job:  builder.Job{Name: b.Event.Job, Script: string(script), Platform: b.Event.Platform},
		UUID: b.Event.UUID, Console: parseConsole(console), Started: b.Event.Started, Finished: b.Event.Finished,
		Result: resultToExec(b.Event.Result),
	}
	for _, a := range b.Event.Artifacts {
		data, err := store.Bytes(ctx, a.SHA256, s.cfg.MaxBody)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		ex.Output = append(ex.Output, builder.File{Path: a.Path, Data: data})
	}
	der, err := ex.Marshal()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", b.Event.UUID.String()+".exec"))
	w.Write(der)
}
