package orb

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestDiffEnvironments(t *testing.T) {
	a, err := ParseEnvironment([]byte("HOME=/h\nPATH=/bin\nSOURCE_DATE_EPOCH=1589138087\nOS_VERSION=11\nGONE=x"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseEnvironment([]byte("PATH=/bin:/usr/bin\nOS_VERSION=12\nHOME=/h\nNEW=y\nSOURCE_DATE_EPOCH=1589138087"))
	if err != nil {
		t.Fatal(err)
	}
	got := DiffEnvironments(a, b)
	want := EnvironmentDiff{
		Removed: []Var{{"GONE", "x"}},
		Added:   []Var{{"NEW", "y"}},
		Changed: []Change{{"OS_VERSION", "11", "12"}, {"PATH", "/bin", "/bin:/usr/bin"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if same := DiffEnvironments(a, a); !same.Empty() || same.Removed == nil {
		t.Errorf("diff of equal environments = %+v", same)
	}
}

func TestDiffPackages(t *testing.T) {
	a, err := ParseSystemPackages([]byte("gcc=4:12.2.0-3\nlibc6=2.36-9\nlibc6=2.36-9\nm4=1.4.19-3\nold=1\n"), Debian)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseSystemPackages([]byte("gcc=4:12.2.0-3\nlibc6=2.36-9+deb12u4\nlibc6=2.36-9\nm4=1.4.19-4\nnew=2\nnew=3\n"), Debian)
	if err != nil {
		t.Fatal(err)
	}
	got := DiffPackages(a, b)
	want := PackagesDiff{
		Removed: []Package{{"old", "1"}},
		Added:   []Package{{"new", "2"}, {"new", "3"}},
		Changed: []Change{{"libc6", "2.36-9, 2.36-9", "2.36-9, 2.36-9+deb12u4"}, {"m4", "1.4.19-3", "1.4.19-4"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}

	fa, _ := ParseSystemPackages([]byte("py39-setuptools-63.1.0\npkg-1.20.8\n"), FreeBSD)
	fb, _ := ParseSystemPackages([]byte("py39-setuptools-68.0.0\npkg-1.20.8\n"), FreeBSD)
	if got := DiffPackages(fa, fb); !reflect.DeepEqual(got.Changed, []Change{{"py39-setuptools", "63.1.0", "68.0.0"}}) || len(got.Removed)+len(got.Added) != 0 {
		t.Errorf("FreeBSD diff = %+v", got)
	}
}

// modified returns the synthetic full export with textual edits applied.
func modified(t *testing.T, edits ...string) *Switch {
	t.Helper()
	data, err := os.ReadFile("testdata/unipi-full.opam-switch")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for i := 0; i < len(edits); i += 2 {
		if !strings.Contains(text, edits[i]) {
			t.Fatalf("edit %q does not apply", edits[i])
		}
		text = strings.Replace(text, edits[i], edits[i+1], 1)
	}
	s, err := ParseSwitch([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDiffSwitches(t *testing.T) {
	a := readSwitch(t, "unipi-full.opam-switch")
	if d := DiffSwitches(a, a); !d.Empty() {
		t.Fatalf("diff with itself: %+v", d)
	}
	b := modified(t,
		// cmdliner removed, fmt added
		`  "cmdliner.1.3.0"`+"\n", `  "fmt.0.9.0"`+"\n",
		// mirage upgraded
		`"mirage.4.8.1"`, `"mirage.4.8.2"`,
		// unipi: same version, new commit and build step
		`unipi.git#6074dce1118813830d71939b53182e4e349d9872`, `unipi.git#9e7c6be9ff907a76cc0b57aaf89691052be1ceb3`,
		`["sh" "-exc" "mirage build"]`, `["sh" "-exc" "mirage build"] {os != "freebsd"}`,
		// duniverse: tcpip changed, ocaml-git removed, mirage-crypto untouched, dns added
		`f1f836f99eee3692f09e2e8c662248b483b7ffc050fec94dbca3a0aac36098b2`, `b860dcd6c8a1f8b46287cced9041dff02cee737443e210471948d33296c87009`,
		`    [
      "https://github.com/mirage/ocaml-git/releases/download/3.17.0/git-3.17.0.tbz"
      "ocaml-git"
      [
        "sha256=2824c1c099724caf4941d4072014b3ce107f80e222f828767efc2f91624a8940"
      ]
    ]`, `    ["https://github.com/mirage/ocaml-dns/releases/download/v9.1.0/dns-9.1.0.tbz" "ocaml-dns"]`,
		// ocaml-solo5: the extra-source moves to another URL
		`extra-source "ocaml-src.tar.gz" {
    src: "https://github.com/ocaml/ocaml/archive/4.14.2.tar.gz"`, `extra-source "ocaml-src.tar.gz" {
    src: "https://mirror.example/ocaml-4.14.2.tar.gz"`,
	)
	// a package installed in both with the same version, but whose
	// overlay only the left switch has
	for i, o := range b.Overlays {
		if o.Name == "solo5" {
			b.Overlays = append(b.Overlays[:i], b.Overlays[i+1:]...)
			break
		}
	}

	d := DiffSwitches(a, b)
	if want := []PackageVersion{{"cmdliner", "1.3.0"}}; !reflect.DeepEqual(d.Removed, want) {
		t.Errorf("Removed = %v", d.Removed)
	}
	if want := []PackageVersion{{"fmt", "0.9.0"}}; !reflect.DeepEqual(d.Added, want) {
		t.Errorf("Added = %v", d.Added)
	}
	if want := []Change{{"mirage", "4.8.1", "4.8.2"}}; !reflect.DeepEqual(d.VersionChanged, want) {
		t.Errorf("VersionChanged = %v", d.VersionChanged)
	}
	var changed []string
	for _, o := range d.OpamFileChanged {
		for _, c := range o.Changes {
			changed = append(changed, o.Name+"."+o.Version+" "+c.Name)
		}
	}
	want := []string{
		`ocaml-solo5.1.0.1 extra-source "ocaml-src.tar.gz"`,
		"solo5.0.9.0 authors", "solo5.0.9.0 available", "solo5.0.9.0 bug-reports", "solo5.0.9.0 build",
		"solo5.0.9.0 conflicts", "solo5.0.9.0 depends", "solo5.0.9.0 depexts", "solo5.0.9.0 dev-repo",
		"solo5.0.9.0 homepage", "solo5.0.9.0 install", "solo5.0.9.0 license", "solo5.0.9.0 maintainer",
		"solo5.0.9.0 opam-version", "solo5.0.9.0 synopsis", "solo5.0.9.0 url", "solo5.0.9.0 version",
		"unipi.dev build", "unipi.dev url", "unipi.dev x-opam-monorepo-duniverse-dirs",
	}
	if strings.Join(changed, "\n") != strings.Join(want, "\n") {
		t.Errorf("OpamFileChanged:\n%s\nwant:\n%s", strings.Join(changed, "\n"), strings.Join(want, "\n"))
	}
	last := d.OpamFileChanged[len(d.OpamFileChanged)-1].Changes
	if url := last[1]; url.Old != "url {\n  src: \"git+https://github.com/robur-coop/unipi.git#6074dce1118813830d71939b53182e4e349d9872\"\n}" ||
		!strings.Contains(url.New, "#9e7c6be9ff907a76cc0b57aaf89691052be1ceb3") {
		t.Errorf("url change = %+v", url)
	}
	if solo5 := d.OpamFileChanged[1]; solo5.Changes[1].New != "" || solo5.Changes[1].Old != `available: arch = "x86_64" | arch = "arm64" | arch = "ppc64"` {
		t.Errorf("solo5 change = %+v", solo5.Changes[1])
	}

	du := d.Duniverse
	if len(du.Removed) != 1 || du.Removed[0].Dir != "ocaml-git" {
		t.Errorf("Duniverse.Removed = %+v", du.Removed)
	}
	if want := []DuniverseDir{{Dir: "ocaml-dns", URL: "https://github.com/mirage/ocaml-dns/releases/download/v9.1.0/dns-9.1.0.tbz"}}; !reflect.DeepEqual(du.Added, want) {
		t.Errorf("Duniverse.Added = %+v", du.Added)
	}
	if len(du.Changed) != 1 || du.Changed[0].Dir != "tcpip" || du.Changed[0].New.Hashes[0] != "sha256=b860dcd6c8a1f8b46287cced9041dff02cee737443e210471948d33296c87009" {
		t.Errorf("Duniverse.Changed = %+v", du.Changed)
	}
}

func TestSwitchDiffJSON(t *testing.T) {
	a := readSwitch(t, "ts2ocaml.opam-switch")
	b, err := ParseSwitch([]byte("opam-version: \"2.0\"\ninstalled: [\"yojson.2.0.0\" \"zarith.1.13\"]"))
	if err != nil {
		t.Fatal(err)
	}
	d := DiffSwitches(b, a)
	j, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"removed", "added", "version_changed", "opam_file_changed", "duniverse"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no key %s in %s", k, j)
		}
	}
	if !strings.Contains(string(j), `"version_changed":[{"name":"yojson","old":"2.0.0","new":"1.7.0"}]`) ||
		!strings.Contains(string(j), `"removed":[{"name":"zarith","version":"1.13"}]`) ||
		!strings.Contains(string(j), `"duniverse":{"removed":[],"added":[],"changed":[]}`) {
		t.Errorf("json = %s", j)
	}
}
