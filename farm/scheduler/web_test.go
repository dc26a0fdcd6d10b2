package scheduler_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/farm/proto"
	"github.com/buildledger/buildledger/farm/scheduler"
	"github.com/buildledger/buildledger/internal/browsertest"
	"github.com/buildledger/buildledger/ledger/builder"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sse reads server-sent events: (event, data) pairs.
type sse struct {
	r    *bufio.Reader
	body io.Closer
}

func openSSE(t *testing.T, ctx context.Context, url string) (*sse, *http.Response) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return &sse{r: bufio.NewReader(resp.Body), body: resp.Body}, resp
}

func (s *sse) next(t *testing.T) (event, data string) {
	t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && event != "":
			return event, data
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// runningWithConsole starts a scheduler with its console pages (linking to
// http://ledger.example) and a job running on a worker that has sent its
// first console line, "<first line>".
func runningWithConsole(t *testing.T) (*farm, *httptest.Server, *worker) {
	t.Helper()
	f := start(t, scheduler.Config{Dir: t.TempDir()})
	web := httptest.NewServer(scheduler.NewConsole(f.s, "http://ledger.example"))
	t.Cleanup(web.Close)
	if err := f.do(script("hello", "debian-12", "echo hi\n")); err != nil {
		t.Fatal(err)
	}
	w := f.take("debian-12")
	w.send(proto.Output{UUID: w.js.UUID, Line: "<first line>"})
	waitFor(t, "the first line", func() bool {
		past, _, cancel, ok := f.s.Observe(w.js.UUID)
		if ok {
			cancel()
		}
		return len(past) == 1
	})
	return f, web, w
}

// TestLiveConsole: the pages list the running job and stream its console
// (the lines so far, live ones, then the end), linking to the build in the
// ledger; anonymous viewers are bounded.
func TestLiveConsole(t *testing.T) {
	f, web, w := runningWithConsole(t)

	code, page := httpGet(t, web.URL+"/")
	if code != 200 || !strings.Contains(page, `href="/job/`+w.js.UUID.String()+`"`) || !strings.Contains(page, "hello on debian-12") {
		t.Fatalf("index: %d\n%s", code, page)
	}
	code, page = httpGet(t, web.URL+"/job/"+w.js.UUID.String())
	if code != 200 || !strings.Contains(page, "/job/"+w.js.UUID.String()+"/events") ||
		!strings.Contains(page, "http://ledger.example/job/hello/build/"+w.js.UUID.String()) {
		t.Fatalf("job page: %d\n%s", code, page)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, resp := openSSE(t, ctx, web.URL+"/job/"+w.js.UUID.String()+"/events")
	defer s.body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	if ev, data := s.next(t); ev != "line" || !strings.Contains(data, `"text":"\u003cfirst line\u003e"`) {
		t.Fatalf("first event %s %s", ev, data)
	}
	w.send(proto.Output{UUID: w.js.UUID, Line: "second"})
	if ev, data := s.next(t); ev != "line" || !strings.Contains(data, `"text":"second"`) {
		t.Fatalf("live event %s %s", ev, data)
	}
	w.send(proto.JobFinished{UUID: w.js.UUID, Result: builder.Result{Kind: builder.ResultExited}})
	if ev, data := s.next(t); ev != "end" || !strings.Contains(data, `"text":"exited 0"`) {
		t.Fatalf("end event %s %s", ev, data)
	}

	// A finished or unknown build is not here; a bad UUID is a bad request.
	waitFor(t, "the job to finish", func() bool { return len(f.info().Running) == 0 })
	if code, body := httpGet(t, web.URL+"/job/"+w.js.UUID.String()+"/events"); code != 404 || !strings.Contains(body, "http://ledger.example/") {
		t.Fatalf("finished job: %d %s", code, body)
	}
	if code, _ := httpGet(t, web.URL+"/job/"+uuid.NewString()); code != 404 {
		t.Fatalf("unknown job: %d", code)
	}
	if code, _ := httpGet(t, web.URL+"/job/not-a-uuid"); code != 400 {
		t.Fatalf("bad uuid: %d", code)
	}
}

// TestLiveConsoleStreamsBounded: past the limit of concurrent streams a
// viewer gets 503 with Retry-After, and gets in once one closes.
func TestLiveConsoleStreamsBounded(t *testing.T) {
	f := start(t, scheduler.Config{Dir: t.TempDir()})
	web := httptest.NewServer(scheduler.NewConsole(f.s, ""))
	defer web.Close()
	if err := f.do(script("hello", "p", "true")); err != nil {
		t.Fatal(err)
	}
	w := f.take("p")
	defer w.c.Close() // (also keeps the worker's connection from being collected)
	url := web.URL + "/job/" + w.js.UUID.String() + "/events"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var open []*sse
	for range scheduler.MaxStreams {
		s, resp := openSSE(t, ctx, url)
		if resp.StatusCode != 200 {
			t.Fatalf("stream %d: %s", len(open), resp.Status)
		}
		open = append(open, s)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("stream over the limit: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	open[0].body.Close()
	waitFor(t, "a free stream", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// TestLiveConsoleInBrowser: in a real browser, the job page shows the
// console so far, then live lines, then the end with a link to the build in
// the ledger; no console errors, no serious accessibility violations.
func TestLiveConsoleInBrowser(t *testing.T) {
	br := browsertest.New(t)
	_, web, w := runningWithConsole(t)
	br.Visit(web.URL+"/", 375)
	for _, v := range br.Axe() {
		t.Errorf("index: accessibility: %s", v)
	}
	br.Visit(web.URL+"/job/"+w.js.UUID.String(), 375)
	br.WaitText("#console", "<first line>")
	w.send(proto.Output{UUID: w.js.UUID, Line: "second"})
	br.WaitText("#console", "second")
	w.send(proto.JobFinished{UUID: w.js.UUID, Result: builder.Result{Kind: builder.ResultExited}})
	if got := br.WaitText("#status", "Finished"); !strings.Contains(got, "Finished: exited 0") {
		t.Fatalf("status: %q", got)
	}
	if href := browsertest.Eval[string](br, "document.querySelector('#status a').href"); href != "http://ledger.example/job/hello/build/"+w.js.UUID.String() {
		t.Fatalf("link to the ledger: %q", href)
	}
	for _, v := range br.Axe() {
		t.Errorf("job page: accessibility: %s", v)
	}
	if over := browsertest.Eval[float64](br, "document.documentElement.scrollWidth - window.innerWidth"); over > 0 {
		t.Errorf("the job page is %v px wider than a 375 px screen", over)
	}
	if errs := br.Errors(); len(errs) > 0 {
		t.Fatalf("console errors: %v", errs)
	}
}
