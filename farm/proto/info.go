package proto

import (
	"github.com/buildledger/buildledger/internal/der"
	"github.com/google/uuid"
)

// Job is builder's job CHOICE { script [0] ScriptJob, orb_build [1]
// OrbBuildJob }: exactly one of the two is set.
type Job struct {
	Script *ScriptJob
	Orb    *OrbBuildJob
}

// ScheduleItem is one entry of the schedule: the job, when it runs next and
// how often.
type ScheduleItem struct {
	Next   Time
	Period Period
	Job    Job
}

// Queue is the queue of one platform, in order.
type Queue struct {
	Platform string
	Jobs     []Job
}

// Running is a job a worker is running.
type Running struct {
	Started Time
	UUID    uuid.UUID
	Job     ScriptJob
}

// Reschedule [13] moves the next run of the job of that name to Next and,
// with Period set, changes its period (Period 0 leaves builder's optional
// period out: the job keeps its period).
type Reschedule struct {
	Name   string
	Next   Time
	Period Period
}

// InfoReply [22] is the scheduler's answer to Info.
type InfoReply struct {
	Schedule         []ScheduleItem
	Queues           []Queue
	Running          []Running
	DroppedPlatforms []string
}

// OldInfoReply [7] is the info reply of servers before drop-platform:
// InfoReply without DroppedPlatforms. builder reads it (as an info reply
// with no dropped platforms) and no longer writes it.
type OldInfoReply struct {
	Schedule []ScheduleItem
	Queues   []Queue
	Running  []Running
}

// OldExecute [11] is the execute of clients before "execute --platform":
// builder reads it as Execute with no platform and no longer writes it.
type OldExecute struct{ Name string }

// Context tags of Reschedule, InfoReply and the older forms.
const (
	TagOldInfoReply = 7
	TagOldExecute   = 11
	TagReschedule   = 13
	TagInfoReply    = 22
)

func (Reschedule) Tag() int   { return TagReschedule }
func (InfoReply) Tag() int    { return TagInfoReply }
func (OldInfoReply) Tag() int { return TagOldInfoReply }
func (OldExecute) Tag() int   { return TagOldExecute }

func (c OldExecute) appendBody(b []byte) ([]byte, error) { return der.AppendString(b, c.Name), nil }

func (c OldInfoReply) appendBody(b []byte) ([]byte, error) {
	return appendInfo(b, InfoReply{Schedule: c.Schedule, Queues: c.Queues, Running: c.Running}, false)
}

func (c InfoReply) appendBody(b []byte) ([]byte, error) { return appendInfo(b, c, true) }

func appendJob(b []byte, j Job) ([]byte, error) {
	switch {
	case j.Script != nil && j.Orb == nil:
		inner, err := appendScriptJob(nil, *j.Script)
		if err != nil {
			return nil, err
		}
		return append(der.AppendHeader(b, der.Explicit(0), len(inner)), inner...), nil
	case j.Orb != nil && j.Script == nil:
		inner := seq(nil, der.TagSequence, func(b []byte) []byte {
			return der.AppendString(der.AppendString(b, j.Orb.Name), j.Orb.OpamPackage)
		})
		return append(der.AppendHeader(b, der.Explicit(1), len(inner)), inner...), nil
	}
	return nil, mErr("a job needs exactly one of Script and Orb")
}

func (c Reschedule) appendBody(b []byte) ([]byte, error) {
	next, err := appendTime(nil, c.Next)
	if err != nil {
		return nil, within(err, "next")
	}
	var p []byte
	if c.Period != 0 {
		if p, err = appendPeriod(nil, c.Period); err != nil {
			return nil, within(err, "period")
		}
	}
	return seq(b, der.TagSequence, func(b []byte) []byte {
		return append(append(der.AppendString(b, c.Name), next...), p...)
	}), nil
}

// appendInfo writes the info reply: with dropped platforms for [22],
// without for [7].
func appendInfo(b []byte, c InfoReply, withDropped bool) ([]byte, error) {
	var sched, queues, running, dropped []byte
	for i, it := range c.Schedule {
		next, err := appendTime(nil, it.Next)
		if err != nil {
			return nil, within(err, "schedule %d: next", i)
		}
		p, err := appendPeriod(nil, it.Period)
		if err != nil {
			return nil, within(err, "schedule %d: period", i)
		}
		j, err := appendJob(nil, it.Job)
		if err != nil {
			return nil, within(err, "schedule %d: job", i)
		}
		sched = seq(sched, der.TagSequence, func(b []byte) []byte {
			return append(append(append(b, next...), p...), j...)
		})
	}
	for i, q := range c.Queues {
		var jobs []byte
		for k, j := range q.Jobs {
			var err error
			if jobs, err = appendJob(jobs, j); err != nil {
				return nil, within(err, "queue %d: job %d", i, k)
			}
		}
		queues = seq(queues, der.TagSequence, func(b []byte) []byte {
			b = der.AppendString(b, q.Platform)
			return seq(b, der.TagSequence, func(b []byte) []byte { return append(b, jobs...) })
		})
	}
	for i, r := range c.Running {
		started, err := appendTime(nil, r.Started)
		if err != nil {
			return nil, within(err, "running %d: started", i)
		}
		j, err := appendScriptJob(nil, r.Job)
		if err != nil {
			return nil, within(err, "running %d", i)
		}
		running = seq(running, der.TagSequence, func(b []byte) []byte {
			return append(appendUUID(append(b, started...), r.UUID), j...)
		})
	}
	for _, p := range c.DroppedPlatforms {
		dropped = der.AppendString(dropped, p)
	}
	parts := [][]byte{sched, queues, running, dropped}
	if !withDropped {
		parts = parts[:3]
	}
	return seq(b, der.TagSequence, func(b []byte) []byte {
		for _, part := range parts {
			b = seq(b, der.TagSequence, func(b []byte) []byte { return append(b, part...) })
		}
		return b
	}), nil
}

func decodeJob(c *der.Cursor) (Job, error) {
	if !c.More() {
		return Job{}, errorf(c.Off(), "missing (expected [0] or [1])")
	}
	e, err := c.Next()
	if err != nil {
		return Job{}, err
	}
	in := e.Contents()
	var j Job
	switch e.Tag {
	case 0xa0:
		s, err := decodeScriptJob(&in)
		if err != nil {
			return Job{}, err
		}
		j.Script = &s
	case 0xa1:
		o, err := decodeOrbBuildJob(&in)
		if err != nil {
			return Job{}, err
		}
		j.Orb = &o
	default:
		return Job{}, errorf(e.Off, "expected [0] or [1], found %s", tagName(e.Tag))
	}
	return j, in.End()
}

func decodeOrbBuildJob(c *der.Cursor) (OrbBuildJob, error) {
	in, err := sequence(c)
	if err != nil {
		return OrbBuildJob{}, within(err, "orb_build_job")
	}
	var j OrbBuildJob
	if j.Name, err = expectString(&in); err != nil {
		return OrbBuildJob{}, within(err, "orb_build_job: name")
	}
	if j.OpamPackage, err = expectString(&in); err != nil {
		return OrbBuildJob{}, within(err, "orb_build_job: opam_package")
	}
	if err := in.End(); err != nil {
		return OrbBuildJob{}, within(err, "orb_build_job")
	}
	return j, nil
}

func decodeReschedule(c *der.Cursor) (Cmd, error) {
	in, err := sequence(c)
	if err != nil {
		return nil, err
	}
	var m Reschedule
	if m.Name, err = expectString(&in); err != nil {
		return nil, within(err, "name")
	}
	if m.Next, err = decodeTime(&in); err != nil {
		return nil, within(err, "next")
	}
	if in.More() {
		if m.Period, err = decodePeriod(&in); err != nil {
			return nil, err
		}
	}
	return m, in.End()
}

func decodeInfoReply(c *der.Cursor) (Cmd, error) { return decodeInfo(c, true) }

func decodeOldInfoReply(c *der.Cursor) (Cmd, error) {
	m, err := decodeInfo(c, false)
	if err != nil {
		return nil, err
	}
	r := m.(InfoReply)
	return OldInfoReply{Schedule: r.Schedule, Queues: r.Queues, Running: r.Running}, nil
}

func decodeInfo(c *der.Cursor, withDropped bool) (Cmd, error) {
	in, err := sequence(c)
	if err != nil {
		return nil, err
	}
	var m InfoReply
	sched, err := sequence(&in)
	if err != nil {
		return nil, within(err, "schedule")
	}
	for i := 0; sched.More(); i++ {
		it, err := decodeScheduleItem(&sched)
		if err != nil {
			return nil, within(err, "schedule %d", i)
		}
		m.Schedule = append(m.Schedule, it)
	}
	queues, err := sequence(&in)
	if err != nil {
		return nil, within(err, "queues")
	}
	for i := 0; queues.More(); i++ {
		q, err := decodeQueue(&queues)
		if err != nil {
			return nil, within(err, "queue %d", i)
		}
		m.Queues = append(m.Queues, q)
	}
	running, err := sequence(&in)
	if err != nil {
		return nil, within(err, "running")
	}
	for i := 0; running.More(); i++ {
		r, err := decodeRunning(&running)
		if err != nil {
			return nil, within(err, "running %d", i)
		}
		m.Running = append(m.Running, r)
	}
	if !withDropped {
		return m, in.End()
	}
	dropped, err := sequence(&in)
	if err != nil {
		return nil, within(err, "dropped-platforms")
	}
	for i := 0; dropped.More(); i++ {
		p, err := expectString(&dropped)
		if err != nil {
			return nil, within(err, "dropped-platforms %d", i)
		}
		m.DroppedPlatforms = append(m.DroppedPlatforms, p)
	}
	return m, in.End()
}

func decodeScheduleItem(c *der.Cursor) (ScheduleItem, error) {
	in, err := sequence(c)
	if err != nil {
		return ScheduleItem{}, err
	}
	var it ScheduleItem
	if it.Next, err = decodeTime(&in); err != nil {
		return ScheduleItem{}, within(err, "next")
	}
	if it.Period, err = decodePeriod(&in); err != nil {
		return ScheduleItem{}, err
	}
	if it.Job, err = decodeJob(&in); err != nil {
		return ScheduleItem{}, within(err, "job")
	}
	return it, in.End()
}

func decodeQueue(c *der.Cursor) (Queue, error) {
	in, err := sequence(c)
	if err != nil {
		return Queue{}, err
	}
	var q Queue
	if q.Platform, err = expectString(&in); err != nil {
		return Queue{}, within(err, "platform")
	}
	jobs, err := sequence(&in)
	if err != nil {
		return Queue{}, within(err, "jobs")
	}
	for i := 0; jobs.More(); i++ {
		j, err := decodeJob(&jobs)
		if err != nil {
			return Queue{}, within(err, "job %d", i)
		}
		q.Jobs = append(q.Jobs, j)
	}
	return q, in.End()
}

func decodeRunning(c *der.Cursor) (Running, error) {
	in, err := sequence(c)
	if err != nil {
		return Running{}, err
	}
	var r Running
	if r.Started, err = decodeTime(&in); err != nil {
		return Running{}, within(err, "started")
	}
	if r.UUID, err = expectUUID(&in); err != nil {
		return Running{}, err
	}
	if r.Job, err = decodeScriptJob(&in); err != nil {
		return Running{}, err
	}
	return r, in.End()
}
