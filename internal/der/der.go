// Package der reads and writes strict DER (X.690) for the subset that
// builder's ASN.1 uses: single-octet identifiers (universal INTEGER, NULL,
// UTF8String, UTCTime, GeneralizedTime, SEQUENCE and context-specific
// [n] EXPLICIT, n <= 30), definite lengths in their shortest form, and
// INTEGERs in their shortest two's-complement form within OCaml's 63-bit
// int, which builder decodes every INTEGER into.
//
// It serves ledger/builder (builder's exec record) and farm/proto (builder's
// farm protocol). Reading goes through a Cursor over a byte slice: a length
// is checked against the bytes that are actually there before anything is
// sliced, nothing is copied and nothing is allocated unless the input is
// rejected. Each user keeps its own error type and wording through a
// Dialect; the texts of the errors are this package's.
package der

import (
	"fmt"
)

// Identifier octets of the universal types builder's ASN.1 uses.
const (
	TagInteger         = 0x02
	TagOctetString     = 0x04 // not used by builder; named in errors
	TagNull            = 0x05
	TagUTF8String      = 0x0c
	TagUTCTime         = 0x17
	TagGeneralizedTime = 0x18
	TagSequence        = 0x30 // SEQUENCE and SEQUENCE OF, constructed
)

// Explicit is the identifier octet of [n] EXPLICIT: context-specific,
// constructed, for n <= 30.
func Explicit(n int) byte { return 0xa0 | byte(n) }

// TagName names an identifier octet in an error message: "INTEGER",
// "[3]", "tag 0x1f".
func TagName(t byte) string {
	switch t {
	case TagInteger:
		return "INTEGER"
	case TagNull:
		return "NULL"
	case TagUTF8String:
		return "UTF8String"
	case TagUTCTime:
		return "UTCTime"
	case TagGeneralizedTime:
		return "GeneralizedTime"
	case TagSequence:
		return "SEQUENCE"
	case TagOctetString:
		return "OCTET STRING"
	case 0x2c:
		return "constructed UTF8String"
	}
	if t&0xe0 == 0xa0 && t&0x1f != 0x1f {
		return fmt.Sprintf("[%d]", t&0x1f)
	}
	return fmt.Sprintf("tag 0x%02x", t)
}

// TrailingBytes counts trailing bytes in an error message: "1 trailing
// byte", "2 trailing bytes".
func TrailingBytes(n int) string {
	if n == 1 {
		return "1 trailing byte"
	}
	return fmt.Sprintf("%d trailing bytes", n)
}

// A Dialect is how one user of the package reports what it rejects: its
// error type, and the few words that differ between users. It is only
// consulted when an input is rejected.
type Dialect struct {
	// Name is what a high-tag-number identifier "is not used by" (e.g.
	// "exec").
	Name string
	// Errorf makes the error about the element at byte offset off of the
	// input. Nil gives an *Error.
	Errorf func(off int, format string, args ...any) error
	// TagName names identifier octets; nil means the package's TagName.
	TagName func(t byte) string
	// Trailing counts trailing bytes; nil means TrailingBytes.
	Trailing func(n int) string
}

// Error is the error of a Dialect without Errorf.
type Error struct {
	Offset int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("der: %s (at byte %d)", e.Msg, e.Offset) }

func (d *Dialect) errorf(off int, format string, args ...any) error {
	if d == nil || d.Errorf == nil {
		return &Error{Offset: off, Msg: fmt.Sprintf(format, args...)}
	}
	return d.Errorf(off, format, args...)
}

// Tag names t as the dialect does.
func (d *Dialect) Tag(t byte) string {
	if d == nil || d.TagName == nil {
		return TagName(t)
	}
	return d.TagName(t)
}

func (d *Dialect) trailing(n int) string {
	if d == nil || d.Trailing == nil {
		return TrailingBytes(n)
	}
	return d.Trailing(n)
}

// Cursor returns a cursor over b, the part of the input that starts at
// byte offset off, that reports errors in dialect d.
func (d *Dialect) Cursor(b []byte, off int) Cursor { return Cursor{b: b, off: off, d: d} }

// The header rules, shared by Cursor.Next and by readers of a stream that
// take a header one octet at a time: Identifier, then LengthOctets if the
// first length octet is 0x80 or more, then LongLength, then Fits.

// Identifier checks the identifier octet of the element at off: builder
// uses the low-tag-number form only.
func (d *Dialect) Identifier(off int, tag byte) error {
	if tag&0x1f == 0x1f {
		return d.errorf(off, "high-tag-number identifier 0x%02x is not used by %s", tag, d.name())
	}
	return nil
}

func (d *Dialect) name() string {
	if d == nil || d.Name == "" {
		return "builder"
	}
	return d.Name
}

// LengthOctets checks the first length octet l >= 0x80 of the element at
// off and returns how many length octets follow it. avail is how many
// bytes of the input follow l; they must hold the length octets.
func (d *Dialect) LengthOctets(off int, tag, l byte, avail int64) (int, error) {
	if l == 0x80 {
		return 0, d.errorf(off, "%s has an indefinite length, which DER forbids", d.Tag(tag))
	}
	k := int(l & 0x7f)
	if k > 8 {
		return 0, d.errorf(off, "%s has a %d-octet length field", d.Tag(tag), k)
	}
	if avail < int64(k) {
		return 0, d.errorf(off, "truncated: %s length field needs %d octets, %d remain", d.Tag(tag), k, avail)
	}
	return k, nil
}

// LongLength decodes the length octets b (1 to 8, as LengthOctets said)
// of the element at off, refusing what DER forbids.
func (d *Dialect) LongLength(off int, tag byte, b []byte) (uint64, error) {
	if b[0] == 0 {
		return 0, d.errorf(off, "%s length has a leading zero octet, which DER forbids", d.Tag(tag))
	}
	var n uint64
	for _, x := range b {
		n = n<<8 | uint64(x)
	}
	if n < 0x80 {
		return 0, d.errorf(off, "%s length %d is in long form, which DER forbids below 128", d.Tag(tag), n)
	}
	return n, nil
}

// Fits checks that the n contents octets of the element at off are among
// the avail bytes of the input that follow its header.
func (d *Dialect) Fits(off int, tag byte, n uint64, avail int64) error {
	if n > uint64(avail) {
		return d.errorf(off, "truncated: %s claims %d bytes, %d remain", d.Tag(tag), n, avail)
	}
	return nil
}

// Elem is one DER element of the input.
type Elem struct {
	Tag     byte
	Off     int    // offset of the identifier octet in the input
	Body    []byte // the contents octets, a slice of the input
	BodyOff int    // offset of Body[0] in the input
	d       *Dialect
}

// Contents returns a cursor over the elements inside e.
func (e Elem) Contents() Cursor { return Cursor{b: e.Body, off: e.BodyOff, d: e.d} }

// Cursor reads the elements inside one constructed element (or the whole
// input) in order. It never copies and never allocates: a length is checked
// against the bytes that are actually there before anything is sliced.
// Make one with Dialect.Cursor or Elem.Contents.
type Cursor struct {
	b   []byte
	off int // offset of b[0] in the input
	d   *Dialect
}

// More reports whether any bytes are left.
func (c *Cursor) More() bool { return len(c.b) > 0 }

// Off is the offset in the input of what is left.
func (c *Cursor) Off() int { return c.off }

// Len is how many bytes are left.
func (c *Cursor) Len() int { return len(c.b) }

// Peek returns the identifier octet of the next element, or 0 at the end.
func (c *Cursor) Peek() byte {
	if len(c.b) == 0 {
		return 0
	}
	return c.b[0]
}

// Next reads one element in strict DER: low-tag-number form, definite
// length in the shortest form. On error the cursor does not move.
func (c *Cursor) Next() (Elem, error) {
	b, off, d := c.b, c.off, c.d
	switch len(b) {
	case 0:
		return Elem{}, d.errorf(off, "missing")
	case 1:
		return Elem{}, d.errorf(off, "truncated: no length after the identifier octet")
	}
	tag := b[0]
	if err := d.Identifier(off, tag); err != nil {
		return Elem{}, err
	}
	var n uint64
	hdr := 2
	if l := b[1]; l < 0x80 {
		n = uint64(l)
	} else {
		k, err := d.LengthOctets(off, tag, l, int64(len(b)-2))
		if err != nil {
			return Elem{}, err
		}
		if n, err = d.LongLength(off, tag, b[2:2+k]); err != nil {
			return Elem{}, err
		}
		hdr = 2 + k
	}
	if err := d.Fits(off, tag, n, int64(len(b)-hdr)); err != nil {
		return Elem{}, err
	}
	end := hdr + int(n)
	e := Elem{Tag: tag, Off: off, Body: b[hdr:end], BodyOff: off + hdr, d: d}
	c.b, c.off = b[end:], off+end
	return e, nil
}

// Expect reads one element and checks its tag. An element of another tag
// is read all the same.
func (c *Cursor) Expect(tag byte) (Elem, error) {
	if len(c.b) == 0 {
		return Elem{}, c.d.errorf(c.off, "missing (expected %s)", c.d.Tag(tag))
	}
	e, err := c.Next()
	if err != nil {
		return Elem{}, err
	}
	if e.Tag != tag {
		return Elem{}, c.d.errorf(e.Off, "expected %s, found %s", c.d.Tag(tag), c.d.Tag(e.Tag))
	}
	return e, nil
}

// ExpectNull reads a NULL.
func (c *Cursor) ExpectNull() error {
	e, err := c.Expect(TagNull)
	if err != nil {
		return err
	}
	if len(e.Body) != 0 {
		return c.d.errorf(e.Off, "NULL has %d contents octets, DER requires none", len(e.Body))
	}
	return nil
}

// End checks that nothing is left.
func (c *Cursor) End() error {
	if len(c.b) == 0 {
		return nil
	}
	what := fmt.Sprintf("0x%02x", c.b[0])
	if e, err := (&Cursor{b: c.b, off: c.off, d: c.d}).Next(); err == nil {
		what = c.d.Tag(e.Tag)
	}
	return c.d.errorf(c.off, "unexpected %s after the last field (%s)", what, c.d.trailing(len(c.b)))
}

// The range of OCaml's int, which builder decodes every INTEGER into: 63
// bits.
const (
	MaxInt = 1<<62 - 1
	MinInt = -1 << 62
)

// Int reads the contents of an INTEGER: two's complement, shortest form,
// within MinInt..MaxInt. It does not check the tag.
func (e Elem) Int() (int64, error) {
	b := e.Body
	if len(b) == 0 {
		return 0, e.d.errorf(e.Off, "INTEGER has no contents octets")
	}
	if len(b) > 1 && (b[0] == 0 && b[1]&0x80 == 0 || b[0] == 0xff && b[1]&0x80 != 0) {
		return 0, e.d.errorf(e.Off, "INTEGER is not in its shortest form, which DER requires")
	}
	if len(b) > 8 {
		return 0, e.d.errorf(e.Off, "INTEGER of %d octets is out of range of builder's 63-bit int", len(b))
	}
	v := int64(int8(b[0]))
	for _, x := range b[1:] {
		v = v<<8 | int64(x)
	}
	if v > MaxInt || v < MinInt {
		return 0, e.d.errorf(e.Off, "INTEGER %d is out of range of builder's 63-bit int", v)
	}
	return v, nil
}

// Writing. Every element is appended with its header, which needs the
// length of its contents first: IntLen and TLV compute sizes.

// IntLen is the number of contents octets of v as an INTEGER.
func IntLen(v int64) int {
	n := 1
	for v > 127 || v < -128 {
		v >>= 8
		n++
	}
	return n
}

// LenLen is the number of octets of the length field for n contents
// octets.
func LenLen(n int) int {
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

// TLV is the encoded size of an element with n contents octets.
func TLV(n int) int { return 1 + LenLen(n) + n }

// AppendHeader appends the identifier and length octets of an element
// with n contents octets.
func AppendHeader(b []byte, tag byte, n int) []byte {
	b = append(b, tag)
	if n < 0x80 {
		return append(b, byte(n))
	}
	k := LenLen(n) - 1
	b = append(b, 0x80|byte(k))
	for i := k - 1; i >= 0; i-- {
		b = append(b, byte(n>>(8*i)))
	}
	return b
}

// AppendString appends s as a UTF8String.
func AppendString(b []byte, s string) []byte {
	return append(AppendHeader(b, TagUTF8String, len(s)), s...)
}

// AppendBytes appends s as a UTF8String (builder's form for raw bytes).
func AppendBytes(b []byte, s []byte) []byte {
	return append(AppendHeader(b, TagUTF8String, len(s)), s...)
}

// AppendInt appends v as an INTEGER.
func AppendInt(b []byte, v int64) []byte {
	n := IntLen(v)
	b = AppendHeader(b, TagInteger, n)
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// AppendNull appends a NULL.
func AppendNull(b []byte) []byte { return append(b, TagNull, 0) }
