package vmm_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buildledger/buildledger/vmm"
)

func TestShouldRestart(t *testing.T) {
	on := &vmm.Spec{RestartOnFail: true}
	list := &vmm.Spec{RestartOnFail: true, ExitCodes: []int{1, 7}}
	for _, tc := range []struct {
		spec *vmm.Spec
		exit vmm.ExitStatus
		want bool
	}{
		{&vmm.Spec{}, vmm.ExitStatus{Code: 2}, false},
		{on, vmm.ExitStatus{Code: 0}, true},
		{on, vmm.ExitStatus{Code: 1}, false},
		{on, vmm.ExitStatus{Code: 2}, true},
		{on, vmm.ExitStatus{Code: 59}, true},
		{on, vmm.ExitStatus{Code: 60}, false},
		{on, vmm.ExitStatus{Code: 62}, false},
		{on, vmm.ExitStatus{Code: 64}, false},
		{on, vmm.ExitStatus{Code: 65}, true},
		{on, vmm.ExitStatus{Code: 255}, true},
		{on, vmm.ExitStatus{Code: -1, Signal: "killed"}, false},
		{list, vmm.ExitStatus{Code: 1}, true},
		{list, vmm.ExitStatus{Code: 7}, true},
		{list, vmm.ExitStatus{Code: 2}, false},
		{list, vmm.ExitStatus{Code: -1, Signal: "terminated"}, false},
	} {
		if got := vmm.ShouldRestart(tc.spec, tc.exit); got != tc.want {
			t.Errorf("restart-on-fail %v, exit codes %v, %v: %v, want %v", tc.spec.RestartOnFail, tc.spec.ExitCodes, tc.exit, got, tc.want)
		}
	}
}

// bootCounter is an image that appends a line to a file at every boot,
// then runs body.
func bootCounter(t *testing.T, e *env, body string) (img, boots string) {
	boots = filepath.Join(t.TempDir(), "boots")
	img, d := image(t, fmt.Sprintf("date +%%s%%N >> %s\n%s", boots, body))
	e.gate.allow(d)
	return img, boots
}

func TestRestartOnFail(t *testing.T) {
	for _, tc := range []struct {
		name      string
		body      string
		restart   bool
		exitCodes []int
		restarts  bool
		reason    string
	}{
		{"exit 2 restarts", "exit 2", true, nil, true, ""},
		{"exit 0 restarts", "exit 0", true, nil, true, ""},
		{"exit 1 does not", "exit 1", true, nil, false, "exit codes 1 and 60 to 64 do not restart"},
		{"exit 60 does not", "exit 60", true, nil, false, "exit code 60; not restarted"},
		{"exit 64 does not", "exit 64", true, nil, false, "exit code 64; not restarted"},
		{"listed 1 restarts", "exit 1", true, []int{1}, true, ""},
		{"unlisted 2 does not", "exit 2", true, []int{1, 3}, false, "only exit codes [1 3] restart"},
		{"signal does not", "kill -KILL $$", true, nil, false, "a signal never restarts"},
		{"no restart-on-fail", "exit 2", false, nil, false, "no --restart-on-fail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			img, boots := bootCounter(t, e, tc.body)
			e.mustCreate(vmm.Spec{Name: "u", RestartOnFail: tc.restart, ExitCodes: tc.exitCodes}, img)
			if tc.restarts {
				waitFor(t, "three boots", func() bool { return len(lines(boots)) >= 3 })
				if i := e.info("u"); i.Restarts < 2 || i.LastExit == nil {
					t.Errorf("info = %+v", i)
				}
				var restarts int
				for _, a := range e.audit() {
					if a.Op == "restart-on-fail" && a.Admitted {
						restarts++
					}
				}
				if restarts < 2 {
					t.Errorf("%d restart-on-fail boots in the audit log; every restart goes through the gate", restarts)
				}
				return
			}
			// The supervisor sets StateExited only when it decides not to
			// restart, and returns: once seen, no restart can follow.
			waitFor(t, "the exit", func() bool { return e.info("u").State == vmm.StateExited })
			if n := len(lines(boots)); n != 1 {
				t.Errorf("%d boots, want 1", n)
			}
			for _, a := range e.audit() {
				if a.Op == "restart-on-fail" {
					t.Errorf("audited a restart: %+v", a)
				}
			}
			if i := e.info("u"); !strings.Contains(i.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", i.Reason, tc.reason)
			}
			// vmm restart boots it again.
			if _, err := e.c.Restart(ctx, "u"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the second boot", func() bool { return len(lines(boots)) == 2 })
		})
	}
}

func TestBackoff(t *testing.T) {
	e := newEnv(t, func(c *vmm.Config) {
		c.Backoff = vmm.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, Reset: time.Minute}
	})
	img, boots := bootCounter(t, e, "exit 2")
	e.mustCreate(vmm.Spec{Name: "loop", RestartOnFail: true}, img)
	waitFor(t, "six boots", func() bool { return len(lines(boots)) >= 6 })
	var at []int64
	for _, l := range lines(boots)[:6] {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		at = append(at, n)
	}
	want := []time.Duration{50, 100, 200, 200, 200}
	for i, w := range want {
		gap := time.Duration(at[i+1] - at[i])
		if gap < w*time.Millisecond {
			t.Errorf("gap %d = %v, want at least %v ms", i, gap, w)
		}
	}
	if i := e.info("loop"); i.State == vmm.StateWaiting && i.NextRestart.IsZero() {
		t.Errorf("waiting without a next restart: %+v", i)
	}
}

// TestDestroyDuringBootLoop: a unikernel that fails at once, restarted
// with no delay, can always be destroyed, and nothing of it boots after.
func TestDestroyDuringBootLoop(t *testing.T) {
	e := newEnv(t, func(c *vmm.Config) {
		c.Backoff = vmm.Backoff{Initial: time.Nanosecond, Max: time.Nanosecond}
	})
	img, boots := bootCounter(t, e, "exit 2")
	e.mustCreate(vmm.Spec{Name: "loop", RestartOnFail: true}, img)
	waitFor(t, "a boot loop", func() bool { return len(lines(boots)) >= 20 })
	start := time.Now()
	if err := e.c.Destroy(ctx, "loop"); err != nil {
		t.Fatal(err)
	}
	// Bounds far above the work and far below what a lost race costs
	// (a boot loop that never lets go, an hour of backoff), so a loaded
	// machine does not fail them.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("destroy took %v", d)
	}
	// Destroy returned after the session's goroutine did; closing the
	// daemon waits for everything else it runs. No boot can come later.
	n := len(lines(boots))
	e.close()
	if m := len(lines(boots)); m != n {
		t.Errorf("%d boots after destroy", m-n)
	}

	// A restart waiting out a long backoff does not hold destroy up.
	e2 := newEnv(t, func(c *vmm.Config) { c.Backoff = vmm.Backoff{Initial: time.Hour} })
	img, boots = bootCounter(t, e2, "exit 2")
	e2.mustCreate(vmm.Spec{Name: "slow", RestartOnFail: true}, img)
	waitFor(t, "the wait", func() bool { return e2.info("slow").State == vmm.StateWaiting })
	start = time.Now()
	if err := e2.c.Destroy(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("destroy of a waiting unikernel took %v", d)
	}

	// Nor does a tender that ignores SIGTERM: it gets SIGKILL.
	e3 := newEnv(t, func(c *vmm.Config) { c.StopTimeout = 100 * time.Millisecond })
	img, _ = bootCounter(t, e3, "trap '' TERM; echo trapped; while :; do sleep 0.01; done")
	info := e3.mustCreate(vmm.Spec{Name: "stubborn", RestartOnFail: true}, img)
	waitFor(t, "the trap", func() bool { return slices.Contains(e3.console("stubborn", vmm.ConsoleQuery{}), "trapped") })
	if err := e3.c.Destroy(ctx, "stubborn"); err != nil {
		t.Fatal(err)
	}
	if alive(info.PID) {
		t.Error("the tender survived destroy")
	}
}

func TestRestartCommand(t *testing.T) {
	e := newEnv(t)
	img, boots := bootCounter(t, e, "exec sleep 60")
	first := e.mustCreate(vmm.Spec{Name: "u"}, img)
	waitFor(t, "the first boot", func() bool { return len(lines(boots)) == 1 })
	second, err := e.c.Restart(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second boot", func() bool { return len(lines(boots)) == 2 })
	if alive(first.PID) || !alive(second.PID) || second.PID == first.PID {
		t.Errorf("restart: pid %d → %d", first.PID, second.PID)
	}
	// A refused restart leaves the running one running.
	e.gate.deny(second.Image)
	if _, err := e.c.Restart(ctx, "u"); err == nil || !strings.Contains(err.Error(), "restart of u refused") {
		t.Errorf("refused restart: %v", err)
	}
	if i := e.info("u"); i.PID != second.PID || !alive(second.PID) {
		t.Errorf("after a refused restart: %+v", i)
	}
	if err := syscall.Kill(second.PID, 0); err != nil {
		t.Error(err)
	}
}
