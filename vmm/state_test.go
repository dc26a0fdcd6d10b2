package vmm_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/vmm"
)

// TestRestoreInStartupOrder: after a daemon restart the unikernels boot
// again, each through the gate, in startup priority order; one that had
// exited stays down and one the gate now refuses stays down saying why.
func TestRestoreInStartupOrder(t *testing.T) {
	e := newEnv(t)
	img, d := image(t, `echo "up $1"; exec sleep 60`)
	e.gate.allow(d)
	other, od := image(t, "exec sleep 61")
	e.gate.allow(od)
	done, dd := image(t, "exit 1")
	e.gate.allow(dd)
	specs := []vmm.Spec{
		{Name: "web", Startup: 50, Args: []string{"web"}, MemMB: 64, CPU: 1, RestartOnFail: true, ExitCodes: []int{3}},
		{Name: "dns", Startup: 0, Args: []string{"dns"}},
		{Name: "app", Startup: 50, Args: []string{"app"}},
		{Name: "dhcp", Startup: 10, Args: []string{"dhcp"}},
	}
	pids := map[string]int{}
	for _, s := range specs {
		pids[s.Name] = e.mustCreate(s, img).PID
	}
	e.mustCreate(vmm.Spec{Name: "denied", Startup: 5}, other)
	e.mustCreate(vmm.Spec{Name: "oneshot", Startup: 1}, done)
	waitFor(t, "oneshot to exit", func() bool { return e.info("oneshot").State == vmm.StateExited })
	before := len(e.audit())

	e.close()
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("%s (pid %d) survived the daemon", name, pid)
		}
	}
	e.gate.deny(od)
	e.open()

	var order []string
	for _, a := range e.audit()[before:] {
		if a.Op != "restore" {
			t.Errorf("audit entry %+v", a)
		}
		order = append(order, a.Name)
	}
	if want := []string{"dns", "denied", "dhcp", "app", "web"}; !slices.Equal(order, want) {
		t.Errorf("restore order %v, want %v", order, want)
	}
	for _, s := range specs {
		i := e.info(s.Name)
		if i.State != vmm.StateRunning || !alive(i.PID) || i.PID == pids[s.Name] || i.Admission.Op != "restore" {
			t.Errorf("%s after restore: %+v", s.Name, i)
		}
		if s.MemMB == 0 {
			s.MemMB = 32
		}
		s.Tender = "process"
		if !reflect.DeepEqual(i.Spec, s) {
			t.Errorf("%s: spec %+v, want %+v", s.Name, i.Spec, s)
		}
	}
	if i := e.info("denied"); i.State != vmm.StateRefused || !strings.Contains(i.Reason, "restore of denied refused by the boot gate") || i.PID != 0 {
		t.Errorf("denied after restore: %+v", i)
	}
	if i := e.info("oneshot"); i.State != vmm.StateExited || !strings.Contains(i.Reason, "vmm restart oneshot") {
		t.Errorf("oneshot after restore: %+v", i)
	}
	waitFor(t, "console after restore", func() bool { return slices.Equal(e.console("web", vmm.ConsoleQuery{}), []string{"up web"}) })
}

func TestStateFiles(t *testing.T) {
	e := newEnv(t)
	img, d := image(t, "exec sleep 60")
	e.gate.allow(d)
	e.mustCreate(vmm.Spec{Name: "u"}, img)
	for path, mode := range map[string]os.FileMode{
		"unikernels/u.json":    0o600,
		"images/" + d.String(): 0o700,
		"audit.log":            0o600,
		"unikernels":           0o700 | os.ModeDir,
		"images":               0o700 | os.ModeDir,
		"lock":                 0o600,
		"run/u":                0o700 | os.ModeDir,
	} {
		fi, err := os.Stat(filepath.Join(e.dir, path))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
		}
	}
	b, err := os.ReadFile(filepath.Join(e.dir, "unikernels/u.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil || rec["image"] != d.String() {
		t.Errorf("record %s: %v", b, err)
	}
	// One daemon per state directory.
	cfg := e.cfg
	if _, err := vmm.Open(cfg); err == nil || !strings.Contains(err.Error(), "in use by another vmm daemon") {
		t.Errorf("second daemon on the same state: %v", err)
	}
	// The temporary files of writes a crash cut short go at the next start.
	var leftovers []string
	for _, d := range []string{".", "unikernels", "images"} {
		p := filepath.Join(e.dir, d, ".tmp-123")
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
		leftovers = append(leftovers, p)
	}
	e.restart()
	for _, p := range leftovers {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after a restart: %v", p, err)
		}
	}
	if i := e.info("u"); i.Image != d || i.State != vmm.StateRunning {
		t.Errorf("after the restart: %+v", i)
	}
}

func TestAuditRoundTrip(t *testing.T) {
	e := newEnv(t)
	img, d := image(t, "exec sleep 60")
	if _, err := e.create(vmm.Spec{Name: "u", MemMB: 1}, img); !errors.Is(err, vmm.ErrRefused) {
		t.Fatal(err)
	}
	e.gate.allow(d)
	e.mustCreate(vmm.Spec{Name: "u"}, img)
	a := e.audit()
	if len(a) != 2 || a[0].Admitted || !a[1].Admitted || a[0].Image != d || a[0].Time.IsZero() || a[0].Time.After(a[1].Time) {
		t.Errorf("audit = %+v", a)
	}
	if _, err := vmm.ReadAudit(strings.NewReader(`{"time":"2026-01-01T00:00:00Z","name":"x"}` + "\n" + `{"torn`)); err == nil {
		t.Error("torn audit line accepted")
	}
}
