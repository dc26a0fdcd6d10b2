// Package debtest builds real Debian packages with dpkg-deb and runs real
// apt-get in a private configuration, for tests of the package
// repositories. Both fail rather than skip when BUILDLEDGER_REQUIRE_DPKG is
// set (CI).
package debtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/internal/tooltest"
)

// Build makes a real .deb of package name at version for arch, installing
// content as /usr/bin/NAME.
func Build(tb testing.TB, name, version, arch, content string) []byte {
	tb.Helper()
	dpkgDeb := tooltest.Find(tb, "dpkg-deb", "BUILDLEDGER_REQUIRE_DPKG", "install Debian's dpkg")
	root := filepath.Join(tb.TempDir(), "pkg")
	os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755)
	os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte("Package: "+name+"\nVersion: "+version+"\nArchitecture: "+arch+"\nMaintainer: Someone <someone@example.org>\nDescription: says hello\n"), 0o644)
	os.WriteFile(filepath.Join(root, "usr", "bin", name), []byte(content), 0o755)
	out := filepath.Join(tb.TempDir(), "p.deb")
	if b, err := exec.Command(dpkgDeb, "--root-owner-group", "--build", root, out).CombinedOutput(); err != nil {
		tb.Fatalf("dpkg-deb: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// RequireRoot skips tb, saying why, unless it runs as root: apt's
// private configuration here needs root (APT::Sandbox::User=root, dpkg).
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("SKIPPED: apt and dpkg in a private configuration need root here (APT::Sandbox::User=root); .ci/run runs as root")
	}
}

// Apt is apt-get (and dpkg, for installs) in a private configuration
// under Dir, touching nothing of the machine's own apt or dpkg: sources
// in Dir/etc/sources.list, lists and cache under Dir, packages installed
// into Dir/root with its own dpkg database.
type Apt struct {
	Dir string
}

// NewApt makes the directories of a private apt configuration in a fresh
// temporary directory.
func NewApt(tb testing.TB) *Apt {
	tb.Helper()
	a, err := NewAptIn(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// NewAptIn makes the directories of a private apt configuration in dir.
func NewAptIn(dir string) (*Apt, error) {
	a := &Apt{Dir: dir}
	for _, d := range []string{"state/lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/preferences.d", "etc/sources.list.d", "etc/trusted.gpg.d",
		"root/var/lib/dpkg/info", "root/var/lib/dpkg/updates", "root/var/lib/dpkg/triggers", "root/usr/bin"} {
		if err := os.MkdirAll(filepath.Join(a.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	return a, os.WriteFile(filepath.Join(a.Dir, "root/var/lib/dpkg/status"), nil, 0o644)
}

// Source writes sources.list: line, and the armored key it names as
// KEY (replaced by the key's path).
func (a *Apt) Source(tb testing.TB, key []byte, line string) {
	tb.Helper()
	if err := a.SetSource(key, line); err != nil {
		tb.Fatal(err)
	}
}

// SetSource is Source without a testing.TB.
func (a *Apt) SetSource(key []byte, line string) error {
	kf := filepath.Join(a.Dir, "repo.asc")
	if err := os.WriteFile(kf, key, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(a.Dir, "etc", "sources.list"), []byte(strings.ReplaceAll(line, "KEY", kf)+"\n"), 0o644)
}

// Root is where packages are installed.
func (a *Apt) Root() string { return filepath.Join(a.Dir, "root") }

// Get runs apt-get with args; the output is stdout and stderr.
func (a *Apt) Get(tb testing.TB, args ...string) (string, error) {
	tb.Helper()
	return a.Run(tooltest.Find(tb, "apt-get", "BUILDLEDGER_REQUIRE_DPKG", "install Debian's apt"), args...)
}

// Run runs the apt-get at aptBin with args.
func (a *Apt) Run(aptBin string, args ...string) (string, error) {
	root := a.Root()
	opts := []string{
		"-o", "Dir::Etc=" + filepath.Join(a.Dir, "etc"),
		"-o", "Dir::Etc::SourceList=" + filepath.Join(a.Dir, "etc", "sources.list"),
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(a.Dir, "etc", "sources.list.d"),
		"-o", "Dir::State=" + filepath.Join(a.Dir, "state"),
		"-o", "Dir::State::status=" + filepath.Join(root, "var/lib/dpkg/status"),
		"-o", "Dir::Cache=" + filepath.Join(a.Dir, "cache"),
		"-o", "DPkg::Options::=--root=" + root,
		"-o", "DPkg::Options::=--force-script-chrootless",
		"-o", "DPkg::Options::=--force-not-root",
		"-o", "DPkg::Use-Pty=0",
		"-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1", "-o", "Acquire::Languages=none",
		"-o", "Acquire::Retries=0",
	}
	cmd := exec.Command(aptBin, append(opts, args...)...)
	cmd.Dir = a.Dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
