package builder

import (
	"fmt"
	"time"
)

// DER identifier octets used by the exec record (all single-octet tags).
const (
	tagInteger         = 0x02
	tagNull            = 0x05
	tagUTF8String      = 0x0c
	tagUTCTime         = 0x17
	tagGeneralizedTime = 0x18
	tagSequence        = 0x30 // SEQUENCE and SEQUENCE OF, constructed
	tagExplicit0       = 0xa0 // [0] EXPLICIT: context-specific, constructed
	tagExplicit1       = 0xa1
	tagExplicit2       = 0xa2
	tagExplicit3       = 0xa3
)

func tagName(t byte) string {
	switch t {
	case tagInteger:
		return "INTEGER"
	case tagNull:
		return "NULL"
	case tagUTF8String:
		return "UTF8String"
	case tagUTCTime:
		return "UTCTime"
	case tagGeneralizedTime:
		return "GeneralizedTime"
	case tagSequence:
		return "SEQUENCE"
	case 0x04:
		return "OCTET STRING"
	case 0x2c:
		return "constructed UTF8String"
	}
	if t&0xe0 == 0xa0 && t&0x1f != 0x1f {
		return fmt.Sprintf("[%d]", t&0x1f)
	}
	return fmt.Sprintf("tag 0x%02x", t)
}

// elem is one DER element (tag, length, contents) of the input.
type elem struct {
	tag     byte
	off     int    // offset of the identifier octet in the input
	body    []byte // the contents, a slice of the input
	bodyOff int    // offset of body[0] in the input
}

func (e elem) contents() cursor { return cursor{b: e.body, off: e.bodyOff} }

// cursor reads the elements inside one constructed element (or the whole
// input) in order. It never copies and never allocates: a length is checked
// against the bytes that are actually there before anything is sliced.
type cursor struct {
	b   []byte
	off int // offset of b[0] in the input
}

func (c *cursor) more() bool { return len(c.b) > 0 }

// next reads one element in strict DER: low-tag-number form, definite
// length in the shortest form.
func (c *cursor) next() (elem, error) {
	b, off := c.b, c.off
	switch len(b) {
	case 0:
		return elem{}, errorf(off, "missing")
	case 1:
		return elem{}, errorf(off, "truncated: no length after the identifier octet")
	}
	tag := b[0]
	if tag&0x1f == 0x1f {
		return elem{}, errorf(off, "high-tag-number identifier 0x%02x is not used by exec", tag)
	}
	var n uint64
	hdr := 2
	switch l := b[1]; {
	case l < 0x80:
		n = uint64(l)
	case l == 0x80:
		return elem{}, errorf(off, "%s has an indefinite length, which DER forbids", tagName(tag))
	default:
		k := int(l & 0x7f)
		if k > 8 {
			return elem{}, errorf(off, "%s has a %d-octet length field", tagName(tag), k)
		}
		if len(b) < 2+k {
			return elem{}, errorf(off, "truncated: %s length field needs %d octets, %d remain", tagName(tag), k, len(b)-2)
		}
		if b[2] == 0 {
			return elem{}, errorf(off, "%s length has a leading zero octet, which DER forbids", tagName(tag))
		}
		for _, x := range b[2 : 2+k] {
			n = n<<8 | uint64(x)
		}
		if n < 0x80 {
			return elem{}, errorf(off, "%s length %d is in long form, which DER forbids below 128", tagName(tag), n)
		}
		hdr = 2 + k
	}
	if rest := uint64(len(b) - hdr); n > rest {
		return elem{}, errorf(off, "truncated: %s claims %d bytes, %d remain", tagName(tag), n, rest)
	}
	end := hdr + int(n)
	e := elem{tag: tag, off: off, body: b[hdr:end], bodyOff: off + hdr}
	c.b, c.off = b[end:], off+end
	return e, nil
}

// expect reads one element and checks its tag.
func (c *cursor) expect(tag byte) (elem, error) {
	e, err := c.next()
	if err != nil {
		if !c.more() {
			return elem{}, errorf(c.off, "missing (expected %s)", tagName(tag))
		}
		return elem{}, err
	}
	if e.tag != tag {
		return elem{}, errorf(e.off, "expected %s, found %s", tagName(tag), tagName(e.tag))
	}
	return e, nil
}

// end checks that nothing is left.
func (c *cursor) end() error {
	if len(c.b) == 0 {
		return nil
	}
	what := fmt.Sprintf("0x%02x", c.b[0])
	if e, err := (&cursor{b: c.b, off: c.off}).next(); err == nil {
		what = tagName(e.tag)
	}
	return errorf(c.off, "unexpected %s after the last field (%s)", what, bytesCount(len(c.b)))
}

// OCaml's int, which builder decodes every INTEGER into, has 63 bits.
const (
	maxOCamlInt = 1<<62 - 1
	minOCamlInt = -1 << 62
)

// parseInt reads the contents of a DER INTEGER: two's complement, shortest
// form, within OCaml's int range.
func parseInt(e elem) (int64, error) {
	b := e.body
	if len(b) == 0 {
		return 0, errorf(e.off, "INTEGER has no contents octets")
	}
	if len(b) > 1 && (b[0] == 0 && b[1]&0x80 == 0 || b[0] == 0xff && b[1]&0x80 != 0) {
		return 0, errorf(e.off, "INTEGER is not in its shortest form, which DER requires")
	}
	if len(b) > 8 {
		return 0, errorf(e.off, "INTEGER of %d octets is out of range of builder's 63-bit int", len(b))
	}
	v := int64(int8(b[0]))
	for _, x := range b[1:] {
		v = v<<8 | int64(x)
	}
	if v > maxOCamlInt || v < minOCamlInt {
		return 0, errorf(e.off, "INTEGER %d is out of range of builder's 63-bit int", v)
	}
	return v, nil
}

// intLen is the number of contents octets of v as a DER INTEGER.
func intLen(v int64) int {
	n := 1
	for v > 127 || v < -128 {
		v >>= 8
		n++
	}
	return n
}

func appendInt(b []byte, v int64) []byte {
	n := intLen(v)
	b = appendHeader(b, tagInteger, n)
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// lenLen is the number of octets of a DER length field for n.
func lenLen(n int) int {
	if n < 0x80 {
		return 1
	}
	k := 1
	for n > 0 {
		n >>= 8
		k++
	}
	return k
}

// tlv is the encoded size of an element with n contents octets and a
// single-octet tag.
func tlv(n int) int { return 1 + lenLen(n) + n }

func appendHeader(b []byte, tag byte, n int) []byte {
	b = append(b, tag)
	if n < 0x80 {
		return append(b, byte(n))
	}
	k := lenLen(n) - 1
	b = append(b, 0x80|byte(k))
	for i := k - 1; i >= 0; i-- {
		b = append(b, byte(n>>(8*i)))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(appendHeader(b, tagUTF8String, len(s)), s...)
}

func appendBytes(b []byte, s []byte) []byte {
	return append(appendHeader(b, tagUTF8String, len(s)), s...)
}

// Time formats. builder writes GeneralizedTime through asn1-combinators:
// "YYYYMMDDhhmmssZ" when the fraction of the second is zero, else
// "YYYYMMDDhhmmss.fffZ" with the milliseconds truncated and always three
// digits (so a fraction below 1 ms reads ".000"). Older builders wrote
// UTCTime "YYMMDDhhmmssZ".
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

// parseTime reads a UTCTime or GeneralizedTime element. canonical is false
// for encodings that Marshal does not reproduce (UTCTime, a ".000" fraction).
func parseTime(e elem) (t time.Time, canonical bool, err error) {
	s := e.body
	var year int
	var rest []byte
	switch e.tag {
	case tagGeneralizedTime:
		if len(s) != genTimeLen && len(s) != genTimeFracLen {
			return time.Time{}, false, errorf(e.off, "GeneralizedTime %s is not of the form YYYYMMDDhhmmss[.fff]Z", quote(string(s)))
		}
		y, ok := digits(s[:4])
		if !ok {
			return time.Time{}, false, errorf(e.off, "GeneralizedTime %s has a malformed year", quote(string(s)))
		}
		year, rest = y, s[4:]
	case tagUTCTime:
		if len(s) != utcTimeLen {
			return time.Time{}, false, errorf(e.off, "UTCTime %s is not of the form YYMMDDhhmmssZ", quote(string(s)))
		}
		y, ok := digits(s[:2])
		if !ok {
			return time.Time{}, false, errorf(e.off, "UTCTime %s has a malformed year", quote(string(s)))
		}
		// asn1-combinators reads 51..99 as 19YY and 00..50 as 20YY.
		if y > 50 {
			year = 1900 + y
		} else {
			year = 2000 + y
		}
		rest = s[2:]
	default:
		return time.Time{}, false, errorf(e.off, "expected UTCTime or GeneralizedTime, found %s", tagName(e.tag))
	}
	// rest: MMDDhhmmss[.fff]Z
	month, ok1 := digits(rest[0:2])
	day, ok2 := digits(rest[2:4])
	hour, ok3 := digits(rest[4:6])
	minute, ok4 := digits(rest[6:8])
	sec, ok5 := digits(rest[8:10])
	if !(ok1 && ok2 && ok3 && ok4 && ok5) {
		return time.Time{}, false, errorf(e.off, "%s %s has a non-digit", tagName(e.tag), quote(string(s)))
	}
	ms := 0
	canonical = e.tag == tagGeneralizedTime
	switch tail := rest[10:]; len(tail) {
	case 1:
	case 5:
		if tail[0] != '.' {
			return time.Time{}, false, errorf(e.off, "GeneralizedTime %s is not of the form YYYYMMDDhhmmss[.fff]Z", quote(string(s)))
		}
		f, ok := digits(tail[1:4])
		if !ok {
			return time.Time{}, false, errorf(e.off, "%s %s has a non-digit in the fraction", tagName(e.tag), quote(string(s)))
		}
		ms = f
		if f == 0 {
			canonical = false
		}
	}
	if s[len(s)-1] != 'Z' {
		return time.Time{}, false, errorf(e.off, "%s %s does not end in Z (UTC)", tagName(e.tag), quote(string(s)))
	}
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false, errorf(e.off, "%s %s is not a valid date and time", tagName(e.tag), quote(string(s)))
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, ms*int(time.Millisecond), time.UTC)
	if t.Day() != day {
		return time.Time{}, false, errorf(e.off, "%s %s is not a valid date", tagName(e.tag), quote(string(s)))
	}
	return t, canonical, nil
}

// appendGeneralizedTime writes t as builder does (see parseTime).
func appendGeneralizedTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	n := genTimeLen
	ns := t.Nanosecond()
	if ns != 0 {
		n = genTimeFracLen
	}
	b = appendHeader(b, tagGeneralizedTime, n)
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10))
	for _, v := range [...]int{int(mo), d, h, mi, s} {
		b = append(b, byte('0'+v/10), byte('0'+v%10))
	}
	if ns != 0 {
		ms := ns / int(time.Millisecond)
		b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	}
	return append(b, 'Z')
}

func generalizedTimeLen(t time.Time) int {
	if t.Nanosecond() != 0 {
		return genTimeFracLen
	}
	return genTimeLen
}

// truncMillis drops what Marshal cannot write: the part of a second below
// one millisecond.
func truncMillis(t time.Time) time.Time {
	t = t.UTC()
	return t.Add(-time.Duration(t.Nanosecond() % int(time.Millisecond)))
}

func bytesCount(n int) string {
	if n == 1 {
		return "1 trailing byte"
	}
	return fmt.Sprintf("%d trailing bytes", n)
}
