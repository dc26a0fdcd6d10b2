package apt

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/internal/tooltest"
	"github.com/buildledger/buildledger/pkgrepo/deb"
)

// dpkgBuild makes a real .deb of package name at version.
func dpkgBuild(t *testing.T, name, version, content string) []byte {
	t.Helper()
	dpkgDeb := tooltest.Find(t, "dpkg-deb", "BUILDLEDGER_REQUIRE_DPKG", "install Debian's dpkg")
	root := filepath.Join(t.TempDir(), "pkg")
	os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755)
	os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte("Package: "+name+"\nVersion: "+version+"\nArchitecture: all\nMaintainer: Someone <someone@example.org>\nDescription: says hello\n"), 0o644)
	os.WriteFile(filepath.Join(root, "usr", "bin", name), []byte(content), 0o755)
	out := filepath.Join(t.TempDir(), "p.deb")
	if b, err := exec.Command(dpkgDeb, "--root-owner-group", "--build", root, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, b)
	}
	b, _ := os.ReadFile(out)
	return b
}

// repo serves a suite and its pool, through an optional lie.
type repo struct {
	mu    sync.Mutex
	files map[string][]byte
	lie   func(path string, b []byte) []byte
}

func (r *repo) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.files[strings.TrimPrefix(req.URL.Path, "/")]
	if !ok {
		http.NotFound(w, req)
		return
	}
	if r.lie != nil {
		b = r.lie(req.URL.Path, b)
	}
	w.Write(b)
}

// aptGet runs apt-get in a private configuration under dir, touching
// nothing of the machine's own apt.
func aptGet(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	aptBin := tooltest.Find(t, "apt-get", "BUILDLEDGER_REQUIRE_DPKG", "install Debian's apt")
	for _, d := range []string{"state/lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/preferences.d", "etc/sources.list.d", "etc/trusted.gpg.d"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "status"), nil, 0o644)
	opts := []string{
		"-o", "Dir::Etc=" + filepath.Join(dir, "etc"),
		"-o", "Dir::Etc::SourceList=" + filepath.Join(dir, "etc", "sources.list"),
		"-o", "Dir::State=" + filepath.Join(dir, "state"),
		"-o", "Dir::State::status=" + filepath.Join(dir, "status"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1", "-o", "Acquire::Languages=none",
	}
	cmd := exec.Command(aptBin, append(opts, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAptReadsTheRepository: real apt reads a suite BuildSuite wrote (the
// InRelease signature checked against signed-by, the Packages hashes
// checked against it) and downloads the rewritten package, byte for byte;
// a tampered Packages or Release is refused.
func TestAptReadsTheRepository(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: apt's private configuration here needs root (APT::Sandbox::User=root); .ci/run runs as root")
	}
	orig := dpkgBuild(t, "hello", "1.2.3", "#!/bin/sh\necho hello\n")
	v := deb.RepoVersion("1.2.3", time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), digest.Sum(orig))
	var rewritten bytes.Buffer
	if err := deb.Rewrite(bytes.NewReader(orig), &rewritten, v); err != nil {
		t.Fatal(err)
	}
	c, err := deb.ReadControl(bytes.NewReader(rewritten.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	key, err := NewKey("buildledger test repository")
	if err != nil {
		t.Fatal(err)
	}
	p := Package{Control: c, Filename: PoolName(c), Size: int64(rewritten.Len()), SHA256: sha256.Sum256(rewritten.Bytes())}
	suite, err := BuildSuite("debian-12", []string{"amd64"}, []Package{p}, key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := &repo{files: map[string][]byte{p.Filename: rewritten.Bytes()}}
	for k, v := range suite {
		r.files[k] = v
	}
	srv := httptest.NewServer(r)
	defer srv.Close()

	dir := t.TempDir()
	pub, _ := key.Public()
	os.WriteFile(filepath.Join(dir, "repo.asc"), pub, 0o644)
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc", "sources.list"), []byte("deb [signed-by="+filepath.Join(dir, "repo.asc")+"] "+srv.URL+" debian-12 main\n"), 0o644)
	if out, err := aptGet(t, dir, "update"); err != nil || strings.Contains(out, "W: ") || strings.Contains(out, "E: ") {
		t.Fatalf("apt-get update: %v\n%s", err, out)
	}
	if out, err := aptGet(t, dir, "download", "hello="+v); err != nil {
		t.Fatalf("apt-get download: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, strings.ReplaceAll(filepath.Base(p.Filename), "%3a", "%3a")))
	if err != nil || !bytes.Equal(got, rewritten.Bytes()) {
		t.Fatalf("the downloaded package: %v (%d bytes)", err, len(got))
	}

	for name, lie := range map[string]func(string, []byte) []byte{
		"a tampered Packages": func(path string, b []byte) []byte {
			if strings.HasSuffix(path, "/Packages") || strings.HasSuffix(path, "/Packages.gz") {
				return append(bytes.Clone(b), []byte("Package: evil\nVersion: 1\nArchitecture: all\nFilename: x\nSize: 1\nSHA256: 00\n\n")...)
			}
			return b
		},
		"a tampered Release": func(path string, b []byte) []byte {
			if strings.HasSuffix(path, "/InRelease") || strings.HasSuffix(path, "/Release") {
				return bytes.Replace(b, []byte("Suite: debian-12"), []byte("Suite: debian-13"), 1)
			}
			return b
		},
	} {
		fresh := t.TempDir()
		os.WriteFile(filepath.Join(fresh, "repo.asc"), pub, 0o644)
		os.MkdirAll(filepath.Join(fresh, "etc"), 0o755)
		os.WriteFile(filepath.Join(fresh, "etc", "sources.list"), []byte("deb [signed-by="+filepath.Join(fresh, "repo.asc")+"] "+srv.URL+" debian-12 main\n"), 0o644)
		r.mu.Lock()
		r.lie = lie
		r.mu.Unlock()
		out, err := aptGet(t, fresh, "update")
		if err == nil && !strings.Contains(out, "E: ") && !strings.Contains(out, "W: ") {
			t.Errorf("%s: apt-get update accepted it:\n%s", name, out)
		}
		if out, err := aptGet(t, fresh, "download", "hello="+v); err == nil {
			t.Errorf("%s: apt-get download still worked:\n%s", name, out)
		}
	}
}
