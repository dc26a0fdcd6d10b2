package ledger_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

const (
	envCrashDir  = "BUILDLEDGER_CRASH_DIR"
	envCrashSKey = "BUILDLEDGER_CRASH_SKEY"
	envCrashVKey = "BUILDLEDGER_CRASH_VKEY"
)

// TestCrashChild is the child process of TestCrashRecovery: it appends from
// 16 goroutines until killed, printing "ack <index> <digest>" after every
// acknowledged append and "cp <base64 note>" for every checkpoint it got.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("child process of TestCrashRecovery")
	}
	l := ledgertest.Reopen(t, dir, os.Getenv(envCrashSKey), os.Getenv(envCrashVKey))
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "crash"}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var lastCP uint64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				r, err := l.Append(ctx, build("crash", "debian-12", fmt.Sprint(os.Getpid(), w, i), "out", time.Now()))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d %s\n", r.Index, r.Digest)
				if r.Checkpoint.Size > lastCP {
					lastCP = r.Checkpoint.Size
					fmt.Fprintf(out, "cp %s\n", base64.StdEncoding.EncodeToString(r.Checkpoint.Note))
				}
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrashRecovery kills an appending child with SIGKILL at random moments,
// round after round on the same store. After each kill the store must open,
// hold every acknowledged event at its index, recompute to the tree's root
// (Check replays everything), and prove every checkpoint the child was given
// consistent with the new one.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	rounds := 12
	if s := os.Getenv("BUILDLEDGER_CRASH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	skey, vkey, err := ledger.GenerateLogKey(ledgertest.Origin)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	acked := map[uint64]cas.Digest{}
	var cps []*ledger.Checkpoint
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashSKey+"="+skey, envCrashVKey+"="+vkey)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<16), 1<<20)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Kill after a random number of acknowledgements, so the kill lands
		// in the middle of busy appending rather than during start-up.
		killAfter := 50 + rnd.IntN(1500)
		n := 0
		killed := false
		for line := range lines {
			f := strings.Fields(line)
			switch {
			case len(f) == 3 && f[0] == "ack":
				idx, _ := strconv.ParseUint(f[1], 10, 64)
				dg, err := cas.ParseDigest(f[2])
				if err != nil {
					t.Fatal(err)
				}
				acked[idx] = dg
				n++
			case len(f) == 2 && f[0] == "cp":
				note, _ := base64.StdEncoding.DecodeString(f[1])
				cp, err := ledger.OpenCheckpoint(note, ledgertest.Origin, vkey)
				if err != nil {
					t.Fatalf("child handed out a bad checkpoint: %v", err)
				}
				cps = append(cps, cp)
			}
			if n >= killAfter && !killed {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child exited on its own (%v): %s", round, err, stderr.String())
		}

		l := ledgertest.Reopen(t, dir, skey, vkey)
		size, root := l.Tree().Head()
		for idx, want := range acked {
			data, err := l.EventBytes(idx)
			if err != nil {
				t.Fatalf("round %d: acknowledged event %d lost: %v", round, idx, err)
			}
			if got := cas.Sum(data); got != want {
				t.Fatalf("round %d: event %d is %s, acknowledged %s", round, idx, got, want)
			}
		}
		for _, cp := range cps {
			if cp.Size > size {
				t.Fatalf("round %d: checkpoint of size %d handed out, store has %d", round, cp.Size, size)
			}
			p, err := l.Tree().ConsistencyProof(cp.Size, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, size, p, cp.Hash[:], root[:]); err != nil {
				t.Fatalf("round %d: checkpoint %d not consistent with recovered tree %d: %v", round, cp.Size, size, err)
			}
		}
		ledgertest.Check(t, l)
		t.Logf("round %d: killed after %d acks; store has %d events, %d acknowledged so far", round, n, size, len(acked))
		l.Close()
	}
}
