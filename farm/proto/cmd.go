package proto

import (
	"fmt"
	"strings"

	"github.com/buildledger/buildledger/internal/der"
	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/google/uuid"
)

// Cmd is one message of builder's protocol: one of the types below, each an
// alternative of builder's cmd CHOICE. Tag is its context tag number.
type Cmd interface {
	Tag() int
	appendBody([]byte) ([]byte, error)
}

// Period says how often a scheduled job runs. The zero value is invalid.
type Period uint8

// The periods, in the order of builder's CHOICE ([0]..[3] EXPLICIT NULL).
const (
	Hourly Period = iota + 1
	Daily
	Weekly
	Never
)

func (p Period) String() string {
	switch p {
	case Hourly:
		return "hourly"
	case Daily:
		return "daily"
	case Weekly:
		return "weekly"
	case Never:
		return "never"
	}
	return fmt.Sprintf("Period(%d)", uint8(p))
}

// Role is what a peer says it is in its ClientHello. The zero value is
// invalid.
type Role uint8

// The roles, in the order of builder's CHOICE ([0]..[1] EXPLICIT NULL).
const (
	RoleClient Role = iota + 1
	RoleWorker
)

func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleWorker:
		return "worker"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// ScriptJob is builder's script_job: a named shell script for a platform.
type ScriptJob struct {
	Name   string
	Script string
	// Files is builder's "files" field. builder always writes it empty and
	// ignores it when reading; it is kept so that a message re-encodes
	// byte for byte.
	Files []builder.File
	// Platform is builder's optional "platform". builder always writes it;
	// its decoder reads an absent platform as "no-platform". nil leaves it
	// out.
	Platform *string
}

// OrbBuildJob is builder's orb_build_job: a job that builds an opam package
// with orb on every platform, from the scheduler's per-platform template.
type OrbBuildJob struct {
	Name        string
	OpamPackage string
}

// JobSchedule [2] is the scheduler's answer to a JobRequested: the job a
// worker is to run, and the build's UUID.
type JobSchedule struct {
	UUID uuid.UUID
	Job  ScriptJob
}

// JobFinished [3] is the worker's report of a finished job: how it ended
// and every file it left in its directory (paths relative to it).
type JobFinished struct {
	UUID   uuid.UUID
	Result builder.Result
	Data   []builder.File
}

// Output [4] is one console line of a running job (without its newline).
// The worker sends it with Timestamp nil (builder's Output); the scheduler
// sends it to an observing client with Timestamp set to the nanoseconds
// since the job started (builder's Output_timestamped).
type Output struct {
	UUID      uuid.UUID
	Line      string
	Timestamp *int64
}

// Schedule [5] asks the scheduler to run a script job every Period.
type Schedule struct {
	Period Period
	Job    ScriptJob
}

// Info [6] asks the scheduler for its schedule, queues and running jobs.
type Info struct{}

// Unschedule [9] removes the job of that name from the schedule.
type Unschedule struct{ Name string }

// Observe [10] asks for the console of the job with that UUID: buffered
// lines, then live ones, as Output messages with timestamps.
type Observe struct{ UUID uuid.UUID }

// ScheduleOrbBuild [12] asks the scheduler to build an opam package on every
// platform every Period.
type ScheduleOrbBuild struct {
	Period Period
	Job    OrbBuildJob
}

// ClientHello [14] is the first message of every connection: the peer's
// role and its protocol version (ClientVersion or WorkerVersion). builder's
// server answers ServerHello if the version is its own for that role, and
// otherwise closes the connection without an answer.
type ClientHello struct {
	Role    Role
	Version int64
}

// The protocol versions of builder at the commit this package follows
// (client_version and worker_version in lib/builder.ml).
const (
	ClientVersion = 13
	WorkerVersion = 5
)

// ServerHello [15] is the scheduler's answer to a ClientHello it accepts.
type ServerHello struct{}

// JobRequested [16] is a worker asking for a job for its platform.
type JobRequested struct{ Platform string }

// DropPlatform [17] stops the scheduler from queueing jobs for a platform.
type DropPlatform struct{ Platform string }

// Success [18] is the scheduler's answer to a client command that worked.
type Success struct{}

// Failure [19] is the scheduler's answer to a client command that failed,
// with the reason.
type Failure struct{ Msg string }

// Execute [20] puts the job of that name at the front of its queue; with
// Platform set, only on that platform (builder: "execute NAME
// [--platform]").
type Execute struct {
	Name     string
	Platform *string
}

// UndropPlatform [21] undoes a DropPlatform.
type UndropPlatform struct{ Platform string }

// Context tags of builder's cmd CHOICE.
const (
	TagJobSchedule      = 2
	TagJobFinished      = 3
	TagOutput           = 4
	TagSchedule         = 5
	TagInfo             = 6
	TagUnschedule       = 9
	TagObserve          = 10
	TagScheduleOrbBuild = 12
	TagClientHello      = 14
	TagServerHello      = 15
	TagJobRequested     = 16
	TagDropPlatform     = 17
	TagSuccess          = 18
	TagFailure          = 19
	TagExecute          = 20
	TagUndropPlatform   = 21
)

func (JobSchedule) Tag() int      { return TagJobSchedule }
func (JobFinished) Tag() int      { return TagJobFinished }
func (Output) Tag() int           { return TagOutput }
func (Schedule) Tag() int         { return TagSchedule }
func (Info) Tag() int             { return TagInfo }
func (Unschedule) Tag() int       { return TagUnschedule }
func (Observe) Tag() int          { return TagObserve }
func (ScheduleOrbBuild) Tag() int { return TagScheduleOrbBuild }
func (ClientHello) Tag() int      { return TagClientHello }
func (ServerHello) Tag() int      { return TagServerHello }
func (JobRequested) Tag() int     { return TagJobRequested }
func (DropPlatform) Tag() int     { return TagDropPlatform }
func (Success) Tag() int          { return TagSuccess }
func (Failure) Tag() int          { return TagFailure }
func (Execute) Tag() int          { return TagExecute }
func (UndropPlatform) Tag() int   { return TagUndropPlatform }

// tagInfo describes every context tag of builder's cmd CHOICE, covered or
// not, for error messages.
var tagInfo = [...]string{
	0: "[0] INTEGER (unused; builder's decoder fails on it)",
	1: "[1] INTEGER (unused; builder's decoder fails on it)",
	8: "[8] NULL, the job request of protocol versions before platforms (builder's decoder fails on it)",
}

// Marshal returns the DER encoding of c, as builder writes it. It refuses
// values builder could not have written or read: an invalid Period, Role or
// Result, an integer outside OCaml's 63-bit int, a file path that is empty
// or has a NUL byte.
func Marshal(c Cmd) ([]byte, error) {
	if c == nil {
		return nil, &FormatError{Offset: -1, Msg: "nil cmd"}
	}
	body, err := c.appendBody(nil)
	if err != nil {
		return nil, within(err, "%s", name(c.Tag()))
	}
	return append(der.AppendHeader(nil, der.Explicit(c.Tag()), len(body)), body...), nil
}

func name(tag int) string {
	switch tag {
	case TagJobSchedule:
		return "job_schedule"
	case TagJobFinished:
		return "job_finished"
	case TagOutput:
		return "output"
	case TagSchedule:
		return "schedule"
	case TagInfo:
		return "info"
	case TagUnschedule:
		return "unschedule"
	case TagObserve:
		return "observe"
	case TagScheduleOrbBuild:
		return "schedule_orb_build"
	case TagClientHello:
		return "client_hello"
	case TagServerHello:
		return "server_hello"
	case TagJobRequested:
		return "job_requested"
	case TagDropPlatform:
		return "drop_platform"
	case TagSuccess:
		return "success"
	case TagFailure:
		return "failure"
	case TagExecute:
		return "execute"
	case TagUndropPlatform:
		return "undrop_platform"
	case TagReschedule:
		return "reschedule"
	case TagInfoReply:
		return "info_reply"
	case TagOldInfoReply:
		return "old_info_reply"
	case TagOldExecute:
		return "old_execute"
	}
	return fmt.Sprintf("[%d]", tag)
}

func mErr(format string, args ...any) error {
	return &FormatError{Offset: -1, Msg: fmt.Sprintf(format, args...)}
}

func checkInt(v int64) error {
	if v > maxOCamlInt || v < minOCamlInt {
		return mErr("integer %d is out of range of builder's 63-bit int", v)
	}
	return nil
}

// checkPath is what builder's decoder checks of a data path (Fpath.of_string
// on POSIX): not empty, no NUL byte. Callers that write files must check
// more (absolute paths, ".." elements).
func checkPath(p string) string {
	if p == "" {
		return "empty path"
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "path has a NUL byte"
	}
	return ""
}

func appendUUID(b []byte, u uuid.UUID) []byte { return der.AppendBytes(b, u[:]) }

func appendData(b []byte, files []builder.File) ([]byte, error) {
	for i, f := range files {
		if msg := checkPath(f.Path); msg != "" {
			return nil, within(mErr("%s", msg), "file %d: path", i)
		}
	}
	return seq(b, der.TagSequence, func(b []byte) []byte {
		for _, f := range files {
			b = seq(b, der.TagSequence, func(b []byte) []byte {
				return der.AppendBytes(der.AppendString(b, f.Path), f.Data)
			})
		}
		return b
	}), nil
}

func appendScriptJob(b []byte, j ScriptJob) ([]byte, error) {
	files, err := appendData(nil, j.Files)
	if err != nil {
		return nil, within(err, "job: files")
	}
	return seq(b, der.TagSequence, func(b []byte) []byte {
		b = der.AppendString(b, j.Name)
		b = der.AppendString(b, j.Script)
		b = append(b, files...)
		if j.Platform != nil {
			b = der.AppendString(b, *j.Platform)
		}
		return b
	}), nil
}

func appendPeriod(b []byte, p Period) ([]byte, error) {
	if p < Hourly || p > Never {
		return nil, mErr("invalid period %d", uint8(p))
	}
	return der.AppendNull(der.AppendHeader(b, der.Explicit(int(p-Hourly)), 2)), nil
}

func appendResult(b []byte, r builder.Result) ([]byte, error) {
	switch r.Kind {
	case builder.ResultExited, builder.ResultSignalled, builder.ResultStopped:
		if r.Msg != "" {
			return nil, mErr("%s result with a message", r.Kind)
		}
		if err := checkInt(int64(r.Code)); err != nil {
			return nil, err
		}
		inner := der.AppendInt(nil, int64(r.Code))
		return append(der.AppendHeader(b, der.Explicit(int(r.Kind-builder.ResultExited)), len(inner)), inner...), nil
	case builder.ResultMsg:
		if r.Code != 0 {
			return nil, mErr("msg result with code %d", r.Code)
		}
		inner := der.AppendString(nil, r.Msg)
		return append(der.AppendHeader(b, der.Explicit(3), len(inner)), inner...), nil
	}
	return nil, mErr("invalid result kind %d", uint8(r.Kind))
}

func (c JobSchedule) appendBody(b []byte) ([]byte, error) {
	job, err := appendScriptJob(nil, c.Job)
	if err != nil {
		return nil, err
	}
	return seq(b, der.TagSequence, func(b []byte) []byte {
		return append(appendUUID(b, c.UUID), job...)
	}), nil
}

func (c JobFinished) appendBody(b []byte) ([]byte, error) {
	res, err := appendResult(nil, c.Result)
	if err != nil {
		return nil, within(err, "result")
	}
	data, err := appendData(nil, c.Data)
	if err != nil {
		return nil, within(err, "data")
	}
	return seq(b, der.TagSequence, func(b []byte) []byte {
		b = appendUUID(b, c.UUID)
		b = append(b, res...)
		return append(b, data...)
	}), nil
}

func (c Output) appendBody(b []byte) ([]byte, error) {
	if c.Timestamp != nil {
		if err := checkInt(*c.Timestamp); err != nil {
			return nil, within(err, "timestamp")
		}
	}
	return seq(b, der.TagSequence, func(b []byte) []byte {
		b = appendUUID(b, c.UUID)
		b = der.AppendString(b, c.Line)
		if c.Timestamp != nil {
			b = der.AppendInt(b, *c.Timestamp)
		}
		return b
	}), nil
}

func (c Schedule) appendBody(b []byte) ([]byte, error) {
	p, err := appendPeriod(nil, c.Period)
	if err != nil {
		return nil, within(err, "period")
	}
	job, err := appendScriptJob(nil, c.Job)
	if err != nil {
		return nil, err
	}
	return seq(b, der.TagSequence, func(b []byte) []byte {
		return append(append(b, p...), job...)
	}), nil
}

func (c ScheduleOrbBuild) appendBody(b []byte) ([]byte, error) {
	p, err := appendPeriod(nil, c.Period)
	if err != nil {
		return nil, within(err, "period")
	}
	return seq(b, der.TagSequence, func(b []byte) []byte {
		b = append(b, p...)
		return seq(b, der.TagSequence, func(b []byte) []byte {
			return der.AppendString(der.AppendString(b, c.Job.Name), c.Job.OpamPackage)
		})
	}), nil
}

func (c ClientHello) appendBody(b []byte) ([]byte, error) {
	if c.Role != RoleClient && c.Role != RoleWorker {
		return nil, within(mErr("invalid role %d", uint8(c.Role)), "typ")
	}
	if err := checkInt(c.Version); err != nil {
		return nil, within(err, "version")
	}
	return seq(b, der.TagSequence, func(b []byte) []byte {
		b = der.AppendNull(der.AppendHeader(b, der.Explicit(int(c.Role-RoleClient)), 2))
		return der.AppendInt(b, c.Version)
	}), nil
}

func (c Execute) appendBody(b []byte) ([]byte, error) {
	return seq(b, der.TagSequence, func(b []byte) []byte {
		b = der.AppendString(b, c.Name)
		if c.Platform != nil {
			b = der.AppendString(b, *c.Platform)
		}
		return b
	}), nil
}

func (Info) appendBody(b []byte) ([]byte, error)         { return der.AppendNull(b), nil }
func (ServerHello) appendBody(b []byte) ([]byte, error)  { return der.AppendNull(b), nil }
func (Success) appendBody(b []byte) ([]byte, error)      { return der.AppendNull(b), nil }
func (c Unschedule) appendBody(b []byte) ([]byte, error) { return der.AppendString(b, c.Name), nil }
func (c Observe) appendBody(b []byte) ([]byte, error)    { return appendUUID(b, c.UUID), nil }
func (c JobRequested) appendBody(b []byte) ([]byte, error) {
	return der.AppendString(b, c.Platform), nil
}
func (c DropPlatform) appendBody(b []byte) ([]byte, error) {
	return der.AppendString(b, c.Platform), nil
}
func (c Failure) appendBody(b []byte) ([]byte, error) { return der.AppendString(b, c.Msg), nil }
func (c UndropPlatform) appendBody(b []byte) ([]byte, error) {
	return der.AppendString(b, c.Platform), nil
}
