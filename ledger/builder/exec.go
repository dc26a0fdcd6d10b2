package builder

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Exec is one finished job as builder-server reports it to builder-web: what
// ran, where, when, what it printed, how it ended and which files it left.
type Exec struct {
	Job      Job
	UUID     uuid.UUID // the build's identity; never uuid.Nil
	Console  []Line    // oldest first (the wire carries them newest first)
	Started  time.Time // UTC, millisecond precision after Parse
	Finished time.Time // UTC, millisecond precision after Parse; not before Started
	Result   Result
	Output   []File // every file the job left in its working directory, in wire order
}

// Job is the script job that ran.
type Job struct {
	Name     string // job name: 1 to 255 bytes of UTF-8, no "/", "\\" or control characters, not "." or ".."
	Script   string // the shell script, verbatim (not checked for UTF-8)
	Platform string // e.g. "ubuntu-20.04"; "" when the upload has none (builder reads that as "no-platform")
	Files    []File // input files of the job; builder always sends none
}

// File is a path relative to the job's working directory and its contents.
// Paths are UTF-8, relative and clean: no leading "/", no "", "." or ".."
// elements, no trailing "/", no backslash, no control characters, at most
// MaxPath bytes.
type File struct {
	Path string
	Data []byte // raw bytes; builder sends binaries as they are, whatever the string type says
}

// Line is one line of console output (without its newline).
type Line struct {
	Delta time.Duration // since the job started
	Data  string        // verbatim bytes; not checked for UTF-8
}

// ResultKind says how a job ended. The zero value is invalid.
type ResultKind uint8

// The four ways a job ends, in the order of builder's CHOICE ([0]..[3]).
const (
	ResultExited    ResultKind = iota + 1 // the script exited; Code is its exit status
	ResultSignalled                       // the script was killed by a signal; Code is the signal
	ResultStopped                         // the script was stopped by a signal; Code is the signal
	ResultMsg                             // the job did not run to an end; Msg says why (e.g. "timeout")
)

func (k ResultKind) String() string {
	switch k {
	case ResultExited:
		return "exited"
	case ResultSignalled:
		return "signalled"
	case ResultStopped:
		return "stopped"
	case ResultMsg:
		return "msg"
	}
	return "ResultKind(" + strconv.Itoa(int(k)) + ")"
}

// Result is the outcome of a job. Code is set for ResultExited,
// ResultSignalled and ResultStopped and must be 0 for ResultMsg; Msg is set
// only for ResultMsg. Signal numbers are OCaml's, as builder's worker reports
// them (negative for the signals OCaml knows, e.g. -7 for SIGKILL).
type Result struct {
	Kind ResultKind
	Code int
	Msg  string
}

// String formats r as builder does: "exited 0", "signalled -7",
// "execution aborted: timeout".
func (r Result) String() string {
	switch r.Kind {
	case ResultExited, ResultSignalled, ResultStopped:
		return r.Kind.String() + " " + strconv.Itoa(r.Code)
	case ResultMsg:
		return "execution aborted: " + r.Msg
	}
	return r.Kind.String()
}

// Success reports whether the job exited with status 0.
func (r Result) Success() bool { return r.Kind == ResultExited && r.Code == 0 }

// Defaults for the zero fields of Limits.
const (
	DefaultMaxTotal        = 1 << 30 // bytes of DER input
	DefaultMaxFiles        = 10_000  // output files, and separately job files
	DefaultMaxFileSize     = 512 << 20
	DefaultMaxConsoleLines = 1_000_000
	// DefaultMaxText bounds the script, the console and the result
	// message, which are kept in memory (file data need not be, see
	// Decode). builder itself holds a job's whole console in memory.
	DefaultMaxText = 16 << 20
)

// MaxPath is the longest file path accepted, in bytes (PATH_MAX on Linux).
const MaxPath = 4096

// MaxName is the longest job name or platform accepted, in bytes.
const MaxName = 255

// Limits bound what Parse accepts. A zero or negative field takes its
// default. Every limit is checked before the element it concerns is
// allocated; the input itself is the only buffer proportional to a claimed
// length, so a reader in front of Parse should stop at MaxTotal bytes
// (http.MaxBytesReader).
type Limits struct {
	MaxTotal        int64 // size of the whole DER input
	MaxFiles        int   // number of output files; also of job files
	MaxFileSize     int64 // size of one file's data
	MaxConsoleLines int   // number of console lines
	// MaxText bounds, each on its own, the job script, the console (the
	// contents of its SEQUENCE OF) and the result message, in bytes.
	MaxText int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxTotal <= 0 {
		l.MaxTotal = DefaultMaxTotal
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = DefaultMaxFileSize
	}
	if l.MaxConsoleLines <= 0 {
		l.MaxConsoleLines = DefaultMaxConsoleLines
	}
	if l.MaxText <= 0 {
		l.MaxText = DefaultMaxText
	}
	return l
}

// ErrLimit is wrapped by every *FormatError that reports an exceeded Limits
// field, so that a caller can answer "too large" rather than "malformed"
// (errors.Is(err, ErrLimit)).
var ErrLimit = errors.New("limit exceeded")

// FormatError reports an exec that Parse rejects or Marshal refuses to write:
// which element, the offending value if it is short text, and what is wrong.
// Every error of Parse and Marshal is a *FormatError.
//
// Error() reads like
//
//	exec: output file 3: path "../x": has a ".." element (at byte 1234)
//
// Indexes count from 0 in wire order (for console lines: newest first).
type FormatError struct {
	Field  string // the element, e.g. "output file 3: path"; "" for the whole input
	Value  string // the offending value, Go-quoted and shortened, or ""
	Offset int    // byte offset of the element in the input; -1 for Marshal
	Msg    string // what is wrong
	err    error  // ErrLimit or nil
}

func (e *FormatError) Error() string {
	s := "exec"
	if e.Field != "" {
		s += ": " + e.Field
	}
	if e.Value != "" {
		s += " " + e.Value
	}
	s += ": " + e.Msg
	if e.Offset >= 0 {
		s += " (at byte " + strconv.Itoa(e.Offset) + ")"
	}
	return s
}

// Unwrap returns ErrLimit for limit violations and nil otherwise.
func (e *FormatError) Unwrap() error { return e.err }

// maxQuote is how many bytes of offending input an error message quotes.
const maxQuote = 60

// quote returns s Go-quoted and shortened to maxQuote bytes.
func quote(s string) string {
	if len(s) > maxQuote {
		return strconv.Quote(s[:maxQuote]) + "..."
	}
	return strconv.Quote(s)
}

func errorf(off int, format string, args ...any) *FormatError {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func limitf(off int, format string, args ...any) *FormatError {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...), err: ErrLimit}
}

// within prefixes the field of a *FormatError with the enclosing element's
// name. It is only called on the error path, so formatting costs nothing on
// valid input.
func within(err error, format string, args ...any) error {
	var fe *FormatError
	if !errors.As(err, &fe) {
		return err
	}
	name := fmt.Sprintf(format, args...)
	if fe.Field == "" {
		fe.Field = name
	} else {
		fe.Field = name + ": " + fe.Field
	}
	return fe
}
