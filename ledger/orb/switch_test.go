package orb

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func readSwitch(t testing.TB, name string) *Switch {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSwitch(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

// checkSwitchRoundTrip checks Parse(Format(s)) == s and that formatting is a
// fixed point.
func checkSwitchRoundTrip(t *testing.T, s *Switch) []byte {
	t.Helper()
	out, err := s.Format()
	if err != nil {
		t.Fatalf("Format: %v", err)
	}
	again, err := ParseSwitch(out)
	if err != nil {
		t.Fatalf("parsing formatted switch: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(again, s) {
		t.Fatalf("Parse(Format(s)) != s; formatted:\n%s", out)
	}
	out2, err := again.Format()
	if err != nil || string(out2) != string(out) {
		t.Fatalf("Format is not a fixed point: %v", err)
	}
	return out
}

func pv(s string) PackageVersion {
	p, err := ParsePackageVersion(s)
	if err != nil {
		panic(err)
	}
	return p
}

// TestParseSwitchSample reads a real (plain, not --full) opam switch export.
func TestParseSwitchSample(t *testing.T) {
	s := readSwitch(t, "ts2ocaml.opam-switch")
	if s.OpamVersion != "2.0" {
		t.Errorf("OpamVersion = %q", s.OpamVersion)
	}
	for _, c := range []struct {
		name string
		got  []PackageVersion
		n    int
	}{{"compiler", s.Compiler, 7}, {"installed", s.Installed, 27}, {"roots", s.Roots, 3}, {"pinned", s.Pinned, 1}} {
		if len(c.got) != c.n {
			t.Errorf("%s has %d packages, want %d", c.name, len(c.got), c.n)
		}
	}
	wantRoots := []PackageVersion{{"gen_js_api", "1.0.8"}, {"js_of_ocaml", "3.10.0"}, {"ocaml-base-compiler", "4.12.0"}}
	if !reflect.DeepEqual(s.Roots, wantRoots) {
		t.Errorf("Roots = %v, want %v", s.Roots, wantRoots)
	}
	if want := []PackageVersion{{"gen_js_api", "1.0.8"}}; !reflect.DeepEqual(s.Pinned, want) {
		t.Errorf("Pinned = %v, want %v", s.Pinned, want)
	}
	for i, want := range map[int]PackageVersion{
		0:  {"base-bigarray", "base"},
		11: {"menhir", "20210419"},
		16: {"ocaml-compiler-libs", "v0.12.4"},
		19: {"ocamlbuild", "0.14.0"},
		26: {"yojson", "1.7.0"},
	} {
		if s.Installed[i] != want {
			t.Errorf("Installed[%d] = %v, want %v", i, s.Installed[i], want)
		}
	}
	if want := (PackageVersion{"ocaml-base-compiler", "4.12.0"}); s.Compiler[4] != want {
		t.Errorf("Compiler[4] = %v, want %v", s.Compiler[4], want)
	}
	if len(s.Overlays) != 1 || len(s.Extra) != 0 {
		t.Fatalf("%d overlays, %d extra items; want 1, 0", len(s.Overlays), len(s.Extra))
	}
	o, ok := s.Overlay("gen_js_api")
	if !ok {
		t.Fatal("no overlay gen_js_api")
	}
	if o.Version() != "1.0.8" {
		t.Errorf("version = %q", o.Version())
	}
	if o.URL() != "git+https://github.com/LexiFi/gen_js_api.git" {
		t.Errorf("url.src = %q", o.URL())
	}
	desc, _ := o.Field("description")
	if d, _ := desc.(String); !strings.HasPrefix(string(d), "\ngen_js_api aims at") || !strings.HasSuffix(string(d), "js_of_ocaml compiler.") {
		t.Errorf("description = %q", d)
	}
	build, _ := o.Field("build")
	wantBuild := List{
		Option{Value: List{String("dune"), String("subst")}, Filter: []Value{Ident("dev")}},
		List{String("dune"), String("build"), String("-p"), Ident("name"), String("-j"), Ident("jobs"), String("@install"),
			Option{Value: String("@runtest"), Filter: []Value{Ident("with-test")}},
			Option{Value: String("@doc"), Filter: []Value{Ident("with-doc")}}},
	}
	if !reflect.DeepEqual(build, wantBuild) {
		t.Errorf("build = %s", FormatValue(build))
	}
	checkSwitchRoundTrip(t, s)
}

// TestParseSwitchFull reads a hand-written export in the style of
// `opam switch export --full --freeze` of a MirageOS 4 unikernel build.
func TestParseSwitchFull(t *testing.T) {
	s := readSwitch(t, "unipi-full.opam-switch")
	if len(s.Installed) != 14 || len(s.Overlays) != 14 || len(s.Compiler) != 4 || len(s.Roots) != 2 || len(s.Pinned) != 1 {
		t.Fatalf("installed %d overlays %d compiler %d roots %d pinned %d",
			len(s.Installed), len(s.Overlays), len(s.Compiler), len(s.Roots), len(s.Pinned))
	}
	for _, p := range s.Installed {
		o, ok := s.Overlay(p.Name)
		if !ok || o.Version() != p.Version {
			t.Errorf("overlay of %v: %v version %q", p, ok, o.Version())
		}
	}
	u, _ := s.Overlay("unipi")
	if want := "git+https://github.com/robur-coop/unipi.git#6074dce1118813830d71939b53182e4e349d9872"; u.URL() != want {
		t.Errorf("unipi url.src = %q", u.URL())
	}
	var names []string
	for _, x := range u.Extensions() {
		names = append(names, x.Name)
	}
	if want := "x-mirage-opam-lock-location x-mirage-configure x-mirage-pre-build x-mirage-extra-repo x-opam-monorepo-duniverse-dirs"; strings.Join(names, " ") != want {
		t.Errorf("extensions = %v", names)
	}
	if v, _ := u.Field("x-mirage-opam-lock-location"); v != String("mirage/unipi-hvt.opam.locked") {
		t.Errorf("lock location = %v", v)
	}
	dirs, err := u.Duniverse()
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 4 || dirs[2].Dir != "ocaml-letsencrypt" || dirs[2].Hashes != nil || len(dirs[0].Hashes) != 2 {
		t.Errorf("duniverse = %+v", dirs)
	}
	c, _ := s.Overlay("ocaml-base-compiler")
	if got := c.Checksums(); len(got) != 1 || !strings.HasPrefix(got[0], "sha256=cc3fc") {
		t.Errorf("checksums = %q", got)
	}
	es, ok := c.Section("extra-source", "ocaml-base-compiler.install")
	if !ok {
		t.Fatal("no extra-source section")
	}
	if sums := stringList(mustField(t, es.Items, "checksum")); len(sums) != 2 || sums[1] != "md5=3e969b841df1f51ca448e6e6295cb451" {
		t.Errorf("extra-source checksum = %q", sums)
	}
	avail, _ := c.Field("available")
	want := Logop{"|",
		Pfxop{"!", Group{Logop{"&", Relop{"=", Ident("os"), String("macos")}, Relop{"=", Ident("arch"), String("arm64")}}}},
		Logop{"&", Pfxop{"?", Ident("os-version")}, Relop{">=", Ident("os-version"), String("11")}}}
	if !reflect.DeepEqual(avail, want) {
		t.Errorf("available = %s", FormatValue(avail))
	}
	checkSwitchRoundTrip(t, s)
}

func mustField(t *testing.T, items []Item, name string) Value {
	t.Helper()
	v, ok := field(items, name)
	if !ok {
		t.Fatalf("no field %s", name)
	}
	return v
}

func TestSwitchExtraItemsKept(t *testing.T) {
	in := `opam-version: "2.0"
installed: ["a.1"]
extra-files: [
  ["x" "md5=00"]
]
something {
  z: 1
}
package "a" {
  version: "1"
}
`
	s, err := ParseSwitch([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Extra) != 2 {
		t.Fatalf("Extra = %v", s.Extra)
	}
	out := checkSwitchRoundTrip(t, s)
	if string(out) != in {
		t.Errorf("canonical form changed:\n%s", out)
	}
}

func TestSwitchOverlaysSorted(t *testing.T) {
	s, err := ParseSwitch([]byte("opam-version: \"2.0\"\npackage \"b\" {}\npackage \"a\" {}\npackage \"c\" {}"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Overlays[0].Name != "a" || s.Overlays[1].Name != "b" || s.Overlays[2].Name != "c" {
		t.Errorf("overlays not sorted: %v", s.Overlays)
	}
	if _, ok := s.Overlay("d"); ok {
		t.Error("found overlay d")
	}
	checkSwitchRoundTrip(t, s)
}

func TestParseSwitchErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{``, `opam-switch: missing opam-version field`},
		{`installed: ["a.1"]`, `opam-switch: missing opam-version field`},
		{`opam-version: 2`, `opam-switch line 1, column 15: opam-version must be a non-empty string`},
		{"opam-version: \"2.0\"\nopam-version: \"2.0\"", `opam-switch line 2, column 1: duplicate field opam-version (first at line 1)`},
		{"opam-version: \"2.0\"\nroots: []\nroots: []", `opam-switch line 3, column 1: duplicate field roots (first at line 2)`},
		{"opam-version: \"2.0\"\ninstalled: [\n  \"a.1\"\n  \"b\"\n]", `opam-switch line 4, column 3: installed: "b" is not NAME.VERSION: no "."`},
		{"opam-version: \"2.0\"\ninstalled: [\"a.1\" b]", `opam-switch line 2, column 19: installed: element 2 is not a "name.version" string`},
		{"opam-version: \"2.0\"\ninstalled: [\"a.1\" \"a.2\"]", `opam-switch line 2, column 19: installed: package a is listed twice (a.1 and a.2)`},
		{"opam-version: \"2.0\"\npinned: \"a.\"", `opam-switch line 2, column 9: pinned: "a.": invalid version ""`},
		{"opam-version: \"2.0\"\ncompiler: [\"a/b.1\"]", `opam-switch line 2, column 12: compiler: "a/b.1": invalid package name "a/b"`},
		{"opam-version: \"2.0\"\nroots: 3", `opam-switch line 2, column 8: roots must be a list of "name.version" strings`},
		{"opam-version: \"2.0\"\npackage {}", `opam-switch line 2, column 1: package section needs a package name`},
		{"opam-version: \"2.0\"\npackage \"a.b\" {}", `opam-switch line 2, column 1: package section needs a package name`},
		{"opam-version: \"2.0\"\npackage \"a\" {}\npackage \"a\" {}", `opam-switch line 3, column 1: duplicate section package "a" (first at line 2)`},
		{"opam-version: \"2.0\"\npackage \"a\" {\n  url {\n    src: \"x\n", `opam-switch line 4, column 10: unterminated string`},
	}
	for _, tt := range tests {
		_, err := ParseSwitch([]byte(tt.in))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ParseSwitch(%q) error = %v, want a *SyntaxError", tt.in, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseSwitch(%q)\nerror = %q\nwant    %q", tt.in, err, tt.want)
		}
	}
}

func TestSwitchFormatRefuses(t *testing.T) {
	ok := func() *Switch { return &Switch{OpamVersion: "2.0"} }
	tests := []struct {
		name string
		edit func(*Switch)
	}{
		{"no opam-version", func(s *Switch) { s.OpamVersion = "" }},
		{"bad name", func(s *Switch) { s.Installed = []PackageVersion{{"a.b", "1"}} }},
		{"bad version", func(s *Switch) { s.Roots = []PackageVersion{{"a", "1 2"}} }},
		{"duplicate", func(s *Switch) { s.Pinned = []PackageVersion{{"a", "1"}, {"a", "2"}} }},
		{"switch field in Extra", func(s *Switch) { s.Extra = []Item{Field{"roots", List{}}} }},
		{"package section in Extra", func(s *Switch) { s.Extra = []Item{Section{Kind: "package", Name: "a"}} }},
		{"unsorted overlays", func(s *Switch) { s.Overlays = []Overlay{{Name: "b"}, {Name: "a"}} }},
		{"duplicate overlays", func(s *Switch) { s.Overlays = []Overlay{{Name: "a"}, {Name: "a"}} }},
		{"bad overlay name", func(s *Switch) { s.Overlays = []Overlay{{Name: ""}} }},
		{"bad overlay value", func(s *Switch) { s.Overlays = []Overlay{{Name: "a", Items: f("x", Ident("y z"))}} }},
	}
	for _, tt := range tests {
		s := ok()
		tt.edit(s)
		if out, err := s.Format(); err == nil {
			t.Errorf("%s: Format = %q, want an error", tt.name, out)
		}
	}
	if _, err := ok().Format(); err != nil {
		t.Errorf("minimal switch: %v", err)
	}
}

func TestParsePackageVersion(t *testing.T) {
	for in, want := range map[string]PackageVersion{
		"ocaml-base-compiler.4.12.0": {"ocaml-base-compiler", "4.12.0"},
		"base-unix.base":             {"base-unix", "base"},
		"ocaml-variants.5.1.0+trunk": {"ocaml-variants", "5.1.0+trunk"},
		"conf-gmp.4":                 {"conf-gmp", "4"},
		"unipi.dev":                  {"unipi", "dev"},
		"x.1.0~beta1":                {"x", "1.0~beta1"},
	} {
		got, err := ParsePackageVersion(in)
		if err != nil || got != want {
			t.Errorf("ParsePackageVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("String() = %q, want %q", got, in)
		}
	}
	for _, in := range []string{"", "a", ".1", "a.", "a b.1", "a.1 2", "a.\"1\""} {
		if got, err := ParsePackageVersion(in); err == nil {
			t.Errorf("ParsePackageVersion(%q) = %v, want an error", in, got)
		}
	}
}

func TestDuniverseErrors(t *testing.T) {
	for _, v := range []Value{
		String("x"),
		List{String("x")},
		List{List{String("u")}},
		List{List{String("u"), Ident("d")}},
		List{List{String("u"), String("d"), Int(1)}},
		List{List{String("u"), String("d"), List{String("h")}, String("x")}},
	} {
		o := Overlay{Name: "a", Items: f(DuniverseField, v)}
		if dirs, err := o.Duniverse(); err == nil {
			t.Errorf("Duniverse(%s) = %v, want an error", FormatValue(v), dirs)
		}
	}
	if dirs, err := (Overlay{}).Duniverse(); dirs != nil || err != nil {
		t.Errorf("no field: %v, %v", dirs, err)
	}
}

func BenchmarkParseSwitch(b *testing.B) {
	data, err := os.ReadFile("testdata/unipi-full.opam-switch")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseSwitch(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormatSwitch(b *testing.B) {
	s := readSwitch(b, "unipi-full.opam-switch")
	for b.Loop() {
		if _, err := s.Format(); err != nil {
			b.Fatal(err)
		}
	}
}
