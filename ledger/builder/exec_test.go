package builder

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/cryptobyte/asn1"
)

var testUUID = uuid.MustParse("3f2c5a1e-8b7d-4c6e-9a0f-1b2c3d4e5f60")

// goldenHex is a small exec record written by hand from builder's ASN.1
// (lib/builder.ml, Asn.exec), octet by octet.
const goldenHex = "" +
	"a08196" + //                                 [0] EXPLICIT, 150 bytes
	"308193" + //                                   SEQUENCE, 147 bytes
	"301d" + //                                       job SEQUENCE, 29 bytes
	"0c0568656c6c6f" + //                               name UTF8String "hello"
	"0c076563686f206869" + //                           script UTF8String "echo hi"
	"3000" + //                                         files SEQUENCE OF: empty
	"0c0964656269616e2d3132" + //                       platform UTF8String "debian-12"
	"0c103f2c5a1e8b7d4c6e9a0f1b2c3d4e5f60" + //       uuid UTF8String: the 16 raw bytes
	"301a" + //                                       console SEQUENCE OF, 26 bytes, newest first
	"300c" + "020477359400" + "0c04646f6e65" + //       delta 2000000000 ns, "done"
	"300a" + "020459682f00" + "0c026869" + //           delta 1500000000 ns, "hi"
	"3026" + //                                       timestamps SEQUENCE, 38 bytes
	"1813" + "32303234303130323033303430352e3235305a" + // GeneralizedTime "20240102030405.250Z"
	"180f" + "32303234303130323033303430375a" + //         GeneralizedTime "20240102030407Z"
	"a003020100" + //                                 result [0] exited: INTEGER 0
	"3017" + //                                       output SEQUENCE OF, 23 bytes
	"3015" + //                                         SEQUENCE, 21 bytes
	"0c0d62696e2f68656c6c6f2e687674" + //                 path "bin/hello.hvt"
	"0c0400ff800a" //                                     data: 4 bytes, not UTF-8

func goldenExec() *Exec {
	return &Exec{
		Job:      Job{Name: "hello", Script: "echo hi", Platform: "debian-12"},
		UUID:     testUUID,
		Console:  []Line{{1500 * time.Millisecond, "hi"}, {2 * time.Second, "done"}},
		Started:  time.Date(2024, 1, 2, 3, 4, 5, 250e6, time.UTC),
		Finished: time.Date(2024, 1, 2, 3, 4, 7, 0, time.UTC),
		Result:   Result{Kind: ResultExited},
		Output:   []File{{Path: "bin/hello.hvt", Data: []byte{0x00, 0xff, 0x80, 0x0a}}},
	}
}

// goldenWire is goldenHex as a wire value.
func goldenWire() wire {
	return wire{
		name: "hello", script: "echo hi", platform: str("debian-12"),
		uuid:     testUUID[:],
		console:  []wline{{2000000000, "done"}, {1500000000, "hi"}},
		started:  wtime{asn1.GeneralizedTime, "20240102030405.250Z"},
		finished: wtime{asn1.GeneralizedTime, "20240102030407Z"},
		result:   0, code: 0,
		output: []wfile{{path: "bin/hello.hvt", data: []byte{0x00, 0xff, 0x80, 0x0a}}},
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// equal compares two execs, treating nil and empty slices alike.
func equal(a, b *Exec) bool {
	if a.Job.Name != b.Job.Name || a.Job.Script != b.Job.Script || a.Job.Platform != b.Job.Platform ||
		!equalFiles(a.Job.Files, b.Job.Files) || a.UUID != b.UUID || len(a.Console) != len(b.Console) ||
		!a.Started.Equal(b.Started) || !a.Finished.Equal(b.Finished) || a.Result != b.Result ||
		!equalFiles(a.Output, b.Output) {
		return false
	}
	for i := range a.Console {
		if a.Console[i] != b.Console[i] {
			return false
		}
	}
	return true
}

func equalFiles(a, b []File) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Path != b[i].Path || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

func describe(e *Exec) string {
	var s strings.Builder
	fmt.Fprintf(&s, "job %q script %q platform %q files %d uuid %s\n", e.Job.Name, e.Job.Script, e.Job.Platform, len(e.Job.Files), e.UUID)
	fmt.Fprintf(&s, "started %s finished %s result %s\n", e.Started.Format(time.RFC3339Nano), e.Finished.Format(time.RFC3339Nano), e.Result)
	for _, l := range e.Console {
		fmt.Fprintf(&s, "  console %v %q\n", l.Delta, l.Data)
	}
	for _, f := range e.Output {
		fmt.Fprintf(&s, "  output %q %d bytes %x\n", f.Path, len(f.Data), f.Data[:min(len(f.Data), 16)])
	}
	return s.String()
}

// TestGolden parses hand-assembled records (hex written from the ASN.1, and
// cryptobyte builds), checks the values, and checks that Marshal writes the
// same bytes back.
func TestGolden(t *testing.T) {
	hexDER := mustHex(t, goldenHex)
	if got := goldenWire().der(); !bytes.Equal(got, hexDER) {
		t.Fatalf("the two hand encoders disagree:\nhex        %x\ncryptobyte %x", hexDER, got)
	}

	old := wire{ // as builders before GeneralizedTime wrote it: UTCTime, no platform
		name: "albatross", script: "#!/bin/sh\norb build albatross\n",
		uuid:     testUUID[:],
		console:  []wline{{300, "b"}, {0, "a"}},
		started:  wtime{asn1.UTCTime, "210512143015Z"},
		finished: wtime{asn1.UTCTime, "210512143115Z"},
		result:   1, code: -7, // OCaml's SIGKILL
	}
	oldCanon := old
	oldCanon.started = wtime{asn1.GeneralizedTime, "20210512143015Z"}
	oldCanon.finished = wtime{asn1.GeneralizedTime, "20210512143115Z"}

	timeout := goldenWire()
	timeout.result, timeout.msg = 3, "timeout"
	timeout.output = nil
	timeout.console = nil
	timeout.started = wtime{asn1.GeneralizedTime, "19991231235959.999Z"}
	timeout.finished = wtime{asn1.GeneralizedTime, "20000101010000.001Z"}

	stopped := goldenWire()
	stopped.result, stopped.code = 2, 1<<62-1
	stopped.jobFiles = []wfile{{path: "input.txt", data: []byte("x")}}
	stopped.console = []wline{{-1 << 62, "clock went back"}}

	tests := []struct {
		name      string
		der       []byte
		want      *Exec
		canonical []byte // what Marshal writes; nil means der itself
	}{
		{"hex", hexDER, goldenExec(), nil},
		{"utctime-no-platform-signalled", old.der(), &Exec{
			Job:      Job{Name: "albatross", Script: "#!/bin/sh\norb build albatross\n"},
			UUID:     testUUID,
			Console:  []Line{{0, "a"}, {300, "b"}},
			Started:  time.Date(2021, 5, 12, 14, 30, 15, 0, time.UTC),
			Finished: time.Date(2021, 5, 12, 14, 31, 15, 0, time.UTC),
			Result:   Result{Kind: ResultSignalled, Code: -7},
		}, oldCanon.der()},
		{"msg-timeout", timeout.der(), &Exec{
			Job:      goldenExec().Job,
			UUID:     testUUID,
			Started:  time.Date(1999, 12, 31, 23, 59, 59, 999e6, time.UTC),
			Finished: time.Date(2000, 1, 1, 1, 0, 0, 1e6, time.UTC),
			Result:   Result{Kind: ResultMsg, Msg: "timeout"},
		}, nil},
		{"stopped-job-files-extreme-ints", stopped.der(), &Exec{
			Job:      Job{Name: "hello", Script: "echo hi", Platform: "debian-12", Files: []File{{"input.txt", []byte("x")}}},
			UUID:     testUUID,
			Console:  []Line{{-1 << 62, "clock went back"}},
			Started:  goldenExec().Started,
			Finished: goldenExec().Finished,
			Result:   Result{Kind: ResultStopped, Code: wide(1<<62 - 1)},
			Output:   goldenExec().Output,
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, canonical, err := parse(tc.der, Limits{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !equal(got, tc.want) {
				t.Fatalf("Parse:\n%s\nwant:\n%s", describe(got), describe(tc.want))
			}
			want := tc.canonical
			if want == nil {
				want = tc.der
			}
			if canonical != bytes.Equal(want, tc.der) {
				t.Errorf("parse reports canonical=%v", canonical)
			}
			out, err := got.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.Equal(out, want) {
				t.Fatalf("Marshal:\n got %x\nwant %x", out, want)
			}
			out, err = tc.want.Marshal()
			if err != nil || !bytes.Equal(out, want) {
				t.Fatalf("Marshal of the expected value: %v\n got %x\nwant %x", err, out, want)
			}
		})
	}
}

// TestTimeEncoding checks the timestamp forms against asn1-combinators'
// GeneralizedTime writer: no fraction when it is zero, else exactly three
// digits of truncated milliseconds, ".000" below one millisecond.
func TestTimeEncoding(t *testing.T) {
	base := time.Date(2024, 2, 29, 23, 59, 58, 0, time.UTC)
	for _, tc := range []struct {
		ns   int
		wire string
		back time.Duration // what Parse gives back, relative to base
	}{
		{0, "20240229235958Z", 0},
		{1, "20240229235958.000Z", 0},
		{999_999, "20240229235958.000Z", 0},
		{1_000_000, "20240229235958.001Z", time.Millisecond},
		{500_000_000, "20240229235958.500Z", 500 * time.Millisecond},
		{999_999_999, "20240229235958.999Z", 999 * time.Millisecond},
	} {
		e := goldenExec()
		e.Started = base.Add(time.Duration(tc.ns))
		e.Finished = base.Add(time.Second)
		der, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		w := goldenWire()
		w.started = wtime{asn1.GeneralizedTime, tc.wire}
		w.finished = wtime{asn1.GeneralizedTime, "20240229235959Z"}
		if !bytes.Equal(der, w.der()) {
			t.Errorf("%d ns: Marshal does not write %q", tc.ns, tc.wire)
		}
		got, canonical, err := parse(der, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if !got.Started.Equal(base.Add(tc.back)) {
			t.Errorf("%q parses as %v", tc.wire, got.Started)
		}
		if canonical == strings.Contains(tc.wire, ".000") {
			t.Errorf("%q: canonical = %v", tc.wire, canonical)
		}
	}
	// A Go time in another zone is written in UTC.
	e := goldenExec()
	e.Started = e.Started.In(time.FixedZone("CEST", 2*3600))
	der, err := e.Marshal()
	if err != nil || !bytes.Equal(der, mustHex(t, goldenHex)) {
		t.Errorf("time zone not normalised: %v", err)
	}
	// UTCTime years: asn1-combinators reads 51..99 as 19YY, 00..50 as 20YY.
	for yy, want := range map[string]int{"51": 1951, "99": 1999, "00": 2000, "50": 2050} {
		w := goldenWire()
		w.started = wtime{asn1.UTCTime, yy + "0101000000Z"}
		w.finished = wtime{asn1.GeneralizedTime, "20600101000000Z"}
		got, err := Parse(w.der(), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Started.Year() != want {
			t.Errorf("UTCTime year %s reads as %d, want %d", yy, got.Started.Year(), want)
		}
	}
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// TestRoundTrip checks Parse(Marshal(e)) == e and that Marshal of the result
// gives the same bytes again.
func TestRoundTrip(t *testing.T) {
	long := goldenExec()
	long.Console = nil
	for i := range 70_000 { // > 65535 lines: a 3-octet length
		long.Console = append(long.Console, Line{time.Duration(i) * time.Microsecond, fmt.Sprintf("line %d", i)})
	}
	many := goldenExec()
	many.Output = nil
	for i := range 3000 {
		many.Output = append(many.Output, File{Path: fmt.Sprintf("d%d/f%d", i%7, i), Data: []byte{byte(i)}})
	}
	big := goldenExec()
	big.Output = []File{{Path: "bin/big.hvt", Data: bytes.Repeat(allBytes(), 17<<12)}} // 17 MiB: a 4-octet length
	binary := goldenExec()
	binary.Output = []File{
		{Path: "bin/all-bytes", Data: allBytes()},
		{Path: "empty", Data: nil},
		{Path: "ünïcödé/ファイル", Data: []byte("\xc3\x28 invalid UTF-8 \xff")},
	}
	binary.Console = []Line{{0, "\x1b[1mbold\x1b[0m"}, {1, "\xff\xfe not UTF-8"}, {2, ""}}
	binary.Job.Script = "\x00\xff"
	empty := goldenExec()
	empty.Console = nil
	empty.Output = nil
	empty.Job.Platform = ""
	msg := goldenExec()
	msg.Result = Result{Kind: ResultMsg, Msg: ""}
	sig := goldenExec()
	sig.Result = Result{Kind: ResultSignalled, Code: wide(-(1 << 62))}
	same := goldenExec()
	same.Finished = same.Started

	for name, e := range map[string]*Exec{
		"golden": goldenExec(), "long-console": long, "many-files": many, "17MiB-file": big,
		"binary": binary, "empty": empty, "msg": msg, "signalled": sig, "zero-duration": same,
	} {
		t.Run(name, func(t *testing.T) {
			der, err := e.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got, canonical, err := parse(der, Limits{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !canonical {
				t.Error("Marshal output is not canonical")
			}
			if !equal(got, e) {
				t.Fatalf("round trip:\n%s\nwant:\n%s", describe(got), describe(e))
			}
			again, err := got.Marshal()
			if err != nil || !bytes.Equal(again, der) {
				t.Fatalf("second Marshal differs: %v", err)
			}
		})
	}
}

// TestParseCopies checks that the value does not alias the input.
func TestParseCopies(t *testing.T) {
	der := mustHex(t, goldenHex)
	e, err := Parse(der, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range der {
		der[i] = 0
	}
	if !equal(e, goldenExec()) {
		t.Fatal("value changed with the input")
	}
}

func TestNilAndEmptyRepresentation(t *testing.T) {
	w := goldenWire()
	w.console, w.output = nil, []wfile{{path: "e", data: nil}}
	e, err := Parse(w.der(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Console != nil || e.Job.Files != nil || e.Output[0].Data != nil {
		t.Errorf("empty sequences and strings should read as nil: %#v", e)
	}
	if !reflect.DeepEqual(e.Started.Location(), time.UTC) {
		t.Errorf("times should be UTC")
	}
}

func TestErrorsWrapLimit(t *testing.T) {
	_, err := Parse(mustHex(t, goldenHex), Limits{MaxTotal: 10})
	var fe *FormatError
	if !errors.Is(err, ErrLimit) || !errors.As(err, &fe) {
		t.Fatalf("got %v", err)
	}
	_, err = Parse([]byte{0x30, 0x00}, Limits{})
	if errors.Is(err, ErrLimit) || !errors.As(err, &fe) {
		t.Fatalf("got %v", err)
	}
}

// wide converts v to int at run time, so that the tests compile where int
// has 32 bits (and, there, test something else).
func wide(v int64) int { return int(v) }
