package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/httpapitest"
	"github.com/buildledger/buildledger/internal/clitest"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// rebuilderRun runs the command with args and returns its output and error.
func rebuilderRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return clitest.Run(newRoot(), args...)
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	return clitest.MustRun(t, newRoot(), args...)
}

type farm struct {
	t      *testing.T
	root   string // the build root of every build and rebuild
	l      *ledgertest.Ledger
	url    string
	keyDir string
	client *httpapi.Client
}

func newFarm(t *testing.T) *farm {
	s := httpapitest.New(t)
	t.Setenv("BUILDLEDGER_LOG_KEY", s.L.VKey)
	return &farm{t: t, l: s.L, url: s.URL, keyDir: t.TempDir(), client: s.Client, root: filepath.Join(t.TempDir(), "root")}
}

// key makes a rebuilder key and registers it as name.
func (f *farm) key(name string) string {
	f.t.Helper()
	prefix := filepath.Join(f.keyDir, name)
	mustRun(f.t, "key", "generate", "--out", prefix)
	pub, err := os.ReadFile(prefix + ".pub")
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.client.AddKey(context.Background(), name, string(pub), httpapitest.Admin); err != nil {
		f.t.Fatal(err)
	}
	return prefix + ".key"
}

var buildLine = regexp.MustCompile(`build ([0-9a-f-]{36}) of job`)

// build runs `rebuilder build` for a job script and uploads it; it returns
// the build's UUID.
func (f *farm) build(job, script string, vars ...string) uuid.UUID {
	f.t.Helper()
	dir := f.t.TempDir()
	sf := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(sf, []byte(script), 0o644); err != nil {
		f.t.Fatal(err)
	}
	args := []string{"build", "--job", job, "--script", sf, "--source-date-epoch", "1700000000",
		"--root", f.root, "--server", f.url, "--user", "farm", "--out", filepath.Join(dir, "out")}
	for _, v := range vars {
		args = append(args, "--var", v)
	}
	f.t.Setenv("BUILDLEDGER_PASSWORD", httpapitest.Farm.Password)
	out := mustRun(f.t, args...)
	m := buildLine.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "inclusion proven") {
		f.t.Fatalf("build output:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "build-environment")); err != nil {
		f.t.Fatalf("orb output directory: %v", err)
	}
	return uuid.MustParse(m[1])
}

func (f *farm) rebuild(id uuid.UUID, key string) (string, error) {
	f.t.Helper()
	return rebuilderRun(f.t, "rebuild", "--server", f.url, "--build", id.String(), "--key", key, "--root", f.root)
}

func (f *farm) buildView(id uuid.UUID) httpapi.BuildView {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.url+"/build/"+id.String(), nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v httpapi.BuildView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		f.t.Fatal(err)
	}
	return v
}

func goEnv(t *testing.T, name string) string {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Skipf("SKIPPED: no go command for the Go job: %v", err)
	}
	return strings.TrimSpace(string(out))
}

const cJob = `mkdir -p bin
cat > hello.c <<'EOF'
#include <stdio.h>
int main(void) { puts("hello, reproducible world"); return 0; }
EOF
gcc -O2 -o bin/hello hello.c
`

const goJob = `mkdir -p bin src
cat > src/go.mod <<'EOF'
module example.org/hello
go 1.22
EOF
cat > src/main.go <<'EOF'
package main

import "fmt"

func main() { fmt.Println("hello from Go") }
EOF
cd src && CGO_ENABLED=0 go build -trimpath -o ../bin/hello-go .
`

const timeJob = `mkdir -p bin
date +%s%N > bin/stamp
echo constant > bin/constant
`

// leakyJob reads a file outside its build root: a hermeticity bug that
// makes rebuilders disagree once the file changes.
const leakyJob = `mkdir -p bin
cp "$LEAK" bin/leaky.img
`

// TestRebuildEndToEnd is the rebuilder against a real ledger server on
// loopback: real gcc and Go builds uploaded by rebuilder build, rebuilt by
// two keys (2 agreeing keys on the build page), a job that embeds the time
// detected as not reproducible by name, a third key that got other bytes
// shown as a disagreement, and the follow daemon resuming from its state.
func TestRebuildEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("SKIPPED: gcc is not installed (.ci/run installs it)")
	}
	f := newFarm(t)
	ka, kb, kc := f.key("rebuilder-a"), f.key("rebuilder-b"), f.key("rebuilder-c")

	cBuild := f.build("hello-c", cJob)
	goBuild := f.build("hello-go", goJob, "GOCACHE="+goEnv(t, "GOCACHE"), "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false", "GOPROXY=off")
	timeBuild := f.build("clock", timeJob)
	leak := filepath.Join(t.TempDir(), "leak")
	os.WriteFile(leak, []byte("version 1\n"), 0o644)
	leakyBuild := f.build("leaky", leakyJob, "LEAK="+leak)

	// A record whose build root is not this rebuilder's is refused.
	if out, err := rebuilderRun(t, "rebuild", "--server", f.url, "--build", cBuild.String(), "--key", ka); err == nil || !strings.Contains(err.Error(), "pass --root") {
		t.Fatalf("rebuild in another root: %v\n%s", err, out)
	}
	for _, id := range []uuid.UUID{cBuild, goBuild} {
		for _, k := range []string{ka, kb} {
			out, err := f.rebuild(id, k)
			if err != nil || !strings.Contains(out, "verdict: REPRODUCIBLE\nreproducible") || !strings.Contains(out, `attested as "reproduced"`) {
				t.Fatalf("rebuild of %s with %s: %v\n%s", id, filepath.Base(k), err, out)
			}
		}
		v := f.buildView(id)
		if fmt.Sprint(v.AttestedBy) != "[rebuilder-a rebuilder-b]" || len(v.DisputedBy) != 0 {
			t.Fatalf("build %s: attested by %v, disputed by %v", id, v.AttestedBy, v.DisputedBy)
		}
	}

	out, err := f.rebuild(timeBuild, ka)
	if err == nil || !strings.Contains(out, "verdict: NOT REPRODUCIBLE") || !strings.Contains(out, "bin/stamp") || strings.Contains(out, "differs: bin/constant") ||
		!strings.Contains(out, `attested as "differs"`) {
		t.Fatalf("rebuild of the clock job: %v\n%s", err, out)
	}
	t.Logf("rebuild of the clock job:\n%s", out)
	if v := f.buildView(timeBuild); fmt.Sprint(v.DisputedBy) != "[rebuilder-a]" {
		t.Fatalf("clock build disputed by %v", v.DisputedBy)
	}

	for _, k := range []string{ka, kb} {
		if out, err := f.rebuild(leakyBuild, k); err != nil {
			t.Fatalf("rebuild of the leaky job: %v\n%s", err, out)
		}
	}
	os.WriteFile(leak, []byte("version 2\n"), 0o644)
	out, err = f.rebuild(leakyBuild, kc)
	if err == nil || !strings.Contains(out, "differs: bin/leaky.img") {
		t.Fatalf("third rebuilder: %v\n%s", err, out)
	}
	v := f.buildView(leakyBuild)
	if fmt.Sprint(v.AttestedBy) != "[rebuilder-a rebuilder-b]" || fmt.Sprint(v.DisputedBy) != "[rebuilder-c]" {
		t.Fatalf("leaky build: attested by %v, disputed by %v", v.AttestedBy, v.DisputedBy)
	}
	var main httpapi.ArtifactView
	for _, a := range v.Artifacts {
		if a.Path == "bin/leaky.img" {
			main = a
		}
	}
	var hl httpapi.HashLookup
	req, _ := http.NewRequest(http.MethodGet, f.url+"/hash?sha256="+main.SHA256.String(), nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&hl)
	resp.Body.Close()
	if len(hl.Attestations) != 2 || len(hl.Disputes) != 1 || hl.Disputes[0].KeyName != "rebuilder-c" {
		t.Fatalf("/hash of the leaky image: %+v", hl)
	}

	// The follow daemon rebuilds everything for this platform once,
	// remembers it, and skips it on the next pass.
	os.WriteFile(leak, []byte("version 1\n"), 0o644)
	kd := f.key("rebuilder-d")
	state := filepath.Join(t.TempDir(), "follow.json")
	out = mustRun(t, "follow", "--once", "--server", f.url, "--key", kd, "--state", state, "--root", f.root, "--concurrency", "2")
	if !strings.Contains(out, "rebuilt 4 (reproduced 3, differs 1), skipped 0, failed 0") {
		t.Fatalf("follow, first pass:\n%s", out)
	}
	if b, err := os.ReadFile(state); err != nil || !strings.Contains(string(b), `"next"`) {
		t.Fatalf("state file: %v %s", err, b)
	}
	out = mustRun(t, "follow", "--once", "--server", f.url, "--key", kd, "--state", state, "--root", f.root)
	if !strings.Contains(out, "rebuilt 0 (reproduced 0, differs 0), skipped 0, failed 0") {
		t.Fatalf("follow, second pass:\n%s", out)
	}
	os.Remove(state) // progress lost: already attested builds are still skipped
	out = mustRun(t, "follow", "--once", "--server", f.url, "--key", kd, "--state", state, "--root", f.root)
	if !strings.Contains(out, "rebuilt 0 (reproduced 0, differs 0), skipped 4, failed 0") {
		t.Fatalf("follow without state:\n%s", out)
	}
	if v := f.buildView(cBuild); fmt.Sprint(v.AttestedBy) != "[rebuilder-a rebuilder-b rebuilder-d]" {
		t.Fatalf("after follow: attested by %v", v.AttestedBy)
	}

	// A rebuild that fails is retried on the next pass, not lost.
	leak2 := filepath.Join(t.TempDir(), "leak2")
	os.WriteFile(leak2, []byte("v1\n"), 0o644)
	f.build("leaky2", leakyJob, "LEAK="+leak2)
	os.Remove(leak2) // the rebuild produces nothing to attest
	out = mustRun(t, "follow", "--once", "--server", f.url, "--key", kd, "--state", state, "--root", f.root)
	if !strings.Contains(out, "rebuilt 0 (reproduced 0, differs 0), skipped 0, failed 1") {
		t.Fatalf("follow with a failing rebuild:\n%s", out)
	}
	if b, _ := os.ReadFile(state); !strings.Contains(string(b), `"attempts": 1`) {
		t.Fatalf("state has no retry: %s", b)
	}
	os.WriteFile(leak2, []byte("v1\n"), 0o644)
	out = mustRun(t, "follow", "--once", "--server", f.url, "--key", kd, "--state", state, "--root", f.root)
	if !strings.Contains(out, "rebuilt 1 (reproduced 1, differs 0), skipped 0, failed 0") {
		t.Fatalf("follow, retry:\n%s", out)
	}

	// Builds recorded under another build root than this rebuilder's
	// cannot be rebuilt here as recorded: they are skipped, not retried.
	other := filepath.Join(t.TempDir(), "other-root")
	ke := f.key("rebuilder-e")
	estate := filepath.Join(t.TempDir(), "follow-e.json")
	out = mustRun(t, "follow", "--once", "--server", f.url, "--key", ke, "--state", estate, "--root", other)
	if !strings.Contains(out, "rebuilt 0 (reproduced 0, differs 0)") || !strings.Contains(out, "failed 0") {
		t.Fatalf("follow with another build root:\n%s", out)
	}
	if b, _ := os.ReadFile(estate); strings.Contains(string(b), `"retry"`) {
		t.Fatalf("builds of another root are queued for retry: %s", b)
	}
}
