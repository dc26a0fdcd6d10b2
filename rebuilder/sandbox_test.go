package rebuilder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buildledger/buildledger/farm/sandbox"
	"github.com/buildledger/buildledger/farm/sandbox/sandboxtest"
	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/buildledger/buildledger/ledger/orb"
)

func requireBwrap(t *testing.T) {
	t.Helper()
	sandboxtest.Require(t, sandbox.Config{}.Check(context.Background()))
}

// sandboxed are test options with the sandbox c.
func sandboxed(t *testing.T, root string, c sandbox.Config) Options {
	t.Helper()
	o := testOptions(t, root)
	o.SkipSystem = true // dpkg-query takes time and is not what these tests are about
	o.Sandbox = &c
	return o
}

// checkSandboxNote checks that the console starts with the sandbox note.
func checkSandboxNote(t *testing.T, res *Result, c sandbox.Config) {
	t.Helper()
	if len(res.Exec.Console) == 0 || res.Exec.Console[0].Data != "buildledger: sandbox: "+c.Describe() {
		t.Errorf("console does not start with the sandbox note:\n%s", consoleText(res))
	}
}

// (1) The job reaches no listener on the host's 127.0.0.1, unless the
// sandbox shares the network.
func TestRunSandboxNetwork(t *testing.T) {
	requireBwrap(t)
	port := sandboxtest.Listen(t).Port
	spec := Spec{Job: "net", SourceDateEpoch: epoch, Script: []byte("#!/bin/bash\nexec 3<>/dev/tcp/127.0.0.1/" + port + "\nhead -n1 <&3\n")}

	res := mustRun(t, spec, sandboxed(t, testRoot(t), sandbox.Config{}))
	con := consoleText(res)
	if res.Exec.Result.Success() || strings.Contains(con, "hello") || !strings.Contains(con, "/dev/tcp/127.0.0.1/"+port+": Connection refused") {
		t.Errorf("without network: %v, console:\n%s", res.Exec.Result, con)
	}
	checkSandboxNote(t, res, sandbox.Config{})
	if !strings.Contains(con, "no network") {
		t.Errorf("note does not say there is no network:\n%s", con)
	}

	c := sandbox.Config{Network: true}
	res = mustRun(t, spec, sandboxed(t, testRoot(t), c))
	if !res.Exec.Result.Success() || !strings.Contains(consoleText(res), "\n"+sandboxtest.Greeting+"\n") {
		t.Errorf("with network: %v, console:\n%s", res.Exec.Result, consoleText(res))
	}
	checkSandboxNote(t, res, c)
}

// (2) The job writes only its directories: not /etc, not the repository,
// not its script; the host's /tmp is not its /tmp.
func TestRunSandboxFiles(t *testing.T) {
	requireBwrap(t)
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	hostTmp, err := os.MkdirTemp("/tmp", "rebuilder-host")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(hostTmp)
	if err := os.WriteFile(filepath.Join(hostTmp, "secret"), []byte("host file"), 0o644); err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(repo, ".rebuilder-sandbox-probe")
	t.Cleanup(func() { os.Remove(probe); os.Remove("/etc/rebuilder-sandbox-probe") })
	root := testRoot(t)
	script := `
touch /etc/rebuilder-sandbox-probe || echo no /etc
touch ` + probe + ` || echo no repository
cat ` + hostTmp + `/secret || echo no host tmp
echo changed 2>/dev/null >> ` + root + `/script || echo no script change
chmod 777 ` + root + `/script || echo no script chmod
mkdir -p ` + hostTmp + ` && echo job > ` + hostTmp + `/job && echo own tmp
mkdir bin && echo built > bin/out && echo home > $HOME/file && echo own dirs
`
	res := mustRun(t, Spec{Job: "files", SourceDateEpoch: epoch, Script: []byte(script)}, sandboxed(t, root, sandbox.Config{}))
	con := consoleText(res)
	for _, want := range []string{"no /etc", "no repository", "no host tmp", "no script change", "no script chmod", "own tmp", "own dirs",
		"Read-only file system", hostTmp + "/secret: No such file or directory"} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q:\n%s", want, con)
		}
	}
	if !res.Exec.Result.Success() {
		t.Errorf("result %v", res.Exec.Result)
	}
	for _, p := range []string{"/etc/rebuilder-sandbox-probe", probe, filepath.Join(hostTmp, "job")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s written by the job", p)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "script")); err != nil || string(b) != script {
		t.Errorf("script changed: %q, %v", b, err)
	}
	if len(res.Artifacts) != 1 || res.Artifacts[0] != art("bin/out", "built\n") {
		t.Errorf("artifacts %+v", res.Artifacts)
	}
	if b, err := os.ReadFile(filepath.Join(root, "home", "file")); err != nil || string(b) != "home\n" {
		t.Errorf("HOME file: %q, %v", b, err)
	}
}

// (3) Nothing of the job outlives its timeout, not even a process in a
// session of its own.
func TestRunSandboxTimeout(t *testing.T) {
	requireBwrap(t)
	root := testRoot(t)
	o := sandboxed(t, root, sandbox.Config{})
	o.Timeout = time.Second
	script := "setsid sh -c 'while :; do date >> \"$PWD/tick\"; sleep 0.1; done' &\nsleep 30\n"
	start := time.Now()
	res := mustRun(t, Spec{Job: "escape", SourceDateEpoch: epoch, Script: []byte(script)}, o)
	if d := time.Since(start); d > time.Second+pipeGrace {
		t.Errorf("Run took %v", d)
	}
	if res.Exec.Result != (builder.Result{Kind: builder.ResultMsg, Msg: "timeout"}) {
		t.Errorf("result %v", res.Exec.Result)
	}
	if con := consoleText(res); strings.Contains(con, "output still open") || !strings.Contains(con, "killed after the timeout of 1s") {
		t.Errorf("console:\n%s", con)
	}
	tick := filepath.Join(root, "build", "tick")
	fi, err := os.Stat(tick)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	fi2, err := os.Stat(tick)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() == 0 || fi2.Size() != fi.Size() {
		t.Errorf("tick grew from %d to %d bytes after Run returned", fi.Size(), fi2.Size())
	}
}

// (4) Files beyond FileBytes and memory beyond MemoryBytes.
func TestRunSandboxLimits(t *testing.T) {
	requireBwrap(t)
	root := testRoot(t)
	res := mustRun(t, Spec{Job: "fsize", SourceDateEpoch: epoch, Script: []byte("head -c 2000000 /dev/zero > big\necho not reached\n")},
		sandboxed(t, root, sandbox.Config{FileBytes: 1 << 20}))
	con := consoleText(res)
	if want := (builder.Result{Kind: builder.ResultSignalled, Code: OCamlSignal(syscall.SIGXFSZ)}); res.Exec.Result != want || strings.Contains(con, "not reached") {
		t.Errorf("beyond RLIMIT_FSIZE: %v, want %v; console:\n%s", res.Exec.Result, want, con)
	}
	if !strings.Contains(con, "buildledger: bubblewrap reported exit status 153, as it reports a job killed by signal 25 (file size limit exceeded)") {
		t.Errorf("console:\n%s", con)
	}
	if fi, err := os.Stat(filepath.Join(root, "build", "big")); err != nil || fi.Size() != 1<<20 {
		t.Errorf("big: %v, %v", fi, err)
	}

	res = mustRun(t, Spec{Job: "memory", SourceDateEpoch: epoch, Script: []byte("#!/bin/bash\nx=$(head -c 150000000 /dev/zero | tr '\\0' a)\necho allocated ${#x}\n")},
		sandboxed(t, root, sandbox.Config{MemoryBytes: 64 << 20}))
	con = consoleText(res)
	if res.Exec.Result.Success() || strings.Contains(con, "allocated") || !strings.Contains(con, "cannot allocate") {
		t.Errorf("beyond RLIMIT_AS: %v, console:\n%s", res.Exec.Result, con)
	}

	// Other statuses are recorded as they are.
	res = mustRun(t, Spec{Job: "exit", SourceDateEpoch: epoch, Script: []byte("exit 3")}, sandboxed(t, root, sandbox.Config{}))
	if res.Exec.Result != (builder.Result{Kind: builder.ResultExited, Code: 3}) {
		t.Errorf("exit 3: %v", res.Exec.Result)
	}
}

// (5) Without bubblewrap Run refuses, naming the fixes; unsandboxed, as
// the operator's choice, the job runs with the limits only.
func TestRunSandboxMissing(t *testing.T) {
	root := testRoot(t)
	c := sandbox.Config{Bwrap: filepath.Join(t.TempDir(), "nonexistent", "bwrap")}
	spec := Spec{Job: "nobwrap", SourceDateEpoch: epoch, Script: []byte("ulimit -f; echo ran")}
	res, err := Run(context.Background(), spec, sandboxed(t, root, c))
	if !errors.Is(err, ErrSandbox) || res != nil {
		t.Fatalf("Run = %v, %v; want ErrSandbox", res, err)
	}
	for _, want := range []string{c.Bwrap, "apt-get install bubblewrap", "Unsandboxed", "rebuilder --unsandboxed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, err := os.Stat(root); err == nil {
		t.Errorf("build root created although Run refused")
	}

	c.Unsandboxed = true
	res = mustRun(t, spec, sandboxed(t, root, c))
	if !res.Exec.Result.Success() || !strings.Contains(consoleText(res), strconv.Itoa(sandbox.DefaultFileBytes/512)+"\nran\n") {
		t.Errorf("unsandboxed: %v, console:\n%s", res.Exec.Result, consoleText(res))
	}
	checkSandboxNote(t, res, c)
	if !strings.HasPrefix(res.Exec.Console[0].Data, "buildledger: sandbox: UNSANDBOXED") {
		t.Errorf("note %q", res.Exec.Console[0].Data)
	}
}

// (6) A job run as another user inside the sandbox.
func TestRunSandboxRunAs(t *testing.T) {
	requireBwrap(t)
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
	o := sandboxed(t, filepath.Join(root, "r"), sandbox.Config{Processes: 64})
	o.RunAs = &syscall.Credential{Uid: 65534, Gid: 65534}
	script := "#!/bin/bash\nset -e\nmkdir -p bin\nid -u > bin/uid\nulimit -u > bin/nproc\ntouch /etc/runas-probe 2>/dev/null && echo escaped > bin/etc\necho ok\n"
	t.Cleanup(func() { os.Remove("/etc/runas-probe") })
	res := mustRun(t, Spec{Job: "runas", Script: []byte(script), SourceDateEpoch: epoch}, o)
	got := map[string]string{}
	for _, f := range res.Exec.Output {
		got[f.Path] = strings.TrimSpace(string(f.Data))
	}
	if !res.Exec.Result.Success() || got["bin/uid"] != "65534" || got["bin/nproc"] != "64" || got["bin/etc"] != "" {
		t.Errorf("result %v, outputs %v, console:\n%s", res.Exec.Result, got, consoleText(res))
	}
	checkSandboxNote(t, res, *o.Sandbox)
}

// The opam export runs confined like the job: opam runs what the job left
// in its root, here a stand-in the job wrote.
func TestRunSandboxOpam(t *testing.T) {
	requireBwrap(t)
	root := testRoot(t)
	o := sandboxed(t, root, sandbox.Config{})
	o.Path = filepath.Join(root, "home", "bin") + ":/usr/bin:/bin"
	t.Cleanup(func() { os.Remove("/etc/opam-probe") })
	export := "opam-version: \"2.0\"\ncompiler: [\"ocaml-system.4.14.1\"]\nroots: [\"hello.1.0\"]\ninstalled: [\"hello.1.0\" \"ocaml-system.4.14.1\"]\n"
	script := "mkdir -p $HOME/.opam $HOME/bin\ncat > $HOME/bin/opam <<'END'\n#!/bin/sh\nif touch /etc/opam-probe 2>/dev/null; then echo escaped >&2; exit 3; fi\ncat <<'EOF'\n" + export + "EOF\nEND\nchmod +x $HOME/bin/opam\n"
	res := mustRun(t, Spec{Job: "opam", SourceDateEpoch: epoch, Script: []byte(script), Opam: OpamAlways}, o)
	if res.Inputs.Switch == nil || outputOf(res, orb.SwitchFile) == nil {
		t.Errorf("no switch; console:\n%s", consoleText(res))
	}
	if _, err := os.Stat("/etc/opam-probe"); err == nil {
		t.Error("the opam export wrote /etc")
	}
}
