package der

import (
	"fmt"
	"time"
)

// Time forms. builder writes GeneralizedTime through asn1-combinators:
// "YYYYMMDDhhmmssZ" when the fraction of the second is zero, else
// "YYYYMMDDhhmmss.fffZ" with the milliseconds truncated and always three
// digits (so a fraction below 1 ms reads ".000"). Older builders wrote
// UTCTime "YYMMDDhhmmssZ", which asn1-combinators reads as 1951 to 2050.
const (
	GeneralizedTimeLen     = len("20060102150405Z")
	GeneralizedTimeFracLen = len("20060102150405.000Z")
	UTCTimeLen             = len("060102150405Z")
)

// Digits reads b as a decimal number of ASCII digits only.
func Digits(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// AppendGeneralizedTime appends t in UTC as a GeneralizedTime,
// "YYYYMMDDhhmmssZ", or "YYYYMMDDhhmmss.fffZ" with the milliseconds
// truncated if frac. The year must be 0 to 9999.
func AppendGeneralizedTime(b []byte, t time.Time, frac bool) []byte {
	t = t.UTC()
	n := GeneralizedTimeLen
	if frac {
		n = GeneralizedTimeFracLen
	}
	b = AppendHeader(b, TagGeneralizedTime, n)
	y := t.Year()
	b = appendClock(append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10)), t)
	if frac {
		ms := t.Nanosecond() / int(time.Millisecond)
		b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	}
	return append(b, 'Z')
}

// AppendUTCTime appends t in UTC as a UTCTime, "YYMMDDhhmmssZ", dropping
// the fraction of the second. The year must be 1951 to 2050.
func AppendUTCTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	b = AppendHeader(b, TagUTCTime, UTCTimeLen)
	y := t.Year()
	return append(appendClock(append(b, byte('0'+y/10%10), byte('0'+y%10)), t), 'Z')
}

// appendClock appends MMDDhhmmss.
func appendClock(b []byte, t time.Time) []byte {
	_, mo, d := t.Date()
	h, mi, s := t.Clock()
	for _, v := range [...]int{int(mo), d, h, mi, s} {
		b = append(b, byte('0'+v/10), byte('0'+v%10))
	}
	return b
}

// TimeForm is which of builder's encodings a time was read from.
type TimeForm uint8

const (
	// TimeGeneralized is builder's own form (see AppendGeneralizedTime).
	TimeGeneralized TimeForm = iota
	// TimeGeneralizedZeroFraction is GeneralizedTime with the fraction
	// ".000", what builder writes for a fraction below one millisecond.
	TimeGeneralizedZeroFraction
	// TimeUTC is UTCTime.
	TimeUTC
)

// TimeFault is what is wrong with a time ParseTime refuses.
type TimeFault uint8

const (
	TimeOK       TimeFault = iota
	TimeNotTime            // neither UTCTime nor GeneralizedTime
	TimeNotForm            // wrong length, or no '.' before the fraction
	TimeYear               // a non-digit in the year
	TimeNonDigit           // a non-digit in MMDDhhmmss
	TimeFraction           // a non-digit in the fraction
	TimeNoZ                // not in UTC
	TimeInvalid            // a month, day, hour, minute or second out of range
	TimeNoDate             // a day the month does not have
)

// Words is the end of an error message about a time of identifier tag
// that begins with the tag's name and the quoted contents
// ("GeneralizedTime \"2024\" is not of the form ..."). For TimeNotTime
// the message is rather "expected UTCTime or GeneralizedTime, found " and
// the tag's name.
func (f TimeFault) Words(tag byte) string {
	switch f {
	case TimeOK:
		return "is a valid time"
	case TimeNotTime:
		return "is not a time"
	case TimeNotForm:
		if tag == TagUTCTime {
			return "is not of the form YYMMDDhhmmssZ"
		}
		return "is not of the form YYYYMMDDhhmmss[.fff]Z"
	case TimeYear:
		return "has a malformed year"
	case TimeNonDigit:
		return "has a non-digit"
	case TimeFraction:
		return "has a non-digit in the fraction"
	case TimeNoZ:
		return "does not end in Z (UTC)"
	case TimeInvalid:
		return "is not a valid date and time"
	case TimeNoDate:
		return "is not a valid date"
	}
	return fmt.Sprintf("has time fault %d", uint8(f))
}

// ParseTime reads the contents s of a UTCTime or GeneralizedTime (tag) in
// the forms builder reads: GeneralizedTime "YYYYMMDDhhmmssZ" or
// "YYYYMMDDhhmmss.fffZ", UTCTime "YYMMDDhhmmssZ" (1951 to 2050). t is in
// UTC. A fault other than TimeOK says why s is refused.
func ParseTime(tag byte, s []byte) (t time.Time, form TimeForm, fault TimeFault) {
	var year int
	var rest []byte
	switch tag {
	case TagGeneralizedTime:
		if len(s) != GeneralizedTimeLen && len(s) != GeneralizedTimeFracLen {
			return t, 0, TimeNotForm
		}
		y, ok := Digits(s[:4])
		if !ok {
			return t, 0, TimeYear
		}
		year, rest, form = y, s[4:], TimeGeneralized
	case TagUTCTime:
		if len(s) != UTCTimeLen {
			return t, 0, TimeNotForm
		}
		y, ok := Digits(s[:2])
		if !ok {
			return t, 0, TimeYear
		}
		// asn1-combinators reads 51..99 as 19YY and 00..50 as 20YY.
		if y > 50 {
			year = 1900 + y
		} else {
			year = 2000 + y
		}
		rest, form = s[2:], TimeUTC
	default:
		return t, 0, TimeNotTime
	}
	// rest: MMDDhhmmss[.fff]Z
	var f [5]int
	for i := range f {
		v, ok := Digits(rest[2*i : 2*i+2])
		if !ok {
			return t, 0, TimeNonDigit
		}
		f[i] = v
	}
	ms := 0
	if tail := rest[10:]; len(tail) == 5 {
		if tail[0] != '.' {
			return t, 0, TimeNotForm
		}
		v, ok := Digits(tail[1:4])
		if !ok {
			return t, 0, TimeFraction
		}
		ms = v
		if v == 0 {
			form = TimeGeneralizedZeroFraction
		}
	}
	if s[len(s)-1] != 'Z' {
		return t, 0, TimeNoZ
	}
	month, day, hour, minute, sec := f[0], f[1], f[2], f[3], f[4]
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return t, 0, TimeInvalid
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, ms*int(time.Millisecond), time.UTC)
	if t.Day() != day {
		return time.Time{}, 0, TimeNoDate
	}
	return t, form, TimeOK
}
