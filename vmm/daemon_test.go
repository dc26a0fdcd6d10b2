package vmm_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/vmm"
)

func TestCreateInfoDestroy(t *testing.T) {
	e := newEnv(t)
	img, digest := image(t, `echo "hello $1 from $VMM_NAME"; exec sleep 60`)
	e.gate.allow(digest)
	info := e.mustCreate(vmm.Spec{Name: "hello", Args: []string{"world"}, Startup: 50}, img)
	if info.State != vmm.StateRunning || info.Image != digest || info.PID == 0 || !alive(info.PID) {
		t.Fatalf("after create: %+v", info)
	}
	a := info.Admission
	if a == nil || a.Build == nil || a.Build.Job != "hello" || a.K != 2 || !slices.Equal(a.Agreeing, []string{"alice", "bob"}) || a.Op != "create" {
		t.Errorf("admission = %+v", a)
	}
	if s := a.Summary(); s != "2 agreeing of k=2 (alice, bob); 2 valid; 1 untrusted key" {
		t.Errorf("summary = %q", s)
	}
	waitFor(t, "console output", func() bool { return len(e.console("hello", vmm.ConsoleQuery{})) > 0 })
	if got := e.console("hello", vmm.ConsoleQuery{}); !slices.Equal(got, []string{"hello world from hello"}) {
		t.Errorf("console = %q", got)
	}
	waitFor(t, "uptime", func() bool { return e.info("hello").Uptime > 0 })
	if i := e.info("hello"); i.Uptime <= 0 || i.Started.IsZero() || i.Spec.MemMB != 32 || i.Spec.Tender != "process" {
		t.Errorf("info = %+v", i)
	}
	all, err := e.c.Info(ctx, "")
	if err != nil || len(all) != 1 {
		t.Errorf("info of all: %v, %v", all, err)
	}
	if _, err := e.create(vmm.Spec{Name: "hello", MemMB: 32}, img); !errors.Is(err, vmm.ErrExists) || !strings.Contains(err.Error(), "destroy it first") {
		t.Errorf("second create: %v", err)
	}

	if err := e.c.Destroy(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	if alive(info.PID) {
		t.Errorf("process %d still alive after destroy", info.PID)
	}
	if _, err := e.c.Info(ctx, "hello"); !errors.Is(err, vmm.ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("info after destroy: %v", err)
	}
	if err := e.c.Destroy(ctx, "hello"); !errors.Is(err, vmm.ErrNotFound) {
		t.Errorf("second destroy: %v", err)
	}
	for _, p := range []string{"unikernels/hello.json", "images/" + digest.String()} {
		if _, err := os.Stat(filepath.Join(e.dir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left after destroy: %v", p, err)
		}
	}
	audit := e.audit()
	if len(audit) != 1 || audit[0].Name != "hello" || audit[0].Op != "create" || !audit[0].Admitted || audit[0].Image != digest {
		t.Errorf("audit = %+v", audit)
	}
}

func TestCreateRefusedStartsNothing(t *testing.T) {
	e := newEnv(t)
	marker := filepath.Join(t.TempDir(), "started")
	img, digest := image(t, "touch "+marker+"; exec sleep 60")
	_, err := e.create(vmm.Spec{Name: "evil", MemMB: 32}, img)
	var refused *vmm.RemoteError
	if !errors.Is(err, vmm.ErrRefused) || !errors.As(err, &refused) {
		t.Fatalf("create of an unattested image: %v", err)
	}
	for _, want := range []string{"create of evil refused by the boot gate", "no build in the ledger has this hash\n", "need 2 agreeing trusted rebuilders", "nothing was started"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q:\n%s", want, err)
		}
	}
	if _, err := e.c.Info(ctx, "evil"); !errors.Is(err, vmm.ErrNotFound) {
		t.Errorf("info after refusal: %v", err)
	}
	// Every start follows an admission, and the one decision was a
	// refusal (audit log below); closing the daemon waits for all it
	// runs, so the image cannot start later either.
	e.restart()
	if _, err := os.Stat(marker); err == nil {
		t.Error("the refused image ran")
	}
	if _, err := os.Stat(filepath.Join(e.dir, "images", digest.String())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused image kept: %v", err)
	}
	audit := e.audit()
	if len(audit) != 1 || audit[0].Admitted || !strings.Contains(audit[0].Reason, "no build in the ledger") {
		t.Errorf("audit = %+v", audit)
	}

	// A failing gate is a refusal too.
	e.gate.allow(digest)
	e.gate.err = errors.New("bundle cache unreadable")
	if _, err := e.create(vmm.Spec{Name: "evil", MemMB: 32}, img); !errors.Is(err, vmm.ErrRefused) || !strings.Contains(err.Error(), "the gate failed, which counts as a refusal: bundle cache unreadable") {
		t.Errorf("create with a failing gate: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the image ran although the gate failed")
	}
}

func TestCreateInvalid(t *testing.T) {
	e := newEnv(t, func(c *vmm.Config) {
		c.Tenders = vmm.DefaultTenders()
		c.Tenders["solo5-hvt"] = &vmm.Solo5{Target: "hvt", Binary: "/nonexistent/solo5-hvt"}
	})
	img, digest := image(t, "exec sleep 60")
	e.gate.allow(digest)
	block := filepath.Join(t.TempDir(), "disk")
	for _, tc := range []struct {
		spec vmm.Spec
		want string
	}{
		{vmm.Spec{Name: "a b", MemMB: 32}, "name"},
		{vmm.Spec{Name: "x", MemMB: 0}, "--mem 0"},
		{vmm.Spec{Name: "x", MemMB: 32, ExitCodes: []int{2}}, "--exit-code only makes sense with --restart-on-fail"},
		{vmm.Spec{Name: "x", MemMB: 32, Tender: "xen"}, `unknown tender "xen"; choose one of [process qemu solo5-hvt solo5-spt]`},
		{vmm.Spec{Name: "x", MemMB: 32, Tender: "solo5-hvt"}, "tender solo5-hvt: exec: \"/nonexistent/solo5-hvt\""},
		{vmm.Spec{Name: "x", MemMB: 32, Blocks: []vmm.Block{{Name: "disk", File: block}}}, "create the file first"},
		{vmm.Spec{Name: "x", MemMB: 32, Blocks: []vmm.Block{{Name: "disk", File: "disk"}}}, "absolute path"},
		{vmm.Spec{Name: "x", MemMB: 32, Nets: []vmm.Net{{Name: "n", Bridge: "br0"}, {Name: "n", Bridge: "br1"}}}, "given twice"},
	} {
		_, err := e.create(tc.spec, img)
		if !errors.Is(err, vmm.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.spec, err, tc.want)
		}
	}
	if is, _ := e.c.Info(ctx, ""); len(is) != 0 {
		t.Errorf("unikernels after invalid creates: %+v", is)
	}
	if len(e.audit()) != 0 {
		t.Errorf("the gate was asked about invalid creates: %+v", e.audit())
	}
}

func TestConsole(t *testing.T) {
	e := newEnv(t, func(c *vmm.Config) { c.ConsoleLines = 5 })
	gate := filepath.Join(t.TempDir(), "go")
	img, digest := image(t, `for i in 1 2 3 4 5 6 7 8; do echo "a$i"; done
while [ ! -e "$1" ]; do sleep 0.01; done
echo b1; echo b2 >&2
exec sleep 60`)
	e.gate.allow(digest)
	e.mustCreate(vmm.Spec{Name: "talk", Args: []string{gate}}, img)
	waitFor(t, "a8", func() bool { l := e.console("talk", vmm.ConsoleQuery{}); return len(l) > 0 && l[len(l)-1] == "a8" })
	if got := e.console("talk", vmm.ConsoleQuery{}); !slices.Equal(got, []string{"a4", "a5", "a6", "a7", "a8"}) {
		t.Errorf("ring of 5 = %q", got)
	}
	if got := e.console("talk", vmm.ConsoleQuery{Count: 2}); !slices.Equal(got, []string{"a7", "a8"}) {
		t.Errorf("--count 2 = %q", got)
	}
	// --since: the lines printed after a8.
	var a8 vmm.Line
	if err := e.c.Console(ctx, "talk", vmm.ConsoleQuery{Count: 1}, func(l vmm.Line) error { a8 = l; return nil }); err != nil || a8.Text != "a8" {
		t.Fatalf("last line %+v, %v", a8, err)
	}
	since := a8.Time.Add(time.Nanosecond)

	// Follow from the last two lines on, then release the second phase.
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- e.c.Console(ctx, "talk", vmm.ConsoleQuery{Count: 2, Follow: true}, func(l vmm.Line) error {
			got <- l.Text
			return nil
		})
	}()
	var followed []string
	for len(followed) < 2 {
		followed = append(followed, <-got)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for len(followed) < 4 {
		select {
		case l := <-got:
			followed = append(followed, l)
		case <-time.After(10 * time.Second):
			t.Fatalf("follow got only %q", followed)
		}
	}
	if !slices.Equal(followed, []string{"a7", "a8", "b1", "b2"}) {
		t.Errorf("--follow = %q", followed)
	}
	if got := e.console("talk", vmm.ConsoleQuery{Since: since}); !slices.Equal(got, []string{"b1", "b2"}) {
		t.Errorf("--since = %q", got)
	}
	if err := e.c.Console(ctx, "talk", vmm.ConsoleQuery{Count: 1, Since: since}, func(vmm.Line) error { return nil }); !errors.Is(err, vmm.ErrInvalid) {
		t.Errorf("--count with --since: %v", err)
	}
	// Destroying the unikernel ends the follow.
	if err := e.c.Destroy(ctx, "talk"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("follow ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end with the unikernel")
	}
}

// TestSharedImage: an image stays while any unikernel uses it.
func TestSharedImage(t *testing.T) {
	e := newEnv(t)
	img, d := image(t, "exec sleep 60")
	e.gate.allow(d)
	stored := filepath.Join(e.dir, "images", d.String())
	e.mustCreate(vmm.Spec{Name: "a"}, img)
	e.mustCreate(vmm.Spec{Name: "b"}, img)
	if _, err := e.create(vmm.Spec{Name: "c", MemMB: 32, Tender: "nope"}, img); !errors.Is(err, vmm.ErrInvalid) {
		t.Fatal(err)
	}
	if _, err := e.c.SetPolicy(ctx, vmm.Policy{Unikernels: ptr(2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.create(vmm.Spec{Name: "c", MemMB: 32}, img); !errors.Is(err, vmm.ErrLimit) {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if _, err := os.Stat(stored); err != nil {
			t.Fatalf("image gone before destroying %s: %v", name, err)
		}
		if err := e.c.Destroy(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(stored); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("image kept after the last destroy: %v", err)
	}
}

// TestRelativeStateDir: a state directory given relative to where the
// daemon starts still boots images (tenders run elsewhere).
func TestRelativeStateDir(t *testing.T) {
	t.Chdir(t.TempDir())
	e := newEnv(t, func(c *vmm.Config) { c.StateDir = "state" })
	img, digest := image(t, `echo up; exec sleep 60`)
	e.gate.allow(digest)
	e.mustCreate(vmm.Spec{Name: "rel"}, img)
	waitFor(t, "console output", func() bool { return len(e.console("rel", vmm.ConsoleQuery{})) > 0 })
	if got := e.console("rel", vmm.ConsoleQuery{}); !slices.Equal(got, []string{"up"}) {
		t.Fatalf("console = %q", got)
	}
}

// TestConsoleLongLine: a line longer than the console keeps is split, and
// the unikernel keeps running (it must never get SIGPIPE from its console).
func TestConsoleLongLine(t *testing.T) {
	e := newEnv(t)
	img, digest := image(t, `head -c 200000 /dev/zero | tr '\0' x; echo; echo after; exec sleep 60`)
	e.gate.allow(digest)
	e.mustCreate(vmm.Spec{Name: "long"}, img)
	waitFor(t, "the line after", func() bool {
		got := e.console("long", vmm.ConsoleQuery{})
		return len(got) > 0 && got[len(got)-1] == "after"
	})
	got := e.console("long", vmm.ConsoleQuery{})
	total := 0
	for _, l := range got[:len(got)-1] {
		if len(l) > 64<<10 {
			t.Fatalf("a console line of %d bytes", len(l))
		}
		total += len(l)
	}
	if total != 200000 {
		t.Fatalf("kept %d of 200000 bytes of the long line", total)
	}
	if i := e.info("long"); i.State != vmm.StateRunning {
		t.Fatalf("the unikernel died: %+v", i)
	}
}
