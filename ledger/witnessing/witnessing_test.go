package witnessing_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/internal/tooltest"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/ledgertest"
	"github.com/buildledger/buildledger/ledger/witnessing"
)

var ctx = context.Background()

// litewitness is a running litewitness (filippo.io/torchwood) on loopback
// with its own Ed25519 key in its own ssh-agent, knowing one log.
type litewitness struct {
	url, vkey string
}

// startWitness starts litewitness named name, knowing the log of verifier
// key logKey; it stops when the test ends.
func startWitness(t *testing.T, name, logKey string) litewitness {
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
	return litewitness{url: "http://" + addr, vkey: vkey}
}

func grow(t *testing.T, l *ledgertest.Ledger, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(ctx, &ledger.JobDefined{Job: fmt.Sprintf("job-%d-%d", l.Size(), i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWitnessingWithLitewitness: real litewitnesses cosign the ledger's
// checkpoints (the first, later ones through consistency proofs, again
// after a restart of the ledger's side through their 409), the cosigned
// checkpoint still verifies with the log key and its cosignatures with
// transparency-dev's verifiers; a quorum of 2 with one witness down is not
// met; a forked ledger under the same key is refused.
func TestWitnessingWithLitewitness(t *testing.T) {
	l := ledgertest.Open(t)
	grow(t, l, 3)
	w1 := startWitness(t, "witness.example/one", l.VKey)
	w2 := startWitness(t, "witness.example/two", l.VKey)
	policy := fmt.Sprintf("witness one %s %s\nwitness two %s %s\ngroup both all one two\nquorum both\n", w1.vkey, w1.url, w2.vkey, w2.url)
	w, err := witnessing.New(witnessing.Config{Policy: []byte(policy), Prover: l.Tree()})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, want bool) witnessing.Cosigned {
		t.Helper()
		c := w.Cosign(ctx, l.Checkpoint())
		if c.Quorum != want {
			t.Fatalf("%s: quorum %v, signed by %v, missing %v", what, c.Quorum, c.Signed, c.Missing)
		}
		if _, err := checkpoint.Open(c.Note, ledgertest.Origin, l.VKey); err != nil {
			t.Fatalf("%s: the cosigned checkpoint no longer verifies with the log key: %v", what, err)
		}
		return c
	}
	c := check("first checkpoint", true)
	for _, vk := range []string{w1.vkey, w2.vkey} {
		v, err := fnote.NewVerifierForCosignatureV1(vk)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := note.Open(c.Note, note.VerifierList(v)); err != nil {
			t.Fatalf("cosignature of %s: %v", v.Name(), err)
		}
	}
	grow(t, l, 5)
	check("a later checkpoint (consistency proof)", true)
	grow(t, l, 2)
	// A new instance knows no witness's size: each answers 409 with its
	// own, and is asked again with a proof from there.
	w, err = witnessing.New(witnessing.Config{Policy: []byte(policy), Prover: l.Tree()})
	if err != nil {
		t.Fatal(err)
	}
	check("after a restart", true)
	if got := w.Latest(); got.Size != l.Checkpoint().Size || !got.Quorum {
		t.Fatalf("latest: %+v", got)
	}

	// One witness unreachable: "all" of two is not met.
	down := fmt.Sprintf("witness one %s %s\nwitness two %s http://127.0.0.1:1\ngroup both all one two\nquorum both\n", w1.vkey, w1.url, w2.vkey)
	wd, err := witnessing.New(witnessing.Config{Policy: []byte(down), Prover: l.Tree()})
	if err != nil {
		t.Fatal(err)
	}
	if c := wd.Cosign(ctx, l.Checkpoint()); c.Quorum || len(c.Signed) != 1 || len(c.Missing) != 1 {
		t.Fatalf("one witness down: %+v", c)
	}

	// A fork: another history under the same key, larger than what the
	// witnesses saw. They refuse it.
	forked := ledgertest.Reopen(t, t.TempDir(), l.SKey, l.VKey)
	defer forked.Close()
	grow(t, forked, int(l.Size())+4)
	wf, err := witnessing.New(witnessing.Config{Policy: []byte(policy), Prover: forked.Tree()})
	if err != nil {
		t.Fatal(err)
	}
	c = wf.Cosign(ctx, forked.Checkpoint())
	if c.Quorum || len(c.Signed) != 0 || !strings.Contains(strings.Join(c.Missing, "\n"), "SECURITY") {
		t.Fatalf("a forked log: %+v", c)
	}
}
