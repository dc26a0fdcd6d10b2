package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// storedBuild records a build whose files are really in the CAS.
func storedBuild(t *testing.T, l *ledgertest.Ledger, job, platform string, files map[string]string, start time.Time, res ledger.Result) *ledger.BuildRecorded {
	t.Helper()
	put := func(s string) cas.Digest {
		info, err := l.Store.PutBytes(ctx, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return info.Digest
	}
	b := &ledger.BuildRecorded{Job: job, UUID: uuid.New(), Platform: platform, Started: start, Finished: start.Add(time.Minute),
		Result: res, Script: put("#!/bin/sh\nmake\n"), Console: put("0.001s:make\n")}
	for p, content := range files {
		b.Artifacts = append(b.Artifacts, ledger.Artifact{Path: p, SHA256: put(content), Size: int64(len(content))})
		d := put(content)
		switch p {
		case "opam-switch":
			b.Inputs.OpamSwitch = &d
		case "build-environment":
			b.Inputs.BuildEnvironment = &d
		case "system-packages":
			b.Inputs.SystemPackages = &d
		}
	}
	b.MainBinary = httpapi.MainBinary(job, keys(files))
	if _, err := l.DefineJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestPages(t *testing.T) {
	l, srv := newServer(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ok := ledger.Result{Kind: ledger.ResultExited}
	b1 := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "IMAGE", "opam-switch": "opam-version: \"2.0\"\n"}, t0, ok)
	b2 := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "IMAGE", "opam-switch": "opam-version: \"2.0\"\n"}, t0.Add(time.Hour), ok)
	b3 := storedBuild(t, l, "hello", "freebsd-14", map[string]string{"bin/hello.hvt": "IMAGE-BSD"}, t0.Add(2*time.Hour), ok)
	bad := storedBuild(t, l, "hello", "debian-12", map[string]string{}, t0.Add(3*time.Hour), ledger.Result{Kind: ledger.ResultExited, Code: 2})
	u := func(b *ledger.BuildRecorded) string { return srv.URL + "/job/hello/build/" + b.UUID.String() }

	resp, body := get(t, u(b2), "application/json")
	var v httpapi.BuildView
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("build json: %d %s", resp.StatusCode, body)
	}
	if !v.MainBinary || v.MainArtifact == nil || v.MainArtifact.Path != "bin/hello.hvt" || v.MainArtifact.Filename != "hello.hvt" || len(v.ReproducedBy) != 1 || v.ReproducedBy[0].UUID != b1.UUID || len(v.Artifacts) != 2 {
		t.Fatalf("build view: %+v", v)
	}
	resp, body = get(t, u(b2), "")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "Reproduced by 1 build") {
		t.Fatalf("build html: %d %s", resp.StatusCode, body)
	}

	// Artifacts: content, ETag, 304, content types, traversal.
	resp, body = get(t, u(b1)+"/f/bin/hello.hvt", "")
	etag := `"` + cas.Sum([]byte("IMAGE")).String() + `"`
	if resp.StatusCode != 200 || body != "IMAGE" || resp.Header.Get("ETag") != etag || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("artifact: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	req, _ := http.NewRequest(http.MethodGet, u(b1)+"/f/bin/hello.hvt", nil)
	req.Header.Set("If-None-Match", etag)
	if r2, err := http.DefaultClient.Do(req); err != nil || r2.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %v %v", r2.StatusCode, err)
	}
	if resp, _ := get(t, u(b1)+"/f/opam-switch", ""); resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("opam-switch type %q", resp.Header.Get("Content-Type"))
	}
	for _, p := range []string{"/f/missing", "/f/../../../etc/passwd", "/f/bin/../opam-switch"} {
		if resp, _ := get(t, u(b1)+p, ""); resp.StatusCode != 404 && resp.StatusCode != 301 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	if resp, body := get(t, u(b1)+"/console", ""); resp.StatusCode != 200 || body != "0.001s:make\n" {
		t.Fatalf("console: %d %q", resp.StatusCode, body)
	}
	if resp, body := get(t, u(b1)+"/script", ""); resp.StatusCode != 200 || !strings.HasPrefix(body, "#!/bin/sh") {
		t.Fatalf("script: %d %q", resp.StatusCode, body)
	}

	// Redirects: latest (any platform, per platform, with a path), main-binary.
	for _, c := range []struct{ path, want string }{
		{"/job/hello/build/latest", "/job/hello/build/" + b3.UUID.String()},
		{"/job/hello/build/latest?platform=debian-12", "/job/hello/build/" + b2.UUID.String()},
		{"/job/hello/build/latest/main-binary?platform=debian-12", "/job/hello/build/" + b2.UUID.String() + "/main-binary"},
		{"/job/hello/build/" + b1.UUID.String() + "/main-binary", "/job/hello/build/" + b1.UUID.String() + "/f/bin/hello.hvt"},
	} {
		resp, _ := get(t, srv.URL+c.path, "")
		if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != c.want {
			t.Errorf("%s: %d → %q, want %q", c.path, resp.StatusCode, resp.Header.Get("Location"), c.want)
		}
	}

	// Lists.
	resp, body = get(t, srv.URL+"/job/hello", "application/json")
	var jv httpapi.JobView
	if json.Unmarshal([]byte(body), &jv) != nil || len(jv.Builds) != 3 {
		t.Fatalf("job: %s", body)
	}
	_, body = get(t, srv.URL+"/job/hello/failed", "application/json")
	if json.Unmarshal([]byte(body), &jv) != nil || len(jv.Builds) != 4 || jv.Builds[0].UUID != bad.UUID {
		t.Fatalf("job with failed: %s", body)
	}
	_, body = get(t, srv.URL+"/failed-builds", "application/json")
	if !strings.Contains(body, bad.UUID.String()) || strings.Contains(body, b1.UUID.String()) {
		t.Fatalf("failed builds: %s", body)
	}
	_, body = get(t, srv.URL+"/", "application/json")
	var idx httpapi.JobListing
	if json.Unmarshal([]byte(body), &idx) != nil || len(idx.Jobs) != 1 || len(idx.Jobs[0].PerPlatform) != 2 || idx.Jobs[0].Latest == nil || idx.Jobs[0].Latest.UUID != idx.Jobs[0].PerPlatform[0].UUID {
		t.Fatalf("index: %s", body)
	}
	if resp, body := get(t, srv.URL+"/", ""); resp.StatusCode != 200 || !strings.Contains(body, `href="/job/hello"`) {
		t.Fatalf("index html: %d", resp.StatusCode)
	}

	// Errors.
	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{"/job/nope", 404, `job "nope"`},
		{"/job/nope/build/latest", 404, `job "nope"`},
		{"/job/hello/build/not-a-uuid", 400, "not a build UUID"},
		{"/job/hello/build/" + uuid.New().String(), 404, "not exist"},
		{"/job/other/build/" + b1.UUID.String(), 404, `belongs to job "hello"`},
		{"/job/hello/build/" + bad.UUID.String() + "/main-binary", 404, "no main binary"},
		{"/failed-builds?count=5000", 400, "count"},
	} {
		resp, body := get(t, srv.URL+c.path, "")
		if resp.StatusCode != c.status || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: %d %q, want %d with %q", c.path, resp.StatusCode, body, c.status, c.want)
		}
	}
}

func TestCompare(t *testing.T) {
	l, srv := newServer(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ok := ledger.Result{Kind: ledger.ResultExited}
	env := "OS=linux\nOS_FAMILY=debian\nARCH=x86_64\nSOURCE_DATE_EPOCH=1\n"
	sw := "opam-version: \"2.0\"\ninstalled: [\"dune.3.16.0\" \"ocaml.5.2.0\" \"cmdliner.1.3.0\"]\n"
	a := storedBuild(t, l, "hello", "debian-12", map[string]string{
		"bin/hello.hvt": "A", "build-environment": env, "system-packages": "gcc=12.2\nmake=4.3\n", "opam-switch": sw}, t0, ok)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{
		"bin/hello.hvt": "B", "build-environment": strings.Replace(env, "SOURCE_DATE_EPOCH=1", "SOURCE_DATE_EPOCH=2", 1),
		"system-packages": "gcc=12.3\nbash=5.2\n", "opam-switch": strings.Replace(sw, "dune.3.16.0", "dune.3.17.0", 1)}, t0.Add(time.Hour), ok)
	resp, body := get(t, srv.URL+"/compare/"+a.UUID.String()+"/"+b.UUID.String(), "application/json")
	var c httpapi.Comparison
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &c) != nil {
		t.Fatalf("compare: %d %s", resp.StatusCode, body)
	}
	if c.Opam == nil || len(c.Opam.VersionChanged) != 1 || c.Opam.VersionChanged[0].Name != "dune" || c.Opam.VersionChanged[0].New != "3.17.0" {
		t.Fatalf("opam diff: %s", body)
	}
	if c.Env == nil || len(c.Env.Changed) != 1 || c.Env.Changed[0].Name != "SOURCE_DATE_EPOCH" {
		t.Fatalf("env diff: %s", body)
	}
	if c.Packages == nil || len(c.Packages.Removed) != 1 || len(c.Packages.Added) != 1 || len(c.Packages.Changed) != 1 || c.Packages.Changed[0].Old != "12.2" {
		t.Fatalf("package diff: %s", body)
	}
	if c.SameOutput || c.SameInputs {
		t.Fatalf("same flags: %s", body)
	}
	if resp, body := get(t, srv.URL+"/compare/"+a.UUID.String()+"/"+b.UUID.String(), ""); resp.StatusCode != 200 || !strings.Contains(body, "dune") {
		t.Fatalf("compare html: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL+"/compare/"+a.UUID.String()+"/nope", ""); resp.StatusCode != 400 {
		t.Fatalf("bad uuid: %d", resp.StatusCode)
	}
}

// TestDamagedArtifactIsNotServedWhole damages a stored chunk: the download
// must be cut short, never completed with wrong bytes.
func TestDamagedArtifactIsNotServedWhole(t *testing.T) {
	l, srv := newServer(t)
	big := make([]byte, 300_000)
	for i := range big {
		big[i] = byte(i*7919 + i/251)
	}
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": string(big)}, time.Now(), ledger.Result{Kind: ledger.ResultExited})
	// Flip a byte in the middle of the last chunk stored.
	err := l.DB.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("c/k/")})
		var k, v []byte
		for it.Rewind(); it.Valid(); it.Next() {
			k = it.Item().KeyCopy(nil)
			v, _ = it.Item().ValueCopy(nil)
		}
		it.Close()
		if k == nil {
			return fmt.Errorf("no chunks stored")
		}
		v[len(v)/2] ^= 0xff
		return txn.Set(k, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + "/job/hello/build/" + b.UUID.String() + "/f/bin/hello.hvt")
	if err != nil {
		return // the connection was cut before the headers: refused
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && bytes.Equal(got, big) {
		t.Fatal("served intact bytes despite damage?")
	}
	if err == nil && resp.StatusCode == 200 {
		t.Fatalf("damaged artifact served as a complete 200 response (%d bytes)", len(got))
	}
}
