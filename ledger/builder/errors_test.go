package builder

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// mutate returns the DER of the golden wire value after f changed it.
func mutate(f func(w *wire)) []byte {
	w := goldenWire()
	f(&w)
	return w.der()
}

// replace swaps the first occurrence of old in the golden record for new,
// fixing no lengths: the caller keeps them equal.
func replace(t testing.TB, old, new string) []byte {
	t.Helper()
	der := mustHex(t, goldenHex)
	o, n := mustHex(t, old), mustHex(t, new)
	if len(o) != len(n) || bytes.Count(der, o) != 1 {
		t.Fatalf("bad replacement %s → %s", old, new)
	}
	return bytes.Replace(der, o, n, 1)
}

func files(n int) []wfile {
	var fs []wfile
	for i := range n {
		fs = append(fs, wfile{path: string(rune('a' + i)), data: []byte{1}})
	}
	return fs
}

// TestParseErrors checks that each malformed or hostile record is rejected
// with a message that names the element, the value and the problem.
func TestParseErrors(t *testing.T) {
	golden := mustHex(t, goldenHex)
	tests := []struct {
		name  string
		der   []byte
		lim   Limits
		want  string
		limit bool // errors.Is(err, ErrLimit)
	}{
		{"empty", nil, Limits{}, "exec: empty input (at byte 0)", false},
		{"truncated", golden[:len(golden)-1], Limits{},
			"exec: truncated: [0] claims 150 bytes, 149 remain (at byte 0)", false},
		{"truncated-header", golden[:1], Limits{}, "exec: truncated: no length after the identifier octet (at byte 0)", false},
		{"wrong-outer-tag", append([]byte{0x30}, golden[1:]...), Limits{},
			"exec: expected [0] (an exec record), found SEQUENCE (at byte 0)", false},
		{"version-1-null", []byte{0xa1, 0x02, 0x05, 0x00}, Limits{},
			"exec: [1] (builder's NULL placeholder for a later version) is not supported; only [0] is defined (at byte 0)", false},
		{"trailing-bytes", append(append([]byte{}, golden...), 0x00, 0x00), Limits{},
			"exec: 2 trailing bytes after the exec record (at byte 153)", false},
		{"trailing-inside-explicit", mustHex(t, "a0"+"04"+"3000"+"0500"), Limits{},
			"exec: unexpected NULL after the last field (2 trailing bytes) (at byte 4)", false},
		{"huge-claimed-length", []byte{0xa0, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30, 0x00}, Limits{},
			"exec: truncated: [0] claims 4294967295 bytes, 2 remain (at byte 0)", false},
		{"huge-claimed-name", mustHex(t, "a00e"+"300c"+"300a"+"0c88"+"7fffffffffffffff"), Limits{},
			"exec: job: name: truncated: UTF8String claims 9223372036854775807 bytes, 0 remain (at byte 6)", false},
		{"length-of-length-9", mustHex(t, "a0"+"89"+"010000000000000000"), Limits{},
			"exec: [0] has a 9-octet length field (at byte 0)", false},
		{"indefinite-length", mustHex(t, "a080"+"3000"+"0000"), Limits{},
			"exec: [0] has an indefinite length, which DER forbids (at byte 0)", false},
		{"long-form-short-length", mustHex(t, "a08102"+"3000"), Limits{},
			"exec: [0] length 2 is in long form, which DER forbids below 128 (at byte 0)", false},
		{"length-leading-zero", append([]byte{0xa0, 0x82, 0x00, 0x96}, golden[3:]...), Limits{},
			"exec: [0] length has a leading zero octet, which DER forbids (at byte 0)", false},
		{"high-tag", mustHex(t, "bf1f00"), Limits{},
			"exec: high-tag-number identifier 0xbf is not used by exec (at byte 0)", false},
		{"uuid-15-bytes", mutate(func(w *wire) { w.uuid = w.uuid[:15] }), Limits{},
			"exec: uuid: is 15 bytes, want the 16 raw bytes of a UUID (at byte 37)", false},
		{"uuid-text", mutate(func(w *wire) { w.uuid = []byte(testUUID.String()) }), Limits{},
			"exec: uuid: is 36 bytes, want the 16 raw bytes of a UUID (at byte 37)", false},
		{"uuid-nil", mutate(func(w *wire) { w.uuid = make([]byte, 16) }), Limits{},
			"exec: uuid: is the nil UUID (at byte 37)", false},
		{"path-traversal", mutate(func(w *wire) { w.output[0].path = "../etc/passwd" }), Limits{},
			`exec: output file 0: path "../etc/passwd": has a ".." element (at byte 132)`, false},
		{"path-traversal-inner", mutate(func(w *wire) { w.output = append(files(3), wfile{path: "bin/../../x"}) }), Limits{},
			`exec: output file 3: path "bin/../../x": has a ".." element (at byte 156)`, false},
		{"path-absolute", mutate(func(w *wire) { w.output[0].path = "/etc/passwd" }), Limits{},
			`exec: output file 0: path "/etc/passwd": is absolute (at byte 132)`, false},
		{"path-nul", mutate(func(w *wire) { w.output[0].path = "bin/x\x00.hvt" }), Limits{},
			`exec: output file 0: path "bin/x\x00.hvt": contains a NUL byte (at byte 132)`, false},
		{"path-control", mutate(func(w *wire) { w.output[0].path = "bin/x\n" }), Limits{},
			`exec: output file 0: path "bin/x\n": contains the control character U+000A (at byte 132)`, false},
		{"path-backslash", mutate(func(w *wire) { w.output[0].path = `bin\x` }), Limits{},
			`exec: output file 0: path "bin\\x": contains a backslash (at byte 132)`, false},
		{"path-not-clean", mutate(func(w *wire) { w.output[0].path = "bin//x" }), Limits{},
			`exec: output file 0: path "bin//x": is not clean (has an empty or "." element, or a trailing "/") (at byte 132)`, false},
		{"path-dot", mutate(func(w *wire) { w.output[0].path = "./x" }), Limits{},
			`exec: output file 0: path "./x": is not clean (has an empty or "." element, or a trailing "/") (at byte 132)`, false},
		{"path-trailing-slash", mutate(func(w *wire) { w.output[0].path = "bin/" }), Limits{},
			`exec: output file 0: path "bin/": is not clean (has an empty or "." element, or a trailing "/") (at byte 132)`, false},
		{"path-empty", mutate(func(w *wire) { w.output[0].path = "" }), Limits{},
			`exec: output file 0: path "": is empty (at byte 132)`, false},
		{"path-not-utf8", mutate(func(w *wire) { w.output[0].path = "bin/\xff" }), Limits{},
			`exec: output file 0: path "bin/\xff": is not valid UTF-8 (at byte 132)`, false},
		{"path-too-long", mutate(func(w *wire) { w.output[0].path = strings.Repeat("a", MaxPath+1) }), Limits{},
			`exec: output file 0: path "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": is 4097 bytes long, more than 4096 (at byte 138)`, false},
		{"path-duplicate", mutate(func(w *wire) { w.output = append(w.output, w.output[0]) }), Limits{},
			`exec: output file 1: path "bin/hello.hvt": duplicates the path of file 0 (at byte 155)`, false},
		{"path-file-and-dir", mutate(func(w *wire) { w.output = append(w.output, wfile{path: "bin"}) }), Limits{},
			`exec: output file 1: path "bin": is also a directory of file 0 (at byte 155)`, false},
		{"path-under-file", mutate(func(w *wire) { w.output = append(w.output, wfile{path: "bin/hello.hvt/x"}) }), Limits{},
			`exec: output file 1: path "bin/hello.hvt/x": lies under file 0 "bin/hello.hvt" (at byte 155)`, false},
		{"job-file-traversal", mutate(func(w *wire) { w.jobFiles = []wfile{{path: "../x"}} }), Limits{},
			`exec: job: file 0: path "../x": has a ".." element (at byte 28)`, false},
		{"too-many-files", mutate(func(w *wire) { w.output = files(3) }), Limits{MaxFiles: 2},
			"exec: output: more than 2 files (at byte 146)", true},
		{"too-many-job-files", mutate(func(w *wire) { w.jobFiles = files(3) }), Limits{MaxFiles: 2},
			"exec: job: files: more than 2 files (at byte 42)", true},
		{"file-too-large", mutate(func(w *wire) { w.output[0].data = make([]byte, 1001) }), Limits{MaxFileSize: 1000},
			"exec: output file 0: data: 1001 bytes, more than the limit of 1000 (at byte 153)", true},
		{"too-many-lines", mutate(func(w *wire) { w.console = append(w.console, wline{0, "x"}) }), Limits{MaxConsoleLines: 2},
			"exec: console: more than 2 lines (at byte 83)", true},
		{"too-large", golden, Limits{MaxTotal: 152}, "exec: input of 153 bytes is larger than the limit of 152 (at byte 0)", true},
		{"name-not-utf8", mutate(func(w *wire) { w.name = "hel\xc0lo" }), Limits{},
			`exec: job: name "hel\xc0lo": is not valid UTF-8 (at byte 8)`, false},
		{"name-empty", mutate(func(w *wire) { w.name = "" }), Limits{},
			`exec: job: name "": is empty (at byte 8)`, false},
		{"name-slash", mutate(func(w *wire) { w.name = "../x" }), Limits{},
			`exec: job: name "../x": contains "/" or "\" (at byte 8)`, false},
		{"name-dotdot", mutate(func(w *wire) { w.name = ".." }), Limits{},
			`exec: job: name "..": is a dot name (at byte 8)`, false},
		{"platform-control", mutate(func(w *wire) { w.platform = str("deb\tian") }), Limits{},
			`exec: job: platform "deb\tian": contains the control character U+0009 (at byte 26)`, false},
		{"platform-wrong-type", replace(t, "0c0964656269616e2d3132", "0409"+"64656269616e2d3132"), Limits{},
			"exec: job: platform: expected UTF8String, found OCTET STRING (at byte 26)", false},
		{"name-then-null", replace(t, "301d"+"0c0568656c6c6f", "301d"+"0c0468656c6c"+"05"), Limits{},
			"exec: job: script: expected UTF8String, found NULL (at byte 14)", false},
		{"data-octet-string", mutate(func(w *wire) { w.output[0].tag = asn1.OCTET_STRING }), Limits{},
			"exec: output file 0: data: expected UTF8String, found OCTET STRING (at byte 147)", false},
		{"data-constructed", mutate(func(w *wire) { w.output[0].tag = asn1.UTF8String.Constructed() }), Limits{},
			"exec: output file 0: data: expected UTF8String, found constructed UTF8String (at byte 147)", false},
		{"integer-not-minimal", mutate(func(w *wire) { w.rawCode = []byte{0x00, 0x05} }), Limits{},
			"exec: result: exited: INTEGER is not in its shortest form, which DER requires (at byte 125)", false},
		{"integer-negative-not-minimal", mutate(func(w *wire) { w.rawCode = []byte{0xff, 0xf9} }), Limits{},
			"exec: result: exited: INTEGER is not in its shortest form, which DER requires (at byte 125)", false},
		{"integer-empty", mutate(func(w *wire) { w.rawCode = []byte{} }), Limits{},
			"exec: result: exited: INTEGER has no contents octets (at byte 125)", false},
		{"integer-63-bit", mutate(func(w *wire) { w.rawCode = []byte{0x40, 0, 0, 0, 0, 0, 0, 0} }), Limits{},
			"exec: result: exited: INTEGER 4611686018427387904 is out of range of builder's 63-bit int (at byte 125)", false},
		{"integer-9-octets", mutate(func(w *wire) { w.rawCode = []byte{0x01, 0, 0, 0, 0, 0, 0, 0, 0} }), Limits{},
			"exec: result: exited: INTEGER of 9 octets is out of range of builder's 63-bit int (at byte 125)", false},
		{"delta-too-large", mutate(func(w *wire) { w.console[1].delta = 1 << 62 }), Limits{},
			"exec: console line 1: delta: INTEGER 4611686018427387904 is out of range of builder's 63-bit int (at byte 73)", false},
		{"line-data-wrong-tag", replace(t, "300a"+"020459682f00"+"0c026869", "300a"+"020459682f00"+"0500"+"6869"), Limits{},
			"exec: console line 1: data: expected UTF8String, found NULL (at byte 79)", false},
		{"result-tag-4", mutate(func(w *wire) { w.result = 4 }), Limits{},
			"exec: result: expected [0] exited, [1] signalled, [2] stopped or [3] msg, found [4] (at byte 123)", false},
		{"result-msg-integer", replace(t, "a003020100", "a303020100"), Limits{},
			"exec: result: msg: expected UTF8String, found INTEGER (at byte 125)", false},
		{"result-exited-string", replace(t, "a003020100", "a0030c0100"), Limits{},
			"exec: result: exited: expected INTEGER, found UTF8String (at byte 125)", false},
		{"result-trailing", replace(t, "a003020100"+"3017", "a005020100"+"0500"), Limits{},
			"exec: result: unexpected NULL after the last field (2 trailing bytes) (at byte 128)", false},
		{"output-missing", mustHex(t, "a07c"+"307a"+goldenHex[12:256]), Limits{},
			"exec: output: missing (expected SEQUENCE) (at byte 126)", false},
		{"exec-extra-field", mutate(func(w *wire) { w.extra = []byte{0x05, 0x00} }), Limits{},
			"exec: unexpected NULL after the last field (2 trailing bytes) (at byte 153)", false},
		{"finished-before-started", mutate(func(w *wire) { w.started, w.finished = w.finished, w.started }), Limits{},
			"exec: timestamps: finished 2024-01-02T03:04:05.25Z is before started 2024-01-02T03:04:07Z (at byte 83)", false},
		{"time-one-digit-fraction", mutate(func(w *wire) { w.started.s = "20240102030405.5Z" }), Limits{},
			`exec: timestamps: started: GeneralizedTime "20240102030405.5Z" is not of the form YYYYMMDDhhmmss[.fff]Z (at byte 85)`, false},
		{"time-offset", mutate(func(w *wire) { w.started.s = "20240102030405+0100" }), Limits{},
			`exec: timestamps: started: GeneralizedTime "20240102030405+0100" is not of the form YYYYMMDDhhmmss[.fff]Z (at byte 85)`, false},
		{"time-no-z", mutate(func(w *wire) { w.finished.s = "20240102030407X" }), Limits{},
			`exec: timestamps: finished: GeneralizedTime "20240102030407X" does not end in Z (UTC) (at byte 106)`, false},
		{"time-comma", mutate(func(w *wire) { w.started.s = "20240102030405,250Z" }), Limits{},
			`exec: timestamps: started: GeneralizedTime "20240102030405,250Z" is not of the form YYYYMMDDhhmmss[.fff]Z (at byte 85)`, false},
		{"time-month-13", mutate(func(w *wire) { w.started.s = "20241302030405Z" }), Limits{},
			`exec: timestamps: started: GeneralizedTime "20241302030405Z" is not a valid date and time (at byte 85)`, false},
		{"time-feb-30", mutate(func(w *wire) { w.started.s = "20230230030405Z" }), Limits{},
			`exec: timestamps: started: GeneralizedTime "20230230030405Z" is not a valid date (at byte 85)`, false},
		{"time-leap-second", mutate(func(w *wire) { w.started.s = "20161231235960Z" }), Limits{},
			`exec: timestamps: started: GeneralizedTime "20161231235960Z" is not a valid date and time (at byte 85)`, false},
		{"time-sign", mutate(func(w *wire) { w.started.s = "2024-102030405Z" }), Limits{},
			`exec: timestamps: started: GeneralizedTime "2024-102030405Z" has a non-digit (at byte 85)`, false},
		{"utctime-4-digit-year", mutate(func(w *wire) { w.started.tag = asn1.UTCTime }), Limits{},
			`exec: timestamps: started: UTCTime "20240102030405.250Z" is not of the form YYMMDDhhmmssZ (at byte 85)`, false},
		{"time-wrong-type", mutate(func(w *wire) { w.started.tag = asn1.UTF8String }), Limits{},
			"exec: timestamps: started: expected UTCTime or GeneralizedTime, found UTF8String (at byte 85)", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse(tc.der, tc.lim)
			if err == nil {
				t.Fatalf("Parse accepted it: %s", describe(e))
			}
			if e != nil {
				t.Error("Parse returned a value with its error")
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FormatError", err)
			}
			if tc.want != "" && err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
			if errors.Is(err, ErrLimit) != tc.limit {
				t.Errorf("errors.Is(err, ErrLimit) = %v", !tc.limit)
			}
			// The streaming decoder refuses it too, for the same kind of
			// reason; its messages may differ. A record claiming more than
			// MaxTotal is over the limit for Decode, which cannot see that
			// the input is shorter than it claims without reading it all.
			parseMsg := fe.Msg
			if _, err := Decode(bytes.NewReader(tc.der), tc.lim, nil); err == nil {
				t.Error("Decode accepted it")
			} else if !errors.As(err, &fe) {
				t.Errorf("Decode error %T is not a *FormatError", err)
			} else if errors.Is(err, ErrLimit) != tc.limit && !strings.HasPrefix(parseMsg, "truncated") {
				t.Errorf("Decode: %v: errors.Is(err, ErrLimit) = %v", err, !tc.limit)
			}
		})
	}
}

// TestHugeClaimsDoNotAllocate checks that lengths claimed by the input are
// checked against the bytes that are there before anything is allocated.
func TestHugeClaimsDoNotAllocate(t *testing.T) {
	inputs := [][]byte{
		{0xa0, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30, 0x00},
		mustHex(t, "a00e"+"300c"+"300a"+"0c88"+"7fffffffffffffff"),
		// A file whose data claims 4 GiB, inside lengths that are otherwise right.
		mutate(func(w *wire) { w.output[0].data = nil; w.extra = mustHex(t, "0c84ffffffff") }),
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		for _, in := range inputs {
			if _, err := Parse(in, Limits{}); err == nil {
				t.Fatal("accepted")
			}
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Errorf("300 rejected parses allocated %d bytes", d)
	}
}

// TestEveryPrefixFails checks that no proper prefix of a valid record parses
// and that none panics; likewise for every single-bit flip.
func TestEveryPrefixFails(t *testing.T) {
	der := mustHex(t, goldenHex)
	for i := range der {
		if _, err := Parse(der[:i], Limits{}); err == nil {
			t.Errorf("prefix of %d bytes parses", i)
		}
	}
	for i := range der {
		for bit := range 8 {
			b := bytes.Clone(der)
			b[i] ^= 1 << bit
			e, canonical, err := parse(b, Limits{})
			if err != nil {
				continue
			}
			// Flips inside strings and integers are still valid records:
			// they must round-trip like any other.
			out, err := e.Marshal()
			if err != nil {
				t.Errorf("flip %d.%d parses but does not marshal: %v", i, bit, err)
			} else if canonical && !bytes.Equal(out, b) {
				t.Errorf("flip %d.%d parses as canonical but marshals differently", i, bit)
			}
		}
	}
}

// TestMarshalErrors checks that Marshal refuses what Parse would reject.
func TestMarshalErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(e *Exec)
		want string
	}{
		{"zero", func(e *Exec) { *e = Exec{} }, `exec: job: name "": is empty`},
		{"name-slash", func(e *Exec) { e.Job.Name = "a/b" }, `exec: job: name "a/b": contains "/" or "\"`},
		{"platform-long", func(e *Exec) { e.Job.Platform = strings.Repeat("p", 256) },
			`exec: job: platform "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"...: is 256 bytes long, more than 255`},
		{"job-file", func(e *Exec) { e.Job.Files = []File{{Path: "/x"}} }, `exec: job: file 0: path "/x": is absolute`},
		{"nil-uuid", func(e *Exec) { e.UUID = uuid.Nil }, "exec: uuid: is the nil UUID"},
		{"traversal", func(e *Exec) { e.Output = append(e.Output, File{Path: "a/../../b"}) },
			`exec: output file 1: path "a/../../b": has a ".." element`},
		{"duplicate", func(e *Exec) { e.Output = append(e.Output, e.Output[0]) },
			`exec: output file 1: path "bin/hello.hvt": duplicates the path of file 0`},
		{"order", func(e *Exec) { e.Finished = e.Started.Add(-time.Millisecond) },
			"exec: timestamps: finished 2024-01-02T03:04:05.249Z is before started 2024-01-02T03:04:05.25Z"},
		{"year", func(e *Exec) { e.Finished = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
			"exec: timestamps: finished: year 10000 is outside 0000..9999"},
		{"delta", func(e *Exec) { e.Console[0].Delta = 1 << 62 },
			"exec: console line 1: delta: 1281023h53m38.427387904s is out of range of builder's 63-bit int"},
		{"kind", func(e *Exec) { e.Result = Result{} }, "exec: result: invalid kind 0"},
		{"code", func(e *Exec) { e.Result.Code = wide(-1<<62 - 1) },
			"exec: result: code -4611686018427387905 is out of range of builder's 63-bit int"},
		{"msg-with-code", func(e *Exec) { e.Result = Result{Kind: ResultMsg, Code: 1} },
			"exec: result: msg result has a non-zero code"},
		{"exit-with-msg", func(e *Exec) { e.Result.Msg = "x" }, "exec: result: exited result has a message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := goldenExec()
			tc.edit(e)
			b, err := e.Marshal()
			if err == nil {
				t.Fatalf("Marshal accepted it: %x", b)
			}
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset != -1 {
				t.Fatalf("error %#v", err)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}
