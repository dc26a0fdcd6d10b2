package sandbox

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buildledger/buildledger/farm/sandbox/sandboxtest"
)

func requireBwrap(t *testing.T) {
	t.Helper()
	sandboxtest.Require(t, Config{}.Check(context.Background()))
}

func requireBash(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is needed for /dev/tcp: %v", err)
	}
	return p
}

// run runs script with bash, confined by c, in dir (writable) with the
// environment env, and returns its output and exit status.
func runScript(t *testing.T, c Config, dir, script string, readonly ...string) (string, int) {
	t.Helper()
	argv, err := c.Command([]string{requireBash(t), "-c", script}, dir, []string{dir}, readonly)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("%v: %v\n%s", argv, err, out)
	return "", 0
}

func TestCommand(t *testing.T) {
	bw := "/usr/bin/true" // any executable file will do for building argv
	c := Config{Bwrap: bw}
	argv, err := c.Command([]string{"/bin/sh", "-e", "/tmp/r/script"}, "/tmp/r/build", []string{"/tmp/r/build", "/tmp/r/home"}, []string{"/tmp/r/script"})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(argv[1:], " ")
	wantPrefix := "--as=8589934592 --fsize=2147483648 --nproc=4096 --nofile=4096 -- " + bw + " "
	if !strings.HasPrefix(got, wantPrefix) || filepath.Base(argv[0]) != "prlimit" {
		t.Errorf("argv %q: want prlimit %s…", argv, wantPrefix)
	}
	for _, want := range []string{"--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup", "--unshare-net",
		"--die-with-parent", "--new-session", "--cap-drop ALL",
		"--ro-bind / / --dev /dev --proc /proc --tmpfs /tmp " + strings.Join(hideArgs(DefaultHidden), " ") +
			" --bind /tmp/r/build /tmp/r/build --bind /tmp/r/home /tmp/r/home --ro-bind /tmp/r/script /tmp/r/script --chdir /tmp/r/build -- /bin/sh -e /tmp/r/script"} {
		if !strings.Contains(got, want) {
			t.Errorf("argv lacks %q:\n%s", want, got)
		}
	}
	if !strings.HasSuffix(got, " -- /bin/sh -e /tmp/r/script") {
		t.Errorf("argv does not end in the command: %s", got)
	}

	// Network shared; limits changed or lifted.
	c = Config{Bwrap: bw, Network: true, MemoryBytes: -1, CPUSeconds: 60, FileBytes: 1 << 20, Processes: 10, OpenFiles: 64}
	argv, err = c.Command([]string{"/bin/true"}, "/", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got = strings.Join(argv[1:], " ")
	if !strings.HasPrefix(got, "--cpu=60 --fsize=1048576 --nproc=10 --nofile=64 -- "+bw+" ") || slices.Contains(argv, "--unshare-net") {
		t.Errorf("argv %q", argv)
	}

	// Unsandboxed: prlimit only.
	argv, err = Config{Unsandboxed: true, Bwrap: "/nonexistent/bwrap"}.Command([]string{"/bin/true", "x"}, "/tmp", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(argv[1:], " "); got != "--as=8589934592 --fsize=2147483648 --nproc=4096 --nofile=4096 -- /bin/true x" {
		t.Errorf("unsandboxed argv %q", argv)
	}

	// Paths must be absolute and clean.
	for _, tt := range []struct {
		dir                string
		writable, readonly []string
	}{
		{"build", nil, nil},
		{"/tmp/r/../x", nil, nil},
		{"/tmp", []string{"/tmp/r/"}, nil},
		{"/tmp", []string{"r"}, nil},
		{"/tmp", []string{"/"}, nil},
		{"/tmp", nil, []string{"./script"}},
	} {
		if _, err := c.Command([]string{"/bin/true"}, tt.dir, tt.writable, tt.readonly); err == nil {
			t.Errorf("Command(%q, %q, %q) succeeded", tt.dir, tt.writable, tt.readonly)
		}
	}
	if _, err := c.Command(nil, "/", nil, nil); err == nil {
		t.Error("empty argv accepted")
	}
}

func TestCheckWithoutBwrap(t *testing.T) {
	c := Config{Bwrap: filepath.Join(t.TempDir(), "no", "bwrap")}
	err := c.Check(context.Background())
	if err == nil {
		t.Fatal("Check succeeded without bwrap")
	}
	for _, want := range []string{c.Bwrap, "install", "apt-get install bubblewrap", "Unsandboxed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check: %v\nlacks %q", err, want)
		}
	}
	if _, err := c.Command([]string{"/bin/true"}, "/", nil, nil); err == nil {
		t.Error("Command succeeded without bwrap")
	}
	// Not an executable.
	c.Bwrap = filepath.Join(t.TempDir(), "bwrap")
	if err := os.WriteFile(c.Bwrap, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "apt-get install bubblewrap") {
		t.Errorf("Check with a non-executable bwrap: %v", err)
	}
	// The operator's choice: limits only.
	c.Unsandboxed = true
	if err := c.Check(context.Background()); err != nil {
		t.Errorf("unsandboxed Check: %v", err)
	}
	if d := c.Describe(); !strings.HasPrefix(d, "UNSANDBOXED") {
		t.Errorf("Describe: %s", d)
	}
	out, code := runScript(t, c, t.TempDir(), "ulimit -f; ulimit -n")
	if code != 0 || out != strconv.Itoa(DefaultFileBytes/1024)+"\n4096\n" {
		t.Errorf("unsandboxed job: exit %d, output %q", code, out)
	}
}

func TestCheckDescribe(t *testing.T) {
	requireBwrap(t)
	out, err := exec.Command("bwrap", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	c := Config{}
	d := c.Describe()
	if want := "bubblewrap " + strings.TrimPrefix(strings.TrimSpace(string(out)), "bubblewrap ") + ": no network (loopback only), read-only root"; !strings.HasPrefix(d, want) {
		t.Errorf("Describe() = %q, want %q…", d, want)
	}
	if !strings.Contains(d, "address space 8 GiB, file size 2 GiB, CPU unlimited, processes 4096, open files 4096") {
		t.Errorf("Describe() = %q", d)
	}
	if d := (Config{Network: true, CPUSeconds: 90}).Describe(); !strings.Contains(d, "host network shared") || !strings.Contains(d, "CPU 90 s") {
		t.Errorf("Describe() = %q", d)
	}
	if os.Getuid() == 0 {
		if err := c.CheckAs(context.Background(), &syscall.Credential{Uid: 65534, Gid: 65534}); err != nil {
			t.Errorf("CheckAs(nobody): %v", err)
		}
	}
}

// The job reaches no listener on the host's loopback, unless Network.
func TestNetwork(t *testing.T) {
	requireBwrap(t)
	port := sandboxtest.Listen(t).Port
	script := "exec 3<>/dev/tcp/127.0.0.1/" + port + " && head -n1 <&3"
	out, code := runScript(t, Config{}, t.TempDir(), script)
	if code == 0 || strings.Contains(out, "hello") || !strings.Contains(out, "/dev/tcp/127.0.0.1/"+port) {
		t.Errorf("without network: exit %d, output %q", code, out)
	}
	out, code = runScript(t, Config{Network: true}, t.TempDir(), script)
	if code != 0 || out != sandboxtest.Greeting+"\n" {
		t.Errorf("with network: exit %d, output %q", code, out)
	}
}

// The job writes only its directory; the host's /tmp is not its /tmp.
func TestFiles(t *testing.T) {
	requireBwrap(t)
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	hostTmp, err := os.MkdirTemp("/tmp", "sandbox-host")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(hostTmp)
	if err := os.WriteFile(filepath.Join(hostTmp, "secret"), []byte("host file"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte("echo original\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(repo, ".sandbox-probe")
	t.Cleanup(func() { os.Remove(probe); os.Remove("/etc/sandbox-probe") })
	out, code := runScript(t, Config{}, dir, `
touch /etc/sandbox-probe 2>/dev/null && echo wrote /etc
touch `+probe+` 2>/dev/null && echo wrote repository
cat `+hostTmp+`/secret 2>/dev/null && echo read host tmp
echo changed 2>/dev/null >> `+script+` && echo changed script
rm -f `+script+` 2>/dev/null && echo removed script
chmod 777 `+script+` 2>/dev/null && echo chmod script
mkdir -p `+hostTmp+` && echo job > `+hostTmp+`/job || echo cannot write own tmp
echo mine > ok && cat ok
`, script)
	if code != 0 || out != "mine\n" {
		t.Errorf("exit %d, output %q; want only mine", code, out)
	}
	for _, p := range []string{"/etc/sandbox-probe", probe, filepath.Join(hostTmp, "job")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s written by the job", p)
		}
	}
	if b, err := os.ReadFile(script); err != nil || string(b) != "echo original\n" {
		t.Errorf("script now %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ok")); err != nil || string(b) != "mine\n" {
		t.Errorf("job's file: %q, %v", b, err)
	}
}

func TestLimits(t *testing.T) {
	requireBwrap(t)
	// A file beyond FileBytes: the writer gets SIGXFSZ, which bwrap reports
	// as 128+25.
	dir := t.TempDir()
	_, code := runScript(t, Config{FileBytes: 1 << 20}, dir, "exec head -c 2000000 /dev/zero > big")
	if code != 128+int(syscall.SIGXFSZ) {
		t.Errorf("writing beyond RLIMIT_FSIZE: exit %d", code)
	}
	if fi, err := os.Stat(filepath.Join(dir, "big")); err != nil || fi.Size() != 1<<20 {
		t.Errorf("big: %v, %v", fi, err)
	}
	// Allocating beyond MemoryBytes fails.
	out, code := runScript(t, Config{MemoryBytes: 64 << 20}, dir, `x=$(head -c 150000000 /dev/zero | tr "\0" a); echo allocated ${#x}`)
	if code == 0 || strings.Contains(out, "allocated") || !strings.Contains(out, "cannot allocate") {
		t.Errorf("allocating beyond RLIMIT_AS: exit %d, %q", code, out)
	}
	out, code = runScript(t, Config{CPUSeconds: 7, OpenFiles: 100, Processes: 50}, dir, "ulimit -t; ulimit -n; ulimit -u")
	if code != 0 || out != "7\n100\n50\n" {
		t.Errorf("limits: exit %d, %q", code, out)
	}
}

// Killing bwrap kills the whole job, even processes in a session of their
// own.
func TestDieWithParent(t *testing.T) {
	requireBwrap(t)
	dir := t.TempDir()
	argv, err := Config{}.Command([]string{"/bin/sh", "-c", "setsid sh -c 'while :; do date >> tick; sleep 0.1; done' & sleep 30"}, dir, []string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tick := filepath.Join(dir, "tick")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if fi, err := os.Stat(tick); err == nil && fi.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tick not written")
		}
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	assertStill(t, tick)
}

// assertStill fails unless the file at p stops growing.
func assertStill(t *testing.T, p string) {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // a write under way may land
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	fi2, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi2.Size() != fi.Size() {
		t.Errorf("%s grew from %d to %d bytes after the job was killed", p, fi.Size(), fi2.Size())
	}
}

// A success of CheckAs is remembered: the second check starts no bwrap.
func TestCheckRemembersSuccess(t *testing.T) {
	requireBwrap(t)
	real, err := exec.LookPath("bwrap")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	wrapper := filepath.Join(dir, "bwrap")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\necho >> "+count+"\nexec "+real+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := Config{Bwrap: wrapper}
	starts := func() int {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "\n")
	}
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := starts()
	if first == 0 {
		t.Fatal("the check did not run bwrap")
	}
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := starts(); n != first {
		t.Fatalf("the second check started bwrap %d more times", n-first)
	}
	// Another configuration is checked on its own.
	if err := (Config{Bwrap: wrapper, Network: true}).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if starts() == first {
		t.Fatal("another configuration was not checked")
	}
}

// The host's sockets under /run, users' home directories and the paths
// in Hide are not visible to a job, although the root is bound
// read-only.
func TestHidden(t *testing.T) {
	requireBwrap(t)
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root to create test files under /run")
	}
	run, err := os.MkdirTemp("/run", "sandboxtest")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(run)
	sock := filepath.Join(run, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	secretDir, err := os.MkdirTemp("/var/tmp", "sandboxtest")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(secretDir)
	key := filepath.Join(secretDir, "key.pem")
	if err := os.WriteFile(key, []byte("PRIVATE KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "secret"), []byte("PRIVATE RUN"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := "ls -A " + run + " 2>&1; cat " + key + " 2>&1; echo; ls -A /root | wc -l"
	out, code := runScript(t, Config{Hide: []string{key}}, t.TempDir(), script)
	if code != 0 || strings.Contains(out, "PRIVATE") || strings.Contains(out, "s.sock") || !strings.HasSuffix(strings.TrimSpace(out), "0") {
		t.Fatalf("the job saw hidden things (exit %d):\n%s", code, out)
	}
	if d := (Config{Hide: []string{key}}).Describe(); !strings.Contains(d, key) || !strings.Contains(d, "/run") {
		t.Errorf("Describe does not name the hidden paths: %s", d)
	}
	if _, err := (Config{Hide: []string{"relative"}}).Command([]string{"/bin/true"}, "/", nil, nil); err == nil {
		t.Error("a relative hidden path was accepted")
	}
}
