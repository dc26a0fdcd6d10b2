package deb

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/internal/tooltest"
)

// build makes a real .deb with dpkg-deb, compressed with z.
func build(t testing.TB, z string) []byte {
	t.Helper()
	dpkgDeb := tooltest.Find(t, "dpkg-deb", "BUILDLEDGER_REQUIRE_DPKG", "install Debian's dpkg")
	root := filepath.Join(t.TempDir(), "pkg")
	os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755)
	os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte("Package: hello\nVersion: 1.2.3\nArchitecture: all\nMaintainer: Someone <someone@example.org>\nDescription: says hello\n a longer description\n .\n with a paragraph\n"), 0o644)
	os.WriteFile(filepath.Join(root, "DEBIAN", "postinst"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	os.WriteFile(filepath.Join(root, "usr", "bin", "hello"), []byte("#!/bin/sh\necho hello\n"), 0o755)
	out := filepath.Join(t.TempDir(), "hello.deb")
	cmd := exec.Command(dpkgDeb, "--root-owner-group", "-Z"+z, "--build", root, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v\n%s", err, b)
	}
	b, _ := os.ReadFile(out)
	return b
}

func dpkg(t *testing.T, args ...string) string {
	t.Helper()
	b, err := exec.Command("dpkg-deb", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %v: %v\n%s", args, err, b)
	}
	return string(b)
}

// A real package, in each compression dpkg-deb writes, rewritten: dpkg-deb
// reads the new version, the other fields, the maintainer script and the
// very same files.
func TestRewriteWithDpkg(t *testing.T) {
	for _, z := range []string{"xz", "gzip", "zstd", "none"} {
		t.Run(z, func(t *testing.T) {
			orig := build(t, z)
			c, err := ReadControl(bytes.NewReader(orig))
			if err != nil || c.Get("Package") != "hello" || c.Get("Version") != "1.2.3" {
				t.Fatalf("control: %v %+v", err, c)
			}
			v := RepoVersion("1.2.3", time.Date(2026, 12, 7, 12, 30, 0, 0, time.UTC), digest.Sum(orig))
			var out bytes.Buffer
			if err := Rewrite(bytes.NewReader(orig), &out, v); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			o, r := filepath.Join(dir, "orig.deb"), filepath.Join(dir, "new.deb")
			os.WriteFile(o, orig, 0o644)
			os.WriteFile(r, out.Bytes(), 0o644)
			if got := strings.TrimSpace(dpkg(t, "-f", r, "Version")); got != v {
				t.Fatalf("dpkg-deb reads version %q, want %q", got, v)
			}
			if dpkg(t, "-f", r, "Description") != dpkg(t, "-f", o, "Description") || dpkg(t, "-f", r, "Package") != "hello\n" {
				t.Fatal("other fields changed")
			}
			if !strings.Contains(dpkg(t, "--info", r, "postinst"), "exit 0") {
				t.Fatal("the maintainer script is lost")
			}
			if dpkg(t, "--fsys-tarfile", r) != dpkg(t, "--fsys-tarfile", o) {
				t.Fatal("the files differ")
			}
			c2, err := ReadControl(bytes.NewReader(out.Bytes()))
			if err != nil || c2.Get("Version") != v {
				t.Fatalf("reading the rewritten control: %v", err)
			}
		})
	}
}

// What is not a package is refused, saying so.
func TestNotDeb(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("!<arch>\n"), []byte("#!/bin/sh\n"), append([]byte("!<arch>\n"), bytes.Repeat([]byte("x"), 60)...)} {
		if _, err := ReadControl(bytes.NewReader(b)); !errors.Is(err, ErrNotDeb) {
			t.Errorf("%q: %v", b, err)
		}
		if err := Rewrite(bytes.NewReader(b), &bytes.Buffer{}, "1.0"); !errors.Is(err, ErrNotDeb) {
			t.Errorf("rewrite %q: %v", b, err)
		}
	}
	if err := Rewrite(bytes.NewReader(nil), &bytes.Buffer{}, "not a version!"); err == nil {
		t.Error("a bad version")
	}
}

// RepoVersion orders as Robur's versions do, by dpkg's own comparison:
// a release before the commits after it, a later build after an earlier
// one of the same version, and each output its own version.
func TestRepoVersionOrder(t *testing.T) {
	tooltest.Find(t, "dpkg", "BUILDLEDGER_REQUIRE_DPKG", "install Debian's dpkg")
	d1, d2 := digest.Sum([]byte("one")), digest.Sum([]byte("two"))
	t1, t2 := time.Date(2022, 5, 16, 10, 0, 0, 0, time.UTC), time.Date(2022, 5, 27, 10, 0, 0, 0, time.UTC)
	for _, c := range [][2]string{
		{RepoVersion("1.5.0", t1, d1), RepoVersion("1.5.0-3-g26b5a59", t2, d2)},
		{RepoVersion("1.5.0-3-g26b5a59", t2, d2), RepoVersion("1.5.1", t2, d1)},
		{RepoVersion("2.0.0-10-gabcdef0", t2, d1), RepoVersion("2.0.0-11-g1234567", t1, d2)},
		{RepoVersion("2.0.0", t1, d1), RepoVersion("2.0.0", t2, d1)},
		{RepoVersion("2.0.0", t1, d1), RepoVersion("2.0.1", t1, d1)},
	} {
		if err := exec.Command("dpkg", "--compare-versions", c[0], "lt", c[1]).Run(); err != nil {
			t.Errorf("dpkg does not order %s before %s", c[0], c[1])
		}
	}
	if RepoVersion("1.0", t1, d1) == RepoVersion("1.0", t1, d2) {
		t.Error("two outputs share a version")
	}
	if !validVersion(RepoVersion("1:1.0~rc1+dfsg", t1, d1)) {
		t.Error("an epoch and ~ + are kept valid")
	}
}

// FuzzDeb: reading and rewriting any bytes never panics; what reads as a
// package rewrites to one that reads back with the new version.
func FuzzDeb(f *testing.F) {
	f.Add([]byte("!<arch>\n"))
	f.Add([]byte("!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n"))
	if _, err := exec.LookPath("dpkg-deb"); err == nil {
		f.Add(build(f, "gzip"))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ReadControl(bytes.NewReader(b)); err != nil {
			return
		}
		var out bytes.Buffer
		if err := Rewrite(bytes.NewReader(b), &out, "9.9-0-g0000000-20260101000000-abc"); err != nil {
			return
		}
		c, err := ReadControl(bytes.NewReader(out.Bytes()))
		if err != nil || c.Get("Version") != "9.9-0-g0000000-20260101000000-abc" {
			t.Fatalf("the rewritten package does not read back: %v", err)
		}
	})
}

// TestControlRefusals: a control file that could say more than its own
// stanza of a Packages index, or name a path, is refused.
func TestControlRefusals(t *testing.T) {
	const ok = "Package: hello\nVersion: 1.0\nArchitecture: all\n"
	if _, err := ParseControl([]byte(ok + "Description: x\n .\n more\n")); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]string{
		"two paragraphs":        ok + "\nPackage: evil\nVersion: 1\nArchitecture: all\n",
		"a field twice":         ok + "package: evil\n",
		"a field name":          ok + "SHA256 : 00\n",
		"a comment field":       ok + "#x: y\n",
		"a path as Package":     "Package: ../../x\nVersion: 1.0\nArchitecture: all\n",
		"a path as arch":        "Package: hello\nVersion: 1.0\nArchitecture: ../x\n",
		"no Architecture":       "Package: hello\nVersion: 1.0\n",
		"an upper-case Package": "Package: Hello\nVersion: 1.0\nArchitecture: all\n",
	} {
		if _, err := ParseControl([]byte(c)); !errors.Is(err, ErrNotDeb) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzParseControl: what ParseControl accepts writes back as one
// paragraph that parses to the same fields.
func FuzzParseControl(f *testing.F) {
	f.Add([]byte("Package: hello\nVersion: 1.0\nArchitecture: all\nDescription: x\n .\n y\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseControl(b)
		if err != nil {
			return
		}
		out := c.Bytes()
		if bytes.Contains(out, []byte("\n\n")) {
			t.Fatalf("two paragraphs: %q", out)
		}
		c2, err := ParseControl(out)
		if err != nil || len(c2.Fields) != len(c.Fields) {
			t.Fatalf("written %q, read back: %v", out, err)
		}
	})
}
