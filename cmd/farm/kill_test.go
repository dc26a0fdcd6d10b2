package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buildledger/buildledger/farm/client"
	"github.com/buildledger/buildledger/farm/proto"
)

// TestMain lets a test run this command as a child process (to kill it).
func TestMain(m *testing.M) {
	if os.Getenv("FARM_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startChild runs `farm args...` as a child process until killed.
func startChild(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "FARM_TEST_MAIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// TestSchedulerSurvivesSIGKILL: a scheduler killed with SIGKILL keeps its
// schedule and queues, and the job a worker held goes back to the end
// of its queue, once.
func TestSchedulerSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	d := client.Dialer{Addr: addr, Timeout: 5 * time.Second}
	ctx := context.Background()
	up := func() {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := client.Info(ctx, d); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the scheduler never answered")
			}
		}
	}
	first := startChild(t, "server", "--dir", dir, "--listen", addr)
	up()
	script := filepath.Join(t.TempDir(), "job.sh")
	os.WriteFile(script, []byte("true\n"), 0o644)
	for _, name := range []string{"a", "b"} {
		if out, err := farm(ctx, "schedule", name, "p", script, "-r", addr); err != nil {
			t.Fatalf("schedule %s: %v %s", name, err, out)
		}
	}
	wc, err := d.Dial(ctx, proto.RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if err := proto.WriteCmd(wc, proto.JobRequested{Platform: "p"}, 1<<20); err != nil {
		t.Fatal(err)
	}
	cmd, err := proto.ReadCmd(wc, 1<<20)
	if js, ok := cmd.(proto.JobSchedule); err != nil || !ok || js.Job.Name != "a" {
		t.Fatalf("the worker got %+v %v", cmd, err)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()

	startChild(t, "server", "--dir", dir, "--listen", addr)
	up()
	out, err := farm(ctx, "info", "-r", addr)
	if err != nil {
		t.Fatal(err)
	}
	// a goes back to the end of the queue (as builder puts it back).
	for _, want := range []string{"a on p, daily", "b on p, daily", "p: b on p; a on p\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("after SIGKILL, info lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "running:\n  ") {
		t.Errorf("a job still shows as running:\n%s", out)
	}
}
