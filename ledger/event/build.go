package event

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas/digest"
)

// JobDefined names a job and carries its descriptive metadata. A job must be
// defined before builds are recorded for it; defining it again replaces the
// metadata.
type JobDefined struct {
	Job      string         `json:"job"`
	Synopsis string         `json:"synopsis"`
	Section  string         `json:"section"`
	Readme   *digest.Digest `json:"readme"`
}

func (*JobDefined) Kind() Kind { return KindJobDefined }
func (*JobDefined) normalize() {}
func (e *JobDefined) validate() error {
	if err := checkName("job", e.Job); err != nil {
		return invalid(KindJobDefined, "%v", err)
	}
	if err := checkText("synopsis", e.Synopsis, 256); err != nil {
		return invalid(KindJobDefined, "%v", err)
	}
	if err := checkText("section", e.Section, 128); err != nil {
		return invalid(KindJobDefined, "%v", err)
	}
	return nil
}

// BuildRecorded is one build of a job on a platform: what went in, what
// came out, and how it ended.
type BuildRecorded struct {
	Job        string        `json:"job"`
	UUID       uuid.UUID     `json:"uuid"`
	Platform   string        `json:"platform"`
	Started    time.Time     `json:"started"`
	Finished   time.Time     `json:"finished"`
	Result     Result        `json:"result"`
	Script     digest.Digest `json:"script"`
	Console    digest.Digest `json:"console"`
	Inputs     Inputs        `json:"inputs"`
	InputID    digest.Digest `json:"input_id"`
	Artifacts  []Artifact    `json:"artifacts"`
	MainBinary *string       `json:"main_binary"`
}

// Inputs are the digests of the files orb records about a build's
// environment; nil when the build did not produce that file.
type Inputs struct {
	OpamSwitch       *digest.Digest `json:"opam_switch"`
	BuildEnvironment *digest.Digest `json:"build_environment"`
	SystemPackages   *digest.Digest `json:"system_packages"`
}

// Known reports whether at least one input file is recorded.
func (in Inputs) Known() bool {
	return in.OpamSwitch != nil || in.BuildEnvironment != nil || in.SystemPackages != nil
}

// ID derives the input id: SHA-256 over the three raw 32-byte digests of
// opam-switch, build-environment and system-packages, in that order, a
// missing file contributing 32 zero bytes. When all three exist this equals
// builder-web's input_id; unlike builder-web, a build missing one of them
// still gets an id, so its reproductions can be found.
func (in Inputs) ID() digest.Digest {
	h := sha256.New()
	for _, d := range []*digest.Digest{in.OpamSwitch, in.BuildEnvironment, in.SystemPackages} {
		var z digest.Digest
		if d != nil {
			z = *d
		}
		h.Write(z[:])
	}
	var id digest.Digest
	h.Sum(id[:0])
	return id
}

// Artifact is one output file of a build.
type Artifact struct {
	Path   string        `json:"path"`
	SHA256 digest.Digest `json:"sha256"`
	Size   int64         `json:"size"`
}

func (*BuildRecorded) Kind() Kind { return KindBuildRecorded }

func (e *BuildRecorded) normalize() {
	e.Started = e.Started.UTC().Round(0)
	e.Finished = e.Finished.UTC().Round(0)
	e.InputID = e.Inputs.ID()
	slices.SortFunc(e.Artifacts, func(a, b Artifact) int { return strings.Compare(a.Path, b.Path) })
	if e.Artifacts == nil {
		e.Artifacts = []Artifact{}
	}
}

func (e *BuildRecorded) validate() error {
	bad := func(format string, args ...any) error { return invalid(KindBuildRecorded, format, args...) }
	if err := checkName("job", e.Job); err != nil {
		return bad("%v", err)
	}
	if e.UUID == uuid.Nil {
		return bad("uuid is the nil UUID")
	}
	if err := checkName("platform", e.Platform); err != nil {
		return bad("%v", err)
	}
	if err := checkTime("started", e.Started); err != nil {
		return bad("%v", err)
	}
	if err := checkTime("finished", e.Finished); err != nil {
		return bad("%v", err)
	}
	if e.Finished.Before(e.Started) {
		return bad("finished %s is before started %s", e.Finished.Format(time.RFC3339Nano), e.Started.Format(time.RFC3339Nano))
	}
	if err := e.Result.validate(); err != nil {
		return bad("result: %v", err)
	}
	if e.InputID != e.Inputs.ID() {
		return bad("input_id %s is not derived from the inputs (want %s)", e.InputID, e.Inputs.ID())
	}
	if e.Artifacts == nil {
		return bad("artifacts must be a list (empty for none)")
	}
	for i, a := range e.Artifacts {
		if err := checkPath(a.Path); err != nil {
			return bad("artifact %d: %v", i, err)
		}
		if a.Size < 0 {
			return bad("artifact %q: negative size %d", a.Path, a.Size)
		}
		if i > 0 && e.Artifacts[i-1].Path >= a.Path {
			if e.Artifacts[i-1].Path == a.Path {
				return bad("artifact path %q listed twice", a.Path)
			}
			return bad("artifacts not sorted by path (%q before %q)", e.Artifacts[i-1].Path, a.Path)
		}
	}
	if e.MainBinary != nil {
		if _, ok := e.Artifact(*e.MainBinary); !ok {
			return bad("main_binary %q is not one of the artifacts", *e.MainBinary)
		}
	}
	return nil
}

// Artifact returns the artifact with the given path.
func (e *BuildRecorded) Artifact(p string) (Artifact, bool) {
	i, ok := slices.BinarySearchFunc(e.Artifacts, p, func(a Artifact, p string) int { return strings.Compare(a.Path, p) })
	if !ok {
		return Artifact{}, false
	}
	return e.Artifacts[i], true
}

// Succeeded reports whether the build exited with status 0.
func (e *BuildRecorded) Succeeded() bool {
	return e.Result.Kind == ResultExited && e.Result.Code == 0
}

// ResultKind is how a build ended.
type ResultKind string

// The ways a build ends (builder's exec result).
const (
	ResultExited    ResultKind = "exited"    // the script exited with Code
	ResultSignalled ResultKind = "signalled" // the script was killed by signal Code
	ResultStopped   ResultKind = "stopped"   // the script was stopped by signal Code
	ResultMessage   ResultKind = "message"   // the build farm gave up, Message says why
)

// Result is a build's outcome. It encodes as a JSON object with exactly one
// member named after its kind: {"exited":0}, {"signalled":9}, {"stopped":19}
// or {"message":"timeout"} — unlike builder-web's integer encoding, no two
// results share a representation.
type Result struct {
	Kind    ResultKind
	Code    int    // for exited, signalled, stopped: 0…255
	Message string // for message
}

// MarshalJSON implements json.Marshaler.
func (r Result) MarshalJSON() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	if r.Kind == ResultMessage {
		m, err := json.Marshal(r.Message)
		if err != nil {
			return nil, err
		}
		return fmt.Appendf(nil, `{"message":%s}`, m), nil
	}
	return fmt.Appendf(nil, `{%q:%d}`, r.Kind, r.Code), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (r *Result) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("result must be an object: %w", err)
	}
	if len(m) != 1 {
		return fmt.Errorf("result must have exactly one of exited, signalled, stopped, message; got %d members", len(m))
	}
	var out Result
	for k, v := range m {
		out.Kind = ResultKind(k)
		switch out.Kind {
		case ResultExited, ResultSignalled, ResultStopped:
			if err := json.Unmarshal(v, &out.Code); err != nil {
				return fmt.Errorf("result %s: %w", k, err)
			}
		case ResultMessage:
			if err := json.Unmarshal(v, &out.Message); err != nil {
				return fmt.Errorf("result message: %w", err)
			}
		default:
			return fmt.Errorf("unknown result kind %q (want exited, signalled, stopped or message)", k)
		}
	}
	if err := out.validate(); err != nil {
		return err
	}
	*r = out
	return nil
}

func (r Result) validate() error {
	switch r.Kind {
	case ResultExited, ResultSignalled, ResultStopped:
		if r.Code < 0 || r.Code > 255 {
			return fmt.Errorf("%s code %d not in 0…255", r.Kind, r.Code)
		}
		if r.Message != "" {
			return fmt.Errorf("%s result carries a message", r.Kind)
		}
	case ResultMessage:
		if r.Code != 0 {
			return errors.New("message result carries a code")
		}
		return checkText("result message", r.Message, 4096)
	default:
		return fmt.Errorf("unknown result kind %q", r.Kind)
	}
	return nil
}

// String formats a result the way builder-web shows it.
func (r Result) String() string {
	switch r.Kind {
	case ResultExited:
		return fmt.Sprintf("exited %d", r.Code)
	case ResultSignalled:
		return fmt.Sprintf("signalled %d", r.Code)
	case ResultStopped:
		return fmt.Sprintf("stopped %d", r.Code)
	case ResultMessage:
		return "message: " + r.Message
	}
	return "unknown result"
}
