// Package worker is the build farm's worker: it asks a scheduler (package
// farm/scheduler, or Robur's builder-server) for a job for its platform,
// runs it the way orb builds (package rebuilder: a fixed build root, a
// normalised environment, build-environment, system-packages and
// opam-switch captured, the files under bin/ collected) inside a sandbox
// (package farm/sandbox), streams every console line to the scheduler as
// it is printed, and reports how the job ended with its files. The
// protocol is builder-worker's (package farm/proto), so this worker serves
// builder-server too.
//
// builder-worker runs one job per process and leaves restarts to the
// service manager; Run loops with a growing delay after failures, and
// Once runs one job.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/farm/client"
	"github.com/buildledger/buildledger/farm/proto"
	"github.com/buildledger/buildledger/farm/sandbox"
	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/buildledger/buildledger/rebuilder"
)

// DefaultSourceDateEpoch is the SOURCE_DATE_EPOCH of jobs that do not set
// their own: 1980-01-01, the earliest time zip archives hold. Any fixed
// value makes the recorded build environment repeatable; a rebuild takes
// it from the record.
const DefaultSourceDateEpoch = 315532800

// Config configures a worker.
type Config struct {
	Scheduler client.Dialer
	// Platform is what the worker asks jobs for, e.g. "debian-12".
	Platform string
	// Sandbox confines the jobs; nil is refused (see farm/sandbox: an
	// operator who wants unconfined jobs says so with Unsandboxed).
	Sandbox *sandbox.Config
	// Root is the build root (rebuilder.Options.Root); "" means
	// rebuilder.DefaultRoot. Two workers on one host need two roots.
	Root string
	// Timeout stops a job (recorded with the result "timeout"); 0 means
	// rebuilder.DefaultTimeout (1 h, as builder-worker).
	Timeout time.Duration
	// SourceDateEpoch is exported to jobs; 0 means DefaultSourceDateEpoch.
	SourceDateEpoch int64
	// SkipSystem leaves system-packages out (hosts outside the Debian
	// family and FreeBSD).
	SkipSystem bool
	// RunAs runs the jobs as this user (the worker must be root).
	RunAs *syscall.Credential
	// MaxOutputSize bounds the files of a job (rebuilder's default if 0).
	MaxOutputSize int64
	Log           *slog.Logger
}

func (cfg *Config) log() *slog.Logger {
	if cfg.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return cfg.Log
}

// Run serves jobs until ctx ends: one connection per job, as
// builder-worker, with a delay growing from one second to a minute after
// a failure to reach the scheduler.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.check(ctx); err != nil {
		return err
	}
	delay := time.Second
	for ctx.Err() == nil {
		err := Once(ctx, cfg)
		if ctx.Err() != nil {
			break
		}
		if err == nil {
			delay = time.Second
			continue
		}
		cfg.log().Warn("worker: "+err.Error(), "retry in", delay)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
	return nil
}

func (cfg *Config) check(ctx context.Context) error {
	if cfg.Sandbox == nil {
		return errors.New("worker: no sandbox configured (jobs run in bubblewrap; an operator who accepts unconfined jobs must say so)")
	}
	if err := cfg.Sandbox.CheckAs(ctx, cfg.RunAs); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	return nil
}

// conn serialises the worker's messages on one connection.
type conn struct {
	mu  sync.Mutex
	c   net.Conn
	err error
}

func (c *conn) send(cmd proto.Cmd) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	_ = c.c.SetWriteDeadline(time.Now().Add(5 * time.Minute))
	c.err = proto.WriteCmd(c.c, cmd, 1<<62)
	return c.err
}

// lineWriter turns the job's console (newline-terminated lines from
// rebuilder.Run) into Output messages; a failed send stops the job, as
// builder-worker kills its job when the scheduler is gone.
type lineWriter struct {
	c    *conn
	job  uuid.UUID
	stop context.CancelFunc
}

func (w *lineWriter) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	if err := w.c.send(proto.Output{UUID: w.job, Line: line}); err != nil {
		w.stop()
	}
	return len(p), nil
}

// Once asks for one job, waits until the scheduler gives one, runs it and
// reports it.
func Once(ctx context.Context, cfg Config) error {
	nc, err := cfg.Scheduler.Dial(ctx, proto.RoleWorker)
	if err != nil {
		return err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	if err := proto.WriteCmd(nc, proto.JobRequested{Platform: cfg.Platform}, 1<<20); err != nil {
		return fmt.Errorf("asking for a job: %w", err)
	}
	cmd, err := proto.ReadCmd(nc, 64<<20)
	if err != nil {
		return fmt.Errorf("waiting for a job: %w", err)
	}
	js, ok := cmd.(proto.JobSchedule)
	if !ok {
		return fmt.Errorf("bad communication: expected a job, got message [%d]", cmd.Tag())
	}
	log := cfg.log().With("job", js.Job.Name, "uuid", js.UUID)
	log.Info("job received")
	c := &conn{c: nc}
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res, data := run(jctx, cfg, js, &lineWriter{c: c, job: js.UUID, stop: cancel})
	if ctx.Err() != nil {
		// Stopping: the scheduler puts the job back when the
		// connection closes.
		return ctx.Err()
	}
	if jctx.Err() != nil {
		return fmt.Errorf("job %s stopped: the scheduler connection failed: %v", js.Job.Name, c.err)
	}
	if err := c.send(proto.JobFinished{UUID: js.UUID, Result: res, Data: data}); err != nil {
		return fmt.Errorf("reporting job %s: %w", js.Job.Name, err)
	}
	log.Info("job finished", "result", res, "files", len(data))
	return nil
}

// run runs a job and returns its result and files. A job that cannot run
// is a result too: the message says why, as builder-worker reports a job
// whose directory cannot be prepared.
func run(ctx context.Context, cfg Config, js proto.JobSchedule, con *lineWriter) (builder.Result, []builder.File) {
	platform := cfg.Platform
	if js.Job.Platform != nil && *js.Job.Platform != platform {
		return builder.Result{Kind: builder.ResultMsg, Msg: fmt.Sprintf("job for platform %q given to a worker of %q", *js.Job.Platform, platform)}, nil
	}
	sde := cfg.SourceDateEpoch
	if sde == 0 {
		sde = DefaultSourceDateEpoch
	}
	r, err := rebuilder.Run(ctx, rebuilder.Spec{
		Job:             js.Job.Name,
		Script:          []byte(js.Job.Script),
		SourceDateEpoch: sde,
		Platform:        platform,
	}, rebuilder.Options{
		Root:          cfg.Root,
		Timeout:       cfg.Timeout,
		SkipSystem:    cfg.SkipSystem,
		RunAs:         cfg.RunAs,
		Sandbox:       cfg.Sandbox,
		MaxOutputSize: cfg.MaxOutputSize,
		Console:       con,
	})
	if err != nil {
		msg := err.Error()
		_, _ = con.Write([]byte("worker: " + msg + "\n"))
		return builder.Result{Kind: builder.ResultMsg, Msg: msg}, nil
	}
	return r.Exec.Result, r.Exec.Output
}
