package proto

import (
	"fmt"

	"github.com/buildledger/buildledger/internal/der"
)

// cmdDER is the DER of builder's cmd: errors are *FormatError, a
// high-tag-number identifier "is not used by builder", and proto's
// wording of tags and trailing bytes (see tagName; "1 trailing bytes").
var cmdDER = &der.Dialect{
	Name:     "builder",
	Errorf:   func(off int, format string, args ...any) error { return errorf(off, format, args...) },
	TagName:  tagName,
	Trailing: func(n int) string { return fmt.Sprintf("%d trailing bytes", n) },
}

// tagName names an identifier octet as der.TagName does, except OCTET
// STRING, which no cmd has: proto names it by its octet, "tag 0x04".
func tagName(t byte) string {
	if t == der.TagOctetString {
		return fmt.Sprintf("tag 0x%02x", t)
	}
	return der.TagName(t)
}

// The range of OCaml's int, which builder decodes every INTEGER into.
const (
	maxOCamlInt = der.MaxInt
	minOCamlInt = der.MinInt
)

// seq appends a constructed element with the given tag whose contents f
// appends.
func seq(b []byte, tag byte, f func([]byte) []byte) []byte {
	body := f(nil)
	return append(der.AppendHeader(b, tag, len(body)), body...)
}

// FormatError is a DER payload that is not a cmd this package accepts, or a
// value Marshal refuses. Offset is the byte offset of the element at fault
// in the payload (-1 for Marshal); Field names it (e.g.
// "job_finished: data 2: path").
type FormatError struct {
	Field  string
	Offset int
	Msg    string
}

func (e *FormatError) Error() string {
	s := "proto: cmd"
	if e.Field != "" {
		s += ": " + e.Field
	}
	s += ": " + e.Msg
	if e.Offset >= 0 {
		s += fmt.Sprintf(" (at byte %d)", e.Offset)
	}
	return s
}

func errorf(off int, format string, args ...any) *FormatError {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// within prefixes the field of a *FormatError with the enclosing element.
func within(err error, format string, args ...any) error {
	if fe, ok := err.(*FormatError); ok {
		f := fmt.Sprintf(format, args...)
		if fe.Field != "" {
			f += ": " + fe.Field
		}
		return &FormatError{Field: f, Offset: fe.Offset, Msg: fe.Msg}
	}
	return err
}
