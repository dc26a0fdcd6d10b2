package vmm_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buildledger/buildledger/internal/atomicfile"
	"github.com/buildledger/buildledger/vmm"
)

func TestUpdate(t *testing.T) {
	e := newEnv(t)
	v1, d1 := image(t, `echo "v1 $1"; exec sleep 60`)
	e.gate.allow(d1)
	spec := vmm.Spec{Name: "web", MemMB: 48, CPU: 1, Args: []string{"arg"}, RestartOnFail: true, ExitCodes: []int{9}, Startup: 7}
	old := e.mustCreate(spec, v1)

	var msgs []string
	progress := func(s string) { msgs = append(msgs, s) }
	r, err := e.c.Update(ctx, "web", false, progress)
	if err != nil || r.New != nil || !strings.Contains(strings.Join(msgs, "\n"), "runs the newest build") {
		t.Fatalf("update without a newer build: %+v, %v, %q", r, err, msgs)
	}

	v2, _ := image(t, `echo "v2 $1"; exec sleep 60`)
	d2 := e.gate.offer(d1, v2)
	e.gate.allow(d2)
	msgs = nil
	r, err = e.c.Update(ctx, "web", true, progress)
	if err != nil || r.New == nil || r.New.SHA256 != d2 || r.Updated {
		t.Fatalf("dry run: %+v, %v", r, err)
	}
	if !slices.Contains(msgs, "compare at http://ledger.example/compare/old/new") {
		t.Errorf("dry run said %q", msgs)
	}
	if i := e.info("web"); i.Image != d1 || i.PID != old.PID {
		t.Errorf("the dry run changed something: %+v", i)
	}

	msgs = nil
	r, err = e.c.Update(ctx, "web", false, progress)
	if err != nil || !r.Updated {
		t.Fatalf("update: %+v, %v, %q", r, err, msgs)
	}
	if !slices.Contains(msgs, "compare at http://ledger.example/compare/old/new") || !strings.Contains(msgs[len(msgs)-1], "updated web to sha256 "+d2.String()) {
		t.Errorf("update said %q", msgs)
	}
	i := e.info("web")
	spec.Tender = "process"
	if i.Image != d2 || i.State != vmm.StateRunning || !reflect.DeepEqual(i.Spec, spec) || alive(old.PID) || i.Admission.Op != "update" {
		t.Errorf("after update: %+v", i)
	}
	waitFor(t, "v2's output", func() bool { return slices.Contains(e.console("web", vmm.ConsoleQuery{}), "v2 arg") })
	if _, err := os.Stat(filepath.Join(e.dir, "images", d1.String())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old image kept: %v", err)
	}
	// The new image is the one restored.
	e.restart()
	if i := e.info("web"); i.Image != d2 || i.State != vmm.StateRunning {
		t.Errorf("after a daemon restart: %+v", i)
	}
}

func TestUpdateRefusedKeepsOld(t *testing.T) {
	e := newEnv(t)
	v1, d1 := image(t, "exec sleep 60")
	e.gate.allow(d1)
	old := e.mustCreate(vmm.Spec{Name: "web", MemMB: 32}, v1)
	v2, _ := image(t, "exec sleep 61")
	d2 := e.gate.offer(d1, v2) // not attested
	var msgs []string
	_, err := e.c.Update(ctx, "web", false, func(s string) { msgs = append(msgs, s) })
	if !errors.Is(err, vmm.ErrRefused) || !strings.Contains(err.Error(), "update of web refused by the boot gate (image sha256 "+d2.String()) {
		t.Fatalf("update to an unattested build: %v", err)
	}
	if !strings.Contains(strings.Join(msgs, "\n"), "web keeps running the old image") {
		t.Errorf("update said %q", msgs)
	}
	if i := e.info("web"); i.Image != d1 || i.PID != old.PID || !alive(old.PID) {
		t.Errorf("after a refused update: %+v", i)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "images", d2.String())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused image kept: %v", err)
	}
	a := e.audit()
	if last := a[len(a)-1]; last.Op != "update" || last.Admitted || last.Image != d2 {
		t.Errorf("audit = %+v", last)
	}

	// A candidate whose download fails changes nothing either.
	e.gate.mu.Lock()
	e.gate.files = nil
	e.gate.mu.Unlock()
	if _, err := e.c.Update(ctx, "web", false, nil); err == nil || !strings.Contains(err.Error(), "web keeps running the old one") {
		t.Errorf("failed download: %v", err)
	}
	if i := e.info("web"); i.PID != old.PID {
		t.Errorf("after a failed download: %+v", i)
	}
}

func TestUpdateRollsBack(t *testing.T) {
	// A grace period the failing image cannot outlast however slow the
	// machine: it exits at once, so the test does not wait for it.
	e := newEnv(t, func(c *vmm.Config) { c.UpdateGrace = time.Minute })
	v1, d1 := image(t, `echo "v1 up"; exec sleep 60`)
	e.gate.allow(d1)
	old := e.mustCreate(vmm.Spec{Name: "web", MemMB: 32, RestartOnFail: true}, v1)
	waitFor(t, "v1's output", func() bool { return slices.Contains(e.console("web", vmm.ConsoleQuery{}), "v1 up") })
	v2, _ := image(t, `echo "v2 cannot start"; exit 3`)
	d2 := e.gate.offer(d1, v2)
	e.gate.allow(d2)
	r, err := e.c.Update(ctx, "web", false, nil)
	if !errors.Is(err, vmm.ErrRolledBack) || r != nil {
		t.Fatalf("update to a failing image: %+v, %v", r, err)
	}
	for _, want := range []string{fmt.Sprintf("the new image (sha256 %s) failed: it ended within 1m0s: exit code 3", d2), "web runs the old image (sha256 " + d1.String() + ") again", "vmm console web"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	i := e.info("web")
	if i.Image != d1 || i.State != vmm.StateRunning || !alive(i.PID) || i.PID == old.PID || i.Admission.Op != "rollback" {
		t.Errorf("after the rollback: %+v", i)
	}
	// The two processes' output is copied concurrently: v2's line and
	// v1's second may come in either order.
	waitFor(t, "both outputs", func() bool {
		c := e.console("web", vmm.ConsoleQuery{})
		return len(c) == 3 && c[0] == "v1 up" && slices.Equal(slices.Sorted(slices.Values(c[1:])), []string{"v1 up", "v2 cannot start"})
	})
	var ops []string
	for _, a := range e.audit() {
		ops = append(ops, a.Op)
	}
	if !slices.Equal(ops, []string{"create", "update", "rollback"}) {
		t.Errorf("audited %v; the failed new image must not be restarted", ops)
	}
	e.restart()
	if i := e.info("web"); i.Image != d1 {
		t.Errorf("after a daemon restart: %+v", i)
	}
}

// TestUpdateSaveFailsKeepsOld: when the new record cannot be saved, the
// old image is still in the store and named by the record, the new one is
// stopped and the old one runs again; a daemon start restores it.
func TestUpdateSaveFailsKeepsOld(t *testing.T) {
	var failNext atomic.Bool
	e := newEnv(t, func(c *vmm.Config) {
		c.WriteFile = func(path string, data []byte, perm fs.FileMode) error {
			if filepath.Base(path) == "web.json" && failNext.CompareAndSwap(true, false) {
				return errors.New("injected: no space left on device")
			}
			return atomicfile.WriteFile(path, data, perm)
		}
	})
	v1, d1 := image(t, `echo "v1 up"; exec sleep 60`)
	e.gate.allow(d1)
	old := e.mustCreate(vmm.Spec{Name: "web", MemMB: 32}, v1)
	waitFor(t, "v1's output", func() bool { return slices.Contains(e.console("web", vmm.ConsoleQuery{}), "v1 up") })
	v2, _ := image(t, `echo "v2 up"; exec sleep 60`)
	d2 := e.gate.offer(d1, v2)
	e.gate.allow(d2)
	recPath := filepath.Join(e.dir, "unikernels", "web.json")
	before, err := os.ReadFile(recPath)
	if err != nil {
		t.Fatal(err)
	}

	failNext.Store(true)
	_, err = e.c.Update(ctx, "web", false, nil)
	if !errors.Is(err, vmm.ErrRolledBack) || !strings.Contains(err.Error(), "its record could not be saved") || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("update whose record cannot be saved: %v", err)
	}
	if failNext.Load() {
		t.Fatal("the update never saved the record")
	}
	if _, err := os.Stat(filepath.Join(e.dir, "images", d1.String())); err != nil {
		t.Errorf("the old image is gone from the store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "images", d2.String())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the image that was not swapped in is kept: %v", err)
	}
	i := e.info("web")
	if i.Image != d1 || i.State != vmm.StateRunning || i.PID == old.PID || !alive(i.PID) || i.Admission.Op != "rollback" {
		t.Errorf("after the failed save: %+v", i)
	}
	// (v2 may be stopped before it printed anything.)
	waitFor(t, "v1 again", func() bool {
		c := e.console("web", vmm.ConsoleQuery{})
		return len(c) > 1 && c[0] == "v1 up" && c[len(c)-1] == "v1 up" && len(slices.DeleteFunc(c, func(l string) bool { return l == "v2 up" })) == 2
	})
	var rec struct{ Image string }
	if b, err := os.ReadFile(recPath); err != nil || json.Unmarshal(b, &rec) != nil || rec.Image != d1.String() {
		t.Errorf("record after the failed save: %s, %v (before: %s)", b, err, before)
	}

	// What the state directory holds boots.
	e.restart()
	if i := e.info("web"); i.Image != d1 || i.State != vmm.StateRunning || i.Admission.Op != "restore" {
		t.Errorf("after a daemon restart: %+v", i)
	}
}
