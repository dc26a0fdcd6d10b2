package rebuilder

import (
	"fmt"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/buildledger/buildledger/ledger/orb"
)

// Inputs are the three files orb records about a build's inputs, parsed.
type Inputs struct {
	Environment orb.Environment // build-environment
	Packages    *orb.Packages   // system-packages; nil when not captured
	Switch      *orb.Switch     // opam-switch; nil when not captured
}

// InputsOf reads the input files of a recorded build (build-environment,
// system-packages, opam-switch among its outputs), as a rebuild needs them:
// the environment to restore (Options.Env) and the inputs to compare with
// DiffInputs. system-packages is read in the package format of the
// recorded host's family. A missing build-environment is an error.
func InputsOf(e *builder.Exec) (Inputs, error) {
	var in Inputs
	var env, pkgs, sw []byte
	for _, f := range e.Output {
		switch f.Path {
		case orb.EnvironmentFile:
			env = f.Data
		case orb.PackagesFile:
			pkgs = f.Data
		case orb.SwitchFile:
			sw = f.Data
		}
	}
	if env == nil {
		return Inputs{}, fmt.Errorf("rebuilder: build %s has no %s", e.UUID, orb.EnvironmentFile)
	}
	var err error
	if in.Environment, err = orb.ParseEnvironment(env); err != nil {
		return Inputs{}, fmt.Errorf("rebuilder: build %s: %w", e.UUID, err)
	}
	if pkgs != nil {
		p, err := orb.ParseSystemPackages(pkgs, in.Environment.Family())
		if err != nil {
			return Inputs{}, fmt.Errorf("rebuilder: build %s: %w", e.UUID, err)
		}
		in.Packages = &p
	}
	if sw != nil {
		if in.Switch, err = orb.ParseSwitch(sw); err != nil {
			return Inputs{}, fmt.Errorf("rebuilder: build %s: %w", e.UUID, err)
		}
	}
	return in, nil
}

// ArtifactsOf returns the outputs of a recorded build other than its input
// files, with their digests and sizes, as Compare expects them.
func ArtifactsOf(e *builder.Exec) []ledger.Artifact {
	arts := []ledger.Artifact{}
	for _, f := range e.Output {
		if !isInput(f.Path) {
			arts = append(arts, ledger.Artifact{Path: f.Path, SHA256: cas.Sum(f.Data), Size: int64(len(f.Data))})
		}
	}
	return arts
}

func isInput(p string) bool {
	return p == orb.EnvironmentFile || p == orb.PackagesFile || p == orb.SwitchFile
}

// InputsDiff is how the inputs of two builds differ: the orb diffs of each
// file present in both, and the files present in one only.
type InputsDiff struct {
	Environment orb.EnvironmentDiff `json:"environment"`
	Packages    orb.PackagesDiff    `json:"packages"`
	Switch      orb.SwitchDiff      `json:"switch"`
	Removed     []string            `json:"removed"` // input files only the left build has
	Added       []string            `json:"added"`   // input files only the right build has
}

// Empty reports whether the inputs are the same.
func (d InputsDiff) Empty() bool {
	return d.Environment.Empty() && d.Packages.Empty() && d.Switch.Empty() && len(d.Removed) == 0 && len(d.Added) == 0
}

// DiffInputs compares the inputs of two builds, typically a recorded one
// (left) and its rebuild (right), with the orb diffs of package
// ledger/orb.
func DiffInputs(left, right Inputs) InputsDiff {
	d := InputsDiff{Environment: orb.DiffEnvironments(left.Environment, right.Environment), Removed: []string{}, Added: []string{}}
	presence := func(name string, l, r bool) {
		switch {
		case l && !r:
			d.Removed = append(d.Removed, name)
		case r && !l:
			d.Added = append(d.Added, name)
		}
	}
	presence(orb.PackagesFile, left.Packages != nil, right.Packages != nil)
	presence(orb.SwitchFile, left.Switch != nil, right.Switch != nil)
	if left.Packages != nil && right.Packages != nil {
		d.Packages = orb.DiffPackages(*left.Packages, *right.Packages)
	} else {
		d.Packages = orb.DiffPackages(orb.Packages{}, orb.Packages{})
	}
	l, r := left.Switch, right.Switch
	if l == nil || r == nil {
		l, r = &orb.Switch{}, &orb.Switch{}
	}
	d.Switch = orb.DiffSwitches(l, r)
	return d
}
