// Package witnesstest runs real C2SP tlog-witnesses for tests: litewitness
// (filippo.io/torchwood), with its own Ed25519 key in its own ssh-agent,
// on loopback. Without litewitness the test fails when
// BUILDLEDGER_REQUIRE_WITNESS is set (as .ci/run sets it) and skips
// otherwise, saying how to install it.
package witnesstest

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/internal/tooltest"
)

// Witness is a running litewitness (filippo.io/torchwood) on loopback
// with its own Ed25519 key in its own ssh-agent, knowing one log.
type Witness struct {
	URL, VKey string // where it listens (its add-checkpoint is below it), its cosignature verifier key
}

// Start starts litewitness named name, knowing the log of verifier
// key logKey; it stops when the test ends.
func Start(t testing.TB, name, logKey string) Witness {
	t.Helper()
	lw := tooltest.Find(t, "litewitness", "BUILDLEDGER_REQUIRE_WITNESS", "install with: go install filippo.io/torchwood/cmd/litewitness@v0.6.1 filippo.io/torchwood/cmd/witnessctl@v0.6.1")
	ctl := tooltest.Find(t, "witnessctl", "BUILDLEDGER_REQUIRE_WITNESS", "install with: go install filippo.io/torchwood/cmd/witnessctl@v0.6.1")
	dir, err := os.MkdirTemp("", "lw") // short: a unix socket path is at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	run := func(env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	key := filepath.Join(dir, "witness")
	run(nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
	fp := strings.Fields(run(nil, "ssh-keygen", "-l", "-f", key+".pub"))[1]
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ssh-agent did not start")
		}
	}
	run([]string{"SSH_AUTH_SOCK=" + sock}, "ssh-add", "-q", key)
	db := filepath.Join(dir, "witness.db")
	origin, _, _ := strings.Cut(logKey, "+")
	run(nil, ctl, "add-log", "-db", db, "-origin", origin)
	run(nil, ctl, "add-key", "-db", db, "-origin", origin, "-key", logKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(lw, "-db", db, "-name", name, "-key", fp, "-ssh-agent", sock, "-listen", addr)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// It logs its verifier key, then that it listens.
	var vkey string
	sc := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`vkey=(\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			vkey = m[1]
		}
		if strings.Contains(sc.Text(), "listening") {
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if vkey == "" {
		t.Fatal("litewitness never said its verifier key")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("litewitness does not listen")
		}
	}
	return Witness{URL: "http://" + addr, VKey: vkey}
}
