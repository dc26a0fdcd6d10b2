package freebsd

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/internal/tooltest"
)

func bsdtar(t *testing.T) string {
	return tooltest.Find(t, "bsdtar", "BUILDLEDGER_REQUIRE_BSDTAR", "install Debian's libarchive-tools (libarchive is what pkg reads archives with)")
}

// makePkg builds a package with bsdtar, as `pkg create` lays one out:
// +COMPACT_MANIFEST and +MANIFEST first, then the files under absolute
// paths, compressed with format (zstd, xz, gzip or none).
func makePkg(t *testing.T, name, version, content, format string) []byte {
	t.Helper()
	dir := t.TempDir()
	sum := sha256.Sum256([]byte(content))
	compact := map[string]any{"name": name, "origin": "sysutils/" + name, "version": version, "comment": "says hello",
		"maintainer": "someone@example.org", "www": "https://example.org", "abi": "FreeBSD:14:amd64", "arch": "freebsd:14:x86:64",
		"prefix": "/usr/local", "flatsize": len(content), "licenselogic": "single", "licenses": []string{"ISCL"}, "desc": "says hello"}
	full := map[string]any{"files": map[string]string{"/usr/local/bin/" + name: "1$" + hex.EncodeToString(sum[:])}}
	for k, v := range compact {
		full[k] = v
	}
	for file, m := range map[string]any{"+COMPACT_MANIFEST": compact, "+MANIFEST": full} {
		b, _ := json.Marshal(m)
		os.WriteFile(filepath.Join(dir, file), b, 0o644)
	}
	os.MkdirAll(filepath.Join(dir, "usr/local/bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "usr/local/bin", name), []byte(content), 0o755)
	out := filepath.Join(t.TempDir(), name+"-"+version+".pkg")
	args := []string{"-c", "-P", "-f", out, "--format", "pax", "-C", dir, "-s", ",^usr/,/usr/,", "+COMPACT_MANIFEST", "+MANIFEST", "usr/local/bin/" + name}
	if format != "none" {
		args = append([]string{"--" + format}, args...)
	}
	if b, err := exec.Command(bsdtar(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("bsdtar %v: %v\n%s", args, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// members lists an archive with bsdtar (libarchive, as pkg reads it) and
// extracts it into a new directory.
func members(t *testing.T, b []byte) ([]string, string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "a")
	os.WriteFile(f, b, 0o644)
	out, err := exec.Command(bsdtar(t), "-t", "-f", f).CombinedOutput()
	if err != nil {
		t.Fatalf("bsdtar -t: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if out, err := exec.Command(bsdtar(t), "-x", "-P", "-f", f, "-C", dir, "-s", ",^/,,").CombinedOutput(); err != nil {
		t.Fatalf("bsdtar -x: %v\n%s", err, out)
	}
	return strings.Fields(string(out)), dir
}

// TestRewrite: a package bsdtar made, in each compression, is rewritten
// with a new version in both manifests, the same files and the same
// compression, and libarchive reads the result with the manifests first.
func TestRewrite(t *testing.T) {
	for _, format := range []string{"zstd", "xz", "gzip", "none"} {
		t.Run(format, func(t *testing.T) {
			orig := makePkg(t, "hello", "1.2.3", "#!/bin/sh\necho hello\n", format)
			m, err := ReadManifest(bytes.NewReader(orig))
			if err != nil || m.String("name") != "hello" || m.String("version") != "1.2.3" || m.String("abi") != "FreeBSD:14:amd64" {
				t.Fatalf("ReadManifest: %v, %v", m, err)
			}
			v := RepoVersion("1.2.3", time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), digest.Sum(orig))
			var out bytes.Buffer
			if err := Rewrite(bytes.NewReader(orig), &out, v); err != nil {
				t.Fatal(err)
			}
			c1, _ := sniff(bufioReader(orig))
			c2, _ := sniff(bufioReader(out.Bytes()))
			if c1 != c2 {
				t.Fatalf("compression %s became %s", c1, c2)
			}
			names, dir := members(t, out.Bytes())
			if strings.Join(names, " ") != "+COMPACT_MANIFEST +MANIFEST /usr/local/bin/hello" {
				t.Fatalf("members: %v", names)
			}
			for _, f := range []string{"+COMPACT_MANIFEST", "+MANIFEST"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				var got map[string]any
				if err := json.Unmarshal(b, &got); err != nil || got["version"] != v || got["name"] != "hello" || got["abi"] != "FreeBSD:14:amd64" {
					t.Fatalf("%s: %s (%v)", f, b, err)
				}
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "usr/local/bin/hello")); string(b) != "#!/bin/sh\necho hello\n" {
				t.Fatalf("the file: %q", b)
			}
			m2, err := ReadManifest(bytes.NewReader(out.Bytes()))
			if err != nil || m2.String("version") != v {
				t.Fatalf("the rewritten manifest: %v, %v", m2, err)
			}
			// Deterministic: the same rewrite gives the same bytes.
			var again bytes.Buffer
			Rewrite(bytes.NewReader(orig), &again, v)
			if !bytes.Equal(again.Bytes(), out.Bytes()) {
				t.Fatal("two rewrites differ")
			}
		})
	}
	for name, b := range map[string][]byte{
		"empty": nil, "text": []byte("hello"), "a .deb": []byte("!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n"),
	} {
		if err := Rewrite(bytes.NewReader(b), &bytes.Buffer{}, "1.0"); err == nil {
			t.Errorf("%s: rewritten", name)
		}
	}
	orig := makePkg(t, "hello", "1.0", "x", "zstd")
	for _, v := range []string{"1-2", "1_a", "", "1,2_3"} {
		if err := Rewrite(bytes.NewReader(orig), &bytes.Buffer{}, v); err == nil {
			t.Errorf("version %q accepted", v)
		}
	}
}

func TestRepoVersion(t *testing.T) {
	built := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	d := digest.Sum([]byte("x"))
	for v, want := range map[string]string{
		"1.2.3":              "1.2.3.0.g0000000.20261207120000." + d.String(),
		"1.2.3-4-gabcdef0":   "1.2.3.4.gabcdef0.20261207120000." + d.String(),
		"1.2.3_1":            "1.2.3.0.g0000000.20261207120000." + d.String() + "_1",
		"1.2.3_1,2":          "1.2.3.0.g0000000.20261207120000." + d.String() + "_1,2",
		"2024.01.02-rc1":     "2024.01.02.rc1.0.g0000000.20261207120000." + d.String(),
		"0.5.0-12-g1234567a": "0.5.0.12.g1234567a.20261207120000." + d.String(),
	} {
		if got := RepoVersion(v, built, d); got != want || !ValidVersion(got) {
			t.Errorf("RepoVersion(%q) = %q, want %q (valid: %v)", v, got, want, ValidVersion(got))
		}
	}
}

// TestRepository: the catalogue archives hold a signature and the
// catalogue (libarchive lists them), the signature verifies with OpenSSL
// as pkg's pubkey check does (SHA-256 over the catalogue's hex SHA-256)
// and not after tampering, and each line names the package's size, path
// and SHA-256.
func TestRepository(t *testing.T) {
	openssl := tooltest.Find(t, "openssl", "BUILDLEDGER_REQUIRE_BSDTAR", "install OpenSSL")
	k := testKey(t)
	var pkgs []Package
	files := map[string][]byte{}
	for _, name := range []string{"hello", "world"} {
		orig := makePkg(t, name, "1.0", "#!/bin/sh\necho "+name+"\n", "zstd")
		var out bytes.Buffer
		if err := Rewrite(bytes.NewReader(orig), &out, RepoVersion("1.0", time.Now(), digest.Sum(orig))); err != nil {
			t.Fatal(err)
		}
		m, _ := ReadManifest(bytes.NewReader(out.Bytes()))
		p := Package{Manifest: m, Path: PathOf(m), Size: int64(out.Len()), SHA256: sha256.Sum256(out.Bytes())}
		pkgs = append(pkgs, p)
		files[p.Path] = out.Bytes()
	}
	repo, err := BuildRepo(pkgs, k)
	if err != nil {
		t.Fatal(err)
	}
	if string(repo["meta.conf"]) != MetaConf {
		t.Fatalf("meta.conf: %s", repo["meta.conf"])
	}
	dir := t.TempDir()
	pub := filepath.Join(dir, "repo.pub")
	os.WriteFile(pub, k.Public(), 0o644)
	for archive, member := range map[string]string{"packagesite.pkg": "packagesite.yaml", "data.pkg": "data"} {
		names, x := members(t, repo[archive])
		if strings.Join(names, " ") != "signature "+member {
			t.Fatalf("%s holds %v", archive, names)
		}
		cat, _ := os.ReadFile(filepath.Join(x, member))
		sig, _ := os.ReadFile(filepath.Join(x, "signature"))
		check := func(cat []byte) (string, error) {
			h := sha256.Sum256(cat)
			cmd := exec.Command(openssl, "dgst", "-sha256", "-verify", pub, "-signature", filepath.Join(x, "signature"))
			cmd.Stdin = strings.NewReader(hex.EncodeToString(h[:]))
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if out, err := check(cat); err != nil || !strings.Contains(out, "Verified OK") {
			t.Fatalf("openssl does not verify %s's signature: %v\n%s", archive, err, out)
		}
		if out, err := check(append(bytes.Clone(cat), ' ')); err == nil {
			t.Fatalf("openssl verifies a tampered %s: %s", member, out)
		}
		if err := Verify(k.Public(), cat, sig); err != nil {
			t.Fatal(err)
		}
		if member == "data" {
			var d struct{ Packages []map[string]any }
			if err := json.Unmarshal(cat, &d); err != nil || len(d.Packages) != 2 {
				t.Fatalf("data: %v, %s", err, cat)
			}
			continue
		}
		lines := strings.Split(strings.TrimSuffix(string(cat), "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("packagesite.yaml has %d lines:\n%s", len(lines), cat)
		}
		for _, line := range lines {
			var p map[string]any
			if err := json.Unmarshal([]byte(line), &p); err != nil {
				t.Fatal(err)
			}
			path, _ := p["repopath"].(string)
			b := files[path]
			sum := sha256.Sum256(b)
			if b == nil || p["path"] != path || p["sum"] != hex.EncodeToString(sum[:]) || p["pkgsize"] != float64(len(b)) ||
				path != "All/"+p["name"].(string)+"-"+p["version"].(string)+".pkg" || p["origin"] == nil || p["abi"] != "FreeBSD:14:amd64" {
				t.Fatalf("a catalogue line: %s", line)
			}
		}
	}
	// A key read back signs the same way.
	k2, err := ReadKey(k.MarshalPrivate())
	if err != nil || !bytes.Equal(k2.Public(), k.Public()) {
		t.Fatalf("ReadKey: %v", err)
	}
}

var (
	keyOnce sync.Once
	key     *Key
)

// testKey is one 4096-bit key for the package's tests (slow to make).
func testKey(t *testing.T) *Key {
	keyOnce.Do(func() {
		var err error
		if key, err = NewKey(); err != nil {
			t.Fatal(err)
		}
	})
	return key
}

func FuzzRewrite(f *testing.F) {
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0})
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ReadManifest(bytes.NewReader(b))
		var out bytes.Buffer
		if err := Rewrite(bytes.NewReader(b), &out, "1.0.0.g0000000.20261207120000.ab"); err == nil {
			if m, err := ReadManifest(bytes.NewReader(out.Bytes())); err != nil || m.String("version") != "1.0.0.g0000000.20261207120000.ab" {
				t.Fatalf("a rewrite does not read back: %v", err)
			}
		}
	})
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// TestRewriteUnwritable: an entry Go's tar reader takes but its writer
// refuses (a regular file whose name ends in "/") makes the package
// unreadable (ErrNotPkg), not a failure to retry.
func TestRewriteUnwritable(t *testing.T) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	m, _ := json.Marshal(map[string]string{"name": "x", "origin": "a/x", "version": "1", "abi": "FreeBSD:14:amd64"})
	for _, n := range []string{"+COMPACT_MANIFEST", "+MANIFEST"} {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(m)), Typeflag: tar.TypeReg})
		tw.Write(m)
	}
	tw.Flush()
	h := make([]byte, 512)
	copy(h, "/usr/local/share/foo/")
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], "00000000001\x00")
	copy(h[136:], "00000000000\x00")
	h[156] = '0'
	copy(h[257:], "ustar\x0000")
	copy(h[148:], "        ")
	sum := 0
	for _, b := range h {
		sum += int(b)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	raw.Write(h)
	raw.Write(append([]byte{'x'}, make([]byte, 511)...))
	raw.Write(make([]byte, 1024))
	err := Rewrite(bytes.NewReader(raw.Bytes()), &bytes.Buffer{}, "1.0")
	if !errors.Is(err, ErrNotPkg) || !strings.Contains(err.Error(), "cannot be written back") {
		t.Fatalf("Rewrite: %v", err)
	}
}
