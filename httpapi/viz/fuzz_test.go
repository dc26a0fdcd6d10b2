package viz

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/buildledger/buildledger/ledger/orb"
)

// FuzzELFComposition: any bytes give a composition no larger than the
// file, or ErrNotELF; nothing panics, and the treemap draws.
func FuzzELFComposition(f *testing.F) {
	if b, err := os.ReadFile("/bin/true"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("not elf"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ELFComposition(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrNotELF) && c != nil {
				t.Fatalf("an error with a composition: %v", err)
			}
			return
		}
		if c.Attributed < 0 || c.Attributed > c.FileSize || c.FileSize != int64(len(b)) {
			t.Fatalf("attributed %d of %d", c.Attributed, c.FileSize)
		}
		_ = TreemapSVG(c, 300, 200)
	})
}

// FuzzDependencies: any switch export that parses gives a graph (or an
// error) and a drawing; nothing panics.
func FuzzDependencies(f *testing.F) {
	if b, err := os.ReadFile("../../ledger/orb/testdata/unipi-full.opam-switch"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("opam-version: \"2.0\"\nroots: [\"a.1\"]\ninstalled: [\"a.1\" \"b.1\"]\npackage \"a\" {\n depends: [\"b\" {>= \"1\"} (\"a\" | \"b\")]\n}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sw, err := orb.ParseSwitch(b)
		if err != nil {
			return
		}
		g, err := Dependencies(sw, "")
		if err != nil {
			return
		}
		_ = GraphSVG(g, 400)
	})
}
