package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/internal/clitest"
	"github.com/buildledger/buildledger/vmm"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return clitest.Run(newRoot(), args...)
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	return clitest.MustRun(t, newRoot(), args...)
}

// gatePolicy writes a valid gate policy: a log key and one trusted key,
// k=1, no ledger, so the gate decides from (absent) cached bundles.
func gatePolicy(t *testing.T) string {
	_, vkey, err := note.GenerateKey(rand.Reader, "test-log")
	if err != nil {
		t.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	b, _ := json.Marshal(map[string]any{"log_key": vkey, "threshold": 1, "keys": []any{map[string]string{"name": "alice", "public_key": string(pub)}}})
	p := filepath.Join(t.TempDir(), "gate-policy.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCommands runs the daemon with the real gate (no ledger, no cached
// bundles: it refuses every image) and the client commands against it.
func TestCommands(t *testing.T) {
	tmp, err := os.MkdirTemp("", "vmm")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	sock := filepath.Join(tmp, "run", "vmm.sock")
	state := t.TempDir()
	policy := gatePolicy(t)
	if _, err := run(t, "daemon", "--state", state, "--socket", sock); err == nil || !strings.Contains(err.Error(), "--gate-policy is required") {
		t.Errorf("daemon without a gate policy: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	daemon := newRoot()
	var log bytes.Buffer
	daemon.SetOut(&log)
	daemon.SetErr(&log)
	daemon.SetArgs([]string{"daemon", "--state", state, "--socket", sock, "--gate-policy", policy, "--taskset=", "--default-tender", "process"})
	done := make(chan error, 1)
	go func() { done <- daemon.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v\n%s", err, log.String())
		}
		if _, err := os.Stat(sock); err == nil {
			t.Error("socket left behind")
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := run(t, "info", "--socket", sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not come up:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := []string{"--socket", sock}
	with := func(args ...string) []string { return append(args, s...) }

	if out := mustRun(t, with("info")...); !strings.Contains(out, "no unikernels") {
		t.Errorf("info: %q", out)
	}
	if _, err := run(t, "daemon", "--state", t.TempDir(), "--socket", sock, "--gate-policy", policy); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Errorf("second daemon on the socket: %v", err)
	}
	if _, err := run(t, "daemon", "--state", state, "--socket", filepath.Join(tmp, "run", "other.sock"), "--gate-policy", policy); err == nil || !strings.Contains(err.Error(), "in use by another vmm daemon") {
		t.Errorf("second daemon on the state: %v", err)
	}

	img := filepath.Join(t.TempDir(), "hello")
	os.WriteFile(img, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755)
	out, err := run(t, with("create", "hello", img, "--arg", "x", "--restart-on-fail", "--exit-code", "3")...)
	if err == nil || !strings.Contains(err.Error(), "create of hello refused by the boot gate") ||
		!strings.Contains(err.Error(), "the gate policy names no ledger and no bundle for") || !strings.Contains(err.Error(), "nothing was started") {
		t.Errorf("create of an unattested image: %v\n%s", err, out)
	}
	if out, err := run(t, with("create", "hello", img, "--exit-code", "3")...); err == nil || !strings.Contains(err.Error(), "--exit-code only makes sense with --restart-on-fail") {
		t.Errorf("--exit-code alone: %v\n%s", err, out)
	}
	if _, err := run(t, with("create", "hello", img, "--net", "service")...); err == nil || !strings.Contains(err.Error(), "want NAME:BRIDGE") {
		t.Errorf("bad --net: %v", err)
	}

	mustRun(t, with("policy", "set", "--mem", "64", "--cpus", "0,1", "--bridges", "br0")...)
	mustRun(t, with("policy", "set", "--unikernels", "4")...)
	out = mustRun(t, with("policy", "show")...)
	for _, want := range []string{"unikernels: 4", "memory:     64 MB", "cpus:       0,1", "bridges:    br0", "block:      no limit", "in use:     0 unikernels"} {
		if !strings.Contains(out, want) {
			t.Errorf("policy show lacks %q:\n%s", want, out)
		}
	}
	if _, err := run(t, with("create", "big", img, "--mem", "128")...); err == nil || !strings.Contains(err.Error(), "exceeds the 64 MB allowed") {
		t.Errorf("create over the memory limit: %v", err)
	}
	mustRun(t, with("policy", "set", "--lift", "mem", "--bridges", "")...)
	out = mustRun(t, with("policy", "show", "--json")...)
	var shown struct{ Policy vmm.Policy }
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.Policy.MemoryMB != nil || shown.Policy.Bridges == nil || len(shown.Policy.Bridges) != 0 || *shown.Policy.Unikernels != 4 {
		t.Errorf("policy after --lift mem --bridges '': %s, %v", out, err)
	}

	for _, args := range [][]string{{"destroy", "nope"}, {"restart", "nope"}, {"info", "nope"}, {"console", "nope"}, {"update", "nope"}} {
		if _, err := run(t, with(args...)...); err == nil || !strings.Contains(err.Error(), `no such unikernel: "nope"; list the unikernels with vmm info`) {
			t.Errorf("%v: %v", args, err)
		}
	}
	if _, err := run(t, with("console", "x", "--since", "yesterday")...); err == nil || !strings.Contains(err.Error(), "a duration ago") {
		t.Errorf("bad --since: %v", err)
	}
	if out, err := run(t, "info", "--socket", filepath.Join(tmp, "none.sock")); err == nil || !strings.Contains(err.Error(), "is it running") {
		t.Errorf("no daemon: %v %s", err, out)
	}
	if out, err := run(t, "bundle", img, "--state", state, "--gate-policy", policy); err == nil || !strings.Contains(err.Error(), "names no ledger") {
		t.Errorf("bundle without a ledger: %v %s", err, out)
	}

	f, err := os.Open(filepath.Join(state, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	audit, err := vmm.ReadAudit(f)
	if err != nil || len(audit) != 1 || audit[0].Admitted || audit[0].Name != "hello" {
		t.Errorf("audit: %+v, %v", audit, err)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-07-01T10:00:00Z": time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC),
		"10m":                  now.Add(-10 * time.Minute),
		"0s":                   now,
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("%s: %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-5m", "noon"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPrintInfo(t *testing.T) {
	var b bytes.Buffer
	printInfo(&b, &vmm.Info{
		Name: "web", State: vmm.StateRunning, PID: 42, Uptime: 90 * time.Second, Restarts: 2, LastExit: &vmm.ExitStatus{Code: 2},
		Spec: vmm.Spec{Name: "web", Tender: "solo5-hvt", MemMB: 64, CPU: 1, Startup: 10, Args: []string{"--ipv4=10.0.0.2/24"}, RestartOnFail: true,
			Nets: []vmm.Net{{Name: "service", Bridge: "br0"}}, Blocks: []vmm.Block{{Name: "storage", File: "/var/db/web.img"}}},
		Admission: &vmm.Admission{Time: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC), Op: "create", K: 2, Agreeing: []string{"alice", "bob"}},
	})
	want := `web  running  pid 42  up 1m30s
  image     sha256 0000000000000000000000000000000000000000000000000000000000000000
  build     none in the ledger
  attested  2 agreeing of k=2 (alice, bob)
  admitted  at 2026-07-01T12:00:00Z, create
  config    solo5-hvt, 64 MB, cpu 1, startup 10, restart on fail
  args      --ipv4=10.0.0.2/24
  net       service on bridge br0
  block     storage = /var/db/web.img
  restarts  2, last exit code 2
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
