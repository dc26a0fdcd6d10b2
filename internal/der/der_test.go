package der

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"
)

// testErr is the error type of the test dialect.
type testErr struct {
	off int
	msg string
}

func (e *testErr) Error() string { return fmt.Sprintf("test: %s (at byte %d)", e.msg, e.off) }

var testDialect = &Dialect{
	Name:   "test",
	Errorf: func(off int, format string, args ...any) error { return &testErr{off, fmt.Sprintf(format, args...)} },
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNext(t *testing.T) {
	long := "0c 81 80 " + strings.Repeat("61", 0x80)
	tests := []struct {
		name, in string
		want     string // error text, or "" for success
		tag      byte
		body     int // length of the contents
	}{
		{"short", "0c 02 6869", "", TagUTF8String, 2},
		{"long form", long, "", TagUTF8String, 0x80},
		{"empty", "", "test: missing (at byte 5)", 0, 0},
		{"no length", "0c", "test: truncated: no length after the identifier octet (at byte 5)", 0, 0},
		{"high tag", "1f 01 00", "test: high-tag-number identifier 0x1f is not used by test (at byte 5)", 0, 0},
		{"high tag context", "bf 1f 00", "test: high-tag-number identifier 0xbf is not used by test (at byte 5)", 0, 0},
		{"indefinite", "30 80 0000", "test: SEQUENCE has an indefinite length, which DER forbids (at byte 5)", 0, 0},
		{"9-octet length", "30 89 010000000000000000", "test: SEQUENCE has a 9-octet length field (at byte 5)", 0, 0},
		{"length field truncated", "02 82 01", "test: truncated: INTEGER length field needs 2 octets, 1 remain (at byte 5)", 0, 0},
		{"leading zero", "0c 82 0080 " + strings.Repeat("61", 0x80), "test: UTF8String length has a leading zero octet, which DER forbids (at byte 5)", 0, 0},
		{"non-minimal length", "0c 81 02 6869", "test: UTF8String length 2 is in long form, which DER forbids below 128 (at byte 5)", 0, 0},
		{"truncated contents", "0c 03 6869", "test: truncated: UTF8String claims 3 bytes, 2 remain (at byte 5)", 0, 0},
		{"truncated long", "0c 81 80 61", "test: truncated: UTF8String claims 128 bytes, 1 remain (at byte 5)", 0, 0},
		{"huge length", "0c 88 ffffffffffffffff 61", "test: truncated: UTF8String claims 18446744073709551615 bytes, 1 remain (at byte 5)", 0, 0},
		{"context tag name", "a3 05 00", "test: truncated: [3] claims 5 bytes, 1 remain (at byte 5)", 0, 0},
		{"unnamed tag", "04 05", "test: truncated: OCTET STRING claims 5 bytes, 0 remain (at byte 5)", 0, 0},
		{"other tag", "13 05", "test: truncated: tag 0x13 claims 5 bytes, 0 remain (at byte 5)", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := unhex(t, tt.in)
			c := testDialect.Cursor(in, 5)
			e, err := c.Next()
			if tt.want != "" {
				if err == nil || err.Error() != tt.want {
					t.Fatalf("got %v, want %s", err, tt.want)
				}
				if _, ok := err.(*testErr); !ok {
					t.Fatalf("error of type %T", err)
				}
				if c.Off() != 5 || c.Len() != len(in) {
					t.Fatalf("cursor moved on error: off %d len %d", c.Off(), c.Len())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Tag != tt.tag || len(e.Body) != tt.body || e.Off != 5 || e.BodyOff != 5+len(in)-tt.body {
				t.Fatalf("got %+v", e)
			}
			if c.More() || c.Off() != 5+len(in) {
				t.Fatalf("cursor at %d, more %v", c.Off(), c.More())
			}
		})
	}
}

func TestExpectAndEnd(t *testing.T) {
	c := testDialect.Cursor(unhex(t, "30 03 020101 0500 0c00"), 0)
	seq, err := c.Expect(TagSequence)
	if err != nil {
		t.Fatal(err)
	}
	in := seq.Contents()
	if in.Off() != 2 || in.Peek() != TagInteger {
		t.Fatalf("contents at %d, peek %#x", in.Off(), in.Peek())
	}
	if peek := in; true {
		if _, err := peek.Expect(TagUTF8String); err == nil || err.Error() != "test: expected UTF8String, found INTEGER (at byte 2)" {
			t.Fatalf("wrong tag: %v", err)
		}
	}
	if _, err := (&Cursor{}).Expect(TagUTF8String); err == nil || err.Error() != "der: missing (expected UTF8String) (at byte 0)" {
		t.Fatalf("zero cursor: %v", err)
	}
	if i, err := in.Expect(TagInteger); err != nil {
		t.Fatal(err)
	} else if v, err := i.Int(); err != nil || v != 1 {
		t.Fatalf("INTEGER %d, %v", v, err)
	}
	if _, err := in.Expect(TagInteger); err == nil || err.Error() != "test: missing (expected INTEGER) (at byte 5)" {
		t.Fatalf("missing: %v", err)
	}
	if in.Peek() != 0 || in.End() != nil {
		t.Fatal("contents not at their end")
	}
	if err := c.ExpectNull(); err != nil {
		t.Fatal(err)
	}
	if err := c.End(); err == nil || err.Error() != "test: unexpected UTF8String after the last field (2 trailing bytes) (at byte 7)" {
		t.Fatalf("end: %v", err)
	}
	one := testDialect.Cursor([]byte{0x05}, 9)
	if err := one.End(); err == nil || err.Error() != "test: unexpected 0x05 after the last field (1 trailing byte) (at byte 9)" {
		t.Fatalf("end of 1 byte: %v", err)
	}
	bad := testDialect.Cursor(unhex(t, "0501 00"), 0)
	if err := bad.ExpectNull(); err == nil || err.Error() != "test: NULL has 1 contents octets, DER requires none (at byte 0)" {
		t.Fatalf("NULL with contents: %v", err)
	}
}

// TestDialectWords: a dialect's own tag names and count of trailing bytes.
func TestDialectWords(t *testing.T) {
	d := &Dialect{
		Errorf:   testDialect.Errorf,
		TagName:  func(t byte) string { return fmt.Sprintf("<%02x>", t) },
		Trailing: func(n int) string { return fmt.Sprintf("%d trailing bytes", n) },
	}
	c := d.Cursor(unhex(t, "0500 04"), 0)
	if _, err := c.Expect(TagInteger); err == nil || err.Error() != "test: expected <02>, found <05> (at byte 0)" {
		t.Fatalf("expect: %v", err)
	}
	c.Next()
	if err := c.End(); err == nil || err.Error() != "test: unexpected 0x04 after the last field (1 trailing bytes) (at byte 2)" {
		t.Fatalf("end: %v", err)
	}
	if err := d.Identifier(3, 0x1f); err == nil || err.Error() != "test: high-tag-number identifier 0x1f is not used by builder (at byte 3)" {
		t.Fatalf("identifier: %v", err)
	}
	var nilDialect *Dialect
	c = nilDialect.Cursor(nil, 4)
	if _, err := c.Next(); err == nil || err.Error() != "der: missing (at byte 4)" {
		t.Fatalf("nil dialect: %v", err)
	}
}

func TestInt(t *testing.T) {
	tests := []struct {
		body string
		v    int64
		want string
	}{
		{"00", 0, ""},
		{"7f", 127, ""},
		{"0080", 128, ""},
		{"80", -128, ""},
		{"ff7f", -129, ""},
		{"3fffffffffffffff", MaxInt, ""},
		{"c000000000000000", MinInt, ""},
		{"", 0, "test: INTEGER has no contents octets (at byte 7)"},
		{"0001", 0, "test: INTEGER is not in its shortest form, which DER requires (at byte 7)"},
		{"ff80", 0, "test: INTEGER is not in its shortest form, which DER requires (at byte 7)"},
		{"4000000000000000", 0, "test: INTEGER 4611686018427387904 is out of range of builder's 63-bit int (at byte 7)"},
		{"bfffffffffffffff", 0, "test: INTEGER -4611686018427387905 is out of range of builder's 63-bit int (at byte 7)"},
		{"010000000000000000", 0, "test: INTEGER of 9 octets is out of range of builder's 63-bit int (at byte 7)"},
	}
	for _, tt := range tests {
		body := unhex(t, tt.body)
		c := testDialect.Cursor(AppendHeader(nil, TagInteger, len(body)), 7)
		c.b = append(c.b, body...)
		e, err := c.Expect(TagInteger)
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.Int()
		if tt.want != "" {
			if err == nil || err.Error() != tt.want {
				t.Errorf("%s: got %d, %v, want %s", tt.body, v, err, tt.want)
			}
			continue
		}
		if err != nil || v != tt.v {
			t.Errorf("%s: got %d, %v, want %d", tt.body, v, err, tt.v)
		}
		if got := AppendInt(nil, v); hex.EncodeToString(got[2:]) != tt.body || IntLen(v) != len(body) {
			t.Errorf("AppendInt(%d) = %x", v, got)
		}
	}
}

func TestAppendHeader(t *testing.T) {
	for _, n := range []int{0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 1 << 30} {
		h := AppendHeader(nil, TagSequence, n)
		if len(h) != 1+LenLen(n) || TLV(n) != len(h)+n {
			t.Errorf("n %d: header %x, LenLen %d, TLV %d", n, h, LenLen(n), TLV(n))
		}
		// The header reads back with only its contents missing.
		c := testDialect.Cursor(h, 0)
		_, err := c.Next()
		want := fmt.Sprintf("test: truncated: SEQUENCE claims %d bytes, 0 remain (at byte 0)", n)
		if n == 0 {
			want = "<nil>"
		}
		if fmt.Sprint(err) != want {
			t.Errorf("n %d: read back %v", n, err)
		}
	}
	if got := hex.EncodeToString(AppendNull(AppendString(AppendBytes(nil, []byte{1}), "a"))); got != "0c01010c01610500" {
		t.Errorf("appended %s", got)
	}
}

func TestNextDoesNotAllocate(t *testing.T) {
	in := unhex(t, "30 0a 020101 0c0161 a1020500")
	n := testing.AllocsPerRun(100, func() {
		c := testDialect.Cursor(in, 0)
		seq, err := c.Expect(TagSequence)
		if err != nil {
			panic(err)
		}
		sc := seq.Contents()
		i, _ := sc.Expect(TagInteger)
		if _, err := i.Int(); err != nil {
			panic(err)
		}
		sc.Expect(TagUTF8String)
		x, _ := sc.Next()
		xc := x.Contents()
		if xc.ExpectNull() != nil || sc.End() != nil || c.End() != nil {
			panic("bad")
		}
	})
	if n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func TestTime(t *testing.T) {
	tests := []struct {
		tag   byte
		s     string
		want  time.Time
		form  TimeForm
		fault TimeFault
	}{
		{TagGeneralizedTime, "20240102030405Z", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), TimeGeneralized, TimeOK},
		{TagGeneralizedTime, "20240102030405.123Z", time.Date(2024, 1, 2, 3, 4, 5, 123e6, time.UTC), TimeGeneralized, TimeOK},
		{TagGeneralizedTime, "20240102030405.000Z", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), TimeGeneralizedZeroFraction, TimeOK},
		{TagUTCTime, "510102030405Z", time.Date(1951, 1, 2, 3, 4, 5, 0, time.UTC), TimeUTC, TimeOK},
		{TagUTCTime, "500102030405Z", time.Date(2050, 1, 2, 3, 4, 5, 0, time.UTC), TimeUTC, TimeOK},
		{TagUTF8String, "20240102030405Z", time.Time{}, 0, TimeNotTime},
		{TagGeneralizedTime, "2024010203040Z", time.Time{}, 0, TimeNotForm},
		{TagGeneralizedTime, "20240102030405,000Z", time.Time{}, 0, TimeNotForm},
		{TagGeneralizedTime, "2x240102030405Z", time.Time{}, 0, TimeYear},
		{TagGeneralizedTime, "202401020304x5Z", time.Time{}, 0, TimeNonDigit},
		{TagGeneralizedTime, "20240102030405.0x0Z", time.Time{}, 0, TimeFraction},
		{TagGeneralizedTime, "202401020304050", time.Time{}, 0, TimeNoZ},
		{TagGeneralizedTime, "20241302030405Z", time.Time{}, 0, TimeInvalid},
		{TagGeneralizedTime, "20230229030405Z", time.Time{}, 0, TimeNoDate},
		{TagUTCTime, "2401020304Z", time.Time{}, 0, TimeNotForm},
	}
	for _, tt := range tests {
		got, form, fault := ParseTime(tt.tag, []byte(tt.s))
		if !got.Equal(tt.want) || form != tt.form || fault != tt.fault {
			t.Errorf("%s: got %v %d %q, want %v %d %q", tt.s, got, form, fault.Words(tt.tag), tt.want, tt.form, tt.fault.Words(tt.tag))
		}
		if fault != TimeOK {
			continue
		}
		var b []byte
		if form == TimeUTC {
			b = AppendUTCTime(nil, got)
		} else {
			b = AppendGeneralizedTime(nil, got, len(tt.s) == GeneralizedTimeFracLen)
		}
		if string(b[2:]) != tt.s || b[0] != tt.tag || int(b[1]) != len(tt.s) {
			t.Errorf("%s: appended %q", tt.s, b)
		}
	}
	if w := TimeNotForm.Words(TagUTCTime); w != "is not of the form YYMMDDhhmmssZ" {
		t.Errorf("UTCTime form: %s", w)
	}
	if w := TimeNotForm.Words(TagGeneralizedTime); w != "is not of the form YYYYMMDDhhmmss[.fff]Z" {
		t.Errorf("GeneralizedTime form: %s", w)
	}
}
