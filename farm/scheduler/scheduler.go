package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/farm/proto"
	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/buildledger/buildledger/ledger/event"
)

// Defaults of Config's zero fields.
const (
	// DefaultTick is how often due schedule items are queued (builder: 60 s).
	DefaultTick = time.Minute
	// DefaultJobTimeout is how long a worker may hold a job before the
	// scheduler gives up on it (builder: 1 h). Workers stop their jobs at
	// their own timeout, which should be shorter, and report it.
	DefaultJobTimeout = time.Hour + 5*time.Minute
	// DefaultMaxFrame bounds a message from a worker: a finished job
	// carries every output file, in memory (and is held about three times
	// while it is recorded). The worker's default output bound is 256 MiB.
	DefaultMaxFrame = 512 << 20
	// TemplatePrefix starts the name of a platform's orb-build template in
	// the configuration directory, as builder names it.
	TemplatePrefix = "orb-build.template."
)

// Uploader records a finished build: der is builder's exec record (the
// body builder-server posts to builder-web). An error wrapping
// ErrPermanent means retrying cannot help (the ledger refused the record);
// any other error is retried.
type Uploader interface {
	Upload(ctx context.Context, der []byte, id uuid.UUID) error
}

// ErrPermanent marks an upload error that retrying cannot fix.
var ErrPermanent = errors.New("refused")

// Config configures a Scheduler.
type Config struct {
	// Dir holds the state (state.json), builds waiting for upload
	// (uploads/), builds the ledger refused (failed/) and, without an
	// Uploader, the finished builds (builds/JOB/UUID/full; builder keeps
	// them at DIR/JOB/UUID/full). Created if missing.
	Dir string
	// ConfigDir holds the orb-build templates, one per platform, named
	// TemplatePrefix+PLATFORM. "" means Dir.
	ConfigDir string
	// Upload, if set, records every finished build; nil keeps them in Dir.
	Upload Uploader
	// Tick, JobTimeout and MaxFrame: 0 means the defaults above.
	Tick       time.Duration
	JobTimeout time.Duration
	MaxFrame   int64
	// MaxConsoleLines and MaxConsoleBytes bound the console kept per job;
	// 0 means the defaults.
	MaxConsoleLines, MaxConsoleBytes int
	// RetryUpload is the first delay before a failed upload is retried
	// (doubling up to 32 times it); 0 means 10 s.
	RetryUpload time.Duration
	// Authorize, if set, decides whether the peer on a connection may act
	// in the role its hello names (e.g. by its TLS client certificate);
	// a refusal is logged and the connection closed without an answer.
	Authorize func(c net.Conn, role proto.Role) error
	// Log receives what the scheduler does; nil discards it.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Scheduler is builder's scheduler: a schedule of periodic jobs, FIFO
// queues per platform, the jobs workers are running and the uploads of
// finished builds. It is safe for concurrent use.
type Scheduler struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	st      *persisted
	running map[uuid.UUID]*run
	// wake is closed and replaced whenever a queue gains a job.
	wake chan struct{}

	uploadKick chan struct{}
	closed     chan struct{}
	ctx        context.Context // cancelled by Close: uploads in flight stop
	cancel     context.CancelFunc
	closeOnce  sync.Once
	wg         sync.WaitGroup
}

// run is a job a worker is running.
type run struct {
	id       uuid.UUID
	job      proto.ScriptJob // as sent to the worker
	queued   job             // the queue entry, put back if the worker fails
	platform string
	started  time.Time
	con      *console
	peer     string
	done     bool
}

// New opens (or creates) the scheduler's directory and state. Jobs that
// were running when the scheduler last stopped are put back at the end
// of their queues, unless their build was already kept for upload.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Dir == "" {
		return nil, errors.New("scheduler: no directory")
	}
	if cfg.ConfigDir == "" {
		cfg.ConfigDir = cfg.Dir
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = DefaultJobTimeout
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	if cfg.MaxConsoleLines <= 0 {
		cfg.MaxConsoleLines = DefaultMaxConsoleLines
	}
	if cfg.MaxConsoleBytes <= 0 {
		cfg.MaxConsoleBytes = DefaultMaxConsoleBytes
	}
	if cfg.RetryUpload <= 0 {
		cfg.RetryUpload = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, uploadDir), filepath.Join(cfg.Dir, failedDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("scheduler: %w", err)
		}
	}
	st, err := load(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	s := &Scheduler{
		cfg: cfg, log: log, st: st,
		running:    map[uuid.UUID]*run{},
		wake:       make(chan struct{}),
		uploadKick: make(chan struct{}, 1),
		closed:     make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// Jobs a previous run of the scheduler handed out and never saw
	// finish go back to their queues, once: the state saved below no
	// longer lists them as running.
	for _, r := range st.Running {
		if s.kept(r.UUID) {
			continue
		}
		if s.putBack(r.Platform, r.Queued) {
			log.Info("job put back: the scheduler stopped while it ran", "job", r.Queued.Name, "platform", r.Platform, "uuid", r.UUID)
		} else {
			log.Error("job not put back: handed out too often without a result; its schedule runs it again", "job", r.Queued.Name,
				"platform", r.Platform, "uuid", r.UUID, "attempts", r.Queued.Attempts+1)
		}
	}
	st.Running = nil
	s.tickLocked()
	if err := save(cfg.Dir, st); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	s.wg.Add(2)
	go s.ticker()
	go s.uploader()
	return s, nil
}

// Close stops the timer and the uploader. Connections are closed by
// their Serve's context.
func (s *Scheduler) Close() error {
	s.closeOnce.Do(func() { close(s.closed); s.cancel() })
	s.wg.Wait()
	return nil
}

func (s *Scheduler) ticker() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
			s.mu.Lock()
			if s.tickLocked() {
				s.saveLocked()
			}
			s.mu.Unlock()
		}
	}
}

// tickLocked queues every due schedule item and moves its next run one
// period past now, as builder does: an item overdue by several periods
// runs once. It reports whether anything changed.
func (s *Scheduler) tickLocked() bool {
	now := s.cfg.Now()
	changed := false
	for i := range s.st.Schedule {
		it := &s.st.Schedule[i]
		if proto.Period(it.Period) == proto.Never || !now.After(it.Next) {
			continue
		}
		it.Next = add(now, proto.Period(it.Period))
		s.addToQueuesLocked(it.Job)
		changed = true
	}
	return changed
}

// saveLocked writes the state; a failure is logged (the change stays in
// memory, as builder's does) and reported.
func (s *Scheduler) saveLocked() error {
	if err := save(s.cfg.Dir, s.st); err != nil {
		s.log.Error("cannot save the state", "err", err)
		return fmt.Errorf("the state could not be saved: %v", err)
	}
	return nil
}

func (s *Scheduler) notifyLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

func indexOf(q []job, name string) int {
	return slices.IndexFunc(q, func(j job) bool { return j.Name == name })
}

func (s *Scheduler) dropped(p string) bool { return slices.Contains(s.st.Dropped, p) }

// template reads a platform's orb-build template.
func (s *Scheduler) template(platform string) ([]byte, error) {
	if event.CheckName(platform) != nil {
		return nil, fmt.Errorf("no template for platform %q", platform)
	}
	return os.ReadFile(filepath.Join(s.cfg.ConfigDir, TemplatePrefix+platform))
}

func (s *Scheduler) hasTemplate(platform string) bool {
	_, err := s.template(platform)
	return err == nil
}

// findQueueLocked returns the queue of a platform, registering it when it
// is new: every scheduled script job of the platform and, if the platform
// has a template, every orb build. A platform is registered only with a
// job in it; a dropped platform never is.
func (s *Scheduler) findQueueLocked(platform string) (q []job, registered bool) {
	if q, ok := s.st.Queues[platform]; ok {
		return q, true
	}
	if s.dropped(platform) {
		return nil, false
	}
	tmpl := s.hasTemplate(platform)
	for _, it := range s.st.Schedule {
		if (it.Job.Orb && tmpl) || (!it.Job.Orb && it.Job.Platform == platform) {
			q = append(q, it.Job)
		}
	}
	if len(q) == 0 {
		return nil, false
	}
	s.st.Queues[platform] = q
	s.notifyLocked()
	return q, true
}

// addToQueuesLocked queues a job: an orb build on every known platform
// that has a template (builder queues it on every platform and drops it
// when a worker of a platform without one takes it), a script job on its
// own; never twice in one queue.
func (s *Scheduler) addToQueuesLocked(j job) {
	if j.Orb {
		for p, q := range s.st.Queues {
			if indexOf(q, j.Name) < 0 && s.hasTemplate(p) {
				s.st.Queues[p] = append(q, j)
			}
		}
	} else if q, ok := s.findQueueLocked(j.Platform); ok && indexOf(q, j.Name) < 0 {
		s.st.Queues[j.Platform] = append(q, j)
	}
	s.notifyLocked()
}

// MaxAttempts is how often a job is handed out without a result (its
// worker went away or held it past Config.JobTimeout, or the scheduler
// stopped) before it is recorded as failed instead of being put back.
const MaxAttempts = 3

// putBack puts a job that was handed out without a result at the end of
// its queue, as builder does (at the front, a job that kills its workers
// would starve the platform), counting the attempt. It reports false, and
// puts nothing back, once the job has had MaxAttempts; the queue holding
// it already or the platform being gone also leave the queue as it is.
func (s *Scheduler) putBack(platform string, j job) bool {
	j.Attempts++
	if j.Attempts >= MaxAttempts {
		return false
	}
	q, ok := s.st.Queues[platform]
	if !ok || indexOf(q, j.Name) >= 0 {
		return true
	}
	s.st.Queues[platform] = append(q, j)
	s.notifyLocked()
	return true
}

// scriptFor turns a queued job into the script job a worker of platform
// runs: an orb build through the platform's template.
func (s *Scheduler) scriptFor(j job, platform string) (proto.ScriptJob, error) {
	p := platform
	if !j.Orb {
		if j.Platform != platform {
			return proto.ScriptJob{}, fmt.Errorf("script platform %q does not match worker platform %q", j.Platform, platform)
		}
		return proto.ScriptJob{Name: j.Name, Script: j.Script, Platform: &p}, nil
	}
	t, err := s.template(platform)
	if err != nil {
		return proto.ScriptJob{}, fmt.Errorf("orb build %s: %w", j.Name, err)
	}
	script := strings.ReplaceAll(string(t), "%%OPAM_PACKAGE%%", j.OpamPackage)
	script = strings.ReplaceAll(script, "%%PLATFORM%%", platform)
	return proto.ScriptJob{Name: j.Name, Script: script, Platform: &p}, nil
}

// take waits for a job for platform and hands it out, recorded as running
// (and saved) before it returns. It returns when ctx ends.
func (s *Scheduler) take(ctx context.Context, platform, peer string) (*run, error) {
	for {
		s.mu.Lock()
		q, ok := s.findQueueLocked(platform)
		for ok && len(q) > 0 {
			j := q[0]
			q = q[1:]
			s.st.Queues[platform] = q
			sj, err := s.scriptFor(j, platform)
			if err != nil {
				s.log.Warn("job dropped from the queue", "job", j.Name, "platform", platform, "err", err)
				s.saveLocked()
				continue
			}
			id, err := uuid.NewRandom()
			if err != nil {
				s.mu.Unlock()
				return nil, err
			}
			r := &run{id: id, job: sj, queued: j, platform: platform, started: s.cfg.Now(), peer: peer,
				con: newConsole(s.cfg.MaxConsoleLines, s.cfg.MaxConsoleBytes)}
			s.running[id] = r
			s.st.Running = append(s.st.Running, ranJob{UUID: id, Platform: platform, Queued: j, Started: r.started})
			err = s.saveLocked()
			s.mu.Unlock()
			if err != nil {
				s.abandon(r, "the state could not be saved")
				return nil, err
			}
			s.log.Info("job started", "job", sj.Name, "platform", platform, "uuid", id, "worker", peer)
			return r, nil
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		}
	}
}

// abandon ends a run that will not finish (its worker went away or held it
// too long): the job goes back to its queue, exactly once, and observers
// are told; after MaxAttempts it is recorded as a failed build instead
// (the result says why, the console is what the worker sent).
func (s *Scheduler) abandon(r *run, why string) {
	s.mu.Lock()
	if r.done {
		s.mu.Unlock()
		return
	}
	if r.queued.Attempts+1 >= MaxAttempts {
		s.mu.Unlock()
		msg := fmt.Sprintf("%s; handed out %d times without a result, not put back again", why, r.queued.Attempts+1)
		if err := s.finish(r, builder.Result{Kind: builder.ResultMsg, Msg: msg}, nil); err != nil {
			s.log.Error("abandoned job not recorded", "job", r.job.Name, "uuid", r.id, "err", err)
		}
		return
	}
	r.done = true
	delete(s.running, r.id)
	s.removeRunningLocked(r.id)
	s.putBack(r.platform, r.queued)
	s.saveLocked()
	s.mu.Unlock()
	r.con.finish(Line{Delta: s.cfg.Now().Sub(r.started), Text: "job put back in the queue: " + why})
	s.log.Warn("job put back", "job", r.job.Name, "platform", r.platform, "uuid", r.id, "why", why)
}

func (s *Scheduler) removeRunningLocked(id uuid.UUID) {
	s.st.Running = slices.DeleteFunc(s.st.Running, func(r ranJob) bool { return r.UUID == id })
}

// output records a console line of a running job.
func (r *run) output(now time.Time, text string) {
	r.con.add(Line{Delta: now.Sub(r.started), Text: text})
}

// finish records a finished job: the build is written to disk (fsynced)
// before the job stops being running, then uploaded.
func (s *Scheduler) finish(r *run, res builder.Result, data []builder.File) error {
	finished := s.cfg.Now()
	s.mu.Lock()
	if r.done {
		s.mu.Unlock()
		return errors.New("job already ended")
	}
	r.done = true
	s.mu.Unlock()
	lines := r.con.finish(Line{Delta: finished.Sub(r.started), Text: res.String()})
	platform := ""
	if r.job.Platform != nil {
		platform = *r.job.Platform
	}
	started := r.started.UTC()
	if finished.Before(started) {
		finished = started
	}
	ex := &builder.Exec{
		Job:      builder.Job{Name: r.job.Name, Script: r.job.Script, Platform: platform},
		UUID:     r.id,
		Console:  lines,
		Started:  started,
		Finished: finished.UTC(),
		Result:   res,
		Output:   data,
	}
	der, err := ex.Marshal()
	if err != nil {
		// What the worker reported cannot be recorded (a file path or
		// size builder's format refuses): record that, without the
		// files, rather than run the job again to the same end.
		s.log.Error("the worker's report cannot be recorded; recording the build without its files", "job", r.job.Name, "uuid", r.id, "err", err)
		ex.Output = nil
		ex.Result = builder.Result{Kind: builder.ResultMsg, Msg: "the worker's report could not be recorded: " + err.Error()}
		ex.Console = append(ex.Console, builder.Line{Delta: ex.Finished.Sub(ex.Started), Data: "[scheduler: the job ended " + res.String() + ", but its files could not be recorded: " + err.Error() + "]"})
		der, err = ex.Marshal()
	}
	if err == nil {
		err = s.keep(r.job.Name, r.id, der)
	}
	s.mu.Lock()
	delete(s.running, r.id)
	s.removeRunningLocked(r.id)
	if err != nil && !s.putBack(r.platform, r.queued) {
		s.log.Error("job not put back: handed out too often without a result", "job", r.job.Name, "uuid", r.id)
	}
	s.saveLocked()
	s.mu.Unlock()
	if err != nil {
		s.log.Error("finished job not kept (disk?); put back in the queue", "job", r.job.Name, "uuid", r.id, "err", err)
		return err
	}
	// Only now, with the job no longer listed as running, may the upload
	// start (a build uploaded and forgotten while the saved state still
	// listed its job would run again after a crash).
	s.kickUploads()
	s.log.Info("job finished", "job", r.job.Name, "platform", platform, "uuid", r.id, "result", res.String(), "files", len(data))
	return nil
}
