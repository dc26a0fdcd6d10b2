package readmetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// block is one ```sh block of the README.
type block struct {
	line int    // of the fence, 1-based
	text string // the commands, ports substituted
	skip string // why it is not run (a skip marker)
	stop string // the URL whose answer means it serves (a stop marker)
}

func (b block) name() string { return fmt.Sprintf("README.md:%d", b.line) }

var (
	markerRE = regexp.MustCompile(`^<!--\s*readme-test:\s*(.*?)\s*-->\s*$`)
	skipRE   = regexp.MustCompile(`^skip \((.+)\)$`)
	stopRE   = regexp.MustCompile(`^stop once (\S+) answers$`)
	portRE   = regexp.MustCompile(`127\.0\.0\.1:(\d+)`)
	goRunRE  = regexp.MustCompile(`\bgo run \./cmd/([a-z0-9]+)\b`)
	cosignRE = regexp.MustCompile(`(?m)^\s*cosign\s`)
)

// parse returns the README's ```sh blocks in order, with their markers.
func parse(readme string) ([]block, error) {
	var blocks []block
	var marker string
	markerLine := 0
	sc := bufio.NewScanner(strings.NewReader(readme))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := markerRE.FindStringSubmatch(line); m != nil {
			marker, markerLine = m[1], n
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if line != "```sh" {
			if marker != "" {
				return nil, fmt.Errorf("README.md:%d: the readme-test marker is not followed by a ```sh block", markerLine)
			}
			continue
		}
		b := block{line: n}
		switch {
		case marker == "":
		case skipRE.MatchString(marker):
			b.skip = skipRE.FindStringSubmatch(marker)[1]
		case stopRE.MatchString(marker):
			b.stop = stopRE.FindStringSubmatch(marker)[1]
		default:
			return nil, fmt.Errorf("README.md:%d: unknown readme-test marker %q (want \"skip (REASON)\" or \"stop once URL answers\")", markerLine, marker)
		}
		marker = ""
		var body strings.Builder
		closed := false
		for sc.Scan() {
			n++
			if sc.Text() == "```" {
				closed = true
				break
			}
			body.WriteString(sc.Text() + "\n")
		}
		if !closed {
			return nil, fmt.Errorf("README.md:%d: the ```sh block is not closed", b.line)
		}
		b.text = body.String()
		blocks = append(blocks, b)
	}
	return blocks, sc.Err()
}

func TestParse(t *testing.T) {
	blocks, err := parse("x\n<!-- readme-test: skip (too slow) -->\n\n```sh\na\nb\n```\n```go\nno\n```\n" +
		"<!-- readme-test: stop once http://127.0.0.1:3000/healthz answers -->\n```sh\nserve\n```\n```sh\nc\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []block{{line: 4, text: "a\nb\n", skip: "too slow"},
		{line: 12, text: "serve\n", stop: "http://127.0.0.1:3000/healthz"}, {line: 15, text: "c\n"}}
	if fmt.Sprint(blocks) != fmt.Sprint(want) {
		t.Fatalf("got %+v\nwant %+v", blocks, want)
	}
	for _, bad := range []string{"<!-- readme-test: sometimes -->\n```sh\na\n```\n",
		"<!-- readme-test: skip (x) -->\ntext\n```sh\na\n```\n", "```sh\na\n"} {
		if _, err := parse(bad); err == nil {
			t.Errorf("parse(%q) succeeded", bad)
		}
	}
}

// prelude starts every shell the README runs in.
const prelude = `set -euo pipefail
# "go run ./cmd/NAME ARGS" runs the binary the test built once from
# ./cmd/NAME of this very tree, which is what go run would compile and run;
# the README's lines stay exactly as written without a compile per line.
go() {
	if [ "${1:-}" = run ] && [[ "${2:-}" == ./cmd/* ]] && [ -x "$READMETEST_BIN/${2#./cmd/}" ]; then
		local bin="$READMETEST_BIN/${2#./cmd/}"
		shift 2
		"$bin" "$@"
		return
	fi
	command go "$@"
}
`

// TestREADME runs README.md's shell blocks in order (see the package
// documentation), and fails at the first command that fails. It copies the
// repository's tracked files into a temporary directory and runs there,
// because the walk-throughs write into their working directory
// (ledger-data/, keys/, vmm-state/, job.sh, ...): a copy is what a fresh
// clone holds, so a README that needs an untracked file fails, and the
// developer's own checkout is left alone. HOME is a fresh directory, so
// no pinned log key or client state of earlier runs is found. Background
// processes the README starts ("serve &", "vmm daemon &") are stopped at
// the end: SIGTERM to the shell's process group, SIGKILL if they linger.
func TestREADME(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPED: %s is not on PATH; the README's walk-throughs need it", tool)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parse(substitutePorts(t, string(readme)))
	if err != nil {
		t.Fatal(err)
	}

	tmp := t.TempDir()
	work := filepath.Join(tmp, "buildledger")
	copyTracked(t, root, work)
	bin := filepath.Join(tmp, "bin")
	buildCommands(t, work, bin, blocks)
	home := filepath.Join(tmp, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cosign := findCosign()
	env := shellEnv(t, home, bin, cosign)

	sh := startShell(t, work, env, filepath.Join(tmp, "shell.log"))
	t.Cleanup(sh.stop)
	for i, b := range blocks {
		ok := t.Run(b.name(), func(t *testing.T) {
			switch {
			case b.skip != "":
				t.Skipf("SKIPPED: not run: %s", b.skip)
			case cosignRE.MatchString(b.text) && cosign == "":
				if os.Getenv("BUILDLEDGER_REQUIRE_COSIGN") != "" {
					t.Fatal("cosign is required (BUILDLEDGER_REQUIRE_COSIGN is set) but is neither on PATH nor in $BUILDLEDGER_TOOLS or ~/.cache/buildledger-tools; .ci/run installs it")
				}
				t.Skip("SKIPPED: cosign is not on PATH (nor in ~/.cache/buildledger-tools), so the envelope is not checked with it; install with: go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5")
			case b.stop != "":
				runUntilServing(t, b, work, env, filepath.Join(tmp, fmt.Sprintf("block%d.log", i)))
			default:
				sh.run(t, b)
			}
		})
		if !ok {
			break
		}
	}
}

// substitutePorts replaces every 127.0.0.1:PORT with a free port, the
// same for the same PORT everywhere.
func substitutePorts(t *testing.T, s string) string {
	ports := map[string]string{}
	return portRE.ReplaceAllStringFunc(s, func(m string) string {
		if m == "127.0.0.1:0" {
			return m
		}
		if p, ok := ports[m]; ok {
			return p
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[m] = l.Addr().String()
		t.Logf("%s is %s", m, ports[m])
		return ports[m]
	})
}

// copyTracked copies the files git tracks under root (as they are on disk)
// into dir.
func copyTracked(t *testing.T, root, dir string) {
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("SKIPPED: not a git checkout, so there is no tree to copy (git ls-files: %v)", err)
	}
	for _, name := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, dst); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// buildCommands builds every ./cmd/NAME the README runs with go run, once,
// into bin.
func buildCommands(t *testing.T, work, bin string, blocks []block) {
	seen := map[string]bool{}
	for _, b := range blocks {
		if b.skip == "" {
			for _, m := range goRunRE.FindAllStringSubmatch(b.text, -1) {
				seen["./cmd/"+m[1]] = true
			}
		}
	}
	if len(seen) == 0 {
		return
	}
	pkgs := make([]string, 0, len(seen))
	for p := range seen {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", append([]string{"build", "-o", bin + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
}

// findCosign looks for cosign on PATH, then where .ci/run installs it.
func findCosign() string {
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	var dirs []string
	if d := os.Getenv("BUILDLEDGER_TOOLS"); d != "" {
		dirs = append(dirs, d)
	}
	if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, ".cache", "buildledger-tools"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "cosign")
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// shellEnv is the environment of the README's shells: this process's,
// with a fresh HOME (Go's caches kept where they are), no variables the
// README's commands read, cosign's directory on PATH.
func shellEnv(t *testing.T, home, bin, cosign string) []string {
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		t.Fatal(err)
	}
	goenv := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(goenv) != 3 {
		t.Fatalf("go env: %q", out)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "PATH", k == "BUILDLEDGER_PASSWORD", k == "VMM_SOCKET", k == "CDPATH",
			k == "GOCACHE", k == "GOMODCACHE", k == "GOPATH", strings.HasPrefix(k, "XDG_"):
			continue
		}
		env = append(env, kv)
	}
	path := os.Getenv("PATH")
	if cosign != "" {
		path = filepath.Dir(cosign) + string(os.PathListSeparator) + path
	}
	return append(env, "HOME="+home, "PATH="+path, "READMETEST_BIN="+bin,
		"GOCACHE="+goenv[0], "GOMODCACHE="+goenv[1], "GOPATH="+goenv[2])
}

// shell is one bash process that runs block after block, as a terminal
// into which the README is pasted: variables and background processes
// carry over. It sources each block from a file named on fd 3 and reports
// its status on fd 4; set -e ends it at the first failing command.
type shell struct {
	cmd    *exec.Cmd
	log    *os.File
	next   *os.File // fd 3's write end: the next block's file
	status *bufio.Reader
	exited chan struct{}
	dir    string
	n      int
}

const driver = `while read -r f <&3; do source "$f" 3<&- 4>&-; echo done >&4; done`

func startShell(t *testing.T, dir string, env []string, logPath string) *shell {
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	nextR, nextW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", prelude+driver)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.ExtraFiles = []*os.File{nextR, statusW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	nextR.Close()
	statusW.Close()
	s := &shell{cmd: cmd, log: log, next: nextW, status: bufio.NewReader(statusR), exited: make(chan struct{}), dir: t.TempDir()}
	go func() { cmd.Wait(); close(s.exited) }()
	return s
}

// run runs b in the shell and fails t with the block's output if a
// command fails or it takes more than two minutes.
func (s *shell) run(t *testing.T, b block) {
	s.n++
	file := filepath.Join(s.dir, fmt.Sprintf("block%d.sh", s.n))
	// -v echoes each line as the shell reads it, for the log.
	if err := os.WriteFile(file, []byte("set -v\n"+b.text+"set +v\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start, _ := s.log.Seek(0, io.SeekCurrent)
	fmt.Fprintf(s.log, "### %s\n", b.name())
	if _, err := fmt.Fprintln(s.next, file); err != nil {
		t.Fatalf("the shell is gone: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.status.ReadString('\n')
		done <- err
	}()
	var failure string
	select {
	case err := <-done:
		if err != nil {
			<-s.exited
			failure = fmt.Sprintf("a command failed (%s)", s.cmd.ProcessState)
		}
	case <-s.exited:
		// Background processes may hold the status pipe open (a forked
		// subshell keeps the shell's saved copy), so the exit is what
		// tells of a failure, not the end of the pipe.
		failure = fmt.Sprintf("a command failed (%s)", s.cmd.ProcessState)
	case <-time.After(2 * time.Minute):
		failure = "still running after 2 minutes"
		s.stop()
	}
	out := s.output(start)
	if failure != "" {
		t.Fatalf("%s: %s; what it printed:\n%s", b.name(), failure, out)
	}
	t.Logf("%s", out)
}

// output is what the shell printed since offset start.
func (s *shell) output(start int64) string {
	end, _ := s.log.Seek(0, io.SeekCurrent)
	buf := make([]byte, end-start)
	n, _ := s.log.ReadAt(buf, start)
	return string(buf[:n])
}

// stop ends the shell and everything it started in the background.
func (s *shell) stop() {
	s.next.Close()
	stopGroup(s.cmd.Process.Pid)
	<-s.exited
}

// stopGroup sends SIGTERM to process group pgid, waits up to 15 seconds
// for its processes to end (daemons stop what they run), then SIGKILLs it.
func stopGroup(pgid int) {
	if syscall.Kill(-pgid, syscall.SIGTERM) != nil {
		return
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if syscall.Kill(-pgid, 0) != nil {
			return
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// runUntilServing runs a block that serves in the foreground: on its own
// shell (in the same directory and environment), until b.stop answers 200,
// then as Ctrl-C would stop it, and it must exit 0.
func runUntilServing(t *testing.T, b block, dir string, env []string, logPath string) {
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("bash", "-c", prelude+"set -v\n"+b.text)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer stopGroup(cmd.Process.Pid)
	output := func() string { data, _ := os.ReadFile(logPath); return string(data) }

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for !answers(ctx, b.stop) {
		select {
		case err := <-exited:
			t.Fatalf("%s ended (%v) before %s answered; what it printed:\n%s", b.name(), err, b.stop, output())
		case <-ctx.Done():
			t.Fatalf("%s: %s did not answer within a minute; what it printed:\n%s", b.name(), b.stop, output())
		case <-time.After(200 * time.Millisecond):
		}
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("%s: after Ctrl-C it ended with %v, not 0; what it printed:\n%s", b.name(), err, output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still running 30 s after Ctrl-C; what it printed:\n%s", b.name(), output())
	}
	t.Logf("%s answered, stopped with Ctrl-C; what it printed:\n%s", b.stop, output())
}

// answers reports whether url answers 200 now.
func answers(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
