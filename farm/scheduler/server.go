package scheduler

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/farm/proto"
	"github.com/buildledger/buildledger/ledger/event"
)

// Frame limits before and after the peer said what it is.
const (
	helloMaxFrame  = 4 << 10
	clientMaxFrame = 16 << 20 // a schedule carries a script
	helloTimeout   = 30 * time.Second
	// requestTimeout bounds how long a worker may take to ask for a job
	// after its hello.
	requestTimeout = 30 * time.Second
)

// Serve accepts connections on ln until ctx ends, then closes ln and every
// connection and returns. Each connection is one client or one worker,
// speaking builder's protocol (package proto).
func (s *Scheduler) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	var conns sync.WaitGroup
	// On any return: stop every connection, then wait for them.
	defer conns.Wait()
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			s.handle(ctx, c)
		}()
	}
}

// peerName names a connection for logs: its address and, over TLS, the
// subject of its client certificate.
func peerName(c net.Conn) string {
	name := c.RemoteAddr().String()
	if tc, ok := c.(*tls.Conn); ok {
		if cs := tc.ConnectionState(); len(cs.PeerCertificates) > 0 {
			name += " (" + cs.PeerCertificates[0].Subject.String() + ")"
		}
	}
	return name
}

func (s *Scheduler) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	peer := c.RemoteAddr().String()
	_ = c.SetDeadline(time.Now().Add(helloTimeout))
	if tc, ok := c.(*tls.Conn); ok {
		if err := tc.HandshakeContext(ctx); err != nil {
			s.log.Warn("TLS handshake failed", "peer", peer, "err", err)
			return
		}
	}
	peer = peerName(c)
	cmd, err := proto.ReadCmd(c, helloMaxFrame)
	if err != nil {
		s.log.Warn("expected client hello", "peer", peer, "err", err)
		return
	}
	hello, ok := cmd.(proto.ClientHello)
	switch {
	case ok && hello.Role == proto.RoleClient && hello.Version == proto.ClientVersion:
	case ok && hello.Role == proto.RoleWorker && hello.Version == proto.WorkerVersion:
	default:
		// As builder: no answer to a peer of another version.
		s.log.Warn("expected client hello, closing", "peer", peer, "got", describe(cmd))
		return
	}
	if s.cfg.Authorize != nil {
		if err := s.cfg.Authorize(c, hello.Role); err != nil {
			s.log.Warn("peer refused", "peer", peer, "role", hello.Role, "err", err)
			return
		}
	}
	if err := proto.WriteCmd(c, proto.ServerHello{}, helloMaxFrame); err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	if hello.Role == proto.RoleWorker {
		s.worker(ctx, c, peer)
		return
	}
	s.client(ctx, c, peer)
}

func describe(c proto.Cmd) string {
	switch v := c.(type) {
	case proto.ClientHello:
		return fmt.Sprintf("client hello from a %s of version %d (this scheduler speaks client %d, worker %d)", v.Role, v.Version, proto.ClientVersion, proto.WorkerVersion)
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("message [%d]", c.Tag())
}

// summary names a client command and its job or platform for the log
// (never a whole script).
func summary(c proto.Cmd) string {
	switch m := c.(type) {
	case proto.Schedule:
		return fmt.Sprintf("schedule %s (%s)", m.Job.Name, m.Period)
	case proto.ScheduleOrbBuild:
		return fmt.Sprintf("orb-build %s of %s (%s)", m.Job.Name, m.Job.OpamPackage, m.Period)
	case proto.Unschedule:
		return "unschedule " + m.Name
	case proto.Execute:
		return "execute " + m.Name
	case proto.OldExecute:
		return "execute " + m.Name
	case proto.Reschedule:
		return "reschedule " + m.Name
	case proto.DropPlatform:
		return "drop-platform " + m.Platform
	case proto.UndropPlatform:
		return "undrop-platform " + m.Platform
	}
	return describe(c)
}

// reader decodes a connection's messages in the background, so that the
// scheduler notices a worker that goes away while it waits for a job.
type reader struct {
	cmds chan proto.Cmd
	err  error // set before cmds is closed
}

func readAll(ctx context.Context, c net.Conn, max int64) *reader {
	r := &reader{cmds: make(chan proto.Cmd)}
	go func() {
		defer close(r.cmds)
		for {
			cmd, err := proto.ReadCmd(c, max)
			if err != nil {
				r.err = err
				return
			}
			select {
			case r.cmds <- cmd:
			case <-ctx.Done():
				return
			}
		}
	}()
	return r
}

// worker serves one builder-worker: one job request, the job, its console
// and its end.
func (s *Scheduler) worker(ctx context.Context, c net.Conn, peer string) {
	_ = c.SetReadDeadline(time.Now().Add(requestTimeout))
	cmd, err := proto.ReadCmd(c, helloMaxFrame)
	if err != nil {
		s.log.Warn("worker: expected a job request", "peer", peer, "err", err)
		return
	}
	req, ok := cmd.(proto.JobRequested)
	if !ok {
		s.log.Warn("worker: expected a job request", "peer", peer, "got", describe(cmd))
		return
	}
	if err := event.CheckName(req.Platform); err != nil {
		s.log.Warn("worker: bad platform", "peer", peer, "err", err)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	rd := readAll(ctx, c, s.cfg.MaxFrame)
	// A worker that sends anything, or goes away, while it waits has no
	// job to lose.
	wctx, stop := context.WithCancel(ctx)
	early := make(chan proto.Cmd, 1)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case cmd, ok := <-rd.cmds:
			if ok {
				early <- cmd
			}
			stop()
		case <-wctx.Done():
		}
	}()
	r, err := s.take(wctx, req.Platform, peer)
	stop()
	<-watched
	if err != nil {
		select {
		case cmd := <-early:
			s.log.Warn("worker: message before a job was given", "peer", peer, "got", describe(cmd))
		default:
		}
		return
	}
	select {
	case cmd := <-early:
		s.abandon(r, "the worker sent "+describe(cmd)+" before it was given a job")
		return
	default:
	}
	if err := proto.WriteCmd(c, proto.JobSchedule{UUID: r.id, Job: r.job}, s.cfg.MaxFrame); err != nil {
		s.abandon(r, "cannot send the job to the worker: "+err.Error())
		return
	}
	lease := time.NewTimer(s.cfg.JobTimeout)
	defer lease.Stop()
	for {
		select {
		case <-ctx.Done():
			s.abandon(r, "the scheduler is stopping")
			return
		case <-lease.C:
			c.Close()
			s.abandon(r, fmt.Sprintf("the worker held it longer than %v", s.cfg.JobTimeout))
			return
		case cmd, ok := <-rd.cmds:
			if !ok {
				why := "the worker went away"
				if rd.err != nil && !errors.Is(rd.err, io.EOF) {
					why += ": " + rd.err.Error()
				}
				s.abandon(r, why)
				return
			}
			switch m := cmd.(type) {
			case proto.Output:
				if m.UUID != r.id {
					s.log.Warn("worker: output for another job", "peer", peer, "uuid", m.UUID, "running", r.id)
				}
				r.output(s.cfg.Now(), m.Line)
			case proto.JobFinished:
				if m.UUID != r.id {
					s.log.Warn("worker: finished another job", "peer", peer, "uuid", m.UUID, "running", r.id)
				}
				if err := s.finish(r, m.Result, m.Data); err != nil {
					s.log.Error("worker: job not recorded", "peer", peer, "err", err)
				}
				return
			default:
				s.abandon(r, "the worker sent "+describe(cmd))
				return
			}
		}
	}
}

// client serves builder-client commands, each answered with Success or
// Failure (after the reply of info and the stream of observe), until the
// client closes the connection.
func (s *Scheduler) client(ctx context.Context, c net.Conn, peer string) {
	for {
		cmd, err := proto.ReadCmd(c, clientMaxFrame)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.log.Warn("client: bad message", "peer", peer, "err", err)
				_ = proto.WriteCmd(c, proto.Failure{Msg: err.Error()}, clientMaxFrame)
			}
			return
		}
		var reply proto.Cmd
		switch m := cmd.(type) {
		case proto.Info:
			if err := proto.WriteCmd(c, s.Info(), DefaultMaxFrame); err != nil {
				return
			}
		case proto.Observe:
			if !s.observe(ctx, c, m.UUID) {
				reply = proto.Failure{Msg: "uuid not found"}
			}
		default:
			if err := s.Command(cmd); err != nil {
				reply = proto.Failure{Msg: err.Error()}
				s.log.Info("client command failed", "peer", peer, "cmd", summary(cmd), "err", err)
			} else {
				s.log.Info("client command", "peer", peer, "cmd", summary(cmd))
			}
		}
		if reply == nil {
			reply = proto.Success{}
		}
		if err := proto.WriteCmd(c, reply, clientMaxFrame); err != nil {
			return
		}
	}
}

// observe streams a running job's console to c: the lines so far, then
// live ones, each with the time since the job started, then its end. It
// reports false for a job that is not running.
func (s *Scheduler) observe(ctx context.Context, c net.Conn, id uuid.UUID) bool {
	past, events, cancel, ok := s.Observe(id)
	if !ok {
		return false
	}
	defer cancel()
	defer c.SetWriteDeadline(time.Time{})
	send := func(l Line) error {
		ts := int64(l.Delta)
		// An observer that stops reading is dropped, not waited for.
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		return proto.WriteCmd(c, proto.Output{UUID: id, Line: l.Text, Timestamp: &ts}, clientMaxFrame)
	}
	for _, l := range past {
		if send(l) != nil {
			return true
		}
	}
	for {
		select {
		case <-ctx.Done():
			return true
		case e, ok := <-events:
			if !ok {
				return true
			}
			if e.Skipped > 0 {
				if send(Line{Delta: e.Delta, Text: fmt.Sprintf("[scheduler: %d lines skipped: this observer fell behind]", e.Skipped)}) != nil {
					return true
				}
			}
			if send(e.Line) != nil || e.End {
				return true
			}
		}
	}
}

// Observe returns a running job's console so far and a channel of its
// next lines and its end; cancel unsubscribes. ok is false for a job that
// is not running.
func (s *Scheduler) Observe(id uuid.UUID) (past []Line, events <-chan Event, cancel func(), ok bool) {
	s.mu.Lock()
	r, ok := s.running[id]
	s.mu.Unlock()
	if !ok {
		return nil, nil, nil, false
	}
	past, events, cancel = r.con.observe()
	return past, events, cancel, true
}

// Command applies a client command that changes the schedule or the
// queues: schedule, orb-build, unschedule, reschedule, execute,
// drop-platform and undrop-platform. The state is saved before it returns
// nil. Errors are the messages builder answers with.
func (s *Scheduler) Command(cmd proto.Cmd) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	switch m := cmd.(type) {
	case proto.Schedule:
		p := "no-platform"
		if m.Job.Platform != nil {
			p = *m.Job.Platform
		}
		if s.dropped(p) {
			return errors.New("platform dropped; can't schedule jobs")
		}
		err = s.scheduleLocked(job{Name: m.Job.Name, Script: m.Job.Script, Platform: p}, m.Period)
	case proto.ScheduleOrbBuild:
		err = s.scheduleLocked(job{Name: m.Job.Name, OpamPackage: m.Job.OpamPackage, Orb: true}, m.Period)
	case proto.Unschedule:
		i := slices.IndexFunc(s.st.Schedule, func(it item) bool { return it.Job.Name == m.Name })
		if i < 0 {
			return fmt.Errorf("unknown job %s", m.Name)
		}
		s.st.Schedule = slices.Delete(s.st.Schedule, i, i+1)
		for p, q := range s.st.Queues {
			s.st.Queues[p] = slices.DeleteFunc(q, func(j job) bool { return j.Name == m.Name })
		}
	case proto.Execute:
		err = s.executeLocked(m.Name, m.Platform)
	case proto.OldExecute:
		err = s.executeLocked(m.Name, nil)
	case proto.Reschedule:
		i := slices.IndexFunc(s.st.Schedule, func(it item) bool { return it.Job.Name == m.Name })
		if i < 0 {
			return fmt.Errorf("couldn't find job %s", m.Name)
		}
		it := &s.st.Schedule[i]
		if m.Period != 0 {
			it.Period = period(m.Period)
		}
		it.Next = nextAfter(m.Next.T, proto.Period(it.Period))
		s.addToQueuesLocked(it.Job)
	case proto.DropPlatform:
		if _, ok := s.st.Queues[m.Platform]; !ok {
			return fmt.Errorf("unknown platform %s", m.Platform)
		}
		delete(s.st.Queues, m.Platform)
		s.st.Dropped = append(s.st.Dropped, m.Platform)
		sort.Strings(s.st.Dropped)
		s.st.Schedule = slices.DeleteFunc(s.st.Schedule, func(it item) bool { return !it.Job.Orb && it.Job.Platform == m.Platform })
		s.notifyLocked()
	case proto.UndropPlatform:
		i := slices.Index(s.st.Dropped, m.Platform)
		if i < 0 {
			return fmt.Errorf("unknown platform %s", m.Platform)
		}
		s.st.Dropped = slices.Delete(s.st.Dropped, i, i+1)
		s.notifyLocked()
	default:
		return errors.New("bad communication")
	}
	if err != nil {
		return err
	}
	return s.saveLocked()
}

func (s *Scheduler) scheduleLocked(j job, p proto.Period) error {
	if err := checkJob(j); err != nil {
		return err
	}
	if p < proto.Hourly || p > proto.Never {
		return fmt.Errorf("invalid period %v", p)
	}
	if slices.ContainsFunc(s.st.Schedule, func(it item) bool { return it.Job.Name == j.Name }) {
		return errors.New("job name already used")
	}
	if len(s.st.Schedule) >= MaxScheduled {
		return fmt.Errorf("the schedule holds %d jobs, the most it takes; unschedule one first", MaxScheduled)
	}
	s.st.Schedule = append(s.st.Schedule, item{Job: j, Next: nextAfter(s.cfg.Now(), p), Period: period(p)})
	s.addToQueuesLocked(j)
	return nil
}

// neverTime is the next run of a job scheduled "never" (builder: Ptime.max).
var neverTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// nextAfter is the next run one period after t: never for Never.
func nextAfter(t time.Time, p proto.Period) time.Time {
	if p == proto.Never {
		return neverTime
	}
	return add(t, p)
}

// checkJob refuses jobs the ledger could not record or a worker could not
// run: names and platforms as the ledger accepts them, a script for a
// script job, an opam package for an orb build.
func checkJob(j job) error {
	if err := event.CheckName(j.Name); err != nil {
		return fmt.Errorf("job name: %v", err)
	}
	if j.Orb {
		if err := event.CheckName(j.OpamPackage); err != nil {
			return fmt.Errorf("opam package: %v", err)
		}
		return nil
	}
	if err := event.CheckName(j.Platform); err != nil {
		return fmt.Errorf("platform: %v", err)
	}
	switch {
	case j.Script == "":
		return errors.New("empty script")
	case len(j.Script) > MaxScript:
		return fmt.Errorf("script of %d bytes exceeds %d (a job script runs a build; its sources come from elsewhere)", len(j.Script), MaxScript)
	}
	return nil
}

// Bounds of the schedule, so that an info reply (which carries every
// scheduled and queued script) stays within what a client reads.
const (
	MaxScript    = 256 << 10
	MaxScheduled = 1024
)

func (s *Scheduler) executeLocked(name string, platform *string) error {
	i := slices.IndexFunc(s.st.Schedule, func(it item) bool { return it.Job.Name == name })
	if i < 0 {
		return errors.New("execute failed: job not found")
	}
	j := s.st.Schedule[i].Job
	toFront := func(p string) error {
		q, ok := s.findQueueLocked(p)
		if !ok {
			return errors.New("execute failed: no such platform")
		}
		q = slices.DeleteFunc(q, func(x job) bool { return x.Name == name })
		s.st.Queues[p] = append([]job{j}, q...)
		return nil
	}
	switch {
	case j.Orb && platform == nil:
		for p := range s.st.Queues {
			if err := toFront(p); err != nil {
				return err
			}
		}
	case !j.Orb && platform != nil && *platform != j.Platform:
		return fmt.Errorf("execute failed: job is for a different platform: %s", j.Platform)
	case !j.Orb:
		if err := toFront(j.Platform); err != nil {
			return err
		}
	default:
		if err := toFront(*platform); err != nil {
			return err
		}
	}
	s.notifyLocked()
	return nil
}

// Info returns the schedule (by next run), the queues (by platform), the
// running jobs (by start) and the dropped platforms.
func (s *Scheduler) Info() proto.InfoReply {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r proto.InfoReply
	sched := slices.Clone(s.st.Schedule)
	sort.SliceStable(sched, func(a, b int) bool { return sched[a].Next.Before(sched[b].Next) })
	for _, it := range sched {
		r.Schedule = append(r.Schedule, proto.ScheduleItem{Next: proto.Time{T: it.Next}, Period: proto.Period(it.Period), Job: it.Job.proto()})
	}
	platforms := make([]string, 0, len(s.st.Queues))
	for p := range s.st.Queues {
		platforms = append(platforms, p)
	}
	sort.Strings(platforms)
	for _, p := range platforms {
		q := proto.Queue{Platform: p}
		for _, j := range s.st.Queues[p] {
			q.Jobs = append(q.Jobs, j.proto())
		}
		r.Queues = append(r.Queues, q)
	}
	runs := make([]*run, 0, len(s.running))
	for _, x := range s.running {
		runs = append(runs, x)
	}
	sort.Slice(runs, func(a, b int) bool { return runs[a].started.Before(runs[b].started) })
	for _, x := range runs {
		r.Running = append(r.Running, proto.Running{Started: proto.Time{T: x.started}, UUID: x.id, Job: x.job})
	}
	r.DroppedPlatforms = slices.Clone(s.st.Dropped)
	return r
}
