package worker_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/buildledger/buildledger/farm/client"
	"github.com/buildledger/buildledger/farm/proto"
	"github.com/buildledger/buildledger/farm/sandbox"
	"github.com/buildledger/buildledger/farm/sandbox/sandboxtest"
	"github.com/buildledger/buildledger/farm/scheduler"
	"github.com/buildledger/buildledger/farm/worker"
	"github.com/buildledger/buildledger/httpapi/api"
	"github.com/buildledger/buildledger/httpapi/httpapitest"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/event"
)

func needBwrap(t *testing.T) {
	t.Helper()
	sandboxtest.Require(t, sandbox.Config{}.Check(context.Background()))
}

// farmOn runs a real ledger and a scheduler over dir that uploads to it,
// on loopback, until the test ends.
// The farm signs what it built with the key "farm", registered there.
func farmOn(t *testing.T, dir string) (*httpapitest.Server, *scheduler.Scheduler, client.Dialer) {
	t.Helper()
	srv := httpapitest.New(t)
	s, err := scheduler.New(scheduler.Config{Dir: dir, Tick: time.Hour, RetryUpload: 50 * time.Millisecond,
		Upload: &scheduler.LedgerUploader{Client: srv.Client, Cred: httpapitest.Farm,
			Signer: srv.Key("farm", true), BuilderID: "https://farm.test/"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		s.Close()
	})
	return srv, s, client.Dialer{Addr: ln.Addr().String(), Timeout: 5 * time.Second}
}

func ptr(s string) *string { return &s }

// TestFarmEndToEnd runs a real ledger, the scheduler and sandboxed workers
// on two platforms, and checks what the ledger records.
func TestFarmEndToEnd(t *testing.T) {
	needBwrap(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, scheduler.TemplatePrefix+"p2"),
		[]byte("mkdir -p bin\necho '%%OPAM_PACKAGE%% for %%PLATFORM%%' > bin/pkg.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, s, d := farmOn(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A listener on the host's loopback that no job may reach.
	probe := sandboxtest.Listen(t)
	port := probe.Port

	do := func(cmd proto.Cmd) {
		t.Helper()
		if err := client.Do(ctx, d, cmd); err != nil {
			t.Fatal(err)
		}
	}
	do(proto.Schedule{Period: proto.Daily, Job: proto.ScriptJob{Name: "hello", Platform: ptr("p1"),
		Script: "mkdir -p bin\necho hello > bin/hello.txt\necho built hello\n"}})
	do(proto.Schedule{Period: proto.Weekly, Job: proto.ScriptJob{Name: "broken", Platform: ptr("p1"),
		Script: "echo failing\nexit 3\n"}})
	do(proto.Schedule{Period: proto.Weekly, Job: proto.ScriptJob{Name: "net", Platform: ptr("p1"),
		Script: "#!/bin/bash\necho > /dev/tcp/127.0.0.1/" + port + " || exit 7\necho connected\n"}})
	do(proto.Schedule{Period: proto.Weekly, Job: proto.ScriptJob{Name: "slow", Platform: ptr("p2"),
		Script: "echo sleeping\nsleep 60\n"}})
	// The orb build goes to p2, the platform with a template, once p2's
	// queue exists.
	do(proto.ScheduleOrbBuild{Period: proto.Daily, Job: proto.OrbBuildJob{Name: "orbish", OpamPackage: "hello"}})

	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	done := make(chan struct{}, 2)
	for _, p := range []string{"p1", "p2"} {
		cfg := worker.Config{Scheduler: d, Platform: p, Sandbox: &sandbox.Config{}, Root: filepath.Join(t.TempDir(), "root"),
			Timeout: 3 * time.Second, SkipSystem: true}
		go func() {
			if err := worker.Run(wctx, cfg); err != nil {
				t.Error(err)
			}
			done <- struct{}{}
		}()
	}

	want := map[string]func(event.Result) bool{
		"hello":  func(r event.Result) bool { return r.Kind == event.ResultExited && r.Code == 0 },
		"broken": func(r event.Result) bool { return r.Kind == event.ResultExited && r.Code == 3 },
		"net":    func(r event.Result) bool { return r.Kind == event.ResultExited && r.Code == 7 },
		"slow":   func(r event.Result) bool { return r.Kind == event.ResultMessage && r.Message == "timeout" },
		"orbish": func(r event.Result) bool { return r.Kind == event.ResultExited && r.Code == 0 },
	}
	builds := map[string]ledger.BuildEntry{}
	deadline := time.Now().Add(60 * time.Second)
	for len(builds) < len(want) && time.Now().Before(deadline) {
		for job := range want {
			bs, err := srv.L.Ledger.JobBuilds(job, ledger.BuildFilter{})
			if err == nil && len(bs) > 0 {
				builds[job] = bs[0]
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	wcancel()
	<-done
	<-done
	for job, ok := range want {
		b, found := builds[job]
		if !found {
			t.Errorf("job %s: no build in the ledger; scheduler: %+v", job, s.Info())
			continue
		}
		if !ok(b.Event.Result) {
			t.Errorf("job %s: result %+v", job, b.Event.Result)
		}
		if b.Event.Inputs.BuildEnvironment == nil {
			t.Errorf("job %s: no build-environment recorded", job)
		}
	}
	if n := probe.Accepted(); n != 0 {
		t.Fatalf("a sandboxed job reached the host's loopback %d times", n)
	}
	if b := builds["hello"]; b.Event.MainBinary == nil || *b.Event.MainBinary != "bin/hello.txt" || b.Event.Platform != "p1" {
		t.Errorf("hello: %+v", b.Event)
	}
	// The farm's signed provenance of each build is in the log, verdict
	// built, naming every artifact with its recorded digest.
	// (It is submitted right after the build: wait for it.)
	for job, b := range builds {
		var atts []api.ProvenAttestation
		var err error
		for deadline := time.Now().Add(10 * time.Second); len(atts) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			atts, err = srv.Client.AttestationsOfBuild(ctx, b.Event.UUID)
		}
		if err != nil || len(atts) != 1 || atts[0].KeyName != "farm" || atts[0].Verdict != event.VerdictBuilt || len(atts[0].Subjects) != len(b.Event.Artifacts) {
			t.Errorf("job %s: provenance %+v %v", job, atts, err)
		}
	}
	if b := builds["orbish"]; b.Event.MainBinary == nil || *b.Event.MainBinary != "bin/pkg.txt" || b.Event.Platform != "p2" {
		t.Errorf("orbish: %+v", b.Event)
	}
	for job := range want {
		if bs, _ := srv.L.Ledger.JobBuilds(job, ledger.BuildFilter{}); len(bs) != 1 {
			t.Errorf("job %s recorded %d times", job, len(bs))
		}
	}
}

// TestKilledWorkerJobBuiltOnce: a worker that dies mid-job loses nothing;
// the job goes back and the next worker builds it, once.
func TestKilledWorkerJobBuiltOnce(t *testing.T) {
	needBwrap(t)
	srv, s, d := farmOn(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := client.Do(ctx, d, proto.Schedule{Period: proto.Daily, Job: proto.ScriptJob{Name: "twice", Platform: ptr("p"),
		Script: "echo started\nsleep 1\nmkdir -p bin\necho done > bin/out\n"}}); err != nil {
		t.Fatal(err)
	}
	cfg := worker.Config{Scheduler: d, Platform: "p", Sandbox: &sandbox.Config{}, Root: filepath.Join(t.TempDir(), "root"), SkipSystem: true}
	first, kill := context.WithCancel(ctx)
	go worker.Once(first, cfg)
	for deadline := time.Now().Add(20 * time.Second); len(s.Info().Running) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first worker never started the job")
		}
	}
	kill()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		in := s.Info()
		if len(in.Running) == 0 && len(in.Queues) == 1 && len(in.Queues[0].Jobs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job did not go back: %+v", in)
		}
	}
	cfg.Root = filepath.Join(t.TempDir(), "root")
	if err := worker.Once(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		bs, _ := srv.L.Ledger.JobBuilds("twice", ledger.BuildFilter{})
		if len(bs) == 1 && bs[0].Event.Result.Kind == event.ResultExited && bs[0].Event.Result.Code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("builds of twice: %+v", bs)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if bs, _ := srv.L.Ledger.JobBuilds("twice", ledger.BuildFilter{}); len(bs) != 1 {
		t.Fatalf("recorded %d times", len(bs))
	}
}
