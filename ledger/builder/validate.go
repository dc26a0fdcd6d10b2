package builder

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/buildledger/buildledger/internal/der"
)

// controlChar returns the first C0 or C1 control character or DEL in s, and
// whether there is one. s must be valid UTF-8.
func controlChar(s string) (rune, bool) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			return r, true
		}
	}
	return 0, false
}

func describeControl(r rune) string {
	if r == 0 {
		return "contains a NUL byte"
	}
	return fmt.Sprintf("contains the control character %U", r)
}

// checkName checks a job name or platform: what becomes a path element and
// a URL segment on the way through builder-web and the ledger.
func checkName(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > MaxName:
		return fmt.Sprintf("is %d bytes long, more than %d", len(s), MaxName)
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case s == "." || s == "..":
		return "is a dot name"
	case strings.ContainsAny(s, `/\`):
		return `contains "/" or "\"`
	}
	if r, ok := controlChar(s); ok {
		return describeControl(r)
	}
	return ""
}

// checkPath checks a file path; it returns what is wrong, or "".
func checkPath(p string) string {
	switch {
	case p == "":
		return "is empty"
	case len(p) > MaxPath:
		return fmt.Sprintf("is %d bytes long, more than %d", len(p), MaxPath)
	case !utf8.ValidString(p):
		return "is not valid UTF-8"
	case p[0] == '/':
		return "is absolute"
	case strings.IndexByte(p, '\\') >= 0:
		return "contains a backslash"
	}
	if r, ok := controlChar(p); ok {
		return describeControl(r)
	}
	clean := true
	for elem := range strings.SplitSeq(p, "/") {
		switch elem {
		case "..":
			return `has a ".." element`
		case "", ".":
			clean = false
		}
	}
	if !clean {
		return `is not clean (has an empty or "." element, or a trailing "/")`
	}
	return ""
}

// pathSet finds duplicate paths and paths that would have to be both a
// file and a directory ("bin" and "bin/x"), in one pass over the files.
type pathSet struct {
	files map[string]int // path → index of the file
	dirs  map[string]int // every proper parent directory → index of a file under it
}

// add records the path of file i, which has passed checkPath, and returns
// what conflicts with it, or "".
func (s *pathSet) add(p string, i int) string {
	if s.files == nil {
		s.files = make(map[string]int)
		s.dirs = make(map[string]int)
	}
	if j, ok := s.files[p]; ok {
		return fmt.Sprintf("duplicates the path of file %d", j)
	}
	if j, ok := s.dirs[p]; ok {
		return fmt.Sprintf("is also a directory of file %d", j)
	}
	for k := strings.LastIndexByte(p, '/'); k > 0; k = strings.LastIndexByte(p[:k], '/') {
		d := p[:k]
		if j, ok := s.files[d]; ok {
			return fmt.Sprintf("lies under file %d %s", j, quote(d))
		}
		if _, ok := s.dirs[d]; ok {
			break // its parents are recorded too
		}
		s.dirs[d] = i
	}
	s.files[p] = i
	return ""
}

// validate checks what Parse checks on the value, for Marshal: the same
// values are accepted, so that what Marshal writes parses again (within
// Limits).
func (e *Exec) validate() error {
	if msg := checkName(e.Job.Name); msg != "" {
		return &FormatError{Field: "job: name", Value: quote(e.Job.Name), Offset: -1, Msg: msg}
	}
	if e.Job.Platform != "" {
		if msg := checkName(e.Job.Platform); msg != "" {
			return &FormatError{Field: "job: platform", Value: quote(e.Job.Platform), Offset: -1, Msg: msg}
		}
	}
	if err := validateFiles(e.Job.Files, "job: file"); err != nil {
		return err
	}
	if e.UUID == [16]byte{} {
		return &FormatError{Field: "uuid", Offset: -1, Msg: "is the nil UUID"}
	}
	for i, l := range e.Console {
		if l.Delta > der.MaxInt || l.Delta < der.MinInt {
			// Go durations are int64; builder's are 63-bit.
			return &FormatError{Field: fmt.Sprintf("console line %d: delta", len(e.Console)-1-i), Offset: -1,
				Msg: fmt.Sprintf("%v is out of range of builder's 63-bit int", l.Delta)}
		}
	}
	for _, t := range []struct {
		name string
		t    int
	}{{"started", e.Started.UTC().Year()}, {"finished", e.Finished.UTC().Year()}} {
		if t.t < 0 || t.t > 9999 {
			return &FormatError{Field: "timestamps: " + t.name, Offset: -1,
				Msg: fmt.Sprintf("year %d is outside 0000..9999", t.t)}
		}
	}
	if err := checkOrder(truncMillis(e.Started), truncMillis(e.Finished), -1); err != nil {
		return within(err, "timestamps")
	}
	if err := e.Result.validate(); err != nil {
		return err
	}
	return validateFiles(e.Output, "output file")
}

// checkOrder rejects a job that finished before it started.
func checkOrder(started, finished time.Time, off int) error {
	if finished.Before(started) {
		return &FormatError{Offset: off,
			Msg: fmt.Sprintf("finished %s is before started %s",
				finished.Format(time.RFC3339Nano), started.Format(time.RFC3339Nano))}
	}
	return nil
}

func validateFiles(files []File, what string) error {
	var set pathSet
	for i, f := range files {
		if msg := checkPath(f.Path); msg != "" {
			return &FormatError{Field: fmt.Sprintf("%s %d: path", what, i), Value: quote(f.Path), Offset: -1, Msg: msg}
		}
		if msg := set.add(f.Path, i); msg != "" {
			return &FormatError{Field: fmt.Sprintf("%s %d: path", what, i), Value: quote(f.Path), Offset: -1, Msg: msg}
		}
	}
	return nil
}

func (r Result) validate() error {
	switch r.Kind {
	case ResultExited, ResultSignalled, ResultStopped:
		if r.Msg != "" {
			return &FormatError{Field: "result", Offset: -1, Msg: fmt.Sprintf("%s result has a message", r.Kind)}
		}
		if c := int64(r.Code); c > der.MaxInt || c < der.MinInt {
			return &FormatError{Field: "result", Offset: -1, Msg: fmt.Sprintf("code %d is out of range of builder's 63-bit int", r.Code)}
		}
	case ResultMsg:
		if r.Code != 0 {
			return &FormatError{Field: "result", Offset: -1, Msg: "msg result has a non-zero code"}
		}
	default:
		return &FormatError{Field: "result", Offset: -1, Msg: fmt.Sprintf("invalid kind %d", r.Kind)}
	}
	return nil
}
