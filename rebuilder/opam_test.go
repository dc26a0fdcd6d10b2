package rebuilder

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/ledger/orb"
)

// opamScript builds an OCaml program as an opam package, offline: the job
// writes a local opam repository with one package whose source is an
// extra file (opam refuses to --freeze packages fetched from file://
// URLs), initialises a fresh opam root in HOME against it, creates an
// empty switch, which uses the system compiler from PATH, and installs the
// package.
const opamScript = `mkdir -p repo/packages/hello/hello.1.0/files
printf 'opam-version: "2.0"\n' > repo/repo
cat > repo/packages/hello/hello.1.0/files/hello.ml <<'EOF'
let () = print_endline "hello from OCaml"
EOF
md5=$(md5sum repo/packages/hello/hello.1.0/files/hello.ml | cut -d' ' -f1)
cat > repo/packages/hello/hello.1.0/opam <<EOF
opam-version: "2.0"
synopsis: "A tiny OCaml program"
maintainer: "nobody@example.com"
build: [["ocamlopt" "-o" "hello" "hello.ml"]]
install: [["mkdir" "-p" "%{bin}%"] ["cp" "hello" "%{bin}%/hello"]]
extra-files: [["hello.ml" "md5=$md5"]]
EOF
opam init --bare --disable-sandboxing --no-setup local "$PWD/repo"
opam switch create build --empty
opam install --yes hello
mkdir bin
cp "$(opam var bin)/hello" bin/hello
./bin/hello
`

// TestRunOpamSwitch captures a real opam switch. It needs opam (2.1 or
// later, for --freeze) and ocamlopt: on Debian 12, `apt-get install -y
// opam ocaml-nox`.
func TestRunOpamSwitch(t *testing.T) {
	for _, tool := range []string{"opam", "ocamlopt"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("BUILDLEDGER_REQUIRE_OPAM") != "" {
				t.Fatalf("%s not on PATH, but BUILDLEDGER_REQUIRE_OPAM is set (.ci/run installs opam and ocaml-nox)", tool)
			}
			t.Skipf("SKIPPED: %s not on PATH, so the opam-switch capture is not tested for real; on Debian: apt-get install -y opam ocaml-nox", tool)
		}
	}
	spec := Spec{Job: "hello-opam", SourceDateEpoch: epoch, Script: []byte(opamScript), Opam: OpamAlways,
		// OPAMROOTISOK: CI runs as root, which opam warns about.
		Vars: map[string]string{"OPAMROOTISOK": "1", "OPAMCOLOR": "never"}}
	r1, r2 := runTwice(t, spec, testOptions(t, testRoot(t)))
	sw := r1.Inputs.Switch
	if sw == nil {
		t.Fatalf("no opam switch; console:\n%s", consoleText(r1))
	}
	if len(sw.Installed) != 1 || sw.Installed[0].Name != "hello" || sw.Installed[0].Version != "1.0" {
		t.Errorf("installed %+v", sw.Installed)
	}
	ov, ok := sw.Overlay("hello")
	if !ok || ov.Version() != "1.0" {
		t.Errorf("no overlay for hello: %+v", sw.Overlays)
	}
	if !bytes.Equal(outputOf(r1, orb.SwitchFile), outputOf(r2, orb.SwitchFile)) {
		t.Errorf("opam-switch differs between runs:\n%s\n---\n%s", outputOf(r1, orb.SwitchFile), outputOf(r2, orb.SwitchFile))
	}
	if !strings.Contains(consoleText(r1), "hello from OCaml\n") {
		t.Errorf("console:\n%s", consoleText(r1))
	}
	// OpamAuto finds the root the job made.
	spec.Opam = OpamAuto
	if res := mustRun(t, spec, testOptions(t, r1.Root)); !bytes.Equal(outputOf(res, orb.SwitchFile), outputOf(r1, orb.SwitchFile)) {
		t.Errorf("auto: opam-switch\n%s", outputOf(res, orb.SwitchFile))
	}
}
