package orb

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestSystemPackagesRoundTrip(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		family     Family // given to ParseSystemPackages
		wantFamily Family
		want       []Package
		canonical  string // "" means same as in
	}{
		{name: "empty file", in: "", family: UnknownFamily, wantFamily: UnknownFamily},
		{name: "empty Debian file", in: "", family: Debian, wantFamily: Debian},
		{
			name:   "Debian",
			in:     "adduser=3.134\nlibc6:amd64=2.36-9+deb12u4\nlibc6:i386=2.36-9+deb12u4\nopam=2.1.2-1\n",
			family: Debian, wantFamily: Debian,
			want: []Package{
				{"adduser", "3.134"}, {"libc6:amd64", "2.36-9+deb12u4"},
				{"libc6:i386", "2.36-9+deb12u4"}, {"opam", "2.1.2-1"},
			},
		},
		{
			name:   "Debian epoch, tilde and no final newline",
			in:     "bsdutils=1:2.38.1-5+b1\nlibgcc-s1=12.2.0-14\ngzip=1.12-1~bpo11+1",
			family: UnknownFamily, wantFamily: Debian,
			want: []Package{
				{"bsdutils", "1:2.38.1-5+b1"}, {"libgcc-s1", "12.2.0-14"}, {"gzip", "1.12-1~bpo11+1"},
			},
			canonical: "bsdutils=1:2.38.1-5+b1\nlibgcc-s1=12.2.0-14\ngzip=1.12-1~bpo11+1\n",
		},
		{
			name:   "Debian multiarch package listed twice under one name",
			in:     "libc6=2.36-9\nlibc6=2.36-9\n",
			family: Debian, wantFamily: Debian,
			want: []Package{{"libc6", "2.36-9"}, {"libc6", "2.36-9"}},
		},
		{
			name:   "FreeBSD names with dashes split at the last dash",
			in:     "py39-setuptools-63.1.0\ngmake-4.3_2\np5-Locale-gettext-1.07_3\nca_root_nss-3.93\nlibffi-3.4.4_1\npkg-1.20.8\nperl5-5.34.3_3\nvim-9.0.2092,1\n",
			family: FreeBSD, wantFamily: FreeBSD,
			want: []Package{
				{"py39-setuptools", "63.1.0"}, {"gmake", "4.3_2"}, {"p5-Locale-gettext", "1.07_3"},
				{"ca_root_nss", "3.93"}, {"libffi", "3.4.4_1"}, {"pkg", "1.20.8"},
				{"perl5", "5.34.3_3"}, {"vim", "9.0.2092,1"},
			},
		},
		{
			name:   "FreeBSD detected",
			in:     "gmp-6.3.0\nopam-2.1.5_1\n",
			family: UnknownFamily, wantFamily: FreeBSD,
			want: []Package{{"gmp", "6.3.0"}, {"opam", "2.1.5_1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseSystemPackages([]byte(tt.in), tt.family)
			if err != nil {
				t.Fatal(err)
			}
			if p.Family != tt.wantFamily || !reflect.DeepEqual(p.List, tt.want) {
				t.Fatalf("got %v %q, want %v %q", p.Family, p.List, tt.wantFamily, tt.want)
			}
			out, err := p.Format()
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
			again, err := ParseSystemPackages(out, p.Family)
			if err != nil || !reflect.DeepEqual(again, p) {
				t.Fatalf("Parse(Format(x), %v) = %v, %v; want %v", p.Family, again, err, p)
			}
			// Detection finds the same family again, given a line.
			again, err = ParseSystemPackages(out, UnknownFamily)
			if err != nil || len(p.List) > 0 && !reflect.DeepEqual(again, p) {
				t.Fatalf("Parse(Format(x), unknown) = %v, %v; want %v", again, err, p)
			}
		})
	}
}

func TestSystemPackagesErrors(t *testing.T) {
	tests := []struct {
		in     string
		family Family
		want   string
	}{
		{"a=1\nb-2\n", UnknownFamily, `system-packages line 2: no "=" in "b-2"; Debian lines are NAME=VERSION`},
		{"a-1\nb=2\n", UnknownFamily, `system-packages line 2: "=" in "b=2"; FreeBSD lines are NAME-VERSION`},
		{"a-1\nb\n", FreeBSD, `system-packages line 2: no "-" in "b"`},
		{"a-1\nb-\n", FreeBSD, `system-packages line 2: empty version in "b-"`},
		{"-1\n", FreeBSD, `system-packages line 1: empty package name in "-1"`},
		{"a=1\n=2\n", Debian, `system-packages line 2: empty package name in "=2"`},
		{"a=1\nb=\n", Debian, `system-packages line 2: empty version in "b="`},
		{"a=1\n\nb=2\n", Debian, `system-packages line 2: empty line`},
		{"a=1\r\n", Debian, `system-packages line 1: carriage return in line`},
		{"a=1\nb c=2\n", Debian, `system-packages line 2: blank in "b c=2"`},
		{"a=1\nb=\xff\n", Debian, `system-packages line 2: invalid byte 0xff in "b=\xff"`},
	}
	for _, tt := range tests {
		_, err := ParseSystemPackages([]byte(tt.in), tt.family)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ParseSystemPackages(%q) error = %v, want a *SyntaxError", tt.in, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseSystemPackages(%q) error = %q, want prefix %q", tt.in, err, tt.want)
		}
	}
	if _, err := ParseSystemPackages(nil, Family(9)); err == nil {
		t.Error("ParseSystemPackages with an invalid family succeeded")
	}
}

func TestSystemPackagesFormatRefuses(t *testing.T) {
	for _, p := range []Packages{
		{Family: UnknownFamily, List: []Package{{"a", "1"}}},
		{Family: Family(9)},
		{Family: Debian, List: []Package{{"", "1"}}},
		{Family: Debian, List: []Package{{"a", ""}}},
		{Family: Debian, List: []Package{{"a=b", "1"}}},
		{Family: Debian, List: []Package{{"a b", "1"}}},
		{Family: Debian, List: []Package{{"a", "1\n"}}},
		{Family: FreeBSD, List: []Package{{"a", "1-2"}}},
		{Family: FreeBSD, List: []Package{{"a=b", "1"}}},
	} {
		if out, err := p.Format(); err == nil {
			t.Errorf("Format(%v) = %q, want an error", p, out)
		}
	}
}

func TestPackagesJSON(t *testing.T) {
	p := Packages{Family: FreeBSD, List: []Package{{"gmp", "6.3.0"}}}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"family":"freebsd","packages":[{"name":"gmp","version":"6.3.0"}]}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
}
