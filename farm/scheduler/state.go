package scheduler

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/farm/proto"
	"github.com/buildledger/buildledger/internal/atomicfile"
	"github.com/buildledger/buildledger/ledger/event"
)

// stateFile is the name of the persisted state in the scheduler's
// directory. It is replaced atomically (written, fsynced, renamed, the
// directory fsynced) after every change and before the change is
// acknowledged, so a SIGKILL loses nothing a client or worker was told.
const stateFile = "state.json"

// stateVersion is the version of the state file's layout.
const stateVersion = 1

// job is one entry of the schedule or a queue: a script job for one
// platform, or an orb build for every platform.
type job struct {
	Name        string `json:"name"`
	Script      string `json:"script,omitempty"`
	Platform    string `json:"platform,omitempty"`
	OpamPackage string `json:"opam_package,omitempty"`
	Orb         bool   `json:"orb,omitempty"`
	// Attempts counts how often a queued job was handed out without a
	// result (see MaxAttempts); 0 in the schedule.
	Attempts int `json:"attempts,omitempty"`
}

func (j job) proto() proto.Job {
	if j.Orb {
		return proto.Job{Orb: &proto.OrbBuildJob{Name: j.Name, OpamPackage: j.OpamPackage}}
	}
	p := j.Platform
	return proto.Job{Script: &proto.ScriptJob{Name: j.Name, Script: j.Script, Platform: &p}}
}

// item is one entry of the schedule.
type item struct {
	Job    job       `json:"job"`
	Next   time.Time `json:"next"`
	Period period    `json:"period"`
}

// period is a proto.Period that reads and writes as its name.
type period proto.Period

func (p period) MarshalJSON() ([]byte, error) {
	if p < period(proto.Hourly) || p > period(proto.Never) {
		return nil, fmt.Errorf("invalid period %d", p)
	}
	return json.Marshal(proto.Period(p).String())
}

func (p *period) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := ParsePeriod(s)
	*p = period(v)
	return err
}

// ParsePeriod reads a period by its name: hourly, daily, weekly or never.
func ParsePeriod(s string) (proto.Period, error) {
	for p := proto.Hourly; p <= proto.Never; p++ {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown period %q: want hourly, daily, weekly or never", s)
}

// add returns t advanced by one period; never returns t unchanged.
func add(t time.Time, p proto.Period) time.Time {
	switch p {
	case proto.Hourly:
		return t.Add(time.Hour)
	case proto.Daily:
		return t.AddDate(0, 0, 1)
	case proto.Weekly:
		return t.AddDate(0, 0, 7)
	}
	return t
}

// ranJob is a job a worker was given and has not finished, persisted so
// that a scheduler killed while it ran puts it back in its queue when it
// starts again.
type ranJob struct {
	UUID     uuid.UUID `json:"uuid"`
	Platform string    `json:"platform"`
	Queued   job       `json:"queued"`
	Started  time.Time `json:"started"`
}

// persisted is the content of the state file.
type persisted struct {
	Version  int              `json:"version"`
	Schedule []item           `json:"schedule"`
	Queues   map[string][]job `json:"queues"`
	Dropped  []string         `json:"dropped_platforms"`
	Running  []ranJob         `json:"running"`
}

// load reads the state file of dir; a missing file is an empty state.
func load(dir string) (*persisted, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return &persisted{Version: stateVersion, Queues: map[string][]job{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var p persisted
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w (the file is written atomically; restore it from a backup or move it away to start with an empty schedule)", filepath.Join(dir, stateFile), err)
	}
	if p.Version != stateVersion {
		return nil, fmt.Errorf("%s: state version %d, this scheduler reads version %d", filepath.Join(dir, stateFile), p.Version, stateVersion)
	}
	if p.Queues == nil {
		p.Queues = map[string][]job{}
	}
	bad := func(what string, err error) error {
		return fmt.Errorf("%s: %s: %w (the file is written atomically; it was edited or damaged)", filepath.Join(dir, stateFile), what, err)
	}
	for i, it := range p.Schedule {
		if err := checkJob(it.Job); err != nil {
			return nil, bad(fmt.Sprintf("schedule item %d", i), err)
		}
	}
	for platform, q := range p.Queues {
		if err := event.CheckName(platform); err != nil {
			return nil, bad("queue", err)
		}
		for i, j := range q {
			if err := checkJob(j); err != nil {
				return nil, bad(fmt.Sprintf("queue %s, job %d", platform, i), err)
			}
		}
	}
	for i, r := range p.Running {
		if err := checkJob(r.Queued); err != nil {
			return nil, bad(fmt.Sprintf("running job %d", i), err)
		}
	}
	return &p, nil
}

// save replaces the state file of dir with p.
func save(dir string, p *persisted) error {
	p.Version = stateVersion
	b, err := json.MarshalIndent(p, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, stateFile), append(b, '\n'), 0o600)
}
