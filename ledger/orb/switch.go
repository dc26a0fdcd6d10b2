package orb

import (
	"fmt"
	"slices"
	"strings"
)

// PackageVersion is an opam package "name.version".
type PackageVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

func (p PackageVersion) String() string { return p.Name + "." + p.Version }

// validPackageName reports whether s is an opam package name: letters,
// digits, '-', '_' and '+'. Names cannot contain dots, which is what makes
// "name.version" unambiguous.
func validPackageName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' && c != '+' {
			return false
		}
	}
	return true
}

// validPackageVersion reports whether s is an opam version: letters, digits
// and "-_+.~".
func validPackageVersion(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !isDigit(c) && !strings.ContainsRune("-_+.~", rune(c)) {
			return false
		}
	}
	return true
}

// ParsePackageVersion splits "name.version" at the first dot:
// "ocaml-base-compiler.4.12.0" is name "ocaml-base-compiler", version
// "4.12.0".
func ParsePackageVersion(s string) (PackageVersion, error) {
	name, version, ok := strings.Cut(s, ".")
	if !ok {
		return PackageVersion{}, fmt.Errorf("%s is not NAME.VERSION: no \".\"", quote(s))
	}
	if !validPackageName(name) {
		return PackageVersion{}, fmt.Errorf("%s: invalid package name %s (letters, digits, \"-\", \"_\" and \"+\" only)", quote(s), quote(name))
	}
	if !validPackageVersion(version) {
		return PackageVersion{}, fmt.Errorf("%s: invalid version %s (letters, digits and \"-_+.~\" only)", quote(s), quote(version))
	}
	return PackageVersion{Name: name, Version: version}, nil
}

// Overlay is a `package "name" { ... }` section of a switch export: the opam
// file of an installed package as opam saw it. With --full every installed
// package has one; with --freeze VCS sources are pinned to a commit.
type Overlay struct {
	Name  string
	Items []Item // the opam file's fields and sections, in file order
}

// Field returns the value of the overlay's first field called name.
func (o Overlay) Field(name string) (Value, bool) { return field(o.Items, name) }

// Section returns the overlay's first section of the given kind and name
// (name "" for an unnamed section such as url).
func (o Overlay) Section(kind, name string) (Section, bool) { return section(o.Items, kind, name) }

// Version returns the string of the "version:" field, or "".
func (o Overlay) Version() string { return stringField(o.Items, "version") }

// URL returns url.src, the package's source, or "".
func (o Overlay) URL() string {
	s, _ := o.Section("url", "")
	return stringField(s.Items, "src")
}

// Checksums returns url.checksum, which is a string or a list of strings
// such as "sha256=...".
func (o Overlay) Checksums() []string {
	s, _ := o.Section("url", "")
	v, _ := field(s.Items, "checksum")
	return stringList(v)
}

// Extensions returns the overlay's extension fields, those named "x-...",
// such as x-mirage-opam-lock-location or x-opam-monorepo-duniverse-dirs.
func (o Overlay) Extensions() []Field {
	var out []Field
	for _, it := range o.Items {
		if f, ok := it.(Field); ok && strings.HasPrefix(f.Name, "x-") {
			out = append(out, f)
		}
	}
	return out
}

// DuniverseField is the field of an opam-monorepo lock file, carried by the
// root package of a MirageOS 4 unikernel, that lists its vendored sources.
const DuniverseField = "x-opam-monorepo-duniverse-dirs"

// DuniverseDir is one vendored source of an opam-monorepo build: the
// directory under duniverse/, where it was fetched from and its hashes.
type DuniverseDir struct {
	Dir    string   `json:"dir"`
	URL    string   `json:"url"`
	Hashes []string `json:"hashes,omitempty"`
}

// Duniverse reads the overlay's x-opam-monorepo-duniverse-dirs field:
// [ [ "url" "dir" [ "hash" ... ] ] ... ], the hash list being optional. It
// returns nil, nil if the field is absent.
func (o Overlay) Duniverse() ([]DuniverseDir, error) {
	v, ok := o.Field(DuniverseField)
	if !ok {
		return nil, nil
	}
	bad := func(i int, what string) error {
		return fmt.Errorf("orb: package %s: %s element %d: %s", o.Name, DuniverseField, i+1, what)
	}
	l, ok := v.(List)
	if !ok {
		return nil, fmt.Errorf("orb: package %s: %s is not a list", o.Name, DuniverseField)
	}
	out := make([]DuniverseDir, 0, len(l))
	for i, e := range l {
		el, ok := e.(List)
		if !ok || len(el) < 2 || len(el) > 3 {
			return nil, bad(i, "want [ \"url\" \"dir\" [hashes] ]")
		}
		url, ok1 := el[0].(String)
		dir, ok2 := el[1].(String)
		if !ok1 || !ok2 {
			return nil, bad(i, "url and dir must be strings")
		}
		d := DuniverseDir{Dir: string(dir), URL: string(url)}
		if len(el) == 3 {
			if d.Hashes = stringList(el[2]); d.Hashes == nil {
				return nil, bad(i, "hashes must be a string or a list of strings")
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// Switch is the opam-switch file written by orb: the output of
// `opam switch export --full --freeze`.
type Switch struct {
	OpamVersion string           // opam-version, e.g. "2.0"
	Compiler    []PackageVersion // compiler: packages forming the compiler
	Roots       []PackageVersion // roots: packages installed explicitly
	Installed   []PackageVersion // installed: every installed package
	Pinned      []PackageVersion // pinned: pinned packages

	// Extra holds the other top-level fields and sections (for example
	// extra-files), in file order, so that they survive a round trip.
	Extra []Item

	// Overlays holds the `package "name" { ... }` sections, sorted by name;
	// names are unique.
	Overlays []Overlay
}

// switchLists are the top-level fields holding package lists.
var switchLists = []string{"compiler", "roots", "installed", "pinned"}

func (s *Switch) list(name string) *[]PackageVersion {
	switch name {
	case "compiler":
		return &s.Compiler
	case "roots":
		return &s.Roots
	case "installed":
		return &s.Installed
	case "pinned":
		return &s.Pinned
	}
	return nil
}

// Overlay returns the overlay of the named package.
func (s *Switch) Overlay(name string) (Overlay, bool) {
	i, ok := slices.BinarySearchFunc(s.Overlays, name, func(o Overlay, n string) int { return strings.Compare(o.Name, n) })
	if !ok {
		return Overlay{}, false
	}
	return s.Overlays[i], true
}

// ParseSwitch parses an opam switch export (the opam-switch file of an orb
// build). It needs opam-version; compiler, roots, installed and pinned are a
// string or a list of "name.version" strings with unique names; package
// sections need a valid, unique package name. Other items are kept in Extra.
func ParseSwitch(data []byte) (*Switch, error) {
	p := newParser(SwitchFile, data)
	var info []topInfo
	items, err := p.parseFile(&info)
	if err != nil {
		return nil, err
	}
	errAt := func(at pos, format string, args ...any) error {
		return &SyntaxError{File: SwitchFile, Line: at.line, Col: at.col, Msg: fmt.Sprintf(format, args...)}
	}
	s := &Switch{}
	seen := map[string]pos{}
	overlays := map[string]pos{}
	for i, it := range items {
		in := info[i]
		switch it := it.(type) {
		case Field:
			if it.Name != "opam-version" && s.list(it.Name) == nil {
				s.Extra = append(s.Extra, it)
				continue
			}
			if first, dup := seen[it.Name]; dup {
				return nil, errAt(in.pos, "duplicate field %s (first at line %d)", it.Name, first.line)
			}
			seen[it.Name] = in.pos
			if it.Name == "opam-version" {
				v, ok := it.Value.(String)
				if !ok || v == "" {
					return nil, errAt(in.valuePos, "opam-version must be a non-empty string such as \"2.0\"")
				}
				s.OpamVersion = string(v)
				continue
			}
			pkgs, err := packageList(it, in, errAt)
			if err != nil {
				return nil, err
			}
			*s.list(it.Name) = pkgs
		case Section:
			if it.Kind != "package" {
				s.Extra = append(s.Extra, it)
				continue
			}
			if !validPackageName(it.Name) {
				return nil, errAt(in.pos, "package section needs a package name: package \"NAME\" { ... }, got %s", quote(it.Name))
			}
			if first, dup := overlays[it.Name]; dup {
				return nil, errAt(in.pos, "duplicate section package %s (first at line %d)", quote(it.Name), first.line)
			}
			overlays[it.Name] = in.pos
			s.Overlays = append(s.Overlays, Overlay{Name: it.Name, Items: it.Items})
		}
	}
	if s.OpamVersion == "" {
		return nil, &SyntaxError{File: SwitchFile, Msg: "missing opam-version field; is this the output of opam switch export?"}
	}
	slices.SortFunc(s.Overlays, func(a, b Overlay) int { return strings.Compare(a.Name, b.Name) })
	return s, nil
}

// packageList interprets compiler/roots/installed/pinned.
func packageList(f Field, in topInfo, errAt func(pos, string, ...any) error) ([]PackageVersion, error) {
	var elems []Value
	var at []pos
	switch v := f.Value.(type) {
	case String:
		elems, at = []Value{v}, []pos{in.valuePos}
	case List:
		elems, at = v, in.elems
	default:
		return nil, errAt(in.valuePos, "%s must be a list of \"name.version\" strings", f.Name)
	}
	var out []PackageVersion
	names := map[string]int{}
	where := func(i int) pos {
		if i < len(at) {
			return at[i]
		}
		return in.valuePos
	}
	for i, e := range elems {
		s, ok := e.(String)
		if !ok {
			return nil, errAt(where(i), "%s: element %d is not a \"name.version\" string", f.Name, i+1)
		}
		pv, err := ParsePackageVersion(string(s))
		if err != nil {
			return nil, errAt(where(i), "%s: %v", f.Name, err)
		}
		if j, dup := names[pv.Name]; dup {
			return nil, errAt(where(i), "%s: package %s is listed twice (%s and %s)", f.Name, pv.Name, out[j], pv)
		}
		names[pv.Name] = len(out)
		out = append(out, pv)
	}
	return out, nil
}

// Format writes s in canonical opam syntax: opam-version, then compiler,
// roots, installed and pinned (omitted when empty), then Extra, then the
// overlays sorted by name. ParseSwitch reads the result back as an equal
// Switch. Format fails if s cannot be written that way: a missing
// opam-version, invalid or duplicate package names, Extra items that would
// read back as switch fields or package sections, or values FormatOpamFile
// refuses.
func (s *Switch) Format() ([]byte, error) {
	if s.OpamVersion == "" {
		return nil, fmt.Errorf("orb: cannot format switch: empty OpamVersion")
	}
	items := []Item{Field{Name: "opam-version", Value: String(s.OpamVersion)}}
	for _, name := range switchLists {
		pkgs := *s.list(name)
		if len(pkgs) == 0 {
			continue
		}
		l := make(List, len(pkgs))
		names := map[string]bool{}
		for i, pv := range pkgs {
			if !validPackageName(pv.Name) || !validPackageVersion(pv.Version) {
				return nil, fmt.Errorf("orb: cannot format switch: %s: invalid package %s", name, quote(pv.String()))
			}
			if names[pv.Name] {
				return nil, fmt.Errorf("orb: cannot format switch: %s: package %s is listed twice", name, pv.Name)
			}
			names[pv.Name] = true
			l[i] = String(pv.String())
		}
		items = append(items, Field{Name: name, Value: l})
	}
	for _, it := range s.Extra {
		switch it := it.(type) {
		case Field:
			if it.Name == "opam-version" || s.list(it.Name) != nil {
				return nil, fmt.Errorf("orb: cannot format switch: Extra holds switch field %s", it.Name)
			}
		case Section:
			if it.Kind == "package" {
				return nil, fmt.Errorf("orb: cannot format switch: Extra holds a package section")
			}
		}
		items = append(items, it)
	}
	for i, o := range s.Overlays {
		if !validPackageName(o.Name) {
			return nil, fmt.Errorf("orb: cannot format switch: invalid overlay package name %s", quote(o.Name))
		}
		if i > 0 && s.Overlays[i-1].Name >= o.Name {
			return nil, fmt.Errorf("orb: cannot format switch: overlays must be sorted by name without duplicates (%s after %s)", o.Name, s.Overlays[i-1].Name)
		}
		items = append(items, Section{Kind: "package", Name: o.Name, Items: o.Items})
	}
	return FormatOpamFile(items)
}
