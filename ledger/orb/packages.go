package orb

import (
	"bytes"
	"fmt"
)

// Family is the kind of host package manager a system-packages file comes
// from, which decides how its lines are written.
type Family uint8

const (
	// UnknownFamily asks ParseSystemPackages to detect the family from the
	// first line: a line with "=" is Debian, otherwise FreeBSD.
	UnknownFamily Family = iota
	// Debian: `dpkg-query --showformat='${Package}=${Version}\n' -W`,
	// lines "name=version", split at the first "=".
	Debian
	// FreeBSD: `pkg query %n-%v`, lines "name-version", split at the last
	// "-" (names such as py39-setuptools contain dashes; versions do not).
	FreeBSD
)

func (f Family) String() string {
	switch f {
	case Debian:
		return "debian"
	case FreeBSD:
		return "freebsd"
	}
	return "unknown"
}

// MarshalText encodes the family as "debian", "freebsd" or "unknown".
func (f Family) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText decodes "debian", "freebsd" or "unknown".
func (f *Family) UnmarshalText(b []byte) error {
	for _, g := range []Family{UnknownFamily, Debian, FreeBSD} {
		if string(b) == g.String() {
			*f = g
			return nil
		}
	}
	return fmt.Errorf("orb: unknown package family %s", quote(string(b)))
}

// Package is one installed host system package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Packages is the system-packages file of an orb build.
//
// Lines are "name=version" (Debian) or "name-version" (FreeBSD), one per
// package, in the order the package manager printed them; all lines of a
// file have the same form. Names and versions are non-empty printable ASCII
// without blanks. Debian names keep an architecture suffix
// ("libc6:amd64=2.36-9"). A name may appear more than once: dpkg-query's
// ${Package} lists a Multi-Arch: same package once per installed
// architecture, under the same name. The final newline is optional; empty
// lines, carriage returns (CRLF) and NUL bytes are errors. An empty file has
// no packages.
type Packages struct {
	Family Family    `json:"family"`
	List   []Package `json:"packages"`
}

// notPrintable returns the index of the first byte of s that is a blank, a
// control character or not ASCII, or -1.
func notPrintable(s []byte) int {
	for i, c := range s {
		if c <= ' ' || c >= 0x7f {
			return i
		}
	}
	return -1
}

// ParseSystemPackages parses a system-packages file written for the given
// family; with UnknownFamily the family is detected from the first line and
// recorded in the result. Errors are *SyntaxError with the line number.
func ParseSystemPackages(data []byte, family Family) (Packages, error) {
	if family > FreeBSD {
		return Packages{}, fmt.Errorf("orb: unknown package family %d", family)
	}
	pkgs := Packages{Family: family}
	err := eachLine(data, func(n int, line []byte) error {
		fail := func(format string, args ...any) error {
			return &SyntaxError{File: PackagesFile, Line: n, Msg: fmt.Sprintf(format, args...)}
		}
		if p := lineProblem(line); p != "" {
			return fail("%s", p)
		}
		if i := notPrintable(line); i >= 0 {
			what := fmt.Sprintf("invalid byte 0x%02x", line[i])
			if line[i] == ' ' || line[i] == '\t' {
				what = "blank"
			}
			return fail("%s in %s; names and versions are printable ASCII without blanks", what, quote(string(line)))
		}
		hasEq := bytes.IndexByte(line, '=') >= 0
		if pkgs.Family == UnknownFamily {
			pkgs.Family = FreeBSD
			if hasEq {
				pkgs.Family = Debian
			}
		}
		var name, version []byte
		switch pkgs.Family {
		case Debian:
			var ok bool
			if name, version, ok = bytes.Cut(line, []byte("=")); !ok {
				return fail("no \"=\" in %s; Debian lines are NAME=VERSION", quote(string(line)))
			}
		case FreeBSD:
			if hasEq {
				return fail("\"=\" in %s; FreeBSD lines are NAME-VERSION (is this a Debian file?)", quote(string(line)))
			}
			i := bytes.LastIndexByte(line, '-')
			if i < 0 {
				return fail("no \"-\" in %s; FreeBSD lines are NAME-VERSION", quote(string(line)))
			}
			name, version = line[:i], line[i+1:]
		}
		if len(name) == 0 {
			return fail("empty package name in %s", quote(string(line)))
		}
		if len(version) == 0 {
			return fail("empty version in %s", quote(string(line)))
		}
		pkgs.List = append(pkgs.List, Package{Name: string(name), Version: string(version)})
		return nil
	})
	if err != nil {
		return Packages{}, err
	}
	return pkgs, nil
}

// Format writes the packages in their family's form, one line each with a
// final newline. It refuses what ParseSystemPackages would not read back as
// the same list: UnknownFamily with packages, empty names or versions,
// blanks or non-printable bytes, "=" in a Debian name, and "=" anywhere or
// "-" in the version of a FreeBSD package.
func (p Packages) Format() ([]byte, error) {
	if p.Family == UnknownFamily && len(p.List) > 0 || p.Family > FreeBSD {
		return nil, fmt.Errorf("orb: cannot format system-packages: family %s", p.Family)
	}
	var b []byte
	for _, pkg := range p.List {
		bad := func(why string) error {
			return fmt.Errorf("orb: cannot format system-packages: %s package %s version %s: %s",
				p.Family, quote(pkg.Name), quote(pkg.Version), why)
		}
		switch {
		case pkg.Name == "" || pkg.Version == "":
			return nil, bad("empty name or version")
		case notPrintable([]byte(pkg.Name)) >= 0 || notPrintable([]byte(pkg.Version)) >= 0:
			return nil, bad("blank or non-printable byte")
		}
		sep := byte('=')
		switch p.Family {
		case Debian:
			if bytes.IndexByte([]byte(pkg.Name), '=') >= 0 {
				return nil, bad(`"=" in name`)
			}
		case FreeBSD:
			if bytes.IndexByte([]byte(pkg.Name+pkg.Version), '=') >= 0 {
				return nil, bad(`"=" in a FreeBSD package`)
			}
			if bytes.IndexByte([]byte(pkg.Version), '-') >= 0 {
				return nil, bad(`"-" in a FreeBSD version`)
			}
			sep = '-'
		}
		b = append(b, pkg.Name...)
		b = append(b, sep)
		b = append(b, pkg.Version...)
		b = append(b, '\n')
	}
	return b, nil
}
