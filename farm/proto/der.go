package proto

import (
	"fmt"
)

// DER identifier octets of the universal types builder's cmd uses. Context
// tags are explicit ([n] EXPLICIT): 0xa0|n, constructed, n <= 30.
const (
	tagInteger         = 0x02
	tagNull            = 0x05
	tagUTF8String      = 0x0c
	tagUTCTime         = 0x17
	tagGeneralizedTime = 0x18
	tagSequence        = 0x30
)

func ctx(n int) byte { return 0xa0 | byte(n) }

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
	case 0x2c:
		return "constructed UTF8String"
	}
	if t&0xe0 == 0xa0 && t&0x1f != 0x1f {
		return fmt.Sprintf("[%d]", t&0x1f)
	}
	return fmt.Sprintf("tag 0x%02x", t)
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

// elem is one DER element of the payload.
type elem struct {
	tag     byte
	off     int    // offset of the identifier octet
	body    []byte // contents, a slice of the payload
	bodyOff int
}

func (e elem) contents() cursor { return cursor{b: e.body, off: e.bodyOff} }

// cursor reads the elements inside one constructed element (or the whole
// payload) in order. A length is compared with the bytes present before
// anything is sliced; nothing is copied.
type cursor struct {
	b   []byte
	off int
}

func (c *cursor) more() bool { return len(c.b) > 0 }

// peek returns the identifier octet of the next element, or 0 at the end.
func (c *cursor) peek() byte {
	if len(c.b) == 0 {
		return 0
	}
	return c.b[0]
}

// next reads one element in strict DER: low-tag-number form, definite
// length in its shortest form.
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
		return elem{}, errorf(off, "high-tag-number identifier 0x%02x is not used by builder", tag)
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
	if !c.more() {
		return elem{}, errorf(c.off, "missing (expected %s)", tagName(tag))
	}
	e, err := c.next()
	if err != nil {
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
	return errorf(c.off, "unexpected %s after the last field (%d trailing bytes)", what, len(c.b))
}

// OCaml's int, which builder decodes every INTEGER into, has 63 bits.
const (
	maxOCamlInt = 1<<62 - 1
	minOCamlInt = -1 << 62
)

// parseInt reads an INTEGER element: two's complement, shortest form,
// within OCaml's int range.
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

func expectNull(c *cursor) error {
	e, err := c.expect(tagNull)
	if err != nil {
		return err
	}
	if len(e.body) != 0 {
		return errorf(e.off, "NULL has %d contents octets, DER requires none", len(e.body))
	}
	return nil
}

// Encoding. Every element is appended with its header; constructed elements
// are written through seq, which fixes the length after the contents.

func appendHeader(b []byte, tag byte, n int) []byte {
	b = append(b, tag)
	if n < 0x80 {
		return append(b, byte(n))
	}
	k := 0
	for m := n; m > 0; m >>= 8 {
		k++
	}
	b = append(b, 0x80|byte(k))
	for i := k - 1; i >= 0; i-- {
		b = append(b, byte(n>>(8*i)))
	}
	return b
}

// seq appends a constructed element with the given tag whose contents f
// appends.
func seq(b []byte, tag byte, f func([]byte) []byte) []byte {
	body := f(nil)
	return append(appendHeader(b, tag, len(body)), body...)
}

func appendString(b []byte, s string) []byte {
	return append(appendHeader(b, tagUTF8String, len(s)), s...)
}

func appendBytes(b []byte, s []byte) []byte {
	return append(appendHeader(b, tagUTF8String, len(s)), s...)
}

func appendInt(b []byte, v int64) []byte {
	n := 1
	for w := v; w > 127 || w < -128; w >>= 8 {
		n++
	}
	b = appendHeader(b, tagInteger, n)
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func appendNull(b []byte) []byte { return append(b, tagNull, 0) }
