package event

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// CheckArtifactPath reports why p cannot name a new artifact: it must be a
// clean, relative, slash-separated path without "." or ".." elements,
// control characters or backslashes, at most 1024 bytes of UTF-8, and
// without invisible characters that make a name display as another (bidi
// overrides such as U+202E, zero-width characters such as U+200B, line
// separators; Unicode categories Cc, Cf, Zl and Zp). Append applies all of
// it; events already in a log are checked by the earlier rule only (see
// checkPath), so a log written before the stricter rule still replays.
func CheckArtifactPath(p string) error {
	if err := checkPath(p); err != nil {
		return err
	}
	if i := strings.IndexFunc(p, invisible); i >= 0 {
		r, _ := utf8.DecodeRuneInString(p[i:])
		return fmt.Errorf("path %+q contains the invisible or direction-changing character %U at byte %d; rename the file", p, r, i)
	}
	return nil
}

// invisible reports characters that change how a name is displayed
// without being seen, or are seen as nothing but blank: controls and
// format characters (Cc, Cf: bidi overrides, zero-width spaces and
// joiners), line and paragraph separators (Zl, Zp), the other default
// ignorable code points (Hangul fillers, the combining grapheme joiner,
// variation selectors), spaces other than U+0020 (Zs: no-break, figure,
// ideographic spaces) and the blank braille pattern U+2800.
func invisible(r rune) bool {
	return r != ' ' && unicode.Is(unicode.Zs, r) || r == '\u2800' ||
		unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}

// checkPath is the path rule events in the log satisfy.
func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > 1024:
		return fmt.Errorf("path of %d bytes exceeds 1024", len(p))
	case !utf8.ValidString(p):
		return fmt.Errorf("path %q is not UTF-8", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is absolute", p)
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
		return fmt.Errorf("path %q contains a control character or backslash", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." || el == "." {
			return fmt.Errorf("path %q contains %q", p, el)
		}
	}
	if path.Clean(p) != p {
		return fmt.Errorf("path %q is not clean (want %q)", p, path.Clean(p))
	}
	return nil
}

// checkName accepts job and platform names: 1–128 bytes of ASCII letters,
// digits and ._+- starting with a letter or digit.
func checkName(field, s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("%s %q must be 1 to 128 characters", field, s)
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '.' || r == '_' || r == '+' || r == '-')
		if !ok {
			return fmt.Errorf("%s %q: character %q not allowed (letters, digits and ._+- after the first)", field, s, r)
		}
	}
	return nil
}

// CheckName reports why s cannot be a job or platform name.
func CheckName(s string) error { return checkName("name", s) }

func checkText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s of %d bytes exceeds %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	if strings.ContainsRune(s, 0) {
		return fmt.Errorf("%s contains NUL", field)
	}
	return nil
}

// maxTime is the last time Unix nanoseconds can represent; the projections
// order builds by it.
var maxTime = time.Unix(0, math.MaxInt64).UTC()

func checkTime(field string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("%s time is missing", field)
	}
	if t.Location() != time.UTC {
		return fmt.Errorf("%s time %s is not in UTC", field, t)
	}
	if t.Year() < 1970 || t.After(maxTime) {
		return fmt.Errorf("%s time %s out of range (1970 to 2262)", field, t.Format(time.RFC3339))
	}
	return nil
}
