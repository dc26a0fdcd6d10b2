package orb

import (
	"fmt"
	"strconv"
)

// File names used in SyntaxError.File for the three orb files.
const (
	EnvironmentFile = "build-environment"
	PackagesFile    = "system-packages"
	SwitchFile      = "opam-switch"
)

// SyntaxError reports malformed input: which file, where, and what is wrong.
// Every parse error of this package is a *SyntaxError, so a caller can tell a
// bad upload (errors.As) from any other failure.
type SyntaxError struct {
	File string // EnvironmentFile, PackagesFile, SwitchFile or the name given to ParseOpamFile
	Line int    // 1-based line; 0 if the error concerns the file as a whole
	Col  int    // 1-based byte column; 0 if the error concerns the whole line
	Msg  string // what is wrong, for a person
}

func (e *SyntaxError) Error() string {
	switch {
	case e.Line == 0:
		return e.File + ": " + e.Msg
	case e.Col == 0:
		return fmt.Sprintf("%s line %d: %s", e.File, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s line %d, column %d: %s", e.File, e.Line, e.Col, e.Msg)
	}
}

// maxQuote is how many bytes of offending input an error message quotes.
const maxQuote = 60

// quote returns s as a Go-quoted string, shortened to maxQuote bytes, for
// error messages that show a person the offending input.
func quote(s string) string {
	if len(s) > maxQuote {
		return strconv.Quote(s[:maxQuote]) + "..."
	}
	return strconv.Quote(s)
}
