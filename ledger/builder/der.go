package builder

import (
	"time"

	"github.com/buildledger/buildledger/internal/der"
)

// Context-specific identifiers of the exec record: [n] EXPLICIT,
// constructed. The universal ones are der's.
const (
	tagExplicit0 = 0xa0
	tagExplicit1 = 0xa1
	tagExplicit2 = 0xa2
	tagExplicit3 = 0xa3
)

// execDER is the DER of the exec record: errors are *FormatError, and a
// high-tag-number identifier "is not used by exec".
var execDER = &der.Dialect{
	Name:   "exec",
	Errorf: func(off int, format string, args ...any) error { return errorf(off, format, args...) },
}

// parseTime reads a UTCTime or GeneralizedTime element. canonical is false
// for encodings that Marshal does not reproduce (UTCTime, a ".000" fraction).
func parseTime(e der.Elem) (t time.Time, canonical bool, err error) {
	t, form, fault := der.ParseTime(e.Tag, e.Body)
	switch fault {
	case der.TimeOK:
		return t, form == der.TimeGeneralized, nil
	case der.TimeNotTime:
		return t, false, errorf(e.Off, "expected UTCTime or GeneralizedTime, found %s", der.TagName(e.Tag))
	}
	return t, false, errorf(e.Off, "%s %s %s", der.TagName(e.Tag), quote(string(e.Body)), fault.Words(e.Tag))
}

// appendGeneralizedTime writes t as builder does: with milliseconds when
// the fraction of the second is not zero (see der.AppendGeneralizedTime).
func appendGeneralizedTime(b []byte, t time.Time) []byte {
	return der.AppendGeneralizedTime(b, t, t.Nanosecond() != 0)
}

func generalizedTimeLen(t time.Time) int {
	if t.Nanosecond() != 0 {
		return der.GeneralizedTimeFracLen
	}
	return der.GeneralizedTimeLen
}

// truncMillis drops what Marshal cannot write: the part of a second below
// one millisecond.
func truncMillis(t time.Time) time.Time {
	t = t.UTC()
	return t.Add(-time.Duration(t.Nanosecond() % int(time.Millisecond)))
}
