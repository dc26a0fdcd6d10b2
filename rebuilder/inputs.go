package rebuilder

import (
	"fmt"
	"strings"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/event"

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
func ArtifactsOf(e *builder.Exec) []event.Artifact {
	arts := []event.Artifact{}
	for _, f := range e.Output {
		if !isInput(f.Path) {
			arts = append(arts, event.Artifact{Path: f.Path, SHA256: digest.Sum(f.Data), Size: int64(len(f.Data))})
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

// String lists the differences one per line, recorded side first:
// "environment: FOO changed: 1 → 2", "system-packages: added gcc=12.2.0-14", ...
func (d InputsDiff) String() string {
	var b strings.Builder
	line := func(file, format string, args ...any) {
		fmt.Fprintf(&b, "  %s: %s\n", file, fmt.Sprintf(format, args...))
	}
	for _, f := range d.Removed {
		line(f, "recorded, not captured by the rebuild")
	}
	for _, f := range d.Added {
		line(f, "captured by the rebuild, not recorded")
	}
	env := d.Environment
	for _, v := range env.Removed {
		line(orb.EnvironmentFile, "removed %s=%s", v.Name, v.Value)
	}
	for _, v := range env.Added {
		line(orb.EnvironmentFile, "added %s=%s", v.Name, v.Value)
	}
	for _, c := range env.Changed {
		line(orb.EnvironmentFile, "%s changed: %s → %s", c.Name, c.Old, c.New)
	}
	p := d.Packages
	for _, x := range p.Removed {
		line(orb.PackagesFile, "removed %s %s", x.Name, x.Version)
	}
	for _, x := range p.Added {
		line(orb.PackagesFile, "added %s %s", x.Name, x.Version)
	}
	for _, c := range p.Changed {
		line(orb.PackagesFile, "%s changed: %s → %s", c.Name, c.Old, c.New)
	}
	s := d.Switch
	for _, x := range s.Removed {
		line(orb.SwitchFile, "removed %s.%s", x.Name, x.Version)
	}
	for _, x := range s.Added {
		line(orb.SwitchFile, "added %s.%s", x.Name, x.Version)
	}
	for _, c := range s.VersionChanged {
		line(orb.SwitchFile, "%s changed: %s → %s", c.Name, c.Old, c.New)
	}
	for _, x := range s.OpamFileChanged {
		line(orb.SwitchFile, "opam file of %s.%s changed (%d fields)", x.Name, x.Version, len(x.Changes))
	}
	if !s.Duniverse.Empty() {
		line(orb.SwitchFile, "opam-monorepo sources changed")
	}
	return b.String()
}
