package vmm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/buildledger/buildledger/cas/digest"
)

// A session is one stretch of a unikernel's life under supervision: a
// boot and the restarts after it, until the session is canceled (destroy,
// restart, update, Close) or the unikernel stays down. Whoever cancels a
// session kills its process and waits for done.
type session struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the session's goroutine returns
}

func (d *Daemon) newSession() *session {
	ctx, cancel := context.WithCancel(d.ctx)
	return &session{ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// process is one run of a tender.
type process struct {
	pid     int
	taps    []string
	started time.Time
	exited  chan struct{} // closed when the process was reaped
	ended   time.Time     // set before exited is closed
	status  ExitStatus    // set before exited is closed
}

// errStopped is a start that found its session canceled.
var errStopped = errors.New("the unikernel was stopped")

// startSession starts img in a new session that u now owns. The caller
// either hands the session to supervise or ends it.
func (d *Daemon) startSession(u *unikernel, img digest.Digest) (*session, *process, error) {
	s := d.newSession()
	u.mu.Lock()
	u.sess = s
	u.mu.Unlock()
	p, err := d.start(s.ctx, u, img)
	if err != nil {
		s.cancel()
		close(s.done)
		u.setDown(StateFailed, err)
		return nil, nil, err
	}
	return s, p, nil
}

// start runs the tender for img. The process starts only if ctx is not
// canceled, checked under u.mu, which halt holds while it cancels: a
// canceled session never starts anything.
func (d *Daemon) start(ctx context.Context, u *unikernel, img digest.Digest) (*process, error) {
	u.mu.Lock()
	spec := u.rec.Spec
	u.mu.Unlock()
	tender, err := d.tender(spec.Tender)
	if err != nil {
		return nil, err
	}
	l := &Launch{Image: d.store.imagePath(img), Spec: &spec}
	var taps []string
	if tender.Taps() && len(spec.Nets) > 0 {
		l.Taps = map[string]string{}
		for _, n := range spec.Nets {
			tap, err := d.cfg.Network.AddTap(ctx, n.Bridge)
			if err != nil {
				d.removeTaps(taps)
				return nil, fmt.Errorf("network device %s on bridge %s: %w", n.Name, n.Bridge, err)
			}
			taps = append(taps, tap)
			l.Taps[n.Name] = tap
		}
	}
	fail := func(err error) (*process, error) {
		d.removeTaps(taps)
		return nil, err
	}
	argv, env, err := tender.Command(l)
	if err != nil {
		return fail(err)
	}
	if d.cfg.Taskset != "" {
		argv = append([]string{d.cfg.Taskset, "-c", strconv.Itoa(spec.CPU)}, argv...)
	}
	dir := d.store.runDir(u.name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + d.cfg.Path, "VMM_NAME=" + u.name}, env...)
	// Its own process group, so a stop reaches whatever it spawned; and
	// killed if the daemon dies, which boots it again at its next start.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw

	u.mu.Lock()
	if ctx.Err() != nil || u.gone {
		u.mu.Unlock()
		pr.Close()
		pw.Close()
		return fail(errStopped)
	}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		u.mu.Unlock()
		pr.Close()
		return fail(fmt.Errorf("starting the tender %s: %w", argv[0], err))
	}
	p := &process{pid: cmd.Process.Pid, taps: taps, started: d.cfg.Now(), exited: make(chan struct{})}
	u.proc, u.state, u.reason, u.nextRestart = p, StateRunning, "", time.Time{}
	u.mu.Unlock()

	go func() {
		u.console.copy(pr)
		pr.Close()
	}()
	go func() {
		cmd.Wait()
		p.status = exitStatus(cmd.ProcessState)
		p.ended = d.cfg.Now()
		close(p.exited)
	}()
	return p, nil
}

func exitStatus(ps *os.ProcessState) ExitStatus {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ExitStatus{Code: -1, Signal: ws.Signal().String()}
	}
	return ExitStatus{Code: ps.ExitCode()}
}

func (d *Daemon) removeTaps(taps []string) {
	for _, t := range taps {
		if err := d.cfg.Network.RemoveTap(context.Background(), t); err != nil {
			d.cfg.Logger.Warn("removing a tap interface", "tap", t, "err", err)
		}
	}
}

// supervise waits for p and, as the restart policy says, boots the image
// again after the backoff, through the gate, until the session is
// canceled or the unikernel stays down.
func (d *Daemon) supervise(s *session, u *unikernel, p *process) {
	defer close(s.done)
	log := d.cfg.Logger.With("name", u.name)
	delay := d.cfg.Backoff.Initial
	for {
		<-p.exited
		d.removeTaps(p.taps)
		st := p.status
		u.mu.Lock()
		u.proc, u.lastExit = nil, &st
		if s.ctx.Err() != nil {
			u.state, u.reason = StateExited, "stopped by the daemon"
			u.mu.Unlock()
			return
		}
		spec := u.rec.Spec
		if !ShouldRestart(&spec, st) {
			u.state, u.reason = StateExited, fmt.Sprintf("%s; not restarted (%s)", st, whyNoRestart(&spec, st))
			u.rec.Stopped = true
			rec := u.rec
			u.mu.Unlock()
			log.Info("unikernel exited", "status", st.String())
			if err := d.store.saveRecord(&rec); err != nil {
				log.Error("saving the record", "err", err)
			}
			return
		}
		if p.ended.Sub(p.started) >= d.cfg.Backoff.Reset {
			delay = d.cfg.Backoff.Initial
		}
		u.state, u.nextRestart = StateWaiting, d.cfg.Now().Add(delay)
		u.reason = fmt.Sprintf("%s; restarting in %v", st, delay)
		img := u.rec.Image
		u.mu.Unlock()
		log.Info("unikernel exited, restarting", "status", st.String(), "delay", delay)

		t := time.NewTimer(delay)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, d.cfg.Backoff.Max)
		if _, err := d.admit(s.ctx, u.name, img, "restart-on-fail"); err != nil {
			if s.ctx.Err() == nil {
				u.setDown(StateRefused, err)
				log.Warn("restart refused", "err", err)
			}
			return
		}
		np, err := d.start(s.ctx, u, img)
		if err != nil {
			if !errors.Is(err, errStopped) {
				u.setDown(StateFailed, err)
				log.Warn("restart failed", "err", err)
			}
			return
		}
		u.mu.Lock()
		u.restarts++
		u.mu.Unlock()
		p = np
	}
}

func whyNoRestart(s *Spec, st ExitStatus) string {
	switch {
	case !s.RestartOnFail:
		return "no --restart-on-fail"
	case st.Signal != "":
		return "a signal never restarts"
	case len(s.ExitCodes) > 0:
		return fmt.Sprintf("only exit codes %v restart", s.ExitCodes)
	default:
		return "exit codes 1 and 60 to 64 do not restart unless listed with --exit-code"
	}
}

// halt cancels u's session, kills its process and waits until the
// session's goroutine is gone, so nothing of it can start again.
func (d *Daemon) halt(u *unikernel) {
	u.mu.Lock()
	s := u.sess
	u.sess = nil
	if s != nil {
		s.cancel()
	}
	p := u.proc
	u.mu.Unlock()
	if p != nil {
		d.kill(p)
	}
	if s != nil {
		<-s.done
	}
}

// kill sends the process group SIGTERM, then SIGKILL after StopTimeout.
func (d *Daemon) kill(p *process) {
	select {
	case <-p.exited:
		return
	default:
	}
	syscall.Kill(-p.pid, syscall.SIGTERM)
	t := time.NewTimer(d.cfg.StopTimeout)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.exited
	}
}
