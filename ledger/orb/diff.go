package orb

import (
	"slices"
	"strconv"
	"strings"
)

// The diffs compare the inputs of two builds, for a page like builder-web's
// /compare/{left}/{right}. Every list is sorted by name and is empty (not
// nil) when nothing differs, so JSON always has [] rather than null.

// Change is a named value that differs between the left (Old) and right (New)
// build.
type Change struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// EnvironmentDiff lists the variables only in the left build (Removed), only
// in the right build (Added), and in both with different values (Changed).
type EnvironmentDiff struct {
	Removed []Var    `json:"removed"`
	Added   []Var    `json:"added"`
	Changed []Change `json:"changed"`
}

// Empty reports whether the environments are the same.
func (d EnvironmentDiff) Empty() bool {
	return len(d.Removed)+len(d.Added)+len(d.Changed) == 0
}

// DiffEnvironments compares two build environments.
func DiffEnvironments(a, b Environment) EnvironmentDiff {
	vars := func(e Environment) map[string]string {
		m := make(map[string]string, len(e.Vars))
		for _, v := range e.Vars {
			m[v.Name] = v.Value
		}
		return m
	}
	left, right := vars(a), vars(b)
	removed, added, changed := diffKeys(left, right, func(x, y string) bool { return x == y })
	d := EnvironmentDiff{Removed: []Var{}, Added: []Var{}, Changed: []Change{}}
	for _, k := range removed {
		d.Removed = append(d.Removed, Var{Name: k, Value: left[k]})
	}
	for _, k := range added {
		d.Added = append(d.Added, Var{Name: k, Value: right[k]})
	}
	for _, k := range changed {
		d.Changed = append(d.Changed, Change{Name: k, Old: left[k], New: right[k]})
	}
	return d
}

// diffKeys compares two maps by key: the keys only in left, only in right,
// and in both with values that are not equal, each list sorted.
func diffKeys[V any](left, right map[string]V, equal func(a, b V) bool) (removed, added, changed []string) {
	for k, a := range left {
		if b, ok := right[k]; !ok {
			removed = append(removed, k)
		} else if !equal(a, b) {
			changed = append(changed, k)
		}
	}
	for k := range right {
		if _, ok := left[k]; !ok {
			added = append(added, k)
		}
	}
	slices.Sort(removed)
	slices.Sort(added)
	slices.Sort(changed)
	return removed, added, changed
}

func compareChange(x, y Change) int { return strings.Compare(x.Name, y.Name) }

// PackagesDiff lists the system packages only in the left build (Removed),
// only in the right build (Added), and in both with different versions
// (Changed). A name listed more than once (one entry per architecture) is
// compared by its sorted versions, which a Change shows joined by ", ".
type PackagesDiff struct {
	Removed []Package `json:"removed"`
	Added   []Package `json:"added"`
	Changed []Change  `json:"changed"`
}

// Empty reports whether the package lists are the same.
func (d PackagesDiff) Empty() bool {
	return len(d.Removed)+len(d.Added)+len(d.Changed) == 0
}

// DiffPackages compares the system packages of two builds.
func DiffPackages(a, b Packages) PackagesDiff {
	group := func(p Packages) map[string][]string {
		m := map[string][]string{}
		for _, pkg := range p.List {
			m[pkg.Name] = append(m[pkg.Name], pkg.Version)
		}
		for _, vs := range m {
			slices.Sort(vs)
		}
		return m
	}
	left, right := group(a), group(b)
	removed, added, changed := diffKeys(left, right, slices.Equal[[]string])
	d := PackagesDiff{Removed: []Package{}, Added: []Package{}, Changed: []Change{}}
	for _, k := range removed {
		for _, v := range left[k] {
			d.Removed = append(d.Removed, Package{Name: k, Version: v})
		}
	}
	for _, k := range added {
		for _, v := range right[k] {
			d.Added = append(d.Added, Package{Name: k, Version: v})
		}
	}
	for _, k := range changed {
		d.Changed = append(d.Changed, Change{Name: k, Old: strings.Join(left[k], ", "), New: strings.Join(right[k], ", ")})
	}
	return d
}

// SwitchDiff compares the opam switches of two builds: installed packages
// only in the left build (Removed), only in the right one (Added), installed
// in both at different versions (VersionChanged), installed in both at the
// same version but with different opam files (OpamFileChanged), and the
// opam-monorepo sources of MirageOS 4 builds (Duniverse).
type SwitchDiff struct {
	Removed         []PackageVersion `json:"removed"`
	Added           []PackageVersion `json:"added"`
	VersionChanged  []Change         `json:"version_changed"`
	OpamFileChanged []OpamFileDiff   `json:"opam_file_changed"`
	Duniverse       DuniverseDiff    `json:"duniverse"`
}

// Empty reports whether the switches are the same as far as the diff sees.
func (d SwitchDiff) Empty() bool {
	return len(d.Removed)+len(d.Added)+len(d.VersionChanged)+len(d.OpamFileChanged) == 0 && d.Duniverse.Empty()
}

// OpamFileDiff lists how the opam file (overlay) of one package at one
// version differs. Each Change is one field or section: Name is the field
// name, or the section kind followed by its quoted name if it has one
// (`url`, `extra-source "x.patch"`); Old and New are the item in canonical
// opam syntax, "" where the item is absent.
type OpamFileDiff struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Changes []Change `json:"changes"`
}

// DuniverseDiff lists vendored source directories only in the left build
// (Removed), only in the right one (Added), and in both with a different URL
// or hashes (Changed).
type DuniverseDiff struct {
	Removed []DuniverseDir    `json:"removed"`
	Added   []DuniverseDir    `json:"added"`
	Changed []DuniverseChange `json:"changed"`
}

// Empty reports whether the duniverses are the same.
func (d DuniverseDiff) Empty() bool {
	return len(d.Removed)+len(d.Added)+len(d.Changed) == 0
}

// DuniverseChange is a duniverse directory fetched differently.
type DuniverseChange struct {
	Dir string       `json:"dir"`
	Old DuniverseDir `json:"old"`
	New DuniverseDir `json:"new"`
}

// DiffSwitches compares two switches by their installed packages and the
// overlays of packages installed at the same version in both. The duniverse
// is read from every overlay carrying x-opam-monorepo-duniverse-dirs (in
// practice the root package of the unikernel); a malformed field is
// skipped, and a directory listed by several overlays counts once, from the
// first overlay by package name.
func DiffSwitches(a, b *Switch) SwitchDiff {
	d := SwitchDiff{
		Removed:         []PackageVersion{},
		Added:           []PackageVersion{},
		VersionChanged:  []Change{},
		OpamFileChanged: []OpamFileDiff{},
	}
	left := versions(a.Installed)
	right := versions(b.Installed)
	for _, pv := range a.Installed {
		nv, ok := right[pv.Name]
		switch {
		case !ok:
			d.Removed = append(d.Removed, pv)
		case nv != pv.Version:
			d.VersionChanged = append(d.VersionChanged, Change{Name: pv.Name, Old: pv.Version, New: nv})
		default:
			oa, _ := a.Overlay(pv.Name)
			ob, _ := b.Overlay(pv.Name)
			if changes := diffItems(oa.Items, ob.Items); len(changes) > 0 {
				d.OpamFileChanged = append(d.OpamFileChanged, OpamFileDiff{Name: pv.Name, Version: pv.Version, Changes: changes})
			}
		}
	}
	for _, pv := range b.Installed {
		if _, ok := left[pv.Name]; !ok {
			d.Added = append(d.Added, pv)
		}
	}
	byName := func(x, y PackageVersion) int { return strings.Compare(x.Name, y.Name) }
	slices.SortFunc(d.Removed, byName)
	slices.SortFunc(d.Added, byName)
	slices.SortFunc(d.VersionChanged, compareChange)
	slices.SortFunc(d.OpamFileChanged, func(x, y OpamFileDiff) int { return strings.Compare(x.Name, y.Name) })
	d.Duniverse = diffDuniverse(duniverse(a), duniverse(b))
	return d
}

func versions(pkgs []PackageVersion) map[string]string {
	m := make(map[string]string, len(pkgs))
	for _, pv := range pkgs {
		m[pv.Name] = pv.Version
	}
	return m
}

// itemKey names an item for OpamFileDiff.
func itemKey(it Item) string {
	switch it := it.(type) {
	case Field:
		return it.Name
	case Section:
		if it.Name != "" {
			return it.Kind + " " + strconv.Quote(it.Name)
		}
		return it.Kind
	}
	return ""
}

// itemTexts maps each item key to the canonical text of its items (joined
// by newlines if several items share the key).
func itemTexts(items []Item) map[string]string {
	texts := map[string][]string{}
	for _, it := range items {
		var pr printer
		pr.item(it, 0)
		k := itemKey(it)
		texts[k] = append(texts[k], strings.TrimSuffix(string(pr.b), "\n"))
	}
	m := make(map[string]string, len(texts))
	for k, t := range texts {
		m[k] = strings.Join(t, "\n")
	}
	return m
}

// diffItems compares two opam files field by field, ignoring order.
func diffItems(a, b []Item) []Change {
	left, right := itemTexts(a), itemTexts(b)
	removed, added, changed := diffKeys(left, right, func(x, y string) bool { return x == y })
	var out []Change
	for _, k := range slices.Concat(removed, added, changed) {
		out = append(out, Change{Name: k, Old: left[k], New: right[k]})
	}
	slices.SortFunc(out, compareChange)
	return out
}

// duniverse collects the duniverse directories of all overlays.
func duniverse(s *Switch) map[string]DuniverseDir {
	m := map[string]DuniverseDir{}
	for _, o := range s.Overlays {
		dirs, err := o.Duniverse()
		if err != nil {
			continue
		}
		for _, dir := range dirs {
			if _, ok := m[dir.Dir]; !ok {
				m[dir.Dir] = dir
			}
		}
	}
	return m
}

func diffDuniverse(left, right map[string]DuniverseDir) DuniverseDiff {
	removed, added, changed := diffKeys(left, right, func(x, y DuniverseDir) bool {
		return x.URL == y.URL && slices.Equal(x.Hashes, y.Hashes)
	})
	d := DuniverseDiff{Removed: []DuniverseDir{}, Added: []DuniverseDir{}, Changed: []DuniverseChange{}}
	for _, k := range removed {
		d.Removed = append(d.Removed, left[k])
	}
	for _, k := range added {
		d.Added = append(d.Added, right[k])
	}
	for _, k := range changed {
		d.Changed = append(d.Changed, DuniverseChange{Dir: k, Old: left[k], New: right[k]})
	}
	return d
}
