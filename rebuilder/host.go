package rebuilder

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"github.com/buildledger/buildledger/ledger/orb"
	"golang.org/x/sys/unix"
)

// Host is what the build host is, in the terms of opam's sys-poll
// (ocaml/opam src/state/opamSysPoll.ml), which orb records as OS,
// OS_DISTRIBUTION, OS_VERSION, OS_FAMILY and ARCH. On this kind of host
// (Debian 12 on amd64) they are linux, debian, 12, debian, x86_64.
type Host struct {
	OS           string // `uname -s` lowercased, "darwin" as "macos": linux, freebsd, ...
	Distribution string // Linux: os-release ID; elsewhere the OS (opam also asks lsb_release, brew, port)
	Version      string // Linux: os-release VERSION_ID; FreeBSD: `uname -U`; elsewhere `uname -r`
	Family       string // Linux: first word of os-release ID_LIKE, else ID; BSDs: "bsd"
	Arch         string // `uname -m` normalised as opam does: x86_64, x86_32, arm64, arm32, ppc64, ...
}

// hostVars are the names of the host facts in build-environment, in the
// order Host.Vars lists them.
var hostVars = []string{"OS", "OS_DISTRIBUTION", "OS_VERSION", "OS_FAMILY", "ARCH"}

// Vars returns the host facts as build-environment variables, in orb's
// order. A fact that could not be determined is "unknown", as opam prints it.
func (h Host) Vars() []orb.Var {
	vals := []string{h.OS, h.Distribution, h.Version, h.Family, h.Arch}
	vars := make([]orb.Var, len(vals))
	for i, v := range vals {
		if v == "" {
			v = "unknown"
		}
		vars[i] = orb.Var{Name: hostVars[i], Value: v}
	}
	return vars
}

// ProbeHost determines the facts of this host. It fails if uname cannot be
// run. Without os-release, a Linux host's distribution and family are
// "linux" and its version is unknown.
//
// Unlike opam, the Linux version is read from os-release only, without
// asking lsb_release first; the two agree on Debian and Ubuntu releases.
func ProbeHost() (Host, error) {
	uname := func(flag string) (string, error) {
		bin, err := lookPath("uname", DefaultPath)
		if err != nil {
			return "", fmt.Errorf("rebuilder: %w", err)
		}
		cmd := exec.Command(bin, flag)
		cmd.Env = []string{"PATH=" + DefaultPath}
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("rebuilder: uname %s: %w", flag, err)
		}
		return strings.ToLower(strings.TrimSpace(string(out))), nil
	}
	// uname(2) gives what `uname -s`, `-m` and `-r` print, without a
	// process per field (a farm worker probes before every job).
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return Host{}, fmt.Errorf("rebuilder: uname: %w", err)
	}
	field := func(b []byte) string {
		return strings.ToLower(strings.TrimSpace(unix.ByteSliceToString(b)))
	}
	var h Host
	var err error
	h.OS = field(u.Sysname[:])
	if h.OS == "darwin" || h.OS == "osx" {
		h.OS = "macos"
	}
	h.Arch = normaliseArch(field(u.Machine[:]))
	switch h.OS {
	case "linux":
		var data []byte
		for _, name := range []string{"/etc/os-release", "/usr/lib/os-release"} {
			if data, err = os.ReadFile(name); !errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Host{}, fmt.Errorf("rebuilder: %w", err)
		}
		rel := parseOSRelease(data)
		h.Distribution = rel["ID"]
		if h.Distribution == "" {
			h.Distribution = "linux"
		}
		h.Version = rel["VERSION_ID"]
		h.Family = h.Distribution
		if like := strings.Fields(rel["ID_LIKE"]); len(like) > 0 {
			h.Family = like[0]
		}
	case "freebsd", "openbsd", "netbsd", "dragonfly":
		h.Distribution, h.Family = h.OS, "bsd"
		flag := "-r"
		if h.OS == "freebsd" {
			flag = "-U"
		}
		if h.Version, err = uname(flag); err != nil {
			return Host{}, err
		}
	default:
		h.Distribution, h.Family = h.OS, h.OS
		h.Version = field(u.Release[:])
	}
	return h, nil
}

// normaliseArch maps `uname -m` to opam's arch names.
func normaliseArch(m string) string {
	switch m = strings.ToLower(m); m {
	case "x86", "i386", "i586", "i686":
		return "x86_32"
	case "x86_64", "amd64":
		return "x86_64"
	case "powerpc", "ppc", "ppcle":
		return "ppc32"
	case "ppc64", "ppc64le":
		return "ppc64"
	case "aarch64_be", "aarch64", "arm64":
		return "arm64"
	case "armv8b", "armv8l":
		return "arm32"
	}
	for _, p := range []string{"armv5", "armv6", "earmv6", "armv7", "earmv7"} {
		if strings.HasPrefix(m, p) {
			return "arm32"
		}
	}
	return m
}

// parseOSRelease reads os-release(5) KEY=VALUE lines the way opam does:
// the value is unquoted and lowercased; lines without "=" are skipped.
// Shell escapes inside quotes are not interpreted (the fields used, ID,
// ID_LIKE and VERSION_ID, never contain any).
func parseOSRelease(data []byte) map[string]string {
	m := make(map[string]string)
	for line := range bytes.Lines(data) {
		key, val, ok := strings.Cut(strings.TrimSpace(string(line)), "=")
		if !ok || key == "" || strings.HasPrefix(key, "#") {
			continue
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
			val = val[1 : len(val)-1]
		}
		m[key] = strings.ToLower(val)
	}
	return m
}

// HostDifference is a host fact whose recorded value differs from this
// host's.
type HostDifference struct {
	Name     string // OS, OS_DISTRIBUTION, OS_VERSION, OS_FAMILY or ARCH
	Recorded string // "" if the recorded environment lacks it
	Host     string
}

func (d HostDifference) String() string {
	rec := d.Recorded
	if rec == "" {
		rec = "(not recorded)"
	}
	return fmt.Sprintf("%s: recorded %s, this host %s", d.Name, rec, d.Host)
}

// CheckHost compares the host facts of a recorded build-environment with
// this host, as orb rebuild does before rebuilding (orb also compares
// ORB_DATA, which this package does not write). It returns one
// HostDifference per fact that differs, in the order OS, OS_DISTRIBUTION,
// OS_VERSION, OS_FAMILY, ARCH, and nil when the host matches. Run does not
// check: a rebuild command should refuse on differences unless told to
// ignore them.
func CheckHost(recorded orb.Environment) ([]HostDifference, error) {
	h, err := ProbeHost()
	if err != nil {
		return nil, err
	}
	return h.differences(recorded), nil
}

func (h Host) differences(recorded orb.Environment) []HostDifference {
	var diffs []HostDifference
	for _, v := range h.Vars() {
		rec, _ := recorded.Get(v.Name)
		if rec != v.Value {
			diffs = append(diffs, HostDifference{Name: v.Name, Recorded: rec, Host: v.Value})
		}
	}
	return diffs
}
