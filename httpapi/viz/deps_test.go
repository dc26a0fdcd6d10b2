package viz

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/ledger/orb"
)

func level(g *Graph, name string) (Package, bool) {
	for _, p := range g.Packages {
		if p.Name == name {
			return p, true
		}
	}
	return Package{}, false
}

func TestDependencies(t *testing.T) {
	sw, err := orb.ParseSwitch([]byte(`opam-version: "2.0"
compiler: ["ocaml.4.14.2"]
roots: ["ocaml.4.14.2" "app.1.0"]
installed: ["app.1.0" "dune.3.0" "lib.2.0" "ocaml.4.14.2" "opt.1" "unused.1" "base.1"]
package "app" {
  opam-version: "2.0"
  depends: [ "ocaml" {>= "4.08"} "dune" {>= "2.7" & build} ("lib" | "missing") "2.0" {with-test} ]
  depopts: [ "opt" "notinstalled" ]
}
package "lib" {
  opam-version: "2.0"
  depends: [ "ocaml" "dune" "base" ]
}
`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Dependencies(sw, "")
	if err != nil || g.Root != "app" {
		t.Fatalf("%v %+v", err, g)
	}
	app, _ := level(g, "app")
	if strings.Join(app.Depends, ",") != "dune,lib,ocaml,opt" || app.Level != 0 {
		t.Fatalf("app: %+v", app)
	}
	if base, _ := level(g, "base"); base.Level != 2 || base.UsedBy != 1 {
		t.Fatalf("base: %+v", base)
	}
	if dune, _ := level(g, "dune"); dune.Level != 1 || dune.UsedBy != 2 {
		t.Fatalf("dune: %+v", dune)
	}
	if u, _ := level(g, "unused"); u.Level != -1 {
		t.Fatalf("unused: %+v", u)
	}
	if _, ok := level(g, "2.0"); ok {
		t.Fatal("a version was taken for a package")
	}
	svg := GraphSVG(g, 600)
	for _, want := range []string{`data-package="app" data-level="0"`, `data-package="base" data-level="2"`, "1 installed packages it does not depend on", "<line "} {
		if !strings.Contains(svg, want) {
			t.Errorf("graph lacks %q", want)
		}
	}
	if strings.Contains(svg, `data-package="unused"`) {
		t.Error("an unreached package is drawn")
	}
	if _, err := Dependencies(sw, "nope"); err == nil {
		t.Error("a root that is not installed")
	}
}

// A real switch export (orb's, of the unipi unikernel).
func TestDependenciesOfRealSwitch(t *testing.T) {
	b, err := os.ReadFile("../../ledger/orb/testdata/unipi-full.opam-switch")
	if err != nil {
		t.Fatal(err)
	}
	sw, err := orb.ParseSwitch(b)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Dependencies(sw, "")
	if err != nil || g.Root != "unipi" {
		t.Fatalf("%v %+v", err, g)
	}
	root, _ := level(g, "unipi")
	if len(root.Depends) == 0 {
		t.Fatalf("unipi has no dependencies: %+v", root)
	}
	if svg := GraphSVG(g, 800); !strings.Contains(svg, `data-package="unipi" data-level="0"`) {
		t.Fatal("no root drawn")
	}
}

// A switch whose every package depends on every other draws a bounded
// graph: its edges beyond MaxEdges are left out, and the title says so.
func TestDependenciesEdgesBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("opam-version: \"2.0\"\nroots: [\"p0.1\"]\ninstalled: [")
	const n = 400
	for i := range n {
		fmt.Fprintf(&b, "\"p%d.1\" ", i)
	}
	b.WriteString("]\n")
	for i := range n {
		fmt.Fprintf(&b, "package \"p%d\" {\n depends: [", i)
		for j := range n {
			fmt.Fprintf(&b, "\"p%d\" ", j)
		}
		b.WriteString("]\n}\n")
	}
	sw, err := orb.ParseSwitch([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Dependencies(sw, "")
	if err != nil {
		t.Fatal(err)
	}
	svg := GraphSVG(g, 800)
	if lines := strings.Count(svg, "<line "); lines >= n || !strings.Contains(svg, "only those from each package to the first that reaches it") {
		t.Fatalf("%d edges drawn, %d bytes", lines, len(svg))
	}
}
