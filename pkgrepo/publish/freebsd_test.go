package publish_test

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
	"github.com/buildledger/buildledger/pkgrepo/apt"
	"github.com/buildledger/buildledger/pkgrepo/freebsd"
	"github.com/buildledger/buildledger/pkgrepo/publish"
)

// freebsdPkg writes a FreeBSD package as pkg create lays it out (see
// package freebsd's tests for one bsdtar makes).
func freebsdPkg(t testing.TB, name, version, content string) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, _ := zstd.NewWriter(&out)
	tw := tar.NewWriter(zw)
	m := map[string]any{"name": name, "origin": "sysutils/" + name, "version": version, "comment": "c", "maintainer": "m@example.org",
		"www": "https://example.org", "abi": "FreeBSD:14:amd64", "prefix": "/usr/local", "desc": "d"}
	mb, _ := json.Marshal(m)
	for _, f := range []struct{ name, body string }{{"+COMPACT_MANIFEST", string(mb)}, {"+MANIFEST", string(mb)}, {"/usr/local/bin/" + name, content}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(f.body))
	}
	tw.Close()
	zw.Close()
	return out.Bytes()
}

// catalogue returns a FreeBSD repository's packagesite.yaml, checking its
// signature.
func catalogue(t testing.TB, l *ledgertest.Ledger, p *publish.Publisher, repo string, pub []byte) []map[string]any {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(file(t, l, p, "freebsd/"+repo+"/"+abi+"/packagesite.pkg")))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	got := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name], _ = io.ReadAll(tr)
	}
	if err := freebsd.Verify(pub, got["packagesite.yaml"], got["signature"]); err != nil {
		t.Fatalf("%s: %v", repo, err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(got["packagesite.yaml"])), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func versions(c []map[string]any) string {
	var out []string
	for _, m := range c {
		out = append(out, m["name"].(string)+"="+m["version"].(string))
	}
	return strings.Join(out, " ")
}

const abi = "FreeBSD:14:amd64"

// TestPublishingFreeBSD: .pkg main binaries are published in the FreeBSD
// repositories of their platform, rewritten to their repository version,
// the newest build's version of each package offered (pkg offers one),
// the catalogues signed; the reproduced repository offers the newest
// version k keys reproduced.
func TestPublishingFreeBSD(t *testing.T) {
	l := ledgertest.Open(t)
	key, err := apt.NewKey("test repository")
	if err != nil {
		t.Fatal(err)
	}
	fkey := testRSAKey(t)
	p, err := publish.New(publish.Config{Ledger: l.Ledger, DB: l.DB, Key: key, Reproduced: 2, PkgKey: func(bool) (*freebsd.Key, error) { return fkey, nil }})
	if err != nil {
		t.Fatal(err)
	}
	v1 := freebsdPkg(t, "hello", "1.0", "one")
	b1, i1 := record(t, l, "hello", "freebsd-14", "hello-1.0.pkg", v1, t0)
	record(t, l, "hello", "freebsd-14", "hello-1.0.pkg", v1, t0.Add(time.Hour))
	v2 := freebsdPkg(t, "hello", "1.0", "two")
	record(t, l, "hello", "freebsd-14", "hello-1.0.pkg", v2, t0.Add(2*time.Hour))
	record(t, l, "world", "freebsd-14", "world-2.0_1.pkg", freebsdPkg(t, "world", "2.0_1", "w"), t0)
	sync(t, p)
	if got := strings.Join(p.Repos(), " "); got != "freebsd-14-reproduced/"+abi+" freebsd-14/"+abi {
		t.Fatalf("repositories: %q", got)
	}
	if len(p.Suites()) != 0 {
		t.Fatalf("apt suites: %v", p.Suites())
	}
	rv2 := freebsd.RepoVersion("1.0", t0.Add(2*time.Hour), cas.Sum(v2))
	rw := freebsd.RepoVersion("2.0_1", t0, cas.Sum(freebsdPkg(t, "world", "2.0_1", "w")))
	c := catalogue(t, l, p, "freebsd-14", fkey.Public())
	if got := versions(c); got != "hello="+rv2+" world="+rw {
		t.Fatalf("freebsd-14 offers %s", got)
	}
	served := file(t, l, p, "freebsd/freebsd-14/"+abi+"/"+c[0]["repopath"].(string))
	m, err := freebsd.ReadManifest(bytes.NewReader(served))
	if err != nil || m.String("version") != rv2 || cas.Sum(served).String() != c[0]["sum"] || float64(len(served)) != c[0]["pkgsize"] {
		t.Fatalf("the served package: %v, %v", m, err)
	}
	if string(file(t, l, p, "freebsd/freebsd-14/"+abi+"/meta.conf")) != freebsd.MetaConf {
		t.Fatal("meta.conf")
	}
	if got := versions(catalogue(t, l, p, "freebsd-14-reproduced", fkey.Public())); got != "" {
		t.Fatalf("the reproduced repository offers %s", got)
	}
	// Two keys reproduce v1 (not v2): the reproduced repository offers v1.
	ka, kb := addKey(t, l, "rebuilder-a"), addKey(t, l, "rebuilder-b")
	attestBuild(t, l, ka, b1, i1, ledger.VerdictReproduced)
	attestBuild(t, l, kb, b1, i1, ledger.VerdictReproduced)
	sync(t, p)
	rv1 := freebsd.RepoVersion("1.0", t0, cas.Sum(v1))
	if got := versions(catalogue(t, l, p, "freebsd-14-reproduced", fkey.Public())); got != "hello="+rv1 {
		t.Fatalf("the reproduced repository offers %s", got)
	}
	rec, err := p.Provenance(cas.Sum(served))
	if err != nil || rec.Format != "pkg" || rec.Original != cas.Sum(v2) {
		t.Fatalf("provenance: %+v, %v", rec, err)
	}
	if _, _, err := p.Lookup("freebsd/freebsd-14/" + abi + "/All/nothing.pkg"); err != publish.ErrNotFound {
		t.Fatalf("an unknown package: %v", err)
	}

	// Served over HTTP.
	h, err := httpapi.New(httpapi.Config{Ledger: l.Ledger, VKey: l.VKey, Packages: p})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	get := func(path string) (int, []byte) {
		noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := noRedirects.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	for path, want := range map[string][]byte{
		"/freebsd/pkg.pub": fkey.Public(),
		"/freebsd/freebsd-14/" + abi + "/packagesite.pkg":              file(t, l, p, "freebsd/freebsd-14/"+abi+"/packagesite.pkg"),
		"/freebsd/freebsd-14-reproduced/" + abi + "/data.pkg":          file(t, l, p, "freebsd/freebsd-14-reproduced/"+abi+"/data.pkg"),
		"/freebsd/freebsd-14/" + abi + "/" + c[0]["repopath"].(string): served,
	} {
		if code, b := get(path); code != 200 || !bytes.Equal(b, want) {
			t.Errorf("%s: %d, %d bytes", path, code, len(b))
		}
	}
	// pkg asks for Last-Modified (and sends If-Modified-Since).
	if res, err := http.Get(hs.URL + "/freebsd/freebsd-14/" + abi + "/meta.conf"); err != nil || res.Header.Get("Last-Modified") == "" {
		t.Errorf("meta.conf has no Last-Modified: %v", err)
	} else {
		res.Body.Close()
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/freebsd/freebsd-14/"+abi+"/meta.conf", nil)
		req.Header.Set("If-Modified-Since", res.Header.Get("Last-Modified"))
		if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusNotModified {
			t.Errorf("If-Modified-Since: %v %v", res.Status, err)
		} else {
			res.Body.Close()
		}
	}
	if code, b := get("/freebsd"); code != 200 || !strings.Contains(string(b), hs.URL+"/freebsd/freebsd-14-reproduced/"+abi) || !strings.Contains(string(b), `url: "`+hs.URL+`/freebsd/freebsd-14/${ABI}"`) {
		t.Errorf("/freebsd: %d\n%s", code, b)
	}
	for _, path := range []string{"/freebsd/freebsd-13/" + abi + "/meta.conf", "/freebsd/freebsd-14/" + abi + "/All/x.pkg", "/freebsd/freebsd-14/FreeBSD:13:amd64/meta.conf", "/freebsd/freebsd-14/../../log/key"} {
		if code, _ := get(path); code != 404 && code != 301 {
			t.Errorf("%s: %d", path, code)
		}
	}
}

// testRSAKey makes a 2048-bit key (a 4096-bit one, as freebsd.NewKey
// makes, takes seconds).
func testRSAKey(t testing.TB) *freebsd.Key {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	fk, err := freebsd.ReadKey(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	if err != nil {
		t.Fatal(err)
	}
	return fk
}
