package httpapi_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/internal/browsertest"
	"github.com/buildledger/buildledger/internal/tooltest"
	"github.com/buildledger/buildledger/ledger"
)

// The build page shows the treemap of a real OCaml binary and the
// dependency graph of a real opam switch export, computed off the request
// path: first "being computed" (503 with Retry-After on the visualization's
// own page), then the SVG; and previous/next builds with compare links.
func TestBuildVisualizations(t *testing.T) {
	ocamlopt := tooltest.Find(t, "ocamlopt", "BUILDLEDGER_REQUIRE_OPAM", "install Debian's ocaml-nox")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "unipi.ml"), []byte("let () = print_endline (String.concat \",\" (List.map string_of_int [1;2;3]))\n"), 0o644)
	cmd := exec.Command(ocamlopt, "-o", "unipi.hvt", "unipi.ml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ocamlopt: %v\n%s", err, out)
	}
	bin, _ := os.ReadFile(filepath.Join(dir, "unipi.hvt"))
	sw, err := os.ReadFile("../ledger/orb/testdata/unipi-full.opam-switch")
	if err != nil {
		t.Fatal(err)
	}
	l, srv := newServer(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ok := ledger.Result{Kind: ledger.ResultExited}
	first := storedBuild(t, l, "unipi", "debian-12", map[string]string{"bin/unipi.hvt": "an older image"}, t0, ok)
	b := storedBuild(t, l, "unipi", "debian-12", map[string]string{"bin/unipi.hvt": string(bin), "opam-switch": string(sw)}, t0.Add(time.Hour), ok)
	page := srv.URL + "/job/unipi/build/" + b.UUID.String()

	resp, body := get(t, page+"/viztreemap", "")
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		t.Fatalf("503 without Retry-After")
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(body, `data-library="Stdlib"`) || !strings.Contains(body, `data-package="unipi" data-level="0"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the visualizations never appeared:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
		_, body = get(t, page, "")
	}
	for _, want := range []string{"Being computed", "previous build: <a href=\"/job/unipi/build/" + first.UUID.String(),
		"/compare/" + first.UUID.String() + "/" + b.UUID.String(), "previous build with a different main binary"} {
		if want == "Being computed" {
			if strings.Contains(body, want) {
				t.Errorf("still says %q", want)
			}
			continue
		}
		if !strings.Contains(body, want) {
			t.Errorf("build page lacks %q", want)
		}
	}
	for _, v := range []string{"/viztreemap", "/vizdependencies"} {
		if resp, body := get(t, page+v, ""); resp.StatusCode != http.StatusOK || !strings.Contains(body, "<svg") {
			t.Errorf("%s: %s", v, resp.Status)
		}
	}
	// In a real browser: the drawings are there, with their parts, on the
	// build page and on their own pages; no console error, no serious
	// accessibility violation, nothing wider than a phone.
	br := browsertest.New(t)
	for _, p := range []string{page, page + "/viztreemap", page + "/vizdependencies"} {
		for _, width := range []int64{1280, 375} {
			br.Visit(p, width)
			libs := browsertest.Eval[int](br, "document.querySelectorAll('svg.treemap g.library rect.unit').length")
			pkgs := browsertest.Eval[int](br, "document.querySelectorAll('svg.depgraph g.package circle').length")
			switch {
			case p == page && (libs == 0 || pkgs < 10),
				strings.HasSuffix(p, "treemap") && libs == 0,
				strings.HasSuffix(p, "dependencies") && pkgs < 10:
				t.Errorf("%s: %d treemap units, %d packages drawn", p, libs, pkgs)
			}
			if over := browsertest.Eval[float64](br, "document.documentElement.scrollWidth - window.innerWidth"); over > 0 {
				t.Errorf("%s at %d px: %v px too wide", p, width, over)
			}
		}
		for _, v := range br.Axe() {
			t.Errorf("%s: accessibility: %s", p, v)
		}
		if p == page {
			br.WaitText("#proof-status", "Verified", "FAILED")
		}
		if errs := br.Errors(); len(errs) > 0 {
			t.Errorf("%s: console errors: %v", p, errs)
		}
	}
	// A build whose main binary is not ELF says why there is no treemap;
	// one without an opam-switch says that.
	fp := srv.URL + "/job/unipi/build/" + first.UUID.String()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, body = get(t, fp, "")
		if !strings.Contains(body, "Being computed") || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(body, "not an ELF binary") || !strings.Contains(body, "recorded no opam-switch") || !strings.Contains(body, `rel="next"`) {
		t.Fatalf("the first build's page:\n%s", body)
	}
	if resp, _ := get(t, fp+"/vizdependencies", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("dependencies of a build without an opam-switch: %s", resp.Status)
	}
}
