package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/time/rate"

	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// opsServer serves l with the uploaders farm and alice (both unrestricted)
// and cfg's other settings.
func opsServer(t testing.TB, l *ledgertest.Ledger, cfg httpapi.Config) (*auth.Store, *httptest.Server) {
	t.Helper()
	users := auth.New(l.DB)
	for _, u := range []string{"farm", "alice"} {
		if err := users.Add(u, u+"-password", true); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Ledger, cfg.VKey, cfg.Users = l.Ledger, l.VKey, users
	s, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return users, srv
}

// manualUpload posts a small binary as user from client (X-Real-IP) and
// returns the status and Retry-After.
func manualUpload(srv *httptest.Server, client, user, pw string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/job/hello/platform/debian-12/upload", strings.NewReader("unikernel "+client))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("X-Real-IP", client)
	req.SetBasicAuth(user, pw)
	resp, err := srv.Client().Do(req)
	if err != nil {
		return 0, "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// TestLoginFlood: 200 clients flood wrong passwords while two uploaders
// upload. Every flooding client is soon answered 429 with Retry-After
// before any hashing; the uploader whose login verified before the flood
// is not hashed again; the one logging in for the first time during the
// flood gets through (retrying on 503, which costs it nothing); the
// passwords hashed are bounded by the networks' budgets, not by the flood.
// Before the guard every login queued for the four hashing slots and no
// flooding request was ever refused.
func TestLoginFlood(t *testing.T) {
	l := ledgertest.Open(t)
	const (
		clients  = 200
		networks = 20 // the clients' IPv6 addresses fall into 20 /64s
		burst    = 2
	)
	users, srv := opsServer(t, l, httpapi.Config{ClientIPHeader: "X-Real-IP",
		Logins: auth.Limits{Burst: burst, Rate: rate.Every(time.Hour), Wait: time.Second}})
	if st, _, err := manualUpload(srv, "192.0.2.1", "farm", "farm-password"); err != nil || st != http.StatusCreated {
		t.Fatalf("upload before the flood: %d %v", st, err)
	}
	before := users.Hashes()

	var wg sync.WaitGroup
	flooding := make(chan struct{})
	var once sync.Once
	var limited, answers atomic.Int64
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := fmt.Sprintf("2001:db8:0:%x::%x", i%networks, i+1)
			for range 100 {
				st, ra, err := manualUpload(srv, client, "farm", fmt.Sprintf("guess-%d", i))
				if err != nil {
					t.Error(err)
					return
				}
				answers.Add(1)
				once.Do(func() { close(flooding) })
				switch st {
				case http.StatusTooManyRequests:
					if ra == "" {
						t.Errorf("429 without Retry-After")
					}
					limited.Add(1)
					return
				case http.StatusUnauthorized, http.StatusServiceUnavailable:
				default:
					t.Errorf("flooding client %s: status %d", client, st)
					return
				}
			}
			t.Errorf("client %s was never refused", client)
		}()
	}
	<-flooding
	// The uploader whose login is cached, and one logging in afresh.
	if st, _, err := manualUpload(srv, "192.0.2.1", "farm", "farm-password"); err != nil || st != http.StatusCreated {
		t.Errorf("cached uploader during the flood: %d %v", st, err)
	}
	var st int
	var busy int
	for busy = 0; busy < 100; busy++ {
		var err error
		if st, _, err = manualUpload(srv, "192.0.2.2", "alice", "alice-password"); err != nil {
			t.Fatal(err)
		}
		if st != http.StatusServiceUnavailable {
			break
		}
	}
	if st != http.StatusCreated {
		t.Errorf("new uploader during the flood: %d after %d busy answers", st, busy)
	}
	wg.Wait()
	hashed := users.Hashes() - before
	t.Logf("%d flooding requests, %d answered 429; %d passwords hashed; the new uploader was busy %d times", answers.Load(), limited.Load(), hashed, busy)
	if limited.Load() != clients {
		t.Errorf("%d of %d flooding clients were answered 429", limited.Load(), clients)
	}
	if max := uint64(networks*burst + 1); hashed > max {
		t.Errorf("%d passwords hashed; the budgets allow %d", hashed, max)
	}
}

// TestMetrics: GET /metrics parses with Prometheus's text parser, counts
// requests by route template and status (a path that matches no route as
// "unmatched"), and carries the ledger's and the logins' metrics.
func TestMetrics(t *testing.T) {
	l := ledgertest.Open(t)
	_, srv := opsServer(t, l, httpapi.Config{})
	for _, p := range []string{"/checkpoint", "/checkpoint", "/job/no-such-job", "/no/such/page"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if st, _, err := manualUpload(srv, "", "farm", "wrong-password"); err != nil || st != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d %v", st, err)
	}
	if st, _, err := manualUpload(srv, "", "farm", "farm-password"); err != nil || st != http.StatusCreated {
		t.Fatalf("upload: %d %v", st, err)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	requests := func(route, code string) float64 {
		for _, m := range fams["buildledger_http_requests_total"].GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["route"] == route && labels["code"] == code && labels["method"] == "GET" {
				return m.GetCounter().GetValue()
			}
		}
		return 0
	}
	for _, c := range []struct {
		route, code string
		want        float64
	}{{"/checkpoint", "200", 2}, {"/job/{job}", "404", 1}, {"unmatched", "404", 1}} {
		if got := requests(c.route, c.code); got != c.want {
			t.Errorf("requests{route=%q,code=%s} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	for name, want := range map[string]float64{
		"buildledger_login_failures_total":        1,
		"buildledger_login_password_hashes_total": 2,
		"buildledger_ledger_unavailable":          0,
		"buildledger_ledger_commit_queue_depth":   0,
	} {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Errorf("%s missing", name)
			continue
		}
		m := f.GetMetric()[0]
		if got := m.GetCounter().GetValue() + m.GetGauge().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// The upload defined a job and recorded a build: at least one append,
	// one commit.
	if h := fams["buildledger_ledger_append_duration_seconds"]; h == nil || h.GetMetric()[0].GetHistogram().GetSampleCount() < 1 {
		t.Errorf("append latency: %v", h)
	}
	if h := fams["buildledger_ledger_commit_batch_size"]; h == nil || h.GetMetric()[0].GetHistogram().GetSampleSum() < 1 {
		t.Errorf("batch size: %v", h)
	}
	if h := fams["buildledger_http_request_duration_seconds"]; h == nil {
		t.Error("request durations missing")
	}
}

// TestReadyz: /healthz and /readyz answer 200 while the ledger works;
// once it refuses appends after a failure (here an interrupted replay),
// /readyz answers 503 with the reason and /healthz still 200.
func TestReadyz(t *testing.T) {
	skey, vkey, err := ledger.GenerateLogKey(ledgertest.Origin)
	if err != nil {
		t.Fatal(err)
	}
	l := ledgertest.Reopen(t, t.TempDir(), skey, vkey)
	defer l.Close()
	_, srv := opsServer(t, l, httpapi.Config{})
	status := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, _ := status("/healthz"); st != 200 {
		t.Fatalf("healthz %d", st)
	}
	if st, body := status("/readyz"); st != 200 {
		t.Fatalf("readyz of a working ledger: %d %s", st, body)
	}
	for _, job := range []string{"hello", "web"} {
		if _, err := l.DefineJob(context.Background(), job); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Replay(cctx); err == nil {
		t.Fatal("cancelled replay succeeded")
	}
	if l.Err() == nil {
		t.Fatal("the ledger did not fail")
	}
	st, body := status("/readyz")
	var answer struct {
		Ready   bool     `json:"ready"`
		Reasons []string `json:"reasons"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || st != http.StatusServiceUnavailable || answer.Ready || len(answer.Reasons) != 1 {
		t.Fatalf("readyz of a failed ledger: %d %s", st, body)
	}
	if st, _ := status("/healthz"); st != 200 {
		t.Fatalf("healthz of a failed ledger: %d", st)
	}
}

// TestAccessLog: one JSON line per request with method, route, status,
// bytes, duration and the client's address, and neither the password nor
// the Authorization header nor the query string.
func TestAccessLog(t *testing.T) {
	l := ledgertest.Open(t)
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	_, srv := opsServer(t, l, httpapi.Config{AccessLog: log})
	if st, _, err := manualUpload(srv, "", "farm", "farm-password"); err != nil || st != http.StatusCreated {
		t.Fatalf("upload: %d %v", st, err)
	}
	if st, _, err := manualUpload(srv, "", "alice", "not-alices-password"); err != nil || st != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d %v", st, err)
	}
	resp, err := http.Get(srv.URL + "/checkpoint?token=query-secret")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	out := buf.String()
	for _, secret := range []string{"farm-password", "not-alices-password", "query-secret", "Basic ", "ZmFyb"} {
		if strings.Contains(out, secret) {
			t.Errorf("access log contains %q:\n%s", secret, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines for 3 requests:\n%s", len(lines), out)
	}
	var first struct {
		Msg, Method, Route, Path, Remote string
		Status                           int
		Bytes                            int64
		Duration                         float64
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, lines[0])
	}
	if first.Method != "POST" || first.Route != "/job/{job}/platform/{platform}/upload" || first.Status != 201 ||
		first.Bytes == 0 || first.Remote != "127.0.0.1" || first.Path != "/job/hello/platform/debian-12/upload" {
		t.Fatalf("access log line: %+v\n%s", first, lines[0])
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
