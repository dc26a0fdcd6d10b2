package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buildledger/buildledger/internal/diskspace"
)

const envServeChild = "BUILDLEDGER_SERVE_CHILD_ARGS"

// TestServeChild is the `ledger serve` process of TestDiskFull: it runs the
// command line in $BUILDLEDGER_SERVE_CHILD_ARGS (separated by newlines) until
// SIGTERM, or until it is killed.
func TestServeChild(t *testing.T) {
	args := os.Getenv(envServeChild)
	if args == "" {
		t.Skip("child process of TestDiskFull")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	root := newRoot()
	root.SetArgs(strings.Split(args, "\n"))
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ledger:", err)
		os.Exit(1)
	}
}

// serveProc is a `ledger serve` child process.
type serveProc struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	exited chan struct{}
}

// syncBuffer is the child's stderr: exec copies into it from a pipe in a
// goroutine of its own, which may lag behind what the child printed to
// stdout, so a test waits for a line (saidWithin) rather than reading once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// said reports whether the server wrote text to stderr within 10 s.
func (p *serveProc) said(text string) bool {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(p.stderr.String(), text) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func startServeProc(t *testing.T, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeChild$")
	cmd.Env = append(os.Environ(), envServeChild+"="+strings.Join(append([]string{"serve", "--listen", "127.0.0.1:0"}, args...), "\n"))
	p := &serveProc{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				urls <- u
			}
		}
		close(p.exited)
	}()
	select {
	case p.url = <-urls:
	case <-p.exited:
		cmd.Wait()
		t.Fatalf("ledger serve did not start: %s\n%s", cmd.ProcessState, p.stderr)
	}
	return p
}

// kill ends the process with SIGKILL (as a crash would) and waits for it.
func (p *serveProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd.Wait()
}

// stop ends the process with SIGTERM and checks it shut down cleanly.
func (p *serveProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("ledger serve: %v\n%s", err, p.stderr)
	}
}

// alive fails the test if the server process has died.
func (p *serveProc) alive(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		p.cmd.Wait()
		t.Fatalf("ledger serve died: %s\n%s", p.cmd.ProcessState, p.stderr)
	default:
	}
}

// upload sends body as a manual upload and returns the status and the
// Retry-After header.
func (p *serveProc) upload(t *testing.T, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.url+"/job/fill/platform/debian-12/upload?binary_name=blob.bin", bytes.NewReader(body))
	req.SetBasicAuth("farm", "farm-password")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.alive(t)
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("upload: %d %s", resp.StatusCode, msg)
	}
	if resp.StatusCode == http.StatusInsufficientStorage {
		var e struct{ Error string }
		if json.Unmarshal(msg, &e); !strings.Contains(e.Error, "disk is full") {
			t.Fatalf("507 says %s", msg)
		}
	}
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// readAll checks every acknowledged blob is served with its content.
func (p *serveProc) readAll(t *testing.T, acked map[string][]byte) {
	t.Helper()
	for d, want := range acked {
		resp, err := http.Get(p.url + "/blob/" + d)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
			t.Fatalf("GET /blob/%s: %d, %d bytes, want the %d uploaded", d, resp.StatusCode, len(got), len(want))
		}
	}
	if resp, err := http.Get(p.url + "/checkpoint"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /checkpoint: %v %v", resp, err)
	}
}

// fill writes a file on dir's filesystem until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

// mountTmpfs mounts a tmpfs of size bytes and unmounts it when the test
// ends. It skips the test, saying why, when it cannot mount (not root).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: mounting a small tmpfs to fill needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("SKIPPED: cannot mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestDiskFull runs `ledger serve` processes on a 64 MiB tmpfs with a
// 16 MiB reserve. Uploads are answered until the free space reaches the
// reserve, then 507 with Retry-After, and the server lives on; another
// process fills the disk to the last byte: uploads still 507, every
// acknowledged blob still readable. A server killed then (SIGKILL) starts
// again on the full disk (its ballast released for badger's log replay)
// and serves reads; after a clean stop, with the last bytes taken, it
// starts read-only. Once space is freed, writes resume and every
// acknowledged upload is intact.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	mnt := mountTmpfs(t, 64<<20)
	data := filepath.Join(mnt, "data")
	spare := filepath.Join(mnt, "spare")
	if err := os.WriteFile(spare, make([]byte, 20<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	add := newRoot()
	add.SetArgs([]string{"user", "add", "farm", "--unrestricted", "--data", data, "--min-free", "16MiB"})
	add.SetIn(strings.NewReader("farm-password\n"))
	add.SetOut(io.Discard)
	if err := add.Execute(); err != nil {
		t.Fatal(err)
	}
	args := []string{"--data", data, "--min-free", "16MiB"}
	srv := startServeProc(t, args...)

	acked := map[string][]byte{}
	put := func(p *serveProc) (int, string) {
		body := make([]byte, 256<<10)
		rand.Read(body)
		code, retry := p.upload(t, body)
		if code == http.StatusCreated {
			sum := sha256.Sum256(body)
			acked[hex.EncodeToString(sum[:])] = body
		}
		return code, retry
	}
	var code int
	var retry string
	for range 400 {
		if code, retry = put(srv); code != http.StatusCreated {
			break
		}
	}
	if code != http.StatusInsufficientStorage || retry == "" || len(acked) == 0 {
		t.Fatalf("after %d uploads: %d, Retry-After %q; want 507 with Retry-After once the reserve is reached", len(acked), code, retry)
	}
	srv.alive(t)
	g := &diskspace.Guard{Dir: mnt}
	free, _ := g.Free()
	t.Logf("%d uploads of 256 KiB acknowledged, then 507 (Retry-After %s) with %s free", len(acked), retry, diskspace.Bytes(free))

	// Someone else takes the rest of the disk.
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	if code, _ := put(srv); code != http.StatusInsufficientStorage {
		t.Fatalf("upload on a full disk: %d", code)
	}
	srv.readAll(t, acked)
	srv.alive(t)

	// A crash on the full disk, and a start on it: the ballast makes room
	// for badger to replay its logs.
	srv.kill()
	srv = startServeProc(t, args...)
	if !srv.said("released the space reserve") {
		t.Errorf("expected the ballast to be released; the server said:\n%s", srv.stderr)
	}
	srv.readAll(t, acked)
	if code, _ := put(srv); code != http.StatusInsufficientStorage {
		t.Fatalf("upload after a restart on a full disk: %d", code)
	}
	// A clean stop, the last bytes taken, and a read-only start.
	srv.stop(t)
	fill(t, filler+"2")
	srv = startServeProc(t, args...)
	if !srv.said("started read-only") {
		t.Errorf("expected a read-only start; the server said:\n%s", srv.stderr)
	}
	srv.readAll(t, acked)
	if code, retry := put(srv); code != http.StatusInsufficientStorage || retry != "" {
		t.Fatalf("upload to a read-only start: %d, Retry-After %q (waiting does not help, a restart does)", code, retry)
	}

	// Space is back: a restart takes writes again.
	for _, f := range []string{filler, filler + "2", spare} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	srv.stop(t)
	srv = startServeProc(t, args...)
	before := len(acked)
	for range 3 {
		if code, _ := put(srv); code != http.StatusCreated {
			t.Fatalf("upload after space was freed: %d", code)
		}
	}
	srv.readAll(t, acked)
	srv.stop(t)
	if out := run(t, "verify", "--data", data, "--min-free", "16MiB"); !strings.Contains(out, "ok:") {
		t.Fatalf("verify: %s", out)
	}
	t.Logf("%d uploads acknowledged in all, %d after space was freed; all intact", len(acked), len(acked)-before)
}
