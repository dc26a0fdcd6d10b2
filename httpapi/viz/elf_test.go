package viz

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/internal/tooltest"
)

func compose(t *testing.T, path string) *Composition {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	c, err := ELFComposition(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, l := range c.Libraries {
		var us int64
		for _, u := range l.Units {
			us += u.Size
		}
		if us != l.Size {
			t.Errorf("library %s: units add up to %d, the library says %d", l.Name, us, l.Size)
		}
		sum += l.Size
	}
	if sum != c.Attributed || c.Attributed > c.FileSize || c.Attributed <= 0 {
		t.Errorf("libraries add up to %d, attributed %d, file %d", sum, c.Attributed, c.FileSize)
	}
	return c
}

func find(c *Composition, lib, unit string) int64 {
	for _, l := range c.Libraries {
		if l.Name != lib {
			continue
		}
		if unit == "" {
			return l.Size
		}
		for _, u := range l.Units {
			if u.Name == unit {
				return u.Size
			}
		}
	}
	return 0
}

// A real OCaml native binary: its compilation units (the program's own
// modules, the standard library's) and the runtime are found, and the
// larger module is the larger box.
func TestOCamlComposition(t *testing.T) {
	ocamlopt := tooltest.Find(t, "ocamlopt", "BUILDLEDGER_REQUIRE_OPAM", "install Debian's ocaml-nox")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "small.ml"), []byte("let greet n = print_endline (\"hello \" ^ n)\n"), 0o644)
	var big strings.Builder
	big.WriteString("let table = [|")
	for i := range 2000 {
		big.WriteString(strings.Repeat("1", 1+i%7) + ";")
	}
	big.WriteString("|]\nlet f x = Array.fold_left (+) x table\n")
	for i := range 200 {
		big.WriteString("let g" + strings.Repeat("x", 1) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + " y = List.map (fun z -> z * y + " + strings.Repeat("3", 1+i%5) + ") [y; y+1; y+2]\n")
	}
	os.WriteFile(filepath.Join(dir, "big.ml"), []byte(big.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "main.ml"), []byte("let () = Small.greet (string_of_int (Big.f 1)); ignore (Big.gxaa 2)\n"), 0o644)
	cmd := exec.Command(ocamlopt, "-o", "prog", "small.ml", "big.ml", "main.ml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ocamlopt: %v\n%s", err, out)
	}
	c := compose(t, filepath.Join(dir, "prog"))
	small, bigSize := find(c, "Small", "Small"), find(c, "Big", "Big")
	if small == 0 || bigSize <= small || find(c, "Main", "Main") == 0 {
		t.Fatalf("units Small %d, Big %d:\n%+v", small, bigSize, c.Libraries)
	}
	if find(c, "Stdlib", "") == 0 || find(c, "Stdlib", "Stdlib__List") == 0 || find(c, OCamlRuntime, "") == 0 {
		t.Fatalf("no Stdlib__List or runtime: %+v", c.Libraries)
	}
	svg := TreemapSVG(c, 800, 400)
	for _, want := range []string{`data-library="Big"`, `data-library="Stdlib"`, `class="unattributed"`, "Big: ", `role="img"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("treemap lacks %q", want)
		}
	}
}

// A Go binary (this test's own) and a C binary.
func TestGoAndCComposition(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.org/hello\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o644)
	build := exec.Command("go", "build", "-o", "hello-go", ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	c := compose(t, filepath.Join(dir, "hello-go"))
	if find(c, "Go standard library", "runtime") == 0 || find(c, "Go standard library", "fmt") == 0 || find(c, "Go standard library", "main") == 0 {
		t.Fatalf("Go binary: %+v", c.Libraries[:min(5, len(c.Libraries))])
	}
	gcc := tooltest.Find(t, "gcc", "BUILDLEDGER_REQUIRE_OPAM", "install Debian's gcc")
	os.WriteFile(filepath.Join(dir, "hello.c"), []byte("#include <stdio.h>\nint main(void){puts(\"hello\");return 0;}\n"), 0o644)
	if out, err := exec.Command(gcc, "-o", filepath.Join(dir, "hello"), filepath.Join(dir, "hello.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	c = compose(t, filepath.Join(dir, "hello"))
	if find(c, COther, "") == 0 || len(c.Libraries) != 1 {
		t.Fatalf("C binary: %+v", c.Libraries)
	}
	// Stripped: nothing attributed, and said so.
	if out, err := exec.Command("strip", "-o", filepath.Join(dir, "stripped"), filepath.Join(dir, "hello")).CombinedOutput(); err == nil {
		f, _ := os.ReadFile(filepath.Join(dir, "stripped"))
		c, err := ELFComposition(bytes.NewReader(f), int64(len(f)))
		if err != nil || c.Attributed != 0 || c.Unattributed() != int64(len(f)) {
			t.Fatalf("stripped: %+v %v", c, err)
		}
	} else {
		t.Logf("strip: %v %s", err, out)
	}
	if _, err := ELFComposition(bytes.NewReader([]byte("#!/bin/sh\necho not elf\n")), 22); !errors.Is(err, ErrNotELF) {
		t.Fatalf("a shell script: %v", err)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct{ sym, lib, unit string }{
		{"camlStdlib__List__map_280", "Stdlib", "Stdlib__List"},
		{"camlStdlib__List.map_280", "Stdlib", "Stdlib__List"},
		{"camlMirage_crypto__Uncommon__xor_into_123", "Mirage_crypto", "Mirage_crypto__Uncommon"},
		{"camlMain", "Main", "Main"},
		{"camlMain__code_begin", "Main", "Main"},
		{"camlMain__frametable", "Main", "Main"},
		{"camlStdlib$Hashtbl$add_12", "Stdlib", "Stdlib"},
		{"caml_alloc_shr", OCamlRuntime, "runtime"},
		{"memcpy", COther, "C and other"},
	} {
		if lib, unit := Classify(c.sym, false); lib != c.lib || unit != c.unit {
			t.Errorf("%s: %s %s, want %s %s", c.sym, lib, unit, c.lib, c.unit)
		}
	}
	if lib, unit := Classify("github.com/a/b/c.(*T).M", true); lib != "github.com/a/b" || unit != "github.com/a/b/c" {
		t.Errorf("Go symbol: %s %s", lib, unit)
	}
	if lib, _ := Classify("foo.constprop.0", false); lib != COther {
		t.Errorf("a C clone in a C binary: %s", lib)
	}
}

// Squarify: areas proportional to the values, inside the rectangle, not
// overlapping.
func TestSquarify(t *testing.T) {
	values := []float64{500, 300, 120, 80, 60, 30, 7, 2, 1}
	r := Rect{10, 20, 640, 360}
	rects := Squarify(values, r)
	var total float64
	for _, v := range values {
		total += v
	}
	for i, q := range rects {
		want := values[i] / total * r.W * r.H
		if math.Abs(q.W*q.H-want) > 1e-6*want+1e-9 {
			t.Errorf("rect %d area %f, want %f", i, q.W*q.H, want)
		}
		if q.X < r.X-1e-9 || q.Y < r.Y-1e-9 || q.X+q.W > r.X+r.W+1e-6 || q.Y+q.H > r.Y+r.H+1e-6 {
			t.Errorf("rect %d %+v outside %+v", i, q, r)
		}
		for j, o := range rects[:i] {
			if q.X+1e-6 < o.X+o.W && o.X+1e-6 < q.X+q.W && q.Y+1e-6 < o.Y+o.H && o.Y+1e-6 < q.Y+q.H {
				t.Errorf("rects %d and %d overlap: %+v %+v", i, j, q, o)
			}
		}
	}
	if got := Squarify(nil, r); len(got) != 0 {
		t.Errorf("no values: %v", got)
	}
	if got := Squarify([]float64{0, 0}, r); len(got) != 2 {
		t.Errorf("zero values: %v", got)
	}
}

// A composition of many libraries and units is drawn with at most
// maxLibraries boxes of at most maxUnits, the rest merged, sizes kept.
func TestTreemapLimits(t *testing.T) {
	c := &Composition{FileSize: 1 << 30}
	for i := range 100 {
		l := Library{Name: "lib" + strings.Repeat("x", i%3) + string(rune('A'+i%26)) + string(rune('a'+i/26))}
		for j := range 50 {
			l.Units = append(l.Units, Unit{Name: l.Name + "__U" + string(rune('a'+j%26)) + string(rune('a'+j/26)), Size: int64(1000 - j)})
			l.Size += int64(1000 - j)
		}
		c.Libraries = append(c.Libraries, l)
		c.Attributed += l.Size
	}
	lim := limitComposition(c, maxLibraries, maxUnits)
	var total int64
	for _, l := range lim.Libraries {
		if len(l.Units) > maxUnits {
			t.Fatalf("library %s has %d units", l.Name, len(l.Units))
		}
		total += l.Size
	}
	if len(lim.Libraries) != maxLibraries || total != c.Attributed || lim.Libraries[maxLibraries-1].Name != "71 more libraries" {
		t.Fatalf("%d libraries, %d bytes of %d, last %q", len(lim.Libraries), total, c.Attributed, lim.Libraries[len(lim.Libraries)-1].Name)
	}
	if n := len(TreemapSVG(c, 960, 540)); n > 200<<10 {
		t.Fatalf("the treemap takes %d bytes", n)
	}
}
