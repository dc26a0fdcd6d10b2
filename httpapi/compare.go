package httpapi

import (
	"net/http"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/orb"
)

// maxInputFile bounds the orb input files parsed for a comparison.
const maxInputFile = 64 << 20

// Comparison is the answer of /compare/{left}/{right}: what changed between
// two builds' inputs (builder-web's compare page). A section whose files are
// missing or do not parse carries an error message instead of a diff.
type Comparison struct {
	Left         BuildSummary         `json:"left"`
	Right        BuildSummary         `json:"right"`
	SameInputs   bool                 `json:"same_inputs"`
	SameOutput   bool                 `json:"same_main_binary"`
	Env          *orb.EnvironmentDiff `json:"env_diff"`
	EnvError     string               `json:"env_error,omitempty"`
	Packages     *orb.PackagesDiff    `json:"package_diff"`
	PackageError string               `json:"package_error,omitempty"`
	Opam         *orb.SwitchDiff      `json:"opam_diff"`
	OpamError    string               `json:"opam_error,omitempty"`
}

func (s *Server) compare(w http.ResponseWriter, r *http.Request) {
	var builds [2]ledger.BuildEntry
	for i, name := range []string{"left", "right"} {
		id, err := uuid.Parse(mux.Vars(r)[name])
		if err != nil {
			s.fail(w, r, badRequest("%s %q is not a build UUID", name, mux.Vars(r)[name]))
			return
		}
		if builds[i], err = s.cfg.Ledger.Build(id); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	l, rt := builds[0].Event, builds[1].Event
	c := Comparison{Left: summary(builds[0]), Right: summary(builds[1]), SameInputs: l.Inputs.ID() == rt.Inputs.ID()}
	c.SameOutput = c.Left.MainBinary != nil && c.Right.MainBinary != nil && c.Left.MainBinary.SHA256 == c.Right.MainBinary.SHA256

	var envs [2]orb.Environment
	var envErr error
	for i, b := range []*ledger.BuildRecorded{l, rt} {
		envs[i], envErr = parseInput(s, r, b.Inputs.BuildEnvironment, "build-environment", orb.ParseEnvironment, orb.Environment{})
		if envErr != nil {
			break
		}
	}
	if envErr != nil {
		c.EnvError = envErr.Error()
	} else {
		d := orb.DiffEnvironments(envs[0], envs[1])
		c.Env = &d
	}

	var pkgs [2]orb.Packages
	var pkgErr error
	for i, b := range []*ledger.BuildRecorded{l, rt} {
		parse := func(data []byte) (orb.Packages, error) {
			return orb.ParseSystemPackages(data, envs[i].Family())
		}
		pkgs[i], pkgErr = parseInput(s, r, b.Inputs.SystemPackages, "system-packages", parse, orb.Packages{})
		if pkgErr != nil {
			break
		}
	}
	if pkgErr != nil {
		c.PackageError = pkgErr.Error()
	} else {
		d := orb.DiffPackages(pkgs[0], pkgs[1])
		c.Packages = &d
	}

	var sws [2]*orb.Switch
	var swErr error
	for i, b := range []*ledger.BuildRecorded{l, rt} {
		sws[i], swErr = parseInput(s, r, b.Inputs.OpamSwitch, "opam-switch", orb.ParseSwitch, &orb.Switch{})
		if swErr != nil {
			break
		}
	}
	if swErr != nil {
		c.OpamError = swErr.Error()
	} else {
		d := orb.DiffSwitches(sws[0], sws[1])
		c.Opam = &d
	}
	s.render(w, r, "compare", c)
}

// parseInput loads one of a build's input files from the CAS and parses it.
// A build without that file compares as empty.
func parseInput[T any](s *Server, r *http.Request, d *cas.Digest, name string, parse func([]byte) (T, error), empty T) (T, error) {
	if d == nil {
		return empty, nil
	}
	data, err := s.cfg.Ledger.Store().Bytes(r.Context(), *d, maxInputFile)
	if err != nil {
		var zero T
		return zero, &Error{Status: http.StatusInternalServerError, Msg: name + " could not be read", Err: err}
	}
	v, err := parse(data)
	if err != nil {
		var zero T
		return zero, &Error{Status: http.StatusUnprocessableEntity, Msg: name + ": " + err.Error()}
	}
	return v, nil
}
