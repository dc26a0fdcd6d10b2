package rebuilder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/buildledger/buildledger/ledger/event"

	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/buildledger/buildledger/ledger/orb"
)

const epoch = 1700000000

// testRoot returns a build root for the test that does not exist yet.
func testRoot(t *testing.T) string {
	return filepath.Join(t.TempDir(), "root")
}

// testOptions are Options for root that also work on hosts whose packages
// cannot be listed.
func testOptions(t *testing.T, root string) Options {
	t.Helper()
	h, err := ProbeHost()
	if err != nil {
		t.Fatal(err)
	}
	return Options{Root: root, SkipSystem: orb.Environment{Vars: h.Vars()}.Family() == orb.UnknownFamily}
}

func mustRun(t *testing.T, spec Spec, opts Options) *Result {
	t.Helper()
	res, err := Run(context.Background(), spec, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkResult(t, res)
	return res
}

// checkResult checks the invariants of every result: the exec record
// marshals and reads back, its outputs are the inputs then bin/ sorted, the
// artifacts describe bin/, and console times do not go backwards.
func checkResult(t *testing.T, res *Result) {
	t.Helper()
	der, err := res.Exec.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	back, err := builder.Parse(der, builder.Limits{})
	if err != nil {
		t.Fatalf("Parse(Marshal()): %v", err)
	}
	if back.UUID != res.Exec.UUID || back.Result != res.Exec.Result || len(back.Output) != len(res.Exec.Output) || len(back.Console) != len(res.Exec.Console) {
		t.Fatalf("exec does not round-trip: %+v", back)
	}
	var bins []builder.File
	for i, f := range res.Exec.Output {
		switch {
		case strings.HasPrefix(f.Path, "bin/"):
			bins = append(bins, f)
		case i > 2 || !isInput(f.Path) || len(bins) > 0:
			t.Errorf("output %d is %s: want the input files first, then bin/", i, f.Path)
		}
	}
	if res.Exec.Output[0].Path != orb.EnvironmentFile {
		t.Errorf("first output is %s", res.Exec.Output[0].Path)
	}
	if len(bins) != len(res.Artifacts) {
		t.Fatalf("%d bin/ outputs, %d artifacts", len(bins), len(res.Artifacts))
	}
	for i, f := range bins {
		a := res.Artifacts[i]
		if a.Path != f.Path || a != art(f.Path, string(f.Data)) {
			t.Errorf("artifact %d = %+v, output %s", i, a, f.Path)
		}
		if i > 0 && bins[i-1].Path >= f.Path {
			t.Errorf("outputs not sorted: %s before %s", bins[i-1].Path, f.Path)
		}
	}
	for i := 1; i < len(res.Exec.Console); i++ {
		if res.Exec.Console[i].Delta < res.Exec.Console[i-1].Delta {
			t.Errorf("console line %d at %v, before line %d at %v", i, res.Exec.Console[i].Delta, i-1, res.Exec.Console[i-1].Delta)
		}
	}
	if res.Exec.Finished.Before(res.Exec.Started) {
		t.Errorf("finished %v before started %v", res.Exec.Finished, res.Exec.Started)
	}
}

func outputOf(res *Result, p string) []byte {
	for _, f := range res.Exec.Output {
		if f.Path == p {
			return f.Data
		}
	}
	return nil
}

func consoleText(res *Result) string {
	var b strings.Builder
	for _, l := range res.Exec.Console {
		b.WriteString(l.Data + "\n")
	}
	return b.String()
}

// runTwice runs spec twice in the same root and checks that both runs have
// the same inputs and are reproducible.
func runTwice(t *testing.T, spec Spec, opts Options) (*Result, *Result) {
	t.Helper()
	r1 := mustRun(t, spec, opts)
	r2 := mustRun(t, spec, opts)
	for _, r := range []*Result{r1, r2} {
		if !r.Exec.Result.Success() {
			t.Fatalf("build failed: %v\n%s", r.Exec.Result, consoleText(r))
		}
	}
	if r1.Exec.UUID == r2.Exec.UUID {
		t.Error("both runs have the same UUID")
	}
	for _, name := range []string{orb.EnvironmentFile, orb.PackagesFile} {
		if !bytes.Equal(outputOf(r1, name), outputOf(r2, name)) {
			t.Errorf("%s differs between runs:\n%s\n---\n%s", name, outputOf(r1, name), outputOf(r2, name))
		}
	}
	if d := DiffInputs(r1.Inputs, r2.Inputs); !d.Empty() {
		t.Errorf("inputs differ: %+v", d)
	}
	c := Compare(r1.Artifacts, r2.Artifacts)
	if !c.Reproducible() {
		t.Errorf("not reproducible:\n%s", c)
	}
	return r1, r2
}

func TestRunCTwice(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	script := `mkdir bin
cat > hello.c <<'EOF'
#include <stdio.h>
int main(void) { printf("hello from %s\n", __FILE__); return 0; }
EOF
gcc -O2 -g -o bin/hello "$PWD/hello.c"
./bin/hello
`
	r1, _ := runTwice(t, Spec{Job: "hello-c", Script: []byte(script), SourceDateEpoch: epoch}, testOptions(t, testRoot(t)))
	if len(r1.Artifacts) != 1 || r1.Artifacts[0].Path != "bin/hello" {
		t.Fatalf("artifacts %+v", r1.Artifacts)
	}
	if !strings.Contains(consoleText(r1), "hello from /") {
		t.Errorf("console:\n%s", consoleText(r1))
	}
}

func TestRunGoTwice(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	cache, err := exec.Command(goBin, "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t, testRoot(t))
	opts.Path = filepath.Dir(goBin) + ":" + DefaultPath
	script := `mkdir bin
cat > go.mod <<'EOF'
module example.com/hello

go 1.22
EOF
cat > main.go <<'EOF'
package main

import "fmt"

func main() { fmt.Println("hello") }
EOF
go build -o bin/hello .
./bin/hello
`
	spec := Spec{Job: "hello-go", Script: []byte(script), SourceDateEpoch: epoch, Vars: map[string]string{
		"GOCACHE": strings.TrimSpace(string(cache)), "GOFLAGS": "-trimpath -buildvcs=false", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0",
	}}
	r1, _ := runTwice(t, spec, opts)
	if len(r1.Artifacts) != 1 || r1.Artifacts[0].Path != "bin/hello" || r1.Artifacts[0].Size < 100_000 {
		t.Fatalf("artifacts %+v", r1.Artifacts)
	}
	if !strings.Contains(consoleText(r1), "hello\n") {
		t.Errorf("console:\n%s", consoleText(r1))
	}
}

func TestRunTimestamp(t *testing.T) {
	spec := Spec{Job: "stamp", SourceDateEpoch: epoch, Script: []byte("mkdir bin\necho same > bin/same\ndate +%s%N > bin/stamp\n")}
	opts := testOptions(t, testRoot(t))
	r1 := mustRun(t, spec, opts)
	r2 := mustRun(t, spec, opts)
	c := Compare(r1.Artifacts, r2.Artifacts)
	if c.Reproducible() || len(c.Identical) != 1 || c.Identical[0].Path != "bin/same" || len(c.Differing) != 1 || len(c.Missing)+len(c.Extra) != 0 {
		t.Fatalf("Compare = %+v", c)
	}
	m := c.Differing[0]
	if m.Path != "bin/stamp" || m.Expected != r1.Artifacts[1].SHA256 || m.Actual != r2.Artifacts[1].SHA256 {
		t.Errorf("mismatch %+v", m)
	}
	s := c.String()
	for _, want := range []string{"not reproducible", "differs: bin/stamp", m.Expected.String(), m.Actual.String()} {
		if !strings.Contains(s, want) {
			t.Errorf("verdict lacks %q:\n%s", want, s)
		}
	}
}

func TestRunEnvironment(t *testing.T) {
	t.Setenv("BUILDLEDGER_LEAK_MARKER", "leaked")
	root := testRoot(t)
	spec := Spec{Job: "env", SourceDateEpoch: epoch, Script: []byte("mkdir bin\nenv > bin/env\nprintf '%s' \"$0\" > bin/argv0\n"),
		Vars: map[string]string{"ZED": "last", "A_VAR": "a=b c", "GOFLAGS": ""}}
	o := testOptions(t, root)
	var phases []Phase
	o.Progress = func(p Phase) { phases = append(phases, p) }
	res := mustRun(t, spec, o)
	if want := []Phase{PhasePreparing, PhaseRunning, PhaseCapturing, PhaseHashing}; !reflect.DeepEqual(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
	h, err := ProbeHost()
	if err != nil {
		t.Fatal(err)
	}
	want := "HOME=" + root + "/home\nPATH=" + DefaultPath + "\nSOURCE_DATE_EPOCH=1700000000\n"
	for _, v := range h.Vars() {
		want += v.Name + "=" + v.Value + "\n"
	}
	want += "A_VAR=a=b c\nGOFLAGS=\nZED=last\n"
	if got := string(outputOf(res, orb.EnvironmentFile)); got != want {
		t.Errorf("build-environment:\n%s\nwant\n%s", got, want)
	}
	// The script saw exactly these, plus what the shell sets itself.
	saw := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(outputOf(res, "bin/env")), "\n"), "\n") {
		k, v, _ := strings.Cut(line, "=")
		saw[k] = v
	}
	for _, v := range res.Inputs.Environment.Vars {
		if saw[v.Name] != v.Value {
			t.Errorf("script saw %s=%q, want %q", v.Name, saw[v.Name], v.Value)
		}
		delete(saw, v.Name)
	}
	if saw["PWD"] != root+"/build" {
		t.Errorf("script ran in %q", saw["PWD"])
	}
	for _, shell := range []string{"PWD", "OLDPWD", "SHLVL", "_"} {
		delete(saw, shell)
	}
	if len(saw) > 0 {
		t.Errorf("script saw variables it should not: %v", saw)
	}
	if got := string(outputOf(res, "bin/argv0")); got != root+"/script" {
		t.Errorf("script path %q", got)
	}
	if res.Exec.Job.Platform != h.Distribution+"-"+h.Version || res.Exec.Job.Name != "env" || res.Exec.Job.Script != string(spec.Script) {
		t.Errorf("job %+v", res.Exec.Job)
	}
	if !res.Exec.Result.Success() {
		t.Errorf("result %v", res.Exec.Result)
	}
	if !testOptions(t, root).SkipSystem {
		p := res.Inputs.Packages
		if p == nil || len(p.List) == 0 || p.Family != orb.Debian && p.Family != orb.FreeBSD {
			t.Fatalf("system packages %+v", p)
		}
		if !slices.IsSortedFunc(p.List, func(a, b orb.Package) int { return strings.Compare(a.Name, b.Name) }) {
			t.Error("system packages are not sorted")
		}
		data, _ := p.Format()
		if !bytes.Equal(data, outputOf(res, orb.PackagesFile)) {
			t.Error("system-packages output is not the formatted Inputs.Packages")
		}
	}

	// An explicit platform and PATH.
	spec.Platform = "custom-1"
	o = testOptions(t, root)
	o.Path = "/bin:/usr/bin"
	res = mustRun(t, spec, o)
	if res.Exec.Job.Platform != "custom-1" || !strings.Contains(string(outputOf(res, "bin/env")), "\nPATH=/bin:/usr/bin\n") {
		t.Errorf("platform %q, env:\n%s", res.Exec.Job.Platform, outputOf(res, "bin/env"))
	}
}

func TestRunShebang(t *testing.T) {
	o := testOptions(t, testRoot(t))
	// Without "#!" the script runs under sh -e and stops at false.
	res := mustRun(t, Spec{Job: "e", SourceDateEpoch: epoch, Script: []byte("echo before\nfalse\necho after\n")}, o)
	if res.Exec.Result != (builder.Result{Kind: builder.ResultExited, Code: 1}) || strings.Contains(consoleText(res), "after") {
		t.Errorf("sh -e: %v\n%s", res.Exec.Result, consoleText(res))
	}
	// With one, the interpreter named decides.
	res = mustRun(t, Spec{Job: "e", SourceDateEpoch: epoch, Script: []byte("#!/bin/sh\necho before\nfalse\necho after\n")}, o)
	if !res.Exec.Result.Success() || !strings.Contains(consoleText(res), "after") {
		t.Errorf("#!/bin/sh: %v\n%s", res.Exec.Result, consoleText(res))
	}
	// A missing interpreter is a recorded failure.
	res = mustRun(t, Spec{Job: "e", SourceDateEpoch: epoch, Script: []byte("#!/nonexistent/interpreter\n")}, o)
	if res.Exec.Result.Kind != builder.ResultMsg || !strings.Contains(res.Exec.Result.Msg, "cannot start the script") {
		t.Errorf("missing interpreter: %v", res.Exec.Result)
	}
}

func TestRunResults(t *testing.T) {
	o := testOptions(t, testRoot(t))
	tests := []struct {
		script string
		want   builder.Result
	}{
		{"mkdir bin; echo partial > bin/partial; exit 3", builder.Result{Kind: builder.ResultExited, Code: 3}},
		{"mkdir bin; echo partial > bin/partial; kill -KILL $$", builder.Result{Kind: builder.ResultSignalled, Code: -7}},
		{"mkdir bin; echo partial > bin/partial; kill -TERM $$", builder.Result{Kind: builder.ResultSignalled, Code: -11}},
		{"mkdir bin; echo partial > bin/partial; kill -SEGV $$", builder.Result{Kind: builder.ResultSignalled, Code: -10}},
	}
	for _, tt := range tests {
		res := mustRun(t, Spec{Job: "fails", SourceDateEpoch: epoch, Script: []byte(tt.script)}, o)
		if res.Exec.Result != tt.want {
			t.Errorf("%q: result %v, want %v", tt.script, res.Exec.Result, tt.want)
		}
		// A failed build is recorded with its inputs and what it left.
		if len(res.Artifacts) != 1 || res.Artifacts[0] != art("bin/partial", "partial\n") || outputOf(res, orb.EnvironmentFile) == nil {
			t.Errorf("%q: artifacts %+v", tt.script, res.Artifacts)
		}
	}

	o.Timeout = 300 * time.Millisecond
	start := time.Now()
	res := mustRun(t, Spec{Job: "slow", SourceDateEpoch: epoch, Script: []byte("echo going to sleep; sleep 30")}, o)
	if res.Exec.Result != (builder.Result{Kind: builder.ResultMsg, Msg: "timeout"}) || time.Since(start) > 10*time.Second {
		t.Errorf("timeout: %v after %v", res.Exec.Result, time.Since(start))
	}
	if !strings.Contains(consoleText(res), "going to sleep\nbuildledger: killed after the timeout of 300ms\n") {
		t.Errorf("console:\n%s", consoleText(res))
	}
}

// signalWriter closes ready when a line containing want is written.
type signalWriter struct {
	want  string
	once  sync.Once
	ready chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.want) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

func TestRunCancel(t *testing.T) {
	root := testRoot(t)
	o := testOptions(t, root)
	w := &signalWriter{want: "started", ready: make(chan struct{})}
	o.Console = w
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-w.ready:
		case <-time.After(20 * time.Second):
		}
		cancel()
	}()
	// A background child and a grandchild in a subshell; all of the
	// process group must go.
	script := `sleep 300 &
echo $! > "$HOME/child"
(sleep 300 & echo $! > "$HOME/grandchild"; wait) &
while [ ! -s "$HOME/grandchild" ]; do sleep 0.01; done
echo started
sleep 300
`
	start := time.Now()
	res, err := Run(ctx, Spec{Job: "cancelled", SourceDateEpoch: epoch, Script: []byte(script)}, o)
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Fatalf("Run = %v, %v; want context.Canceled", res, err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Run took %v to return after cancel", d)
	}
	for _, name := range []string{"child", "grandchild"} {
		data, err := os.ReadFile(filepath.Join(root, "home", name))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Errorf("%s %d still running after cancel", name, pid)
				syscall.Kill(pid, syscall.SIGKILL)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The root is unlocked again.
	if _, err := Run(context.Background(), Spec{Job: "after", SourceDateEpoch: epoch, Script: []byte("true")}, o); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

// A process that leaves the job's process group and keeps its output open
// does not keep Run waiting.
func TestRunEscapedWriter(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid not installed")
	}
	start := time.Now()
	res := mustRun(t, Spec{Job: "escape", SourceDateEpoch: epoch, Script: []byte("setsid sleep 5 &\nsleep 0.3\necho done\n")}, testOptions(t, testRoot(t)))
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Run took %v", d)
	}
	if !res.Exec.Result.Success() || !strings.Contains(consoleText(res), "done\nbuildledger: output still open 2s after the script ended") {
		t.Errorf("result %v, console:\n%s", res.Exec.Result, consoleText(res))
	}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no procfs: trust kill
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

func TestRunOutputs(t *testing.T) {
	o := testOptions(t, testRoot(t))
	script := `mkdir -p bin/sub/deeper out
echo real > bin/real
echo deep > bin/sub/deeper/file
echo outside > out/secret
ln -s /etc/passwd bin/passwd
ln -s real bin/inner
ln -s ../out bin/escape
mkfifo bin/fifo
printf x > "$(printf 'bin/new\nline')"
`
	res := mustRun(t, Spec{Job: "outputs", SourceDateEpoch: epoch, Script: []byte(script)}, o)
	want := []event.Artifact{art("bin/real", "real\n"), art("bin/sub/deeper/file", "deep\n")}
	if !reflect.DeepEqual(res.Artifacts, want) {
		t.Errorf("artifacts %+v, want %+v", res.Artifacts, want)
	}
	con := consoleText(res)
	for _, note := range []string{
		`buildledger: bin/escape is a symlink to "../out": not collected`,
		`buildledger: bin/fifo is a named pipe: not collected`,
		`buildledger: bin/inner is a symlink to "real": not collected`,
		`buildledger: "bin/new\nline": path "bin/new\nline" contains a control character or backslash: not collected`,
		`buildledger: bin/passwd is a symlink to "/etc/passwd": not collected`,
	} {
		if !strings.Contains(con, note+"\n") {
			t.Errorf("console lacks %q:\n%s", note, con)
		}
	}

	// bin itself a symlink: nothing is collected.
	res = mustRun(t, Spec{Job: "outputs", SourceDateEpoch: epoch, Script: []byte("ln -s /etc bin")}, o)
	if len(res.Artifacts) != 0 || !strings.Contains(consoleText(res), `buildledger: bin is a symlink to "/etc", not a directory: no outputs collected`) {
		t.Errorf("artifacts %+v, console:\n%s", res.Artifacts, consoleText(res))
	}
	// No bin at all.
	res = mustRun(t, Spec{Job: "outputs", SourceDateEpoch: epoch, Script: []byte("echo nothing")}, o)
	if len(res.Artifacts) != 0 || len(res.Exec.Output) == 0 {
		t.Errorf("artifacts %+v", res.Artifacts)
	}
}

func TestRunOutputLimits(t *testing.T) {
	o := testOptions(t, testRoot(t))
	o.MaxOutputSize = 10
	spec := Spec{Job: "big", SourceDateEpoch: epoch, Script: []byte("mkdir bin; printf 12345 > bin/a; printf 123456 > bin/b")}
	if _, err := Run(context.Background(), spec, o); !errors.Is(err, ErrOutputLimit) || !strings.Contains(err.Error(), "bin/b") {
		t.Errorf("size: %v, want ErrOutputLimit naming bin/b", err)
	}
	o.MaxOutputSize = 11
	mustRun(t, spec, o)

	o.MaxOutputFiles = 1
	if _, err := Run(context.Background(), spec, o); !errors.Is(err, ErrOutputLimit) {
		t.Errorf("count: %v, want ErrOutputLimit", err)
	}
}

func TestRunConsole(t *testing.T) {
	o := testOptions(t, testRoot(t))
	var live bytes.Buffer
	o.Console = &live
	res := mustRun(t, Spec{Job: "console", SourceDateEpoch: epoch, Script: []byte("echo one; sleep 0.3; echo two >&2; printf 'three\\r\\n'; printf 'no newline'")}, o)
	var got []string
	for _, l := range res.Exec.Console {
		got = append(got, l.Data)
	}
	want := []string{"one", "two", "three\r", "no newline"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("console %q, want %q", got, want)
	}
	if gap := res.Exec.Console[1].Delta - res.Exec.Console[0].Delta; gap < 250*time.Millisecond {
		t.Errorf("lines 300ms apart are stamped %v apart", gap)
	}
	if d := res.Exec.Finished.Sub(res.Exec.Started); res.Exec.Console[3].Delta > d+time.Millisecond {
		t.Errorf("last line at %v, after the job's %v", res.Exec.Console[3].Delta, d)
	}
	if live.String() != "one\ntwo\nthree\r\nno newline\n" {
		t.Errorf("live console %q", live.String())
	}

	// A chatty script keeps its first and last lines.
	o.Console = nil
	o.MaxConsoleLines = 11
	res = mustRun(t, Spec{Job: "console", SourceDateEpoch: epoch, Script: []byte("i=0; while [ $i -lt 1000 ]; do echo line $i; i=$((i+1)); done")}, o)
	got = nil
	for _, l := range res.Exec.Console {
		got = append(got, l.Data)
	}
	want = []string{"line 0", "line 1", "line 2", "line 3", "line 4",
		"buildledger: console truncated: 990 lines (7820 bytes) left out here",
		"line 995", "line 996", "line 997", "line 998", "line 999"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bounded console %q, want %q", got, want)
	}
}

func TestConsoleBound(t *testing.T) {
	start := time.Now()
	// Bytes bound: 10 bytes, 5 for the head and 5 for the tail.
	c := newConsole(start, 100, 10, nil)
	if err := c.read(strings.NewReader("aa\nbb\ncc\ndd\nee\nff\ngg")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range c.lines() {
		got = append(got, l.Data)
	}
	want := []string{"aa", "bb", "buildledger: console truncated: 3 lines (6 bytes) left out here", "ff", "gg"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
	// Long lines are split.
	c = newConsole(start, 100, 1<<20, nil)
	long := strings.Repeat("x", 3*MaxLineBytes+7)
	if err := c.read(strings.NewReader(long + "\nend\n")); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, l := range c.lines() {
		sizes = append(sizes, len(l.Data))
	}
	if !reflect.DeepEqual(sizes, []int{MaxLineBytes, MaxLineBytes, MaxLineBytes, 7, 3}) {
		t.Errorf("line sizes %v", sizes)
	}
	// A line larger than the whole tail budget is dropped, not kept.
	c = newConsole(start, 100, 4, nil)
	_ = c.read(strings.NewReader("a\nbbbbbbbb\nc\n"))
	got = nil
	for _, l := range c.lines() {
		got = append(got, l.Data)
	}
	want = []string{"a", "buildledger: console truncated: 1 lines (8 bytes) left out here", "c"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}

func TestRunRoot(t *testing.T) {
	spec := Spec{Job: "root", SourceDateEpoch: epoch, Script: []byte("echo hi > file; mkdir -p $HOME/ro/sub; touch $HOME/ro/sub/f; chmod -R a-w $HOME/ro")}

	// A directory Run did not make is not wiped.
	foreign := t.TempDir()
	if err := os.WriteFile(filepath.Join(foreign, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), spec, testOptions(t, foreign)); err == nil || !strings.Contains(err.Error(), "refusing to wipe") {
		t.Errorf("foreign root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(foreign, "precious")); err != nil {
		t.Errorf("foreign root touched: %v", err)
	}

	// An empty directory is adopted; a second run starts afresh, even
	// after read-only directories.
	root := t.TempDir()
	o := testOptions(t, root)
	mustRun(t, spec, o)
	res := mustRun(t, Spec{Job: "root", SourceDateEpoch: epoch, Script: []byte("ls -A; ls -A $HOME")}, o)
	if got := consoleText(res); got != "" {
		t.Errorf("second run found files:\n%s", got)
	}

	// A root in use is busy.
	f, err := os.Open(filepath.Join(root, markerFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), spec, o); !errors.Is(err, ErrRootBusy) {
		t.Errorf("busy root: %v, want ErrRootBusy", err)
	}
	f.Close()
	mustRun(t, Spec{Job: "root", SourceDateEpoch: epoch, Script: []byte("true")}, o) // leaves nothing read-only for t.TempDir's cleanup

	// A symlinked root is refused.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), spec, testOptions(t, link)); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("symlinked root: %v", err)
	}
}

func TestRunInvalid(t *testing.T) {
	root := testRoot(t)
	ok := Spec{Job: "ok", Script: []byte("true"), SourceDateEpoch: epoch}
	recorded := orb.Environment{Vars: []orb.Var{{Name: "HOME", Value: root + "/home"}, {Name: "PATH", Value: "/bin"}}}
	tests := []struct {
		name string
		spec func(*Spec, *Options)
		want string
	}{
		{"job name", func(s *Spec, o *Options) { s.Job = "a/b" }, `job: name "a/b"`},
		{"empty script", func(s *Spec, o *Options) { s.Script = nil }, "empty script"},
		{"no epoch", func(s *Spec, o *Options) { s.SourceDateEpoch = 0 }, "SourceDateEpoch is required"},
		{"HOME", func(s *Spec, o *Options) { s.Vars = map[string]string{"HOME": "/root"} }, "variable HOME is set by the rebuilder"},
		{"PATH", func(s *Spec, o *Options) { s.Vars = map[string]string{"PATH": "/bin"} }, "variable PATH is set by the rebuilder"},
		{"SOURCE_DATE_EPOCH", func(s *Spec, o *Options) { s.Vars = map[string]string{"SOURCE_DATE_EPOCH": "1"} }, "variable SOURCE_DATE_EPOCH is set"},
		{"OS", func(s *Spec, o *Options) { s.Vars = map[string]string{"OS": "linux"} }, "variable OS is reserved for the host facts"},
		{"OS_VERSION", func(s *Spec, o *Options) { s.Vars = map[string]string{"OS_VERSION": "11"} }, "variable OS_VERSION is reserved"},
		{"ARCH", func(s *Spec, o *Options) { s.Vars = map[string]string{"ARCH": "arm64"} }, "variable ARCH is reserved"},
		{"PWD", func(s *Spec, o *Options) { s.Vars = map[string]string{"PWD": "/"} }, "variable PWD is set by the shell"},
		{"bad name", func(s *Spec, o *Options) { s.Vars = map[string]string{"1X": "y"} }, `variable name "1X"`},
		{"name with =", func(s *Spec, o *Options) { s.Vars = map[string]string{"A=B": "y"} }, `variable name "A=B"`},
		{"newline value", func(s *Spec, o *Options) { s.Vars = map[string]string{"X": "a\nb"} }, "variable X: value contains a newline"},
		{"platform", func(s *Spec, o *Options) { s.Platform = "debian 12" }, "platform: name"},
		{"opam mode", func(s *Spec, o *Options) { s.Opam = 7 }, "unknown opam mode OpamMode(7)"},
		{"relative root", func(s *Spec, o *Options) { o.Root = "build" }, `build root "build" must be`},
		{"slash root", func(s *Spec, o *Options) { o.Root = "/" }, `build root "/" must be`},
		{"relative PATH", func(s *Spec, o *Options) { o.Path = "/bin:." }, `PATH element "."`},
		{"rebuild with vars", func(s *Spec, o *Options) { o.Env = &recorded }, "Spec.Vars and Spec.SourceDateEpoch must be empty"},
		{"rebuild without HOME", func(s *Spec, o *Options) {
			s.SourceDateEpoch = 0
			o.Env = &orb.Environment{Vars: []orb.Var{{Name: "PATH", Value: "/bin"}}}
		}, "recorded environment has no HOME"},
		{"rebuild with another HOME", func(s *Spec, o *Options) {
			s.SourceDateEpoch = 0
			o.Env = &orb.Environment{Vars: []orb.Var{{Name: "HOME", Value: "/home/builder/"}}}
		}, `recorded HOME "/home/builder/" is not <root>/home`},
		{"rebuild with another root", func(s *Spec, o *Options) {
			s.SourceDateEpoch = 0
			o.Env = &recorded
			o.Root = root + "2"
		}, "differs from the recorded build root"},
	}
	for _, tt := range tests {
		spec, o := ok, testOptions(t, root)
		tt.spec(&spec, &o)
		_, err := Run(context.Background(), spec, o)
		if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrInvalidSpec with %q", tt.name, err, tt.want)
		}
	}
	if _, err := os.Stat(root); err == nil {
		t.Error("an invalid spec created the build root")
	}
}

func TestRebuild(t *testing.T) {
	root := testRoot(t)
	spec := Spec{Job: "rebuild", SourceDateEpoch: epoch, Vars: map[string]string{"FLAVOUR": "plain"},
		Script: []byte("mkdir bin\nenv | sort > bin/env\necho $FLAVOUR > bin/flavour\n")}
	first := mustRun(t, spec, testOptions(t, root))
	der, err := first.Exec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := builder.Parse(der, builder.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := InputsOf(rec)
	if err != nil {
		t.Fatal(err)
	}
	if d := DiffInputs(first.Inputs, in); !d.Empty() {
		t.Fatalf("InputsOf differs from the run's inputs: %+v", d)
	}

	// The rebuild takes everything from the record; the root from HOME.
	o := testOptions(t, "")
	o.Env = &in.Environment
	again := mustRun(t, Spec{Job: rec.Job.Name, Script: []byte(rec.Job.Script), Platform: rec.Job.Platform}, o)
	if again.Root != root {
		t.Errorf("rebuild root %s, want %s", again.Root, root)
	}
	if !bytes.Equal(outputOf(again, orb.EnvironmentFile), outputOf(first, orb.EnvironmentFile)) {
		t.Errorf("build-environment differs:\n%s", outputOf(again, orb.EnvironmentFile))
	}
	if d := DiffInputs(in, again.Inputs); !d.Empty() {
		t.Errorf("inputs differ: %+v", d)
	}
	if c := Compare(ArtifactsOf(rec), again.Artifacts); !c.Reproducible() || c.String() != "reproducible: 2 files identical" {
		t.Errorf("Compare: %s", c)
	}

	// A doctored record: the script sees exactly it, and the diff says so.
	doctored := orb.Environment{Vars: slices.Clone(in.Environment.Vars)}
	for i, v := range doctored.Vars {
		if v.Name == "FLAVOUR" {
			doctored.Vars[i].Value = "spicy"
		}
	}
	o.Env = &doctored
	spicy := mustRun(t, Spec{Job: rec.Job.Name, Script: []byte(rec.Job.Script)}, o)
	d := DiffInputs(in, spicy.Inputs)
	if d.Empty() || !reflect.DeepEqual(d.Environment.Changed, []orb.Change{{Name: "FLAVOUR", Old: "plain", New: "spicy"}}) {
		t.Errorf("DiffInputs = %+v", d)
	}
	c := Compare(ArtifactsOf(rec), spicy.Artifacts)
	if c.Reproducible() || len(c.Differing) != 2 {
		t.Errorf("Compare: %s", c)
	}
}

func TestRunOpam(t *testing.T) {
	empty := t.TempDir() // a PATH without opam
	o := testOptions(t, testRoot(t))
	o.Path = empty
	spec := Spec{Job: "opam", SourceDateEpoch: epoch, Script: []byte("echo no opam here")}
	for _, mode := range []OpamMode{OpamAuto, OpamNever} {
		spec.Opam = mode
		res := mustRun(t, spec, o)
		if res.Inputs.Switch != nil || outputOf(res, orb.SwitchFile) != nil || strings.Contains(consoleText(res), "buildledger:") {
			t.Errorf("%v: switch %v, console:\n%s", mode, res.Inputs.Switch, consoleText(res))
		}
	}
	spec.Opam = OpamAlways
	if _, err := Run(context.Background(), spec, o); !errors.Is(err, ErrOpam) || !strings.Contains(err.Error(), "opam not found in PATH "+empty) {
		t.Errorf("always without opam: %v, want ErrOpam", err)
	}

	// Auto with opam on PATH but no opam root: skipped without a note.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "opam"), []byte("#!/bin/sh\necho should not run >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o.Path = bin + ":/bin:/usr/bin"
	spec.Opam = OpamAuto
	res := mustRun(t, spec, o)
	if res.Inputs.Switch != nil || strings.Contains(consoleText(res), "buildledger:") {
		t.Errorf("auto without root: console:\n%s", consoleText(res))
	}
	// With a root, a failing export is a note in auto mode and an error
	// in always mode.
	spec.Script = []byte("mkdir -p $HOME/.opam")
	res = mustRun(t, spec, o)
	if res.Inputs.Switch != nil || !strings.Contains(consoleText(res), "buildledger: no opam-switch: "+bin+"/opam switch export --full --freeze -: exit status 1: should not run") {
		t.Errorf("auto with failing opam: console:\n%s", consoleText(res))
	}
	spec.Opam = OpamAlways
	if _, err := Run(context.Background(), spec, o); !errors.Is(err, ErrOpam) || !strings.Contains(err.Error(), "should not run") {
		t.Errorf("always with failing opam: %v", err)
	}

	// A stand-in opam that prints an export: it is parsed and written
	// canonically.
	export := "opam-version: \"2.0\"\ncompiler: [\"ocaml-system.4.14.1\"]\nroots: [\"hello.1.0\"]\ninstalled: [\"hello.1.0\" \"ocaml-system.4.14.1\"]\n"
	if err := os.WriteFile(filepath.Join(bin, "opam"), []byte("#!/bin/sh\n[ \"$*\" = 'switch export --full --freeze -' ] || exit 2\ncat <<'EOF'\n"+export+"EOF\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	res = mustRun(t, spec, o)
	if res.Inputs.Switch == nil || len(res.Inputs.Switch.Installed) != 2 {
		t.Fatalf("switch %+v, console:\n%s", res.Inputs.Switch, consoleText(res))
	}
	want, _ := res.Inputs.Switch.Format()
	if !bytes.Equal(outputOf(res, orb.SwitchFile), want) {
		t.Errorf("opam-switch:\n%s", outputOf(res, orb.SwitchFile))
	}
}

func TestWriteDir(t *testing.T) {
	res := mustRun(t, Spec{Job: "dir", SourceDateEpoch: epoch, Script: []byte("mkdir -p bin/x; echo a > bin/x/a; echo hello")}, testOptions(t, testRoot(t)))
	dir := filepath.Join(t.TempDir(), "out")
	if err := res.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Exec.Output {
		if data, err := os.ReadFile(filepath.Join(dir, f.Path)); err != nil || !bytes.Equal(data, f.Data) {
			t.Errorf("%s: %v", f.Path, err)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "script")); string(data) != res.Exec.Job.Script {
		t.Errorf("script %q", data)
	}
	con, _ := os.ReadFile(filepath.Join(dir, "console"))
	if !strings.HasPrefix(string(con), "0.0") || !strings.HasSuffix(string(con), "s:hello\n") {
		t.Errorf("console %q", con)
	}
	if err := res.WriteDir(dir); err == nil {
		t.Error("WriteDir into a non-empty directory succeeded")
	}
}

// TestRunAs runs a job as another user: it cannot read a file only the
// rebuilder's user can, and its outputs are still collected.
func TestRunAs(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIPPED: running a job as another user needs root")
	}
	root, err := os.MkdirTemp("", "runas")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(secret, []byte("private"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t, filepath.Join(root, "r"))
	opts.RunAs = &syscall.Credential{Uid: 65534, Gid: 65534}
	script := "mkdir -p bin\nid -u > bin/uid\ncat " + secret + " > bin/leak 2>/dev/null || echo refused > bin/leak\n"
	res, err := Run(context.Background(), Spec{Job: "runas", Script: []byte(script), SourceDateEpoch: epoch}, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range res.Exec.Output {
		got[f.Path] = strings.TrimSpace(string(f.Data))
	}
	if got["bin/uid"] != "65534" || got["bin/leak"] != "refused" {
		t.Fatalf("outputs: %v\nconsole: %v", got, res.Exec.Console)
	}
}
