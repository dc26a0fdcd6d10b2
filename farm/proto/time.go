package proto

import (
	"strconv"
	"time"
)

// TimeForm is how a Time is encoded. builder writes TimeGeneralized; it
// reads the other two forms as well (UTCTime from builders before the
// change to CHOICE { UTCTime, GeneralizedTime }), and they are kept so that
// a message re-encodes byte for byte.
type TimeForm uint8

const (
	// TimeGeneralized is builder's form: GeneralizedTime
	// "YYYYMMDDhhmmssZ" when the fraction of the second is zero, else
	// "YYYYMMDDhhmmss.fffZ" (milliseconds, truncated, always three digits).
	TimeGeneralized TimeForm = iota
	// TimeGeneralizedZeroFraction is GeneralizedTime "YYYYMMDDhhmmss.000Z"
	// (what builder writes for a fraction below one millisecond).
	TimeGeneralizedZeroFraction
	// TimeUTC is UTCTime "YYMMDDhhmmssZ", years 1951 to 2050.
	TimeUTC
)

// Time is one time of builder's CHOICE { UTCTime, GeneralizedTime } (the
// next run of a schedule item, the start of a running job). T is in UTC
// after Unmarshal, with millisecond precision; Marshal converts T to UTC and
// drops the part below a millisecond.
type Time struct {
	T    time.Time
	Form TimeForm
}

const (
	genTimeLen     = len("20060102150405Z")
	genTimeFracLen = len("20060102150405.000Z")
	utcTimeLen     = len("060102150405Z")
)

func digits(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func decodeTime(c *cursor) (Time, error) {
	if !c.more() {
		return Time{}, errorf(c.off, "missing (expected UTCTime or GeneralizedTime)")
	}
	e, err := c.next()
	if err != nil {
		return Time{}, err
	}
	s := e.body
	bad := func(what string) (Time, error) {
		return Time{}, errorf(e.off, "%s %s %s", tagName(e.tag), strconv.Quote(string(s)), what)
	}
	var year int
	var rest []byte
	form := TimeGeneralized
	switch e.tag {
	case tagGeneralizedTime:
		if len(s) != genTimeLen && len(s) != genTimeFracLen {
			return bad("is not of the form YYYYMMDDhhmmss[.fff]Z")
		}
		y, ok := digits(s[:4])
		if !ok {
			return bad("has a non-digit")
		}
		year, rest = y, s[4:]
	case tagUTCTime:
		if len(s) != utcTimeLen {
			return bad("is not of the form YYMMDDhhmmssZ")
		}
		y, ok := digits(s[:2])
		if !ok {
			return bad("has a non-digit")
		}
		// asn1-combinators reads 51..99 as 19YY and 00..50 as 20YY.
		if y > 50 {
			year = 1900 + y
		} else {
			year = 2000 + y
		}
		rest, form = s[2:], TimeUTC
	default:
		return Time{}, errorf(e.off, "expected UTCTime or GeneralizedTime, found %s", tagName(e.tag))
	}
	var f [5]int
	for i := range f {
		v, ok := digits(rest[2*i : 2*i+2])
		if !ok {
			return bad("has a non-digit")
		}
		f[i] = v
	}
	ms := 0
	if tail := rest[10:]; len(tail) == 5 {
		if tail[0] != '.' {
			return bad("is not of the form YYYYMMDDhhmmss[.fff]Z")
		}
		v, ok := digits(tail[1:4])
		if !ok {
			return bad("has a non-digit")
		}
		ms = v
		if v == 0 {
			form = TimeGeneralizedZeroFraction
		}
	}
	if s[len(s)-1] != 'Z' {
		return bad("does not end in Z (UTC)")
	}
	month, day, hour, minute, sec := f[0], f[1], f[2], f[3], f[4]
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return bad("is not a valid date and time")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, ms*int(time.Millisecond), time.UTC)
	if t.Day() != day {
		return bad("is not a valid date")
	}
	return Time{T: t, Form: form}, nil
}

func appendTime(b []byte, t Time) ([]byte, error) {
	u := t.T.UTC()
	u = u.Add(-time.Duration(u.Nanosecond() % int(time.Millisecond)))
	y, mo, d := u.Date()
	h, mi, s := u.Clock()
	ms := u.Nanosecond() / int(time.Millisecond)
	two := func(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }
	switch t.Form {
	case TimeGeneralized, TimeGeneralizedZeroFraction:
		if y < 0 || y > 9999 {
			return nil, mErr("year %d does not fit GeneralizedTime", y)
		}
		n := genTimeLen
		if ms != 0 || t.Form == TimeGeneralizedZeroFraction {
			n = genTimeFracLen
		}
		if t.Form == TimeGeneralizedZeroFraction && ms != 0 {
			return nil, mErr("time %s has %d ms, not the zero fraction of its form", u.Format(time.RFC3339Nano), ms)
		}
		b = appendHeader(b, tagGeneralizedTime, n)
		b = two(two(b, y/100), y%100)
		b = two(two(two(two(two(b, int(mo)), d), h), mi), s)
		if n == genTimeFracLen {
			b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
		}
		return append(b, 'Z'), nil
	case TimeUTC:
		if y < 1951 || y > 2050 {
			return nil, mErr("year %d does not fit UTCTime (1951 to 2050)", y)
		}
		if ms != 0 {
			return nil, mErr("time %s has a fraction of a second, which UTCTime cannot hold", u.Format(time.RFC3339Nano))
		}
		b = appendHeader(b, tagUTCTime, utcTimeLen)
		b = two(b, y%100)
		b = two(two(two(two(two(b, int(mo)), d), h), mi), s)
		return append(b, 'Z'), nil
	}
	return nil, mErr("invalid time form %d", uint8(t.Form))
}
