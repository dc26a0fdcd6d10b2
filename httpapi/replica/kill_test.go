package replica_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/replica"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
)

const (
	envKillDir  = "BUILDLEDGER_REPLICA_KILL_DIR"
	envKillURL  = "BUILDLEDGER_REPLICA_KILL_URL"
	envKillVKey = "BUILDLEDGER_REPLICA_KILL_VKEY"
)

// TestReplicaKillChild is the replica process of
// TestReplicaKilledDuringFirstCatchUp: it follows the primary until killed.
func TestReplicaKillChild(t *testing.T) {
	dir := os.Getenv(envKillDir)
	if dir == "" {
		t.Skip("child process of TestReplicaKilledDuringFirstCatchUp")
	}
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := cas.New(db, cas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	vkey := os.Getenv(envKillVKey)
	l, err := ledger.Open(db, store, ledger.Config{ReplicaOf: vkey})
	if err != nil {
		t.Fatal(err)
	}
	c, err := httpapi.NewClient(os.Getenv(envKillURL), vkey, replica.HTTPClient())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("started")
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	progress := func(size uint64) { fmt.Println("applied", size) }
	if err := (&replica.Replica{Client: c, Ledger: l, Log: log, Progress: progress}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// entryBundle returns the index of the entry bundle a tlog-tiles path
// names (tile/entries/x001/234.p/5 → 1234), or -1.
func entryBundle(path string) int {
	rest, ok := strings.CutPrefix(path, "/tile/entries/")
	if !ok {
		return -1
	}
	rest, _, _ = strings.Cut(rest, ".p/")
	n, err := strconv.Atoi(strings.NewReplacer("x", "", "/", "").Replace(rest))
	if err != nil {
		return -1
	}
	return n
}

// TestReplicaKilledDuringFirstCatchUp kills (SIGKILL) a replica process in
// its first catch-up of 2,100 entries, after it committed the first chunk
// of 1,024 and before it reached the checkpoint it was following (the
// primary holds back the third chunk's entry bundles until the kill; the
// second, fetched while the first was applied, may be applied in part or
// whole). The replica must open again from what it committed — whole
// commits of 256 entries — and finish the catch-up.
func TestReplicaKilledDuringFirstCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	p := newPrimary(t)
	const total = 2100
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < total; i += 16 {
				if _, err := p.L.Append(ctx, &ledger.JobDefined{Job: fmt.Sprintf("job-%04d", i)}); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	// Entry bundles from 8 on (entries 2,048 and up) wait until the child
	// is dead.
	asked, dead := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h, err := httpapi.New(httpapi.Config{Ledger: p.L.Ledger, VKey: p.L.VKey})
	if err != nil {
		t.Fatal(err)
	}
	p.Swap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if entryBundle(r.URL.Path) >= 8 {
			once.Do(func() { close(asked) })
			<-dead
			http.Error(w, "gone", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReplicaKillChild$", "-test.v")
	cmd.Env = append(os.Environ(), envKillDir+"="+dir, envKillURL+"="+p.URL, envKillVKey+"="+p.L.VKey)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited, first := make(chan struct{}), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		var once sync.Once
		for sc.Scan() {
			if sc.Text() == "applied 1024" {
				once.Do(func() { close(first) })
			}
		}
		close(exited)
	}()
	for _, wait := range []chan struct{}{asked, first} {
		select {
		case <-wait:
		case <-exited:
			cmd.Wait()
			t.Fatalf("the replica process ended before its third chunk:\n%s", stderr.String())
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	err = cmd.Wait()
	close(dead)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("replica process: %v\n%s", err, stderr.String())
	}
	p.Swap(h)

	rep, closeRep := openReplica(t, dir, p.L.VKey, p.URL)
	defer closeRep()
	held := rep.l.Size()
	if held < 1024 || held > 2048 || held%256 != 0 {
		t.Fatalf("the killed replica holds %d entries, want the first chunk (1024) and whole commits of the second", held)
	}
	n, err := (&replica.Replica{Client: p.Client, Ledger: rep.l}).Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != total-int(held) || rep.l.Size() != total {
		t.Fatalf("resumed sync applied %d, holds %d; want %d", n, rep.l.Size(), total)
	}
	if got, want := rep.l.Checkpoint(), p.L.Checkpoint(); string(got.Note) != string(want.Note) {
		t.Fatalf("replica serves checkpoint\n%s\nprimary\n%s", got.Note, want.Note)
	}
	if code, body := get(t, rep.srv.URL+"/job/job-2099"); code != http.StatusOK {
		t.Fatalf("/job/job-2099 on the replica: %d %s", code, body)
	}
}
