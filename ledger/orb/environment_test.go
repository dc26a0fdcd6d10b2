package orb

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestEnvironmentRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      []Var
		canonical string // Format of the parsed value; "" means same as in
	}{
		{name: "empty file", in: "", want: nil},
		{
			name: "orb writes no final newline",
			in:   "HOME=/nonexistent\nPATH=/usr/bin:/bin\nOS=linux",
			want: []Var{
				{"HOME", "/nonexistent"}, {"PATH", "/usr/bin:/bin"}, {"OS", "linux"},
			},
			canonical: "HOME=/nonexistent\nPATH=/usr/bin:/bin\nOS=linux\n",
		},
		{
			name: "canonical form",
			in:   "OS=freebsd\nOS_FAMILY=bsd\n",
			want: []Var{{"OS", "freebsd"}, {"OS_FAMILY", "bsd"}},
		},
		{
			name: "split at the first =",
			in:   "OPAMFLAGS=--x=1 --y==2\nEQ==\n",
			want: []Var{{"OPAMFLAGS", "--x=1 --y==2"}, {"EQ", "="}},
		},
		{
			name: "empty value, blanks and UTF-8 in values",
			in:   "EMPTY=\nSPACES=  a  b \t\nUTF=Bünzli\n",
			want: []Var{{"EMPTY", ""}, {"SPACES", "  a  b \t"}, {"UTF", "Bünzli"}},
		},
		{
			name: "order is kept",
			in:   "Z=1\nA=2\nM=3\n",
			want: []Var{{"Z", "1"}, {"A", "2"}, {"M", "3"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := ParseEnvironment([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(env.Vars, tt.want) {
				t.Fatalf("Vars = %q, want %q", env.Vars, tt.want)
			}
			out, err := env.Format()
			if err != nil {
				t.Fatal(err)
			}
			canonical := tt.canonical
			if canonical == "" {
				canonical = tt.in
			}
			if string(out) != canonical {
				t.Fatalf("Format = %q, want %q", out, canonical)
			}
			again, err := ParseEnvironment(out)
			if err != nil || !reflect.DeepEqual(again, env) {
				t.Fatalf("Parse(Format(x)) = %v, %v; want %v", again, err, env)
			}
		})
	}
}

func TestEnvironmentErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string // the whole message
	}{
		{"A=1\nB=2\nFOO", `build-environment line 3: no "=" in "FOO"; each line must be NAME=VALUE`},
		{"=foo\n", `build-environment line 1: empty variable name in "=foo"`},
		{"A=1\nA B=2\n", `build-environment line 2: variable name "A B" contains a blank or control character in "A B=2"`},
		{"A\tB=2", `build-environment line 1: variable name "A\tB" contains a blank or control character`},
		{"A=1\nB=2\nA=3\n", `build-environment line 3: duplicate variable A (first set on line 1)`},
		{"A=1\n\nB=2\n", `build-environment line 2: empty line`},
		{"A=1\n\n", `build-environment line 2: empty line`},
		{"\n", `build-environment line 1: empty line`},
		{"A=1\r\nB=2\r\n", `build-environment line 1: carriage return in line`},
		{"A=1\nB=x\x00y\n", `build-environment line 2: NUL byte in line`},
	}
	for _, tt := range tests {
		_, err := ParseEnvironment([]byte(tt.in))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ParseEnvironment(%q) error = %v, want a *SyntaxError", tt.in, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseEnvironment(%q) error = %q, want prefix %q", tt.in, err, tt.want)
		}
	}
}

func TestEnvironmentFormatRefuses(t *testing.T) {
	for _, vars := range [][]Var{
		{{"", "x"}},
		{{"A=B", "x"}},
		{{"A B", "x"}},
		{{"A", "two\nlines"}},
		{{"A", "cr\r"}},
		{{"A", "nul\x00"}},
		{{"A", "1"}, {"A", "2"}},
	} {
		if out, err := (Environment{Vars: vars}).Format(); err == nil {
			t.Errorf("Format(%q) = %q, want an error", vars, out)
		}
	}
}

func TestEnvironmentGet(t *testing.T) {
	env, err := ParseEnvironment([]byte("A=1\nB=\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := env.Get("A"); v != "1" || !ok {
		t.Errorf("Get(A) = %q, %v", v, ok)
	}
	if v, ok := env.Get("B"); v != "" || !ok {
		t.Errorf("Get(B) = %q, %v", v, ok)
	}
	if v, ok := env.Get("C"); v != "" || ok {
		t.Errorf("Get(C) = %q, %v", v, ok)
	}
}

func TestEnvironmentFamily(t *testing.T) {
	tests := []struct {
		env  string
		want Family
	}{
		{"OS=linux\nOS_DISTRIBUTION=debian\nOS_VERSION=12\nOS_FAMILY=debian\nARCH=x86_64", Debian},
		{"OS=linux\nOS_DISTRIBUTION=ubuntu\nOS_VERSION=22.04\nOS_FAMILY=debian", Debian},
		{"OS=linux\nOS_DISTRIBUTION=linuxmint\nOS_FAMILY=ubuntu", Debian},
		{"OS=freebsd\nOS_DISTRIBUTION=freebsd\nOS_VERSION=1402000\nOS_FAMILY=bsd\nARCH=x86_64", FreeBSD},
		{"OS_DISTRIBUTION=freebsd\nOS_FAMILY=bsd", FreeBSD},
		{"OS=openbsd\nOS_DISTRIBUTION=openbsd\nOS_FAMILY=bsd", UnknownFamily},
		{"OS=linux\nOS_DISTRIBUTION=fedora\nOS_FAMILY=fedora", UnknownFamily},
		{"", UnknownFamily},
	}
	for _, tt := range tests {
		env, err := ParseEnvironment([]byte(tt.env))
		if err != nil {
			t.Fatal(err)
		}
		if got := env.Family(); got != tt.want {
			t.Errorf("Family(%q) = %v, want %v", tt.env, got, tt.want)
		}
	}
}
