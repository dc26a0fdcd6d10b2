package rebuilder

import (
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/ledger/orb"
)

func TestParseOSRelease(t *testing.T) {
	tests := []struct {
		name, data string
		want       map[string]string
	}{
		{"debian 12", `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
ID=debian
`, map[string]string{"PRETTY_NAME": "debian gnu/linux 12 (bookworm)", "NAME": "debian gnu/linux", "VERSION_ID": "12", "ID": "debian"}},
		{"ubuntu", "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\n", map[string]string{"ID": "ubuntu", "ID_LIKE": "debian", "VERSION_ID": "22.04"}},
		{"single quotes, comments, blanks", "# comment\n\n  ID='Alpine'  \nnot a line\n=x\n", map[string]string{"ID": "alpine"}},
		{"value with =", "A=b=c", map[string]string{"A": "b=c"}},
		{"unbalanced quote kept", `ID="rhel`, map[string]string{"ID": `"rhel`}},
		{"empty", "", map[string]string{}},
	}
	for _, tt := range tests {
		if got := parseOSRelease([]byte(tt.data)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func FuzzParseOSRelease(f *testing.F) {
	f.Add([]byte("ID=debian\nVERSION_ID=\"12\"\n"))
	f.Add([]byte("ID='x'\n# c\n=\n\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for k := range parseOSRelease(data) {
			if k == "" || strings.Contains(k, "=") {
				t.Fatalf("bad key %q", k)
			}
		}
	})
}

func TestNormaliseArch(t *testing.T) {
	for in, want := range map[string]string{
		"x86_64": "x86_64", "amd64": "x86_64", "i686": "x86_32", "aarch64": "arm64", "arm64": "arm64",
		"armv7l": "arm32", "armv6l": "arm32", "ppc64le": "ppc64", "riscv64": "riscv64", "S390X": "s390x",
	} {
		if got := normaliseArch(in); got != want {
			t.Errorf("normaliseArch(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckHost(t *testing.T) {
	h, err := ProbeHost()
	if err != nil {
		t.Fatal(err)
	}
	wantOS := map[string]string{"darwin": "macos"}[runtime.GOOS]
	if wantOS == "" {
		wantOS = runtime.GOOS
	}
	wantArch := map[string]string{"amd64": "x86_64", "arm64": "arm64", "386": "x86_32"}[runtime.GOARCH]
	if h.OS != wantOS || wantArch != "" && h.Arch != wantArch || h.Distribution == "" || h.Family == "" || h.Version == "" {
		t.Errorf("ProbeHost() = %+v, want OS %s and arch %s (GOOS %s, GOARCH %s) and all facts known", h, wantOS, wantArch, runtime.GOOS, runtime.GOARCH)
	}
	recorded := orb.Environment{Vars: append([]orb.Var{{Name: "HOME", Value: "/x/home"}}, h.Vars()...)}
	if d, err := CheckHost(recorded); err != nil || d != nil {
		t.Fatalf("CheckHost(this host) = %v, %v; want no differences", d, err)
	}

	// A build recorded on another release of the distribution, for which
	// the architecture was not recorded.
	var doctored orb.Environment
	for _, v := range recorded.Vars {
		switch v.Name {
		case "OS_VERSION":
			v.Value = "0.bogus"
		case "ARCH":
			continue
		}
		doctored.Vars = append(doctored.Vars, v)
	}
	d, err := CheckHost(doctored)
	if err != nil {
		t.Fatal(err)
	}
	want := []HostDifference{{Name: "OS_VERSION", Recorded: "0.bogus", Host: h.Vars()[2].Value}, {Name: "ARCH", Host: h.Vars()[4].Value}}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("CheckHost(doctored) = %+v, want %+v", d, want)
	}
	if got, want := d[0].String(), "OS_VERSION: recorded 0.bogus, this host "+h.Vars()[2].Value; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := d[1].String(), "ARCH: recorded (not recorded), this host "+h.Vars()[4].Value; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestHostVarsUnknown(t *testing.T) {
	got := Host{OS: "linux", Arch: "x86_64"}.Vars()
	want := []orb.Var{{Name: "OS", Value: "linux"}, {Name: "OS_DISTRIBUTION", Value: "unknown"}, {Name: "OS_VERSION", Value: "unknown"},
		{Name: "OS_FAMILY", Value: "unknown"}, {Name: "ARCH", Value: "x86_64"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Vars() = %v, want %v", got, want)
	}
}
