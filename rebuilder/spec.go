package rebuilder

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/buildledger/buildledger/ledger/event"

	"github.com/buildledger/buildledger/ledger/orb"
)

// ErrInvalidSpec is wrapped by the errors of Run that concern the Spec or
// Options given rather than the host or the job's run: a bad job name, a
// reserved variable, a missing SOURCE_DATE_EPOCH, an unusable recorded
// environment.
var ErrInvalidSpec = errors.New("invalid job specification")

// Spec is one job to run: a named shell script with its declared variables.
type Spec struct {
	// Job is the job's name (event.CheckName: letters, digits and ._+-).
	Job string

	// Script is the job's shell script, recorded verbatim as the exec's
	// script. A script starting with "#!" is executed directly, so the
	// kernel runs the interpreter it names (as builder's worker runs
	// script.sh); any other script runs as `/bin/sh -e SCRIPT`, stopping at
	// the first failing command.
	Script []byte

	// Vars are the job's declared variables, exported to the script and
	// recorded in build-environment after the fixed ones, sorted by name.
	// Names are [A-Za-z_][A-Za-z0-9_]*; values may not contain a newline,
	// carriage return or NUL (build-environment cannot hold them). The
	// variables Run sets itself cannot be overridden: HOME, PATH,
	// SOURCE_DATE_EPOCH, PWD, OLDPWD, OS, ARCH, every OS_* name, and orb's
	// ORB_DATA and SWITCH_PATH. Must be empty with Options.Env.
	Vars map[string]string

	// SourceDateEpoch is exported as SOURCE_DATE_EPOCH
	// (https://reproducible-builds.org/specs/source-date-epoch/), in seconds
	// since 1970. It is required (> 0) for a fresh run: defaulting to the
	// current time, as orb does, would make every run's build-environment
	// different. A job definition would use the time of its last change.
	// Must be 0 with Options.Env, which carries its own.
	SourceDateEpoch int64

	// Platform is the builder platform recorded in the exec, e.g.
	// "debian-12". "" derives it, like builder-web's platform names, as
	// "<OS_DISTRIBUTION>-<OS_VERSION>" of the host (or of Options.Env).
	Platform string

	// Opam says when to capture the opam-switch file.
	Opam OpamMode
}

// OpamMode says when Run captures the opam-switch file with
// `opam switch export --full --freeze`.
type OpamMode uint8

const (
	// OpamAuto captures the switch when opam is on the job's PATH and the
	// opam root the job used exists when the script has ended (OPAMROOT if
	// the job declares it, else $HOME/.opam, which starts out absent as HOME
	// is fresh). A job that does not use opam gets no opam-switch; a host
	// without opam is skipped cleanly.
	OpamAuto OpamMode = iota
	// OpamAlways requires the switch: Run fails, wrapping ErrOpam, when opam
	// is missing or the export fails.
	OpamAlways
	// OpamNever never captures the switch.
	OpamNever
)

func (m OpamMode) String() string {
	switch m {
	case OpamAuto:
		return "auto"
	case OpamAlways:
		return "always"
	case OpamNever:
		return "never"
	}
	return "OpamMode(" + strconv.Itoa(int(m)) + ")"
}

// Environment variable names Run sets itself.
const (
	varHome            = "HOME"
	varPath            = "PATH"
	varSourceDateEpoch = "SOURCE_DATE_EPOCH"
)

// reserved reports why a declared variable may not be named name, or "".
func reserved(name string) string {
	switch {
	case name == varHome || name == varPath || name == varSourceDateEpoch:
		return "is set by the rebuilder"
	case name == "PWD" || name == "OLDPWD":
		return "is set by the shell"
	case name == "OS" || name == "ARCH" || strings.HasPrefix(name, "OS_"):
		return "is reserved for the host facts (OS, OS_*, ARCH)"
	case name == "ORB_DATA" || name == "SWITCH_PATH":
		return "is reserved by orb's build-environment"
	}
	return ""
}

// validName reports whether name is a portable environment variable name.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		ok := r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9'
		if !ok {
			return false
		}
	}
	return true
}

func invalidSpec(format string, args ...any) error {
	return fmt.Errorf("rebuilder: %w: %s", ErrInvalidSpec, fmt.Sprintf(format, args...))
}

// checkValue reports why value cannot be written to build-environment.
func checkValue(name, value string) error {
	if strings.ContainsAny(value, "\n\r\x00") {
		return invalidSpec("variable %s: value contains a newline, carriage return or NUL", name)
	}
	return nil
}

// environment computes the variables the script runs with, in
// build-environment order: HOME, PATH, SOURCE_DATE_EPOCH, the host facts,
// then the declared variables sorted by name.
func (s Spec) environment(home, path string, h Host) (orb.Environment, error) {
	if s.SourceDateEpoch <= 0 {
		return orb.Environment{}, invalidSpec("SourceDateEpoch is required (seconds since 1970, > 0), got %d", s.SourceDateEpoch)
	}
	env := orb.Environment{Vars: []orb.Var{
		{Name: varHome, Value: home},
		{Name: varPath, Value: path},
		{Name: varSourceDateEpoch, Value: strconv.FormatInt(s.SourceDateEpoch, 10)},
	}}
	env.Vars = append(env.Vars, h.Vars()...)
	names := make([]string, 0, len(s.Vars))
	for name := range s.Vars {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !validName(name) {
			return orb.Environment{}, invalidSpec("variable name %q: want letters, digits and _, not starting with a digit", name)
		}
		if why := reserved(name); why != "" {
			return orb.Environment{}, invalidSpec("variable %s %s and cannot be declared by the job", name, why)
		}
		if err := checkValue(name, s.Vars[name]); err != nil {
			return orb.Environment{}, err
		}
		env.Vars = append(env.Vars, orb.Var{Name: name, Value: s.Vars[name]})
	}
	return env, nil
}

// checkRecorded checks a recorded build-environment given for a rebuild:
// every variable must be exportable, and HOME must be "<root>/home" of an
// absolute, clean root, which it returns.
func checkRecorded(env orb.Environment) (root string, err error) {
	seen := make(map[string]bool, len(env.Vars))
	for _, v := range env.Vars {
		if !validName(v.Name) {
			return "", invalidSpec("recorded environment: variable name %q cannot be exported", v.Name)
		}
		if seen[v.Name] {
			return "", invalidSpec("recorded environment: variable %s appears twice", v.Name)
		}
		seen[v.Name] = true
		if err := checkValue(v.Name, v.Value); err != nil {
			return "", err
		}
	}
	home, ok := env.Get(varHome)
	if !ok {
		return "", invalidSpec("recorded environment has no HOME, so its build root is unknown")
	}
	root, ok = strings.CutSuffix(home, "/"+homeDir)
	if !ok || checkRoot(root) != nil {
		return "", invalidSpec("recorded HOME %q is not <root>/%s of an absolute build root", home, homeDir)
	}
	return root, nil
}

// platform returns s.Platform, or "<OS_DISTRIBUTION>-<OS_VERSION>" of env.
func (s Spec) platform(env orb.Environment) (string, error) {
	p := s.Platform
	if p == "" {
		dist, _ := env.Get("OS_DISTRIBUTION")
		version, _ := env.Get("OS_VERSION")
		if dist == "" || version == "" {
			return "", invalidSpec("no Platform given and OS_DISTRIBUTION or OS_VERSION is unknown")
		}
		p = dist + "-" + version
	}
	if err := event.CheckName(p); err != nil {
		return "", invalidSpec("platform: %v", err)
	}
	return p, nil
}
