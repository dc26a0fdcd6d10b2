package proto

import (
	"strconv"
	"time"

	"github.com/buildledger/buildledger/internal/der"
)

// TimeForm is how a Time is encoded (its values are der.TimeForm's). builder writes TimeGeneralized; it
// reads the other two forms as well (UTCTime from builders before the
// change to CHOICE { UTCTime, GeneralizedTime }), and they are kept so that
// a message re-encodes byte for byte.
type TimeForm uint8

const (
	// TimeGeneralized is builder's form: GeneralizedTime
	// "YYYYMMDDhhmmssZ" when the fraction of the second is zero, else
	// "YYYYMMDDhhmmss.fffZ" (milliseconds, truncated, always three digits).
	TimeGeneralized = TimeForm(der.TimeGeneralized)
	// TimeGeneralizedZeroFraction is GeneralizedTime "YYYYMMDDhhmmss.000Z"
	// (what builder writes for a fraction below one millisecond).
	TimeGeneralizedZeroFraction = TimeForm(der.TimeGeneralizedZeroFraction)
	// TimeUTC is UTCTime "YYMMDDhhmmssZ", years 1951 to 2050.
	TimeUTC = TimeForm(der.TimeUTC)
)

// Time is one time of builder's CHOICE { UTCTime, GeneralizedTime } (the
// next run of a schedule item, the start of a running job). T is in UTC
// after Unmarshal, with millisecond precision; Marshal converts T to UTC and
// drops the part below a millisecond.
type Time struct {
	T    time.Time
	Form TimeForm
}

func decodeTime(c *der.Cursor) (Time, error) {
	if !c.More() {
		return Time{}, errorf(c.Off(), "missing (expected UTCTime or GeneralizedTime)")
	}
	e, err := c.Next()
	if err != nil {
		return Time{}, err
	}
	t, form, fault := der.ParseTime(e.Tag, e.Body)
	switch fault {
	case der.TimeOK:
		return Time{T: t, Form: TimeForm(form)}, nil
	case der.TimeNotTime:
		return Time{}, errorf(e.Off, "expected UTCTime or GeneralizedTime, found %s", tagName(e.Tag))
	case der.TimeYear, der.TimeFraction:
		fault = der.TimeNonDigit // proto does not say where
	}
	return Time{}, errorf(e.Off, "%s %s %s", tagName(e.Tag), strconv.Quote(string(e.Body)), fault.Words(e.Tag))
}

func appendTime(b []byte, t Time) ([]byte, error) {
	u := t.T.UTC()
	u = u.Add(-time.Duration(u.Nanosecond() % int(time.Millisecond)))
	y := u.Year()
	ms := u.Nanosecond() / int(time.Millisecond)
	switch t.Form {
	case TimeGeneralized, TimeGeneralizedZeroFraction:
		if y < 0 || y > 9999 {
			return nil, mErr("year %d does not fit GeneralizedTime", y)
		}
		if t.Form == TimeGeneralizedZeroFraction && ms != 0 {
			return nil, mErr("time %s has %d ms, not the zero fraction of its form", u.Format(time.RFC3339Nano), ms)
		}
		return der.AppendGeneralizedTime(b, u, ms != 0 || t.Form == TimeGeneralizedZeroFraction), nil
	case TimeUTC:
		if y < 1951 || y > 2050 {
			return nil, mErr("year %d does not fit UTCTime (1951 to 2050)", y)
		}
		if ms != 0 {
			return nil, mErr("time %s has a fraction of a second, which UTCTime cannot hold", u.Format(time.RFC3339Nano))
		}
		return der.AppendUTCTime(b, u), nil
	}
	return nil, mErr("invalid time form %d", uint8(t.Form))
}
