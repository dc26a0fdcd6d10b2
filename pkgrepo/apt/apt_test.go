package apt

import (
	"bytes"
	stdgzip "compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/internal/debtest"
	"github.com/buildledger/buildledger/pkgrepo/deb"
)

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

// TestAptReadsTheRepository: real apt reads a suite BuildSuite wrote (the
// InRelease signature checked against signed-by, the Packages hashes
// checked against it) and downloads the rewritten package, byte for byte;
// a tampered Packages or Release is refused.
func TestAptReadsTheRepository(t *testing.T) {
	debtest.RequireRoot(t)
	orig := debtest.Build(t, "hello", "1.2.3", "all", "#!/bin/sh\necho hello\n")
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
	// 300 more packages (their pool files are not served): Packages.gz
	// then has several gzip members, which apt must read as one.
	pkgs := []Package{p}
	for i := range 300 {
		c, err := deb.ParseControl([]byte(fmt.Sprintf("Package: filler%03d\nVersion: 1\nArchitecture: all\nDescription: filler\n", i)))
		if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, Package{Control: c, Filename: PoolName(c), Size: 1, SHA256: sha256.Sum256([]byte{byte(i)})})
	}
	suite, err := BuildSuite("debian-12", []string{"amd64"}, pkgs, key, time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	if n := gzipMemberCount(t, suite["dists/debian-12/main/binary-amd64/Packages.gz"]); n < 2 {
		t.Fatalf("Packages.gz has %d gzip member(s); want several", n)
	}
	r := &repo{files: map[string][]byte{p.Filename: rewritten.Bytes()}}
	for k, v := range suite {
		r.files[k] = v
	}
	srv := httptest.NewServer(r)
	defer srv.Close()

	a := debtest.NewApt(t)
	pub, _ := key.Public()
	a.Source(t, pub, "deb [signed-by=KEY] "+srv.URL+" debian-12 main")
	if out, err := a.Get(t, "update"); err != nil || strings.Contains(out, "W: ") || strings.Contains(out, "E: ") {
		t.Fatalf("apt-get update: %v\n%s", err, out)
	}
	if out, err := a.Get(t, "download", "hello="+v); err != nil {
		t.Fatalf("apt-get download: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(a.Dir, filepath.Base(p.Filename)))
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
		fresh := debtest.NewApt(t)
		fresh.Source(t, pub, "deb [signed-by=KEY] "+srv.URL+" debian-12 main")
		r.mu.Lock()
		r.lie = lie
		r.mu.Unlock()
		out, err := fresh.Get(t, "update")
		if err == nil && !strings.Contains(out, "E: ") && !strings.Contains(out, "W: ") {
			t.Errorf("%s: apt-get update accepted it:\n%s", name, out)
		}
		if out, err := fresh.Get(t, "download", "hello="+v); err == nil {
			t.Errorf("%s: apt-get download still worked:\n%s", name, out)
		}
	}
}

// gzipMemberCount counts the members of a gzip file (each must
// decompress).
func gzipMemberCount(t *testing.T, b []byte) int {
	t.Helper()
	br := bytes.NewReader(b) // an io.ByteReader: gzip reads no further than a member
	zr, err := stdgzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		zr.Multistream(false)
		if _, err := io.Copy(io.Discard, zr); err != nil {
			t.Fatal(err)
		}
		n++
		if err := zr.Reset(br); err == io.EOF {
			return n
		} else if err != nil {
			t.Fatal(err)
		}
	}
}
