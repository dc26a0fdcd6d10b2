package vmm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas/digest"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/vmm"
	"github.com/buildledger/buildledger/vmm/gate"
)

var ctx = context.Background()

// The real gate implements the daemon's port.
var _ vmm.Gate = (*gate.Gate)(nil)

// testGate stands in for the ledger-backed gate at the daemon's edge: it
// admits the images whose sha256 it was told to, and offers the updates
// it was given.
type testGate struct {
	mu      sync.Mutex
	allowed map[digest.Digest]bool
	err     error                             // returned by Admit, if set
	newer   map[digest.Digest]*gate.Candidate // running → candidate
	files   map[digest.Digest]string          // what Download serves
	admits  int
}

func newTestGate() *testGate {
	return &testGate{allowed: map[digest.Digest]bool{}, newer: map[digest.Digest]*gate.Candidate{}, files: map[digest.Digest]string{}}
}

func (g *testGate) allow(d digest.Digest) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.allowed[d] = true
}

func (g *testGate) deny(d digest.Digest) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.allowed, d)
}

func (g *testGate) Admit(ctx context.Context, image string) (*gate.Decision, error) {
	d, err := gate.HashFile(image)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.admits++
	if g.err != nil {
		return nil, g.err
	}
	if err != nil {
		return &gate.Decision{Reason: fmt.Sprintf("refused: cannot read image: %v", err)}, nil
	}
	if !g.allowed[d] {
		return &gate.Decision{Image: d, K: 2, Reason: fmt.Sprintf("refused: sha256 %s\n  no build in the ledger has this hash\n  need 2 agreeing trusted rebuilders, have 0", d)}, nil
	}
	return &gate.Decision{
		Admitted: true, Image: d, K: 2, Agreeing: []string{"alice", "bob"},
		Build:    &gate.BuildRef{Job: "hello", Platform: "debian-12", UUID: uuid.NewSHA1(uuid.Nil, d[:]), LogIndex: 7},
		Verdicts: []gate.Verdict{{KeyName: "alice", Status: gate.StatusValid}, {KeyName: "bob", Status: gate.StatusValid}, {KeyName: "mallory", Status: gate.StatusUntrusted}},
		Reason:   "admitted: 2 of k=2",
	}, nil
}

func (g *testGate) Newer(ctx context.Context, running digest.Digest) (*gate.Candidate, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.newer[running], nil
}

func (g *testGate) Download(ctx context.Context, c *gate.Candidate, path string) error {
	g.mu.Lock()
	src := g.files[c.SHA256]
	g.mu.Unlock()
	if src == "" {
		return errors.New("404 from the ledger")
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if digest.Sum(b) != c.SHA256 {
		return errors.New("digest mismatch")
	}
	return os.WriteFile(path, b, 0o600)
}

// offer makes the gate offer an update from running to the image at path.
func (g *testGate) offer(running digest.Digest, path string) digest.Digest {
	b, _ := os.ReadFile(path)
	d := digest.Sum(b)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.files[d] = path
	g.newer[running] = &gate.Candidate{
		Job: "hello", Platform: "debian-12", SHA256: d,
		Running:    gate.BuildRef{Job: "hello", Platform: "debian-12", UUID: uuid.NewSHA1(uuid.Nil, running[:])},
		New:        gate.BuildRef{Job: "hello", Platform: "debian-12", UUID: uuid.NewSHA1(uuid.Nil, d[:])},
		CompareURL: "http://ledger.example/compare/old/new",
	}
	return d
}

// image writes a shell script to use as a process-tender image.
func image(t testing.TB, body string) (string, digest.Digest) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image")
	b := []byte("#!/bin/sh\n" + body + "\n")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p, digest.Sum(b)
}

// env is a daemon on a socket, with a client.
type env struct {
	t         *testing.T
	dir       string // state directory
	sock      string
	gate      *testGate
	cfg       vmm.Config
	d         *vmm.Daemon
	c         *vmm.Client
	served    chan error
	stopServe func()
}

// shortDir is a directory with a path short enough for a socket.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vmm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func newEnv(t *testing.T, mod ...func(*vmm.Config)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), gate: newTestGate()}
	e.sock = filepath.Join(shortDir(t), "run", "vmm.sock")
	e.cfg = vmm.Config{
		StateDir: e.dir, Gate: e.gate, DefaultTender: "process",
		Backoff:     vmm.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, Reset: time.Minute},
		UpdateGrace: 300 * time.Millisecond, StopTimeout: 2 * time.Second,
	}
	for _, m := range mod {
		m(&e.cfg)
	}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	d, err := vmm.Open(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ln, err := vmm.Listen(e.sock)
	if err != nil {
		d.Close()
		e.t.Fatal(err)
	}
	e.d, e.c, e.served = d, &vmm.Client{Socket: e.sock}, make(chan error, 1)
	go func() {
		e.served <- d.Serve(ln)
	}()
	e.stopServe = func() { ln.Close() }
}

func (e *env) close() {
	if e.d == nil {
		return
	}
	e.stopServe()
	if err := <-e.served; err != nil {
		e.t.Errorf("Serve: %v", err)
	}
	if err := e.d.Close(); err != nil {
		e.t.Errorf("Close: %v", err)
	}
	e.d = nil
}

// restart closes the daemon and opens it again on the same state.
func (e *env) restart() {
	e.t.Helper()
	e.close()
	e.open()
}

func (e *env) create(s vmm.Spec, img string) (*vmm.Info, error) {
	return e.c.Create(ctx, s, img)
}

func (e *env) mustCreate(s vmm.Spec, img string) *vmm.Info {
	e.t.Helper()
	if s.MemMB == 0 {
		s.MemMB = 32
	}
	i, err := e.create(s, img)
	if err != nil {
		e.t.Fatalf("create %s: %v", s.Name, err)
	}
	return i
}

func (e *env) info(name string) vmm.Info {
	e.t.Helper()
	is, err := e.c.Info(ctx, name)
	if err != nil {
		e.t.Fatalf("info %s: %v", name, err)
	}
	return is[0]
}

func (e *env) audit() []vmm.AuditEntry {
	e.t.Helper()
	f, err := os.Open(filepath.Join(e.dir, "audit.log"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	a, err := vmm.ReadAudit(f)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// console returns the buffered console text of name.
func (e *env) console(name string, q vmm.ConsoleQuery) []string {
	e.t.Helper()
	var lines []string
	if err := e.c.Console(ctx, name, q, func(l vmm.Line) error { lines = append(lines, l.Text); return nil }); err != nil {
		e.t.Fatalf("console %s: %v", name, err)
	}
	return lines
}

// waitFor polls cond for up to 10s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lines reads a file of lines, none if it does not exist.
func lines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie is as good as dead.
	_, after, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(after, "Z")
}
