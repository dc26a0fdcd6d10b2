package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// TestHashPaging pages the reverse lookup of a digest in 25 builds: pages
// of 10, 10 and 5 in log order with a next cursor, an HTML page with a
// link to the next, refusals of bad page parameters, and the Go client's
// Lookup following the cursor and verifying every build.
func TestHashPaging(t *testing.T) {
	l, srv := newServer(t)
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "hello"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 25
	var want []uuid.UUID
	for i := range n {
		want = append(want, record(t, l, "hello", "image", t0.Add(time.Duration(i)*time.Hour)).UUID)
	}
	d := cas.Sum([]byte("image")).String()
	var got []uuid.UUID
	var sizes []int
	u := srv.URL + "/hash?sha256=" + d + "&limit=10"
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("the pages do not end")
		}
		resp, body := get(t, u, "application/json")
		var hl httpapi.HashLookup
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &hl) != nil {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
		}
		sizes = append(sizes, len(hl.Builds))
		for _, b := range hl.Builds {
			got = append(got, b.UUID)
		}
		if hl.Next == nil {
			break
		}
		u = fmt.Sprintf("%s/hash?sha256=%s&limit=10&after=%d", srv.URL, d, *hl.Next)
	}
	if fmt.Sprint(sizes) != "[10 10 5]" || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pages of %v, builds %v, want %v", sizes, got, want)
	}

	resp, body := get(t, srv.URL+"/hash?sha256="+d+"&limit=10", "")
	if resp.StatusCode != 200 || !strings.Contains(body, want[9].String()[:16]) || strings.Contains(body, want[10].String()[:16]) ||
		!strings.Contains(body, `rel="next"`) || !strings.Contains(body, "after=") {
		t.Fatalf("html page: %d %s", resp.StatusCode, body)
	}
	// Without paging parameters a browser is still sent to the newest build.
	if resp, _ := get(t, srv.URL+"/hash?sha256="+d, ""); resp.StatusCode != 302 || resp.Header.Get("Location") != "/job/hello/build/"+want[n-1].String() {
		t.Fatalf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, q := range []string{"limit=0", "limit=-1", "limit=10001", "limit=x", "after=x", "after=-1"} {
		if resp, body := get(t, srv.URL+"/hash?sha256="+d+"&"+q, "application/json"); resp.StatusCode != 400 || !strings.Contains(body, strings.SplitN(q, "=", 2)[0]+"=") {
			t.Errorf("%s: %d %s", q, resp.StatusCode, body)
		}
	}
	if resp, body := get(t, srv.URL+"/hash?sha256="+d+"&after=1000", "application/json"); resp.StatusCode != 200 || !strings.Contains(body, `"builds":[]`) {
		t.Fatalf("a page past the end: %d %s", resp.StatusCode, body)
	}

	c, err := httpapi.NewClient(srv.URL, l.VKey, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	c.PageSize = 7
	res, err := c.Lookup(ctx, cas.Sum([]byte("image")))
	if err != nil {
		t.Fatal(err)
	}
	var verified []uuid.UUID
	for _, b := range res.Builds {
		verified = append(verified, b.Build.UUID)
	}
	if fmt.Sprint(verified) != fmt.Sprint(want) {
		t.Fatalf("client lookup over pages of 7: %v, want %v", verified, want)
	}
}

// TestBuildListPaging pages job pages and the failed builds with start=
// and count=, with next and previous links, and refuses count=0, negative
// and huge counts with 400; the Go client's JobBuilds reads every page.
func TestBuildListPaging(t *testing.T) {
	l, srv := newServer(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var builds []*ledger.BuildRecorded // newest first
	for i := range 7 {
		res := ledger.Result{Kind: ledger.ResultExited, Code: i % 2}
		b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": fmt.Sprint("image ", i)}, t0.Add(time.Duration(i)*time.Hour), res)
		builds = append([]*ledger.BuildRecorded{b}, builds...)
	}
	var failed []*ledger.BuildRecorded
	for _, b := range builds {
		if !b.Succeeded() {
			failed = append(failed, b)
		}
	}

	// /job/hello/failed lists all builds, /job/hello the successful ones
	// of the same page.
	pageOf := func(path string) (httpapi.JobView, []uuid.UUID) {
		t.Helper()
		resp, body := get(t, srv.URL+path, "application/json")
		var v httpapi.JobView
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &v) != nil {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		var ids []uuid.UUID
		for _, b := range v.Builds {
			ids = append(ids, b.UUID)
		}
		return v, ids
	}
	var all []uuid.UUID
	path := "/job/hello/failed?count=3"
	for range 4 {
		v, ids := pageOf(path)
		all = append(all, ids...)
		if v.Next == "" {
			break
		}
		if v.Count != 3 || !strings.HasPrefix(v.Next, "/job/hello/failed?") {
			t.Fatalf("page %+v", v.Page)
		}
		path = v.Next
	}
	var want []uuid.UUID
	for _, b := range builds {
		want = append(want, b.UUID)
	}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("job pages %v, want %v", all, want)
	}
	v, ids := pageOf("/job/hello?count=3&start=3")
	if len(ids) != 1 || ids[0] != builds[4].UUID || v.Start != 3 || v.Next == "" || v.Prev == "" {
		t.Fatalf("successful builds of the second page: %v %+v", ids, v.Page)
	}
	if prev, _ := url.Parse(v.Prev); prev.Query().Get("start") != "0" || prev.Query().Get("count") != "3" {
		t.Fatalf("prev link %q", v.Prev)
	}
	if resp, body := get(t, srv.URL+"/job/hello?count=3", ""); resp.StatusCode != 200 || !strings.Contains(body, `rel="next"`) {
		t.Fatalf("job html: %d %s", resp.StatusCode, body)
	}

	resp, body := get(t, srv.URL+"/failed-builds?count=2", "application/json")
	var fl httpapi.FailedBuildList
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &fl) != nil || len(fl.Builds) != 2 || fl.Builds[0].UUID != failed[0].UUID || fl.Next == "" {
		t.Fatalf("failed builds: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, srv.URL+fl.Next, "application/json")
	fl = httpapi.FailedBuildList{}
	if json.Unmarshal([]byte(body), &fl) != nil || len(fl.Builds) != 1 || fl.Builds[0].UUID != failed[2].UUID || fl.Next != "" {
		t.Fatalf("failed builds, second page: %d %s", resp.StatusCode, body)
	}

	c, err := httpapi.NewClient(srv.URL, l.VKey, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	c.PageSize = 2
	listed, err := c.JobBuilds(ctx, "hello")
	var succeeded []uuid.UUID
	for _, b := range listed {
		succeeded = append(succeeded, b.UUID)
	}
	if err != nil || fmt.Sprint(succeeded) != fmt.Sprint([]uuid.UUID{builds[0].UUID, builds[2].UUID, builds[4].UUID, builds[6].UUID}) {
		t.Fatalf("client JobBuilds over pages of 2: %v %v", succeeded, err)
	}

	for _, p := range []string{"/failed-builds", "/job/hello", "/job/hello/failed"} {
		for _, q := range []string{"count=0", "count=-1", "count=1001", "count=99999999999999999999", "count=x", "start=-1"} {
			resp, body := get(t, srv.URL+p+"?"+q, "")
			if resp.StatusCode != 400 || !strings.Contains(body, strings.SplitN(q, "=", 2)[0]+"=") {
				t.Errorf("GET %s?%s: %d %q, want 400 naming the parameter", p, q, resp.StatusCode, body)
			}
		}
	}
}

// TestJobBuildsWhileRecording: a build recorded while the client reads the
// pages shifts the newest-first list; the client still lists every build
// once.
func TestJobBuildsWhileRecording(t *testing.T) {
	l := ledgertest.Open(t)
	s, err := httpapi.New(httpapi.Config{Ledger: l.Ledger, VKey: l.VKey})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	want := map[uuid.UUID]bool{}
	for i := range 5 {
		b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": fmt.Sprint("image ", i)}, t0.Add(time.Duration(i)*time.Hour), ledger.Result{Kind: ledger.ResultExited})
		want[b.UUID] = true
	}
	pages := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r)
		if r.URL.Path == "/job/hello" {
			if pages++; pages == 1 { // a newer build lands between the first two pages
				b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "newest"}, t0.Add(24*time.Hour), ledger.Result{Kind: ledger.ResultExited})
				want[b.UUID] = true
			}
		}
	}))
	defer srv.Close()
	c, err := httpapi.NewClient(srv.URL, l.VKey, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	c.PageSize = 2
	got, err := c.JobBuilds(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uuid.UUID]int{}
	for _, b := range got {
		seen[b.UUID]++
		if seen[b.UUID] > 1 {
			t.Fatalf("build %s listed twice", b.UUID)
		}
	}
	for id := range want {
		if seen[id] == 0 && id != uuid.Nil {
			// The newest build may be missed (it landed before the page
			// already read); every older one must be there.
			if b, _ := l.Build(id); b.Event != nil && b.Event.Started.Before(t0.Add(24*time.Hour)) {
				t.Fatalf("build %s missing", id)
			}
		}
	}
}
