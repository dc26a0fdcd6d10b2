package orb

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The fuzz targets check that the parsers never panic, that every error is a
// *SyntaxError, and that whatever parses formats to text that parses back to
// an equal value and formats identically.

// addFiles adds the testdata files matching pattern to the seed corpus.
func addFiles(f *testing.F, pattern string) {
	names, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(names) == 0 {
		f.Fatalf("no seed files %s: %v", pattern, err)
	}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

func wantSyntaxError(t *testing.T, err error) {
	t.Helper()
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *SyntaxError", err, err)
	}
}

func FuzzParseBuildEnvironment(f *testing.F) {
	addFiles(f, "*.build-environment")
	for _, s := range []string{"", "A=1", "A=1\n", "A==\nB=", "A=1\n\nB=2", "=x", "A=1\r\n", "A=1\nA=2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvironment(data)
		if err != nil {
			wantSyntaxError(t, err)
			return
		}
		out, err := env.Format()
		if err != nil {
			t.Fatalf("Format of parsed environment: %v", err)
		}
		again, err := ParseEnvironment(out)
		if err != nil {
			t.Fatalf("parsing formatted environment: %v\n%q", err, out)
		}
		if !reflect.DeepEqual(again, env) {
			t.Fatalf("Parse(Format(x)) != x:\n%q\n%q", env, again)
		}
		if out2, _ := again.Format(); !bytes.Equal(out2, out) {
			t.Fatalf("Format not a fixed point:\n%q\n%q", out, out2)
		}
		DiffEnvironments(env, again)
	})
}

func FuzzParseSystemPackages(f *testing.F) {
	names, _ := filepath.Glob("testdata/*.system-packages")
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for fam := range uint8(3) {
			f.Add(data, fam)
		}
	}
	for _, s := range []string{"", "a=1", "a-1-2\n", "a=1\nb-2", "py39-setuptools-63.1.0", "-", "="} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, fam uint8) {
		family := Family(fam % 4) // 3 is invalid on purpose
		p, err := ParseSystemPackages(data, family)
		if err != nil {
			if family <= FreeBSD {
				wantSyntaxError(t, err)
			}
			return
		}
		out, err := p.Format()
		if err != nil {
			t.Fatalf("Format of parsed packages: %v", err)
		}
		again, err := ParseSystemPackages(out, p.Family)
		if err != nil {
			t.Fatalf("parsing formatted packages: %v\n%q", err, out)
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("Parse(Format(x)) != x:\n%q\n%q", p, again)
		}
		if out2, _ := again.Format(); !bytes.Equal(out2, out) {
			t.Fatalf("Format not a fixed point:\n%q\n%q", out, out2)
		}
		if len(p.List) > 0 {
			detected, err := ParseSystemPackages(out, UnknownFamily)
			if err != nil || !reflect.DeepEqual(detected, p) {
				t.Fatalf("family detection: %v, %v; want %v", detected, err, p)
			}
		}
		DiffPackages(p, again)
	})
}

// addSwitchChunks adds the opam-switch testdata files to the seed corpus cut
// into small switches: the header, and each package section on its own. Small
// seeds keep the fuzzer's minimization of new inputs fast; the whole files
// are covered by the unit tests.
func addSwitchChunks(f *testing.F) {
	names, err := filepath.Glob("testdata/*.opam-switch")
	if err != nil || len(names) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		chunks := strings.Split(string(data), "\npackage ")
		f.Add([]byte(chunks[0]))
		for _, c := range chunks[1:] {
			f.Add([]byte("opam-version: \"2.0\"\npackage " + c))
		}
	}
}

func FuzzParseSwitch(f *testing.F) {
	addSwitchChunks(f)
	for _, s := range []string{
		`opam-version: "2.0"`,
		"opam-version: \"2.0\"\ninstalled: \"a.1\"\npackage \"a\" { url { src: \"x\" } }",
		`a: [x = y = z] b: !x {f} & ?y | >= "1" c: [! = "1"]`,
		`a: [A += "x" B =+= "y" C := "z" D =: "w" E =+ 1] b: "\x41\065\n\t\"\\ " c: """x"y"""`,
		"a: (* c (* d *) *) x # e\r\nb: -1_0 1a _:x a+b:c trueish",
		`a: x {} {f} s "n" { t { } }`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(fuzzSwitch)
}

func fuzzSwitch(t *testing.T, data []byte) {
	{
		// The generic opam file layer.
		items, err := ParseOpamFile("fuzz", data)
		if err != nil {
			wantSyntaxError(t, err)
		} else {
			out, err := FormatOpamFile(items)
			if err != nil {
				t.Fatalf("FormatOpamFile of parsed items: %v", err)
			}
			again, err := ParseOpamFile("formatted", out)
			if err != nil {
				t.Fatalf("parsing formatted items: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(again, items) {
				t.Fatalf("ParseOpamFile(FormatOpamFile(x)) != x\n%s\n%#v\n%#v", out, items, again)
			}
			if out2, _ := FormatOpamFile(again); !bytes.Equal(out2, out) {
				t.Fatalf("FormatOpamFile not a fixed point:\n%s\n---\n%s", out, out2)
			}
		}

		// The switch export on top of it.
		s, err := ParseSwitch(data)
		if err != nil {
			wantSyntaxError(t, err)
			return
		}
		out, err := s.Format()
		if err != nil {
			t.Fatalf("Format of parsed switch: %v", err)
		}
		again, err := ParseSwitch(out)
		if err != nil {
			t.Fatalf("parsing formatted switch: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("ParseSwitch(Format(x)) != x\n%s", out)
		}
		if out2, _ := again.Format(); !bytes.Equal(out2, out) {
			t.Fatalf("Format not a fixed point:\n%s\n---\n%s", out, out2)
		}
		if d := DiffSwitches(s, again); !d.Empty() {
			t.Fatalf("diff of equal switches: %+v", d)
		}
		for _, o := range s.Overlays {
			o.Duniverse()
			o.Version()
			o.URL()
			o.Checksums()
		}
	}
}
