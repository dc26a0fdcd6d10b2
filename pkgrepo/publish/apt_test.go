package publish_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/internal/debtest"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
	"github.com/buildledger/buildledger/pkgrepo/apt"
	"github.com/buildledger/buildledger/pkgrepo/publish"
)

// lying serves h, or h through lie when one is set: a test server that
// tampers with what the ledger serves.
type lying struct {
	h   http.Handler
	lie atomic.Pointer[func(path string, b []byte) []byte]
}

func (s *lying) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lie := s.lie.Load()
	if lie == nil {
		s.h.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, r)
	b := (*lie)(r.URL.Path, rec.Body.Bytes())
	w.WriteHeader(rec.Code)
	w.Write(b)
}

// TestAptInstallsFromTheLedger: real apt, in a private configuration,
// installs a package whose build the ledger recorded, from the repository
// the ledger serves (signed-by its served key): the installed file is the
// built one; a rebuild with the same output is not offered as an upgrade,
// a newer build with another output is, and apt upgrades to it; a tampered
// Packages or Release is refused; the reproduced-only suite offers the
// package only after two rebuilders reproduced its exact bytes.
func TestAptInstallsFromTheLedger(t *testing.T) {
	debtest.RequireRoot(t)
	l := ledgertest.Open(t)
	key, err := apt.NewKey("test repository")
	if err != nil {
		t.Fatal(err)
	}
	p, err := publish.New(publish.Config{Ledger: l.Ledger, DB: l.DB, Key: key, Reproduced: 2})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(httpapi.Config{Ledger: l.Ledger, VKey: l.VKey, Packages: p})
	if err != nil {
		t.Fatal(err)
	}
	srv := &lying{h: h}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	res, err := http.Get(hs.URL + "/apt/key.asc")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Equal(pub, p.PublicKey()) {
		t.Fatalf("/apt/key.asc: %s", res.Status)
	}

	now := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	one := "#!/bin/sh\necho one\n"
	v1 := debtest.Build(t, "hello", "1.0", "all", one)
	b1, _ := record(t, l, "hello", "debian-12", "hello_1.0_all.deb", v1, now)
	sync(t, p)

	a := debtest.NewApt(t)
	a.Source(t, pub, "deb [signed-by=KEY] "+hs.URL+"/apt debian-12 main")
	run := func(a *debtest.Apt, args ...string) string {
		t.Helper()
		out, err := a.Get(t, args...)
		if err != nil || strings.Contains(out, "W: ") || strings.Contains(out, "E: ") {
			t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	installed := func(a *debtest.Apt) string {
		b, _ := os.ReadFile(filepath.Join(a.Root(), "usr", "bin", "hello"))
		return string(b)
	}
	run(a, "update")
	run(a, "install", "-y", "hello")
	if got := installed(a); got != one {
		t.Fatalf("installed /usr/bin/hello holds %q, want %q", got, one)
	}

	// The index says how to use the repositories; a served .deb names its
	// build; unknown or crafted paths are 404.
	get := func(path string, accept string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, hs.URL+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/apt", ""); code != 200 || !strings.Contains(body, "deb [signed-by=/etc/apt/keyrings/buildledger.asc] "+hs.URL+"/apt debian-12-reproduced main") {
		t.Fatalf("/apt: %d\n%s", code, body)
	}
	recs, _ := p.Published("debian-12", cas.Digest{}, 1)
	if code, body := get("/apt/package/"+recs[0].Served.String(), ""); code != 200 || !strings.Contains(body, recs[0].Build.String()) || !strings.Contains(body, recs[0].Original.String()) {
		t.Fatalf("/apt/package: %d\n%s", code, body)
	}
	for _, path := range []string{"/apt/package/" + recs[0].Original.String(), "/apt/pool/../../log/key", "/apt/pool/main/h/hello/x.deb", "/apt/dists/debian-13/Release", "/apt/dists/debian-12/../../blob/" + recs[0].Served.String()} {
		if code, body := get(path, ""); code != 404 && code != 301 {
			t.Errorf("%s: %d\n%s", path, code, body)
		}
	}

	// A rebuild with the same output, from other inputs: no upgrade; the
	// build pages say how their main binary is published.
	rb, _ := record(t, l, "hello", "debian-12", "hello_1.0_all.deb", v1, now.Add(time.Minute))
	sync(t, p)
	for _, b := range []*ledger.BuildRecorded{b1, rb} {
		code, body := get("/job/hello/build/"+b.UUID.String(), "")
		if code != 200 || !strings.Contains(body, `href="/apt/package/`+recs[0].Served.String()+`"`) || (b == rb) != strings.Contains(body, "first built by") {
			t.Fatalf("the build page of %s: %d\n%s", b.UUID, code, body)
		}
	}
	run(a, "update")
	if out := run(a, "-s", "upgrade"); strings.Contains(out, "Inst hello") {
		t.Fatalf("a rebuild with the same output is offered as an upgrade:\n%s", out)
	}
	// Another output, built later: an upgrade, to the new bytes.
	two := "#!/bin/sh\necho two\n"
	v2 := debtest.Build(t, "hello", "1.0", "all", two)
	b2, i2 := record(t, l, "hello", "debian-12", "hello_1.0_all.deb", v2, now.Add(2*time.Minute))
	sync(t, p)
	run(a, "update")
	if out := run(a, "-s", "upgrade"); !strings.Contains(out, "Inst hello") {
		t.Fatalf("a new output is not offered as an upgrade:\n%s", out)
	}
	run(a, "upgrade", "-y")
	if got := installed(a); got != two {
		t.Fatalf("after the upgrade /usr/bin/hello holds %q, want %q", got, two)
	}

	// Tampering is refused.
	for name, lie := range map[string]func(string, []byte) []byte{
		"a tampered Packages": func(path string, b []byte) []byte {
			if strings.Contains(path, "/binary-") {
				return append(bytes.Clone(b), "Package: evil\nVersion: 9\nArchitecture: all\nFilename: pool/x.deb\nSize: 1\nSHA256: 00\n\n"...)
			}
			return b
		},
		"a tampered Release": func(path string, b []byte) []byte {
			if strings.HasSuffix(path, "Release") {
				return bytes.Replace(b, []byte("Suite: debian-12"), []byte("Suite: debian-13"), 1)
			}
			return b
		},
	} {
		srv.lie.Store(&lie)
		fresh := debtest.NewApt(t)
		fresh.Source(t, pub, "deb [signed-by=KEY] "+hs.URL+"/apt debian-12 main")
		out, err := fresh.Get(t, "update")
		if err == nil && !strings.Contains(out, "E: ") && !strings.Contains(out, "W: ") {
			t.Errorf("%s: apt-get update accepted it:\n%s", name, out)
		}
		if out, err := fresh.Get(t, "install", "-y", "hello"); err == nil {
			t.Errorf("%s: apt-get install still worked:\n%s", name, out)
		}
		srv.lie.Store(nil)
	}

	// The reproduced-only suite: nothing until two keys reproduced v2.
	r := debtest.NewApt(t)
	r.Source(t, pub, "deb [signed-by=KEY] "+hs.URL+"/apt debian-12"+publish.ReproducedSuffix+" main")
	run(r, "update")
	if out, err := r.Get(t, "install", "-y", "hello"); err == nil {
		t.Fatalf("the reproduced suite installs an unreproduced package:\n%s", out)
	}
	ka, kb := addKey(t, l, "rebuilder-a"), addKey(t, l, "rebuilder-b")
	attestBuild(t, l, ka, b2, i2, ledger.VerdictReproduced)
	sync(t, p)
	run(r, "update")
	if out, err := r.Get(t, "install", "-y", "hello"); err == nil {
		t.Fatalf("the reproduced suite installs a package one key reproduced:\n%s", out)
	}
	attestBuild(t, l, kb, b2, i2, ledger.VerdictReproduced)
	sync(t, p)
	run(r, "update")
	run(r, "install", "-y", "hello")
	if got := installed(r); got != two {
		t.Fatalf("from the reproduced suite /usr/bin/hello holds %q, want %q", got, two)
	}
}
