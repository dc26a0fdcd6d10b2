package scheduler_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/farm/client"
	"github.com/buildledger/buildledger/farm/proto"
	"github.com/buildledger/buildledger/farm/scheduler"
	"github.com/buildledger/buildledger/ledger/builder"
)

type farm struct {
	t      *testing.T
	s      *scheduler.Scheduler
	d      client.Dialer
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs a scheduler on 127.0.0.1:0 over dir.
func start(t *testing.T, cfg scheduler.Config) *farm {
	t.Helper()
	if cfg.Tick == 0 {
		cfg.Tick = time.Hour
	}
	if cfg.RetryUpload == 0 {
		cfg.RetryUpload = 20 * time.Millisecond
	}
	s, err := scheduler.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &farm{t: t, s: s, d: client.Dialer{Addr: ln.Addr().String(), Timeout: 5 * time.Second}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		if err := s.Serve(ctx, ln); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(f.stop)
	return f
}

func (f *farm) stop() {
	f.cancel()
	<-f.done
	f.s.Close()
}

func (f *farm) do(cmd proto.Cmd) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return client.Do(ctx, f.d, cmd)
}

func (f *farm) info() proto.InfoReply {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in, err := client.Info(ctx, f.d)
	if err != nil {
		f.t.Fatal(err)
	}
	return in
}

func queue(in proto.InfoReply, platform string) []string {
	for _, q := range in.Queues {
		if q.Platform == platform {
			var names []string
			for _, j := range q.Jobs {
				if j.Orb != nil {
					names = append(names, j.Orb.Name)
				} else {
					names = append(names, j.Script.Name)
				}
			}
			return names
		}
	}
	return nil
}

// worker is builder-worker's side of the protocol, driven by the test.
type worker struct {
	t  *testing.T
	c  net.Conn
	js proto.JobSchedule
}

// take connects as a worker of platform and waits for a job.
func (f *farm) take(platform string) *worker {
	f.t.Helper()
	c, err := f.d.Dial(context.Background(), proto.RoleWorker)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := proto.WriteCmd(c, proto.JobRequested{Platform: platform}, 1<<20); err != nil {
		f.t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	cmd, err := proto.ReadCmd(c, 1<<20)
	if err != nil {
		f.t.Fatal(err)
	}
	js, ok := cmd.(proto.JobSchedule)
	if !ok {
		f.t.Fatalf("got %T, want a job", cmd)
	}
	return &worker{t: f.t, c: c, js: js}
}

func (w *worker) send(cmd proto.Cmd) {
	w.t.Helper()
	if err := proto.WriteCmd(w.c, cmd, 1<<30); err != nil {
		w.t.Fatal(err)
	}
}

func ptr(s string) *string { return &s }

func script(name, platform, body string) proto.Schedule {
	return proto.Schedule{Period: proto.Daily, Job: proto.ScriptJob{Name: name, Script: body, Platform: ptr(platform)}}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestJobRunsObservedAndKept(t *testing.T) {
	dir := t.TempDir()
	f := start(t, scheduler.Config{Dir: dir})
	if err := f.do(script("hello", "debian-12", "echo hi\n")); err != nil {
		t.Fatal(err)
	}
	w := f.take("debian-12")
	if w.js.Job.Name != "hello" || w.js.Job.Script != "echo hi\n" || *w.js.Job.Platform != "debian-12" {
		t.Fatalf("job %+v", w.js.Job)
	}
	in := f.info()
	if len(in.Running) != 1 || in.Running[0].UUID != w.js.UUID || len(queue(in, "debian-12")) != 0 {
		t.Fatalf("info %+v", in)
	}
	w.send(proto.Output{UUID: w.js.UUID, Line: "first"})
	var mu sync.Mutex
	var seen []string
	observed := make(chan error, 1)
	go func() {
		observed <- client.Observe(context.Background(), f.d, w.js.UUID, func(_ time.Duration, text string) {
			mu.Lock()
			seen = append(seen, text)
			mu.Unlock()
		})
	}()
	waitFor(t, "the observer to get the buffered line", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 1 })
	w.send(proto.Output{UUID: w.js.UUID, Line: "second"})
	w.send(proto.JobFinished{UUID: w.js.UUID, Result: builder.Result{Kind: builder.ResultExited}, Data: []builder.File{{Path: "bin/hello", Data: []byte("binary")}}})
	if err := <-observed; err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, "|") != "first|second|exited 0" {
		t.Fatalf("observer saw %q", seen)
	}
	p := filepath.Join(dir, "builds", "hello", w.js.UUID.String(), "full")
	waitFor(t, "the build on disk", func() bool { _, err := os.Stat(p); return err == nil })
	der, _ := os.ReadFile(p)
	ex, err := builder.Parse(der, builder.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if ex.UUID != w.js.UUID || ex.Job.Name != "hello" || ex.Job.Platform != "debian-12" || len(ex.Console) != 2 ||
		ex.Console[1].Data != "second" || len(ex.Output) != 1 || string(ex.Output[0].Data) != "binary" {
		t.Fatalf("kept build %+v", ex)
	}
	if len(f.info().Running) != 0 {
		t.Fatal("still running")
	}
	// Observing a job that is not running fails as builder's does.
	err = client.Observe(context.Background(), f.d, uuid.New(), func(time.Duration, string) {})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Msg != "uuid not found" {
		t.Fatalf("observe unknown: %v", err)
	}
}

func TestWorkerGoneJobBackOnce(t *testing.T) {
	f := start(t, scheduler.Config{Dir: t.TempDir()})
	for _, n := range []string{"a", "b"} {
		if err := f.do(script(n, "p", "true")); err != nil {
			t.Fatal(err)
		}
	}
	w := f.take("p")
	if w.js.Job.Name != "a" {
		t.Fatalf("took %s", w.js.Job.Name)
	}
	w.send(proto.Output{UUID: w.js.UUID, Line: "working"})
	w.c.Close()
	// Back at the end of its queue, as builder puts it (at the front a
	// job that kills its workers would starve the platform).
	waitFor(t, "the job back in its queue", func() bool { return strings.Join(queue(f.info(), "p"), ",") == "b,a" })
	if n := len(f.info().Running); n != 0 {
		t.Fatalf("%d running", n)
	}
	// Executing a job that is queued already moves it, it is not added twice.
	if err := f.do(proto.Execute{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if q := strings.Join(queue(f.info(), "p"), ","); q != "a,b" {
		t.Fatalf("queue %s", q)
	}
}

// TestJobThatKillsItsWorkers: after MaxAttempts hand-outs without a
// result the job is recorded as failed, not put back, and the other
// jobs of the platform run.
func TestJobThatKillsItsWorkers(t *testing.T) {
	dir := t.TempDir()
	f := start(t, scheduler.Config{Dir: dir})
	for _, n := range []string{"bad", "good"} {
		if err := f.do(script(n, "p", "true")); err != nil {
			t.Fatal(err)
		}
	}
	var last uuid.UUID
	for i := 0; i < scheduler.MaxAttempts; i++ {
		w := f.take("p")
		if w.js.Job.Name != "bad" {
			// good ran in between: finish it.
			w.send(proto.JobFinished{UUID: w.js.UUID, Result: builder.Result{Kind: builder.ResultExited}})
			w = f.take("p")
		}
		if w.js.Job.Name != "bad" {
			t.Fatalf("attempt %d: got %s", i+1, w.js.Job.Name)
		}
		last = w.js.UUID
		w.c.Close()
		waitFor(t, "the worker's end", func() bool { return len(f.info().Running) == 0 })
	}
	p := filepath.Join(dir, "builds", "bad", last.String(), "full")
	waitFor(t, "the failure recorded", func() bool { _, err := os.Stat(p); return err == nil })
	der, _ := os.ReadFile(p)
	ex, err := builder.Parse(der, builder.Limits{})
	if err != nil || ex.Result.Kind != builder.ResultMsg || !strings.Contains(ex.Result.Msg, "handed out 3 times without a result") {
		t.Fatalf("recorded %+v %v", ex, err)
	}
	if q := queue(f.info(), "p"); slices.Contains(q, "bad") {
		t.Fatalf("bad is still queued: %v", q)
	}
}

// TestUnrecordableReport: a worker report builder's format cannot hold (a
// path with a backslash) is recorded as a failed build without files,
// not run again.
func TestUnrecordableReport(t *testing.T) {
	dir := t.TempDir()
	f := start(t, scheduler.Config{Dir: dir})
	if err := f.do(script("a", "p", "true")); err != nil {
		t.Fatal(err)
	}
	w := f.take("p")
	w.send(proto.JobFinished{UUID: w.js.UUID, Result: builder.Result{Kind: builder.ResultExited},
		Data: []builder.File{{Path: `bin/a\b`, Data: []byte("x")}}})
	p := filepath.Join(dir, "builds", "a", w.js.UUID.String(), "full")
	waitFor(t, "the build recorded", func() bool { _, err := os.Stat(p); return err == nil })
	der, _ := os.ReadFile(p)
	ex, err := builder.Parse(der, builder.Limits{})
	if err != nil || ex.Result.Kind != builder.ResultMsg || len(ex.Output) != 0 || !strings.Contains(ex.Result.Msg, "could not be recorded") {
		t.Fatalf("recorded %+v %v", ex, err)
	}
	if q := queue(f.info(), "p"); len(q) != 0 {
		t.Fatalf("queued again: %v", q)
	}
}

func TestIdleWorkerGoneTakesNothing(t *testing.T) {
	f := start(t, scheduler.Config{Dir: t.TempDir()})
	c, err := f.d.Dial(context.Background(), proto.RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.WriteCmd(c, proto.JobRequested{Platform: "p"}, 1<<20); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	c.Close()
	time.Sleep(50 * time.Millisecond)
	if err := f.do(script("a", "p", "true")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	in := f.info()
	if len(in.Running) != 0 || strings.Join(queue(in, "p"), ",") != "a" {
		t.Fatalf("a job went to a worker that had left: %+v", in)
	}
}

func TestRestartKeepsScheduleAndRequeuesRunning(t *testing.T) {
	dir := t.TempDir()
	f := start(t, scheduler.Config{Dir: dir})
	if err := f.do(script("a", "p", "true")); err != nil {
		t.Fatal(err)
	}
	if err := f.do(proto.ScheduleOrbBuild{Period: proto.Weekly, Job: proto.OrbBuildJob{Name: "o", OpamPackage: "hello"}}); err != nil {
		t.Fatal(err)
	}
	w := f.take("p")
	_ = w
	// The scheduler stops (as after SIGKILL: the state on disk is what
	// it saved) while the worker runs a.
	f.stop()
	w.c.Close()
	g := start(t, scheduler.Config{Dir: dir})
	in := g.info()
	if len(in.Schedule) != 2 || strings.Join(queue(in, "p"), ",") != "a" {
		t.Fatalf("after restart: %+v", in)
	}
	// Once: a second restart does not queue it again.
	g.stop()
	h := start(t, scheduler.Config{Dir: dir})
	if q := strings.Join(queue(h.info(), "p"), ","); q != "a" {
		t.Fatalf("queue %s", q)
	}
}

func TestCommandFailures(t *testing.T) {
	f := start(t, scheduler.Config{Dir: t.TempDir()})
	if err := f.do(script("a", "p", "true")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cmd  proto.Cmd
		want string
	}{
		{script("a", "p", "true"), "job name already used"},
		{proto.Unschedule{Name: "x"}, "unknown job x"},
		{proto.Execute{Name: "x"}, "execute failed: job not found"},
		{proto.Execute{Name: "a", Platform: ptr("q")}, "execute failed: job is for a different platform: p"},
		{proto.Reschedule{Name: "x", Next: proto.Time{T: time.Now()}}, "couldn't find job x"},
		{proto.DropPlatform{Platform: "q"}, "unknown platform q"},
		{proto.UndropPlatform{Platform: "q"}, "unknown platform q"},
		{script("../x", "p", "true"), "job name: "},
		{script("b", "p", ""), "empty script"},
		{script("b", "p", strings.Repeat("#", scheduler.MaxScript+1)), "script of 262145 bytes exceeds 262144"},
	} {
		err := f.do(c.cmd)
		var ce *client.Error
		if !errors.As(err, &ce) || !strings.HasPrefix(ce.Msg, c.want) {
			t.Errorf("%T: got %v, want %q", c.cmd, err, c.want)
		}
	}
	if err := f.do(proto.DropPlatform{Platform: "p"}); err != nil {
		t.Fatal(err)
	}
	in := f.info()
	if len(in.Schedule) != 0 || len(in.Queues) != 0 || strings.Join(in.DroppedPlatforms, ",") != "p" {
		t.Fatalf("after drop: %+v", in)
	}
	err := f.do(script("c", "p", "true"))
	if err == nil || err.Error() != "platform dropped; can't schedule jobs" {
		t.Fatalf("schedule on a dropped platform: %v", err)
	}
	if err := f.do(proto.UndropPlatform{Platform: "p"}); err != nil {
		t.Fatal(err)
	}
}

func TestOrbBuildThroughTemplate(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "orb-build.template.p"), []byte("build %%OPAM_PACKAGE%% on %%PLATFORM%%\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := start(t, scheduler.Config{Dir: dir})
	if err := f.do(proto.ScheduleOrbBuild{Period: proto.Daily, Job: proto.OrbBuildJob{Name: "o", OpamPackage: "hello"}}); err != nil {
		t.Fatal(err)
	}
	w := f.take("p")
	if w.js.Job.Name != "o" || w.js.Job.Script != "build hello on p\n" {
		t.Fatalf("job %+v", w.js.Job)
	}
}

func TestWrongVersionGetsNoAnswer(t *testing.T) {
	f := start(t, scheduler.Config{Dir: t.TempDir()})
	c, err := net.Dial("tcp", f.d.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := proto.WriteCmd(c, proto.ClientHello{Role: proto.RoleClient, Version: 12}, 1<<20); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := proto.ReadCmd(c, 1<<20); err == nil {
		t.Fatal("an answer to another version")
	}
}

type flaky struct {
	fails   atomic.Int32
	refuse  bool
	uploads atomic.Int32
	got     sync.Map
}

func (u *flaky) Upload(_ context.Context, der []byte, id uuid.UUID) error {
	if u.fails.Add(-1) >= 0 {
		return errors.New("connection refused")
	}
	if u.refuse {
		return scheduler.ErrPermanent
	}
	if _, err := builder.Parse(der, builder.Limits{}); err != nil {
		return err
	}
	u.uploads.Add(1)
	u.got.Store(id, true)
	return nil
}

func finishOne(t *testing.T, f *farm) uuid.UUID {
	if err := f.do(script("a", "p", "true")); err != nil {
		t.Fatal(err)
	}
	w := f.take("p")
	w.send(proto.JobFinished{UUID: w.js.UUID, Result: builder.Result{Kind: builder.ResultExited, Code: 1}})
	return w.js.UUID
}

func TestUploadRetried(t *testing.T) {
	dir := t.TempDir()
	u := &flaky{}
	u.fails.Store(3)
	f := start(t, scheduler.Config{Dir: dir, Upload: u})
	id := finishOne(t, f)
	waitFor(t, "the upload", func() bool { _, ok := u.got.Load(id); return ok })
	waitFor(t, "the upload queue to empty", func() bool { p, _ := f.s.Pending(); return len(p) == 0 })
	if n := u.uploads.Load(); n != 1 {
		t.Fatalf("%d uploads", n)
	}
}

func TestUploadRefusedKept(t *testing.T) {
	dir := t.TempDir()
	f := start(t, scheduler.Config{Dir: dir, Upload: &flaky{refuse: true}})
	id := finishOne(t, f)
	// The refusal is written first, then the build moved beside it.
	p := filepath.Join(dir, "failed", id.String()+".full")
	waitFor(t, "the refused build on disk", func() bool { _, err := os.Stat(p); return err == nil })
	if _, err := os.Stat(filepath.Join(dir, "failed", id.String()+".err")); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedState: a state file that does not parse, or names a job the
// scheduler would refuse, stops the start with a message saying where.
func TestDamagedState(t *testing.T) {
	for name, content := range map[string]string{
		"not json":      `{"version":1,`,
		"other version": `{"version":7}`,
		"bad queue job": `{"version":1,"queues":{"p":[{"name":"../x","script":"true","platform":"p"}]}}`,
		"bad platform":  `{"version":1,"queues":{"a/b":[]}}`,
		"bad running":   `{"version":1,"running":[{"uuid":"6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b","platform":"p","queued":{"name":"x","platform":"p"}}]}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := scheduler.New(scheduler.Config{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), "state.json") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
