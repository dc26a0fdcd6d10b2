package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/internal/browsertest"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
	"github.com/buildledger/buildledger/ledger/tree"
)

// browserServer is a server with a few builds of two jobs, behind an
// optional handler wrapper (a lying server).
func browserServer(t *testing.T, wrap func(http.Handler) http.Handler) (*ledgertest.Ledger, *httptest.Server, []*ledger.BuildRecorded) {
	t.Helper()
	l := ledgertest.Open(t)
	s, err := httpapi.New(httpapi.Config{Ledger: l.Ledger, VKey: l.VKey})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = s
	if wrap != nil {
		h = wrap(s)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ok := ledger.Result{Kind: ledger.ResultExited}
	var bs []*ledger.BuildRecorded
	for i := range 5 {
		bs = append(bs, storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": fmt.Sprint("IMAGE", i%2), "build-environment": "A=1\n"}, t0.Add(time.Duration(i)*time.Hour), ok))
	}
	bs = append(bs, storedBuild(t, l, "web", "debian-12", map[string]string{}, t0, ledger.Result{Kind: ledger.ResultExited, Code: 2}))
	return l, srv, bs
}

// The build page's script checks, in the browser, that the build is in the
// log: it says so on an honest server, and says FAILED when the server
// alters the inclusion proof or serves another event.
func TestBrowserProofCheck(t *testing.T) {
	br := browsertest.New(t)
	_, srv, bs := browserServer(t, nil)
	page := srv.URL + "/job/hello/build/" + bs[2].UUID.String()
	br.Visit(page, 1280)
	if got := br.WaitText("#proof-status", "Verified", "FAILED"); !strings.Contains(got, "Verified in your browser: build "+bs[2].UUID.String()) {
		t.Fatalf("honest server: %q", got)
	}
	if errs := br.Errors(); len(errs) > 0 {
		t.Fatalf("console errors: %v", errs)
	}

	for name, lie := range map[string]func(path string, body []byte) []byte{
		"an altered proof": func(path string, body []byte) []byte {
			if !strings.HasPrefix(path, "/proof/inclusion") {
				return body
			}
			var p httpapi.Proof
			json.Unmarshal(body, &p)
			p.Hashes[0][0] ^= 1
			b, _ := json.Marshal(p)
			return b
		},
		"another event": func(path string, body []byte) []byte {
			if !strings.HasPrefix(path, "/event/") {
				return body
			}
			return bytes.Replace(body, []byte(bs[2].UUID.String()), []byte(bs[1].UUID.String()), 1)
		},
		"a page that shows another digest": func(path string, body []byte) []byte {
			if !strings.HasPrefix(path, "/job/") {
				return body
			}
			i := bytes.Index(body, []byte(`data-sha256="`))
			if i < 0 {
				return body
			}
			i += len(`data-sha256="`)
			if body[i] == 'a' {
				body[i] = 'b'
			} else {
				body[i] = 'a'
			}
			return body
		},
		"an altered checkpoint": func(path string, body []byte) []byte {
			if path != "/checkpoint" {
				return body
			}
			lines := strings.SplitN(string(body), "\n", 4)
			root, _ := base64.StdEncoding.DecodeString(lines[2])
			root[0] ^= 1
			lines[2] = base64.StdEncoding.EncodeToString(root)
			return []byte(strings.Join(lines, "\n"))
		},
	} {
		_, lying, lbs := browserServer(t, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				body, _ := io.ReadAll(rec.Body)
				body = lie(r.URL.Path, body)
				w.Header().Del("Content-Length")
				w.WriteHeader(rec.Code)
				w.Write(body)
			})
		})
		bs = lbs
		br.Visit(lying.URL+"/job/hello/build/"+lbs[2].UUID.String(), 1280)
		if got := br.WaitText("#proof-status", "Verified", "FAILED"); !strings.HasPrefix(got, "FAILED") {
			t.Errorf("%s: the page says %q", name, got)
		}
		br.Errors()
	}
}

// The script's RFC 6962 inclusion check agrees with the log's own Merkle
// tree (transparency-dev/merkle) on every leaf of every tree size up to 20,
// and refuses proofs for the wrong index.
func TestBrowserInclusionMath(t *testing.T) {
	br := browsertest.New(t)
	l, srv, _ := browserServer(t, nil)
	br.Visit(srv.URL+"/job/hello/build/"+mustFirstBuild(t, l), 1280)
	for i := range 14 {
		storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": fmt.Sprint("more", i)}, time.Now(), ledger.Result{Kind: ledger.ResultExited})
	}
	type tc struct {
		Index, Size uint64
		Leaf, Root  []byte
		Proof       [][]byte
		Want        bool
	}
	var cases []tc
	for size := uint64(1); size <= 20; size++ {
		root, err := l.Tree().RootAt(size)
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(0); i < size; i++ {
			data, _ := l.EventBytes(i)
			p, err := l.Tree().InclusionProof(i, size)
			if err != nil {
				t.Fatal(err)
			}
			leaf := tree.LeafHash(data)
			cases = append(cases, tc{i, size, leaf[:], root[:], p, true})
			if size > 1 {
				cases = append(cases, tc{(i + 1) % size, size, leaf[:], root[:], p, false})
			}
		}
	}
	js, _ := json.Marshal(cases)
	got := browsertest.Eval[[]bool](br, `(async () => {
		const b64 = s => Uint8Array.from(atob(s), c => c.charCodeAt(0));
		const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
		const out = [];
		for (const c of `+string(js)+`) {
			try {
				const r = await window.buildledgerRootFromInclusion(BigInt(c.Index), BigInt(c.Size), b64(c.Leaf), (c.Proof || []).map(b64));
				out.push(eq(r, b64(c.Root)));
			} catch (e) { out.push(false); }
		}
		return out;
	})()`)
	if len(got) != len(cases) {
		t.Fatalf("%d answers for %d cases", len(got), len(cases))
	}
	for i, c := range cases {
		if got[i] != c.Want {
			t.Errorf("leaf %d of %d (correct index: %v): the script says %v", c.Index, c.Size, c.Want, got[i])
		}
	}
}

func mustFirstBuild(t *testing.T, l *ledgertest.Ledger) string {
	t.Helper()
	bs, err := l.JobBuilds("hello", ledger.BuildFilter{Limit: 1})
	if err != nil || len(bs) == 0 {
		t.Fatal(err)
	}
	return bs[0].Event.UUID.String()
}

// Every page renders in the browser without console errors, fits a
// 375 px wide screen, and has no serious accessibility violation (axe-core);
// compare links lead to the compare page.
func TestBrowserPages(t *testing.T) {
	br := browsertest.New(t)
	l, srv, bs := browserServer(t, nil)
	b2, err := l.Build(bs[2].UUID)
	if err != nil {
		t.Fatal(err)
	}
	main, _ := b2.Event.Artifact("bin/hello.hvt")
	pages := []string{"/", "/all-builds", "/log", "/log?start=2", "/job/hello", "/job/hello/failed", "/failed-builds", "/keys",
		"/job/hello/build/" + bs[2].UUID.String(), "/job/web/build/" + bs[5].UUID.String(),
		"/compare/" + bs[1].UUID.String() + "/" + bs[2].UUID.String(), "/hash?sha256=" + main.SHA256.String()}
	for _, width := range []int64{1280, 375} {
		for _, p := range pages {
			br.Visit(srv.URL+p, width)
			if strings.Contains(p, "/build/") {
				br.WaitText("#proof-status", "Verified", "FAILED")
			}
			if errs := br.Errors(); len(errs) > 0 {
				t.Errorf("%s at %d px: console errors: %v", p, width, errs)
			}
			if over := browsertest.Eval[float64](br, "document.documentElement.scrollWidth - window.innerWidth"); over > 0 {
				t.Errorf("%s at %d px: %v px wider than the screen", p, width, over)
			}
			if width == 1280 {
				for _, v := range br.Axe() {
					t.Errorf("%s: accessibility: %s", p, v)
				}
			}
		}
	}
	// The job page: a compare link on each build but the oldest, and the
	// size and duration charts with a point per build.
	br.Visit(srv.URL+"/job/hello", 1280)
	if n := browsertest.Eval[int](br, "document.querySelectorAll('a.compare').length"); n != 4 {
		t.Errorf("job page: %d compare links, want 4", n)
	}
	if n := browsertest.Eval[int](br, "document.querySelectorAll('svg.chart circle.point').length"); n != 10 {
		t.Errorf("job page: %d chart points, want 10", n)
	}
	br.Visit(srv.URL+"/job/hello/build/"+bs[2].UUID.String(), 1280)
	href := browsertest.Eval[string](br, "document.querySelector('a.compare').href")
	br.Visit(href, 1280)
	if h1 := browsertest.Eval[string](br, "document.querySelector('h1').textContent"); !strings.HasPrefix(h1, "Compare") {
		t.Fatalf("the compare link %s leads to %q", href, h1)
	}
}

// The log page: the checkpoint, the newest entries first with links to
// what they record, paging by index.
func TestLogPage(t *testing.T) {
	l, srv, bs := browserServer(t, nil)
	size := l.Checkpoint().Size
	_, body := get(t, srv.URL+"/log", "text/html")
	if !strings.Contains(body, fmt.Sprintf("tree of %d leaves", size)) || !strings.Contains(body, "/job/hello/build/"+bs[4].UUID.String()) ||
		!strings.Contains(body, `<a href="/event/0">0</a>`) || strings.Contains(body, "older") {
		t.Fatalf("log page:\n%s", body)
	}
	_, body = get(t, srv.URL+"/log?start=3", "text/html")
	if !strings.Contains(body, `<a href="/event/3">3</a>`) || strings.Contains(body, `<a href="/event/4">4</a>`) || !strings.Contains(body, "/log?start=") {
		t.Fatalf("log page from 3:\n%s", body)
	}
	if resp, _ := get(t, srv.URL+fmt.Sprintf("/log?start=%d", size), "text/html"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("start beyond the log: %s", resp.Status)
	}
}

// A job's README is shown on its page, as text.
func TestJobReadme(t *testing.T) {
	l, srv := newServer(t)
	info, err := l.Store.PutBytes(ctx, []byte("# Hello\nA <b>unikernel</b> that says hello.\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := info.Digest
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "hello", Synopsis: "says hello", Readme: &d}); err != nil {
		t.Fatal(err)
	}
	_, body := get(t, srv.URL+"/job/hello", "text/html")
	if !strings.Contains(body, "<summary>README</summary>") || !strings.Contains(body, "A &lt;b&gt;unikernel&lt;/b&gt; that says hello.") {
		t.Fatalf("job page:\n%s", body)
	}
}

// A build newer than the checkpoint the server serves (a replica catching
// up) is not called FAILED: the page says it checks again.
func TestBrowserProofCheckNotYetCovered(t *testing.T) {
	br := browsertest.New(t)
	l := ledgertest.Open(t)
	s, err := httpapi.New(httpapi.Config{Ledger: l.Ledger, VKey: l.VKey})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "old"}, t0, ledger.Result{Kind: ledger.ResultExited})
	old := l.Checkpoint().Note
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "new"}, t0.Add(time.Hour), ledger.Result{Kind: ledger.ResultExited})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/checkpoint" {
			w.Write(old)
			return
		}
		s.ServeHTTP(w, r)
	}))
	defer srv.Close()
	br.Visit(srv.URL+"/job/hello/build/"+b.UUID.String(), 1280)
	if got := br.WaitText("#proof-status", "checking again", "FAILED", "Verified"); !strings.Contains(got, "newer than the latest checkpoint") {
		t.Fatalf("the page says %q", got)
	}
}

// Artifact links work for paths with "#", "?", "%" and spaces.
func TestArtifactLinksEscaped(t *testing.T) {
	l, srv := newServer(t)
	files := map[string]string{"bin/hello.hvt": "image", "doc/a#b.txt": "hash", "doc/q?x.txt": "query", "doc/x%2Fy": "percent", "doc/with space": "space"}
	b := storedBuild(t, l, "hello", "debian-12", files, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), ledger.Result{Kind: ledger.ResultExited})
	_, page := get(t, srv.URL+"/job/hello/build/"+b.UUID.String(), "text/html")
	n := 0
	for _, part := range strings.Split(page, `href="`)[1:] {
		href := part[:strings.Index(part, `"`)]
		if !strings.Contains(href, "/f/") {
			continue
		}
		n++
		href = strings.ReplaceAll(href, "&amp;", "&")
		resp, body := get(t, srv.URL+href, "")
		var want string
		for p, c := range files {
			if strings.HasSuffix(href, "/f/"+escapeForTest(p)) {
				want = c
			}
		}
		if resp.StatusCode != http.StatusOK || body != want {
			t.Errorf("%s: %s %q, want %q", href, resp.Status, body, want)
		}
	}
	if n != len(files) {
		t.Fatalf("%d artifact links for %d files", n, len(files))
	}
}

func escapeForTest(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
