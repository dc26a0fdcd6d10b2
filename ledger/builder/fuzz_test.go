package builder

import (
	"bytes"
	"reflect"
	"testing"

	"golang.org/x/crypto/cryptobyte/asn1"
)

// addSeeds adds the seed corpus of FuzzParse and FuzzDecode: the golden
// record, an old builder's, a message result with job files, the [1]
// alternative and a huge claimed length.
func addSeeds(f *testing.F) {
	f.Add(mustHex(f, goldenHex))
	old := goldenWire()
	old.platform = nil
	old.started = wtime{asn1.UTCTime, "210512143015Z"}
	old.finished = wtime{asn1.UTCTime, "210512143115Z"}
	old.result, old.code = 1, -7
	f.Add(old.der())
	msg := goldenWire()
	msg.result, msg.msg = 3, "timeout"
	msg.jobFiles = []wfile{{path: "a/b", data: []byte("c")}}
	msg.output = append(msg.output, wfile{path: "bin/x", data: []byte("\x00")}, wfile{path: "README.md"})
	msg.started.s = "20240102030405.000Z"
	f.Add(msg.der())
	f.Add([]byte{0xa1, 0x02, 0x05, 0x00})
	f.Add([]byte{0xa0, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30, 0x00})
}

// FuzzParse checks that Parse never panics, that whatever it accepts
// Marshal writes, that what Marshal writes parses to an equal value and is
// written again unchanged, and that an input Parse calls canonical is
// exactly what Marshal writes.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	lim := Limits{MaxFiles: 100, MaxFileSize: 1 << 20, MaxConsoleLines: 1000, MaxTotal: 1 << 22}
	f.Fuzz(func(t *testing.T, der []byte) {
		e, canonical, err := parse(der, lim)
		if err != nil {
			if e != nil {
				t.Fatal("value returned with an error")
			}
			if _, ok := err.(*FormatError); !ok {
				t.Fatalf("error %T", err)
			}
			return
		}
		m1, err := e.Marshal()
		if err != nil {
			t.Fatalf("parsed but does not marshal: %v", err)
		}
		if canonical && !bytes.Equal(m1, der) {
			t.Fatalf("canonical input marshals differently:\n in %x\nout %x", der, m1)
		}
		e2, canonical2, err := parse(m1, Limits{})
		if err != nil {
			t.Fatalf("Marshal output does not parse: %v", err)
		}
		if !canonical2 {
			t.Fatal("Marshal output is not canonical")
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("values differ:\n%s\n%s", describe(e), describe(e2))
		}
		m2, err := e2.Marshal()
		if err != nil || !bytes.Equal(m1, m2) {
			t.Fatalf("second Marshal differs: %v", err)
		}
	})
}
