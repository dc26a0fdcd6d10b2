package orb

import (
	"bytes"
	"fmt"
)

// Var is one variable of a build-environment.
type Var struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Environment is the build-environment file of an orb build: the process
// environment orb ran with, plus OS, OS_DISTRIBUTION, OS_VERSION, OS_FAMILY
// and ARCH (as opam's sys-poll reports them), ORB_DATA and SWITCH_PATH.
//
// The file is "NAME=VALUE" lines joined by "\n". The rules for reading it:
//
//   - the final newline is optional (orb writes none; Format writes one);
//   - a line is split at its first "=", so a value may contain "=";
//   - a name must be non-empty and free of blanks, control characters and NUL;
//   - a name may appear only once;
//   - empty lines, lines without "=", carriage returns (CRLF line endings)
//     and NUL bytes are errors: a value containing a newline cannot be
//     represented, and rejecting these keeps a damaged file from being read
//     as a different environment.
//
// An empty file is an empty environment.
type Environment struct {
	Vars []Var // in file order
}

// Get returns the value of the named variable.
func (e Environment) Get(name string) (string, bool) {
	for _, v := range e.Vars {
		if v.Name == name {
			return v.Value, true
		}
	}
	return "", false
}

// Family returns the system package family of the build host, from OS,
// OS_FAMILY and OS_DISTRIBUTION (the values of opam's os, os-family and
// os-distribution variables): OS "freebsd" is FreeBSD; OS_FAMILY "debian"
// or "ubuntu" is Debian (opam reports the first word of os-release's
// ID_LIKE, or the ID: Ubuntu and Raspbian report "debian", Ubuntu
// derivatives may report "ubuntu"). Anything else is UnknownFamily.
func (e Environment) Family() Family {
	osName, _ := e.Get("OS")
	family, _ := e.Get("OS_FAMILY")
	distribution, _ := e.Get("OS_DISTRIBUTION")
	switch {
	case osName == "freebsd", family == "bsd" && distribution == "freebsd":
		return FreeBSD
	case family == "debian", family == "ubuntu":
		return Debian
	}
	return UnknownFamily
}

// eachLine calls fn with each line of data and its 1-based number. A final
// newline does not start another line.
func eachLine(data []byte, fn func(n int, line []byte) error) error {
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	return nil
}

// lineProblem returns what makes a line unacceptable in both line-based
// files, or "".
func lineProblem(line []byte) string {
	switch {
	case len(line) == 0:
		return "empty line"
	case bytes.IndexByte(line, '\r') >= 0:
		return `carriage return in line; the file must use "\n" line endings, not CRLF`
	case bytes.IndexByte(line, 0) >= 0:
		return "NUL byte in line " + quote(string(line))
	}
	return ""
}

// nameProblem returns what makes name unacceptable as a variable name, or "".
func nameProblem(name string) string {
	if name == "" {
		return "empty variable name"
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '=':
			return "variable name " + quote(name) + ` contains "="`
		case c <= ' ' || c == 0x7f:
			return "variable name " + quote(name) + " contains a blank or control character"
		}
	}
	return ""
}

// ParseEnvironment parses a build-environment file; see Environment for the
// rules. Errors are *SyntaxError with the line number.
func ParseEnvironment(data []byte) (Environment, error) {
	var env Environment
	first := map[string]int{}
	err := eachLine(data, func(n int, line []byte) error {
		fail := func(format string, args ...any) error {
			return &SyntaxError{File: EnvironmentFile, Line: n, Msg: fmt.Sprintf(format, args...)}
		}
		if p := lineProblem(line); p != "" {
			return fail("%s", p)
		}
		name, value, ok := bytes.Cut(line, []byte("="))
		if !ok {
			return fail("no \"=\" in %s; each line must be NAME=VALUE", quote(string(line)))
		}
		if p := nameProblem(string(name)); p != "" {
			return fail("%s in %s", p, quote(string(line)))
		}
		if m, dup := first[string(name)]; dup {
			return fail("duplicate variable %s (first set on line %d)", name, m)
		}
		first[string(name)] = n
		env.Vars = append(env.Vars, Var{Name: string(name), Value: string(value)})
		return nil
	})
	if err != nil {
		return Environment{}, err
	}
	return env, nil
}

// Format writes e canonically: one "NAME=VALUE\n" line per variable, in
// order. It refuses what ParseEnvironment would not read back: invalid or
// duplicate names, and values containing a newline, carriage return or NUL.
func (e Environment) Format() ([]byte, error) {
	var b []byte
	seen := make(map[string]bool, len(e.Vars))
	for _, v := range e.Vars {
		if p := nameProblem(v.Name); p != "" {
			return nil, fmt.Errorf("orb: cannot format build-environment: %s", p)
		}
		if seen[v.Name] {
			return nil, fmt.Errorf("orb: cannot format build-environment: duplicate variable %s", v.Name)
		}
		seen[v.Name] = true
		for i := 0; i < len(v.Value); i++ {
			if c := v.Value[i]; c == '\n' || c == '\r' || c == 0 {
				return nil, fmt.Errorf("orb: cannot format build-environment: value of %s contains %q", v.Name, c)
			}
		}
		b = append(b, v.Name...)
		b = append(b, '=')
		b = append(b, v.Value...)
		b = append(b, '\n')
	}
	return b, nil
}
