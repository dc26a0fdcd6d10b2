package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// readServer is newServer with a chosen configuration, also returning the
// httpapi.Server for the hooks of heavy_export_test.go.
func readServer(t *testing.T, cfg httpapi.Config) (*ledgertest.Ledger, *httpapi.Server, *httptest.Server) {
	t.Helper()
	l := ledgertest.Open(t)
	cfg.Ledger, cfg.VKey = l.Ledger, l.VKey
	s, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return l, s, srv
}

// bigSwitch is a valid opam-switch of about size bytes installing n
// packages at version v: what the old /compare parsed whole (up to 64 MiB).
func bigSwitch(size int, v string) string {
	var b strings.Builder
	b.WriteString("opam-version: \"2.0\"\ninstalled: [\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "  \"package-%d.%s\"\n", i, v)
	}
	b.WriteString("]\n")
	return b.String()
}

func compareJSON(t *testing.T, url string, a, b *ledger.BuildRecorded) httpapi.Comparison {
	t.Helper()
	resp, body := get(t, url+"/compare/"+a.UUID.String()+"/"+b.UUID.String(), "application/json")
	var c httpapi.Comparison
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &c) != nil {
		t.Fatalf("compare: %d %.500s", resp.StatusCode, body)
	}
	return c
}

// allocatedDuring returns the bytes the process allocated while fn ran
// (runtime.MemStats.TotalAlloc: an upper bound of the heap growth that
// does not depend on when the collector ran).
func allocatedDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestCompareBounded compares builds with 50 MB opam-switch files: the
// comparison says plainly that they are too large to diff, with both
// digests and sizes, still diffs the small files, allocates far less than
// the inputs' size, and an identical second comparison is answered from
// the cache. The same large file on both sides is the same without being
// read.
func TestCompareBounded(t *testing.T) {
	l, s, srv := readServer(t, httpapi.Config{})
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ok := ledger.Result{Kind: ledger.ResultExited}
	env := "OS=linux\nOS_FAMILY=debian\nARCH=x86_64\nSOURCE_DATE_EPOCH=1\n"
	swA, swB := bigSwitch(50<<20, "1.0"), bigSwitch(50<<20, "2.0")
	a := storedBuild(t, l, "hello", "debian-12", map[string]string{
		"bin/hello.hvt": "A", "build-environment": env, "system-packages": "gcc=12.2\n", "opam-switch": swA}, t0, ok)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{
		"bin/hello.hvt": "B", "build-environment": strings.Replace(env, "=1\n", "=2\n", 1), "system-packages": "gcc=12.2\n", "opam-switch": swB},
		t0.Add(time.Hour), ok)
	c := storedBuild(t, l, "hello", "debian-12", map[string]string{
		"bin/hello.hvt": "C", "build-environment": env, "system-packages": "gcc=12.3\n", "opam-switch": swA}, t0.Add(2*time.Hour), ok)

	var cmp httpapi.Comparison
	alloc := allocatedDuring(func() { cmp = compareJSON(t, srv.URL, a, b) })
	t.Logf("compare of 2 × %d MB opam-switch files allocated %.1f MiB", len(swA)/1e6, float64(alloc)/(1<<20))
	if alloc > 64<<20 {
		t.Errorf("compare of large inputs allocated %d MiB; want < 64 MiB", alloc>>20)
	}
	if cmp.Opam != nil || !strings.Contains(cmp.OpamError, "too large") || !strings.Contains(cmp.OpamError, cas.Sum([]byte(swB)).String()) {
		t.Fatalf("opam section of too large files: diff given %v, error %q", cmp.Opam != nil, cmp.OpamError)
	}
	if len(cmp.TooLarge) != 1 {
		t.Fatalf("too large: %+v", cmp.TooLarge)
	}
	tl := cmp.TooLarge[0]
	if tl.File != "opam-switch" || tl.Left == nil || tl.Right == nil || tl.Left.SHA256 != cas.Sum([]byte(swA)) || tl.Left.Size != int64(len(swA)) ||
		tl.Right.SHA256 != cas.Sum([]byte(swB)) || tl.Right.Size != int64(len(swB)) || tl.Limit <= 0 {
		t.Fatalf("too large: %+v", tl)
	}
	if cmp.Env == nil || len(cmp.Env.Changed) != 1 || cmp.Packages == nil || !cmp.Packages.Empty() {
		t.Fatalf("the small files are still compared: env %+v packages %+v", cmp.Env, cmp.Packages)
	}
	if resp, body := get(t, srv.URL+"/compare/"+a.UUID.String()+"/"+b.UUID.String(), ""); resp.StatusCode != 200 ||
		!strings.Contains(body, "too large") || !strings.Contains(body, cas.Sum([]byte(swA)).String()) {
		t.Fatalf("compare html: %d %.300s", resp.StatusCode, body)
	}

	hits := httpapi.CompareCacheHits(s)
	alloc = allocatedDuring(func() { cmp = compareJSON(t, srv.URL, a, b) })
	if httpapi.CompareCacheHits(s) != hits+1 {
		t.Fatalf("an identical comparison was not answered from the cache (hits %d → %d)", hits, httpapi.CompareCacheHits(s))
	}
	if cmp.Opam != nil || len(cmp.TooLarge) != 1 || cmp.Env == nil || len(cmp.Env.Changed) != 1 {
		t.Fatalf("cached comparison differs: %+v", cmp)
	}
	t.Logf("the cached comparison allocated %.1f MiB", float64(alloc)/(1<<20))

	// The same 50 MB file on both sides: the same, not read.
	alloc = allocatedDuring(func() { cmp = compareJSON(t, srv.URL, a, c) })
	if cmp.Opam == nil || !cmp.Opam.Empty() || cmp.OpamError != "" || len(cmp.TooLarge) != 0 {
		t.Fatalf("same opam-switch: %+v %q %+v", cmp.Opam, cmp.OpamError, cmp.TooLarge)
	}
	if cmp.Packages == nil || len(cmp.Packages.Changed) != 1 {
		t.Fatalf("packages: %+v %q", cmp.Packages, cmp.PackageError)
	}
	if alloc > 16<<20 {
		t.Errorf("comparing a file with itself allocated %d MiB", alloc>>20)
	}
}

// TestCompareCutsLongDiffs compares environments differing in 20,000
// variables, one of them 10 KB long: the diff is cut to its budget, says
// how much was left out, and shortens the long value.
func TestCompareCutsLongDiffs(t *testing.T) {
	l, _, srv := readServer(t, httpapi.Config{})
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ok := ledger.Result{Kind: ledger.ResultExited}
	var e1, e2 strings.Builder
	fmt.Fprintf(&e1, "AAA_LONG=%s\n", strings.Repeat("x", 10_000))
	fmt.Fprintf(&e2, "AAA_LONG=%s\n", strings.Repeat("y", 10_000))
	const n = 20_000
	for i := range n - 1 {
		fmt.Fprintf(&e1, "VAR_%05d=left\n", i)
		fmt.Fprintf(&e2, "VAR_%05d=right\n", i)
	}
	a := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "A", "build-environment": e1.String()}, t0, ok)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "B", "build-environment": e2.String()}, t0.Add(time.Hour), ok)
	resp, body := get(t, srv.URL+"/compare/"+a.UUID.String()+"/"+b.UUID.String(), "application/json")
	if resp.StatusCode != 200 || len(body) > 1<<20 {
		t.Fatalf("compare: %d, %d bytes", resp.StatusCode, len(body))
	}
	var c httpapi.Comparison
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatal(err)
	}
	if c.Env == nil || !c.Truncated || c.EnvOmitted == 0 || len(c.Env.Changed)+c.EnvOmitted != n {
		t.Fatalf("cut diff: truncated %v, %d shown + %d omitted, want %d in all", c.Truncated, len(c.Env.Changed), c.EnvOmitted, n)
	}
	first := c.Env.Changed[0]
	if first.Name != "AAA_LONG" || len(first.Old) > 5_000 || !strings.Contains(first.Old, "more bytes") {
		t.Fatalf("long value not shortened: %q (%d bytes)", first.Name, len(first.Old))
	}
	if resp, body := get(t, srv.URL+"/compare/"+a.UUID.String()+"/"+b.UUID.String(), ""); resp.StatusCode != 200 ||
		!strings.Contains(body, fmt.Sprintf("%d more differences not shown", c.EnvOmitted)) {
		t.Fatalf("compare html does not say the diff was cut: %d", resp.StatusCode)
	}
}

// TestCompareShared sends the same comparison while another request is
// computing it: the second waits for the first's result instead of
// computing it again.
func TestCompareShared(t *testing.T) {
	l, s, srv := readServer(t, httpapi.Config{})
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ok := ledger.Result{Kind: ledger.ResultExited}
	a := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "A", "build-environment": "A=1\n"}, t0, ok)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "B", "build-environment": "A=2\n"}, t0.Add(time.Hour), ok)
	started, waiting, proceed := make(chan struct{}, 2), make(chan struct{}, 2), make(chan struct{})
	httpapi.SetCompareHooks(s, func() { started <- struct{}{}; <-proceed }, func() { waiting <- struct{}{} })
	type answer struct {
		status int
		c      httpapi.Comparison
	}
	answers := make(chan answer, 2)
	send := func() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/compare/"+a.UUID.String()+"/"+b.UUID.String(), nil)
		req.Header.Set("Accept", "application/json")
		var ans answer
		if resp, err := http.DefaultClient.Do(req); err == nil {
			ans.status = resp.StatusCode
			json.NewDecoder(resp.Body).Decode(&ans.c)
			resp.Body.Close()
		}
		answers <- ans
	}
	go send()
	<-started // the first request computes ...
	go send()
	select { // ... and the second waits for it
	case <-waiting:
	case <-started:
		close(proceed)
		t.Fatal("a second identical comparison is computed again while the first one runs")
	}
	close(proceed)
	for range 2 {
		ans := <-answers
		if ans.status != 200 || ans.c.Env == nil || len(ans.c.Env.Changed) != 1 {
			t.Fatalf("answer: %d %+v", ans.status, ans.c.InputDiff)
		}
	}
	if n := httpapi.ComparisonsComputed(s); n != 1 {
		t.Fatalf("the comparison was computed %d times", n)
	}
}
