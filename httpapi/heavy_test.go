package httpapi_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// TestHeavyReadLimit saturates the limiter of heavy reads: a comparison
// that would have to be computed is refused at once with 503 and
// Retry-After, a cached one is still answered, and once a slot is free the
// comparison runs.
func TestHeavyReadLimit(t *testing.T) {
	l, s, srv := readServer(t, httpapi.Config{MaxHeavyReads: 1})
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ok := ledger.Result{Kind: ledger.ResultExited}
	a := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "A", "build-environment": "A=1\n"}, t0, ok)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "B", "build-environment": "A=2\n"}, t0.Add(time.Hour), ok)
	c := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "C", "build-environment": "A=3\n"}, t0.Add(2*time.Hour), ok)
	compareJSON(t, srv.URL, a, b) // cached from now on

	release := httpapi.HoldHeavyReads(s)
	resp, body := get(t, srv.URL+"/compare/"+a.UUID.String()+"/"+c.UUID.String(), "application/json")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "retry") {
		t.Fatalf("saturated limiter: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if cmp := compareJSON(t, srv.URL, a, b); cmp.Env == nil || len(cmp.Env.Changed) != 1 {
		t.Fatalf("cached comparison while saturated: %+v", cmp)
	}
	release()
	if cmp := compareJSON(t, srv.URL, a, c); cmp.Env == nil || len(cmp.Env.Changed) != 1 {
		t.Fatalf("comparison after release: %+v", cmp)
	}
}

// TestStreamLimit takes every download slot: a large artifact is refused
// at once with 503 and Retry-After, while small files, HEAD and a
// revalidation (304) are still answered; once a slot is free the download
// runs.
func TestStreamLimit(t *testing.T) {
	l, s, srv := readServer(t, httpapi.Config{MaxStreams: 1})
	big := pattern(2 << 20)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": string(big), "README": "small"}, time.Now(), ledger.Result{Kind: ledger.ResultExited})
	u := srv.URL + "/job/hello/build/" + b.UUID.String() + "/f/"
	release := httpapi.HoldStreams(s)
	resp, body := get(t, u+"bin/hello.hvt", "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "retry") {
		t.Fatalf("download with every slot taken: %d, Retry-After %q, %.200s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, body := get(t, u+"README", ""); resp.StatusCode != 200 || body != "small" {
		t.Fatalf("small file: %d %q", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodHead, u+"bin/hello.hvt", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 || resp.ContentLength != int64(len(big)) {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	req, _ = http.NewRequest(http.MethodGet, u+"bin/hello.hvt", nil)
	req.Header.Set("If-None-Match", `"`+cas.Sum(big).String()+`"`)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: %v %v", resp, err)
	}
	// A header that only contains the tag is not a revalidation: the body
	// would be sent, so it needs a slot like any download.
	for _, inm := range []string{`x"` + cas.Sum(big).String() + `"`, `"` + cas.Sum(big).String(), cas.Sum(big).String()} {
		req, _ = http.NewRequest(http.MethodGet, u+"bin/hello.hvt", nil)
		req.Header.Set("If-None-Match", inm)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("If-None-Match %q with every slot taken: %d, %d bytes", inm, resp.StatusCode, n)
		}
	}
	// The build's exec export streams the same file: it needs a slot too.
	if resp, body := get(t, srv.URL+"/job/hello/build/"+b.UUID.String()+"/exec", ""); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("exec export with every slot taken: %d, %d bytes", resp.StatusCode, len(body))
	}
	release()
	if resp, body := get(t, u+"bin/hello.hvt", ""); resp.StatusCode != 200 || !bytes.Equal([]byte(body), big) {
		t.Fatalf("download after release: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, _ := get(t, srv.URL+"/job/hello/build/"+b.UUID.String()+"/exec", ""); resp.StatusCode != 200 {
		t.Fatalf("exec export after release: %d", resp.StatusCode)
	}
}

// socketBuffer is small enough that megabytes do not fit in flight, large
// enough for loopback TCP to move data without stalling on its 64 KiB
// segments.
const socketBuffer = 256 << 10

// smallBuffers makes the kernel's socket buffers small on accepted
// connections, so a server's writes wait for its client's reads as they
// would for a distant client.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(socketBuffer)
		tc.SetReadBuffer(socketBuffer)
	}
	return c, err
}

// idleServer serves l with cfg over small socket buffers and reports each
// connection the server closes.
func idleServer(t *testing.T, l *ledgertest.Ledger, cfg httpapi.Config) (*httptest.Server, <-chan struct{}) {
	t.Helper()
	cfg.Ledger, cfg.VKey = l.Ledger, l.VKey
	s, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s)
	srv.Listener = smallBuffers{srv.Listener}
	closed := make(chan struct{}, 16)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, closed
}

// dialSmall connects to srv with a small receive buffer.
func dialSmall(t *testing.T, srv *httptest.Server) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	tc.SetReadBuffer(socketBuffer)
	t.Cleanup(func() { tc.Close() })
	return tc
}

// waitClosed waits for the server to close a connection. The bound only
// ends a test that failed: the event, not the time, is what is checked.
func waitClosed(t *testing.T, closed <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-closed:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: the server still holds the connection after a minute", what)
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7919 + i/251)
	}
	return b
}

// TestStalledReaderIsDropped starts an 8 MiB download and stops reading:
// the server closes the connection once a write has waited WriteIdle,
// instead of holding the connection and its buffers forever.
func TestStalledReaderIsDropped(t *testing.T) {
	l := ledgertest.Open(t)
	big := pattern(8 << 20)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": string(big)}, time.Now(), ledger.Result{Kind: ledger.ResultExited})
	srv, closed := idleServer(t, l, httpapi.Config{WriteIdle: 200 * time.Millisecond})
	c := dialSmall(t, srv)
	fmt.Fprintf(c, "GET /job/hello/build/%s/f/bin/hello.hvt HTTP/1.1\r\nHost: ledger\r\n\r\n", b.UUID)
	br := bufio.NewReaderSize(c, 4096)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("status line %q: %v", line, err)
	}
	// Stop reading; wait for the server to give up on us.
	waitClosed(t, closed, "a client that stopped reading")
	n, _ := io.Copy(io.Discard, br)
	if n >= int64(len(big)) {
		t.Fatalf("received the whole artifact (%d bytes) from a dropped connection", n)
	}
}

// TestSlowDownloadCompletes reads a 4 MiB artifact in small steps with
// pauses, for much longer than WriteIdle in all: the deadline is per
// write, so a download that keeps moving completes.
func TestSlowDownloadCompletes(t *testing.T) {
	l := ledgertest.Open(t)
	big := pattern(4 << 20)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": string(big)}, time.Now(), ledger.Result{Kind: ledger.ResultExited})
	const idle = time.Second
	srv, _ := idleServer(t, l, httpapi.Config{WriteIdle: idle})
	c := dialSmall(t, srv)
	fmt.Fprintf(c, "GET /job/hello/build/%s/f/bin/hello.hvt HTTP/1.1\r\nHost: ledger\r\nConnection: close\r\n\r\n", b.UUID)
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReaderSize(slowReader{c}, 32<<10), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("slow download: %d of %d bytes, %v", len(got), len(big), err)
	}
	if d := time.Since(start); d < idle {
		t.Fatalf("the download took %v, not longer than the idle timeout %v: the test proves nothing", d, idle)
	}
}

// slowReader reads at most 32 KiB at a time, pausing 15 ms before each
// read: 4 MiB take about two seconds, during which the server writes
// for longer than its idle timeout.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(15 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 32<<10)])
}

// TestStalledBodyIsDropped sends a request body that stops arriving: the
// server stops waiting for it after ReadIdle and closes the connection.
func TestStalledBodyIsDropped(t *testing.T) {
	l := ledgertest.Open(t)
	srv, closed := idleServer(t, l, httpapi.Config{ReadIdle: 200 * time.Millisecond})
	c := dialSmall(t, srv)
	fmt.Fprintf(c, "POST /attestations HTTP/1.1\r\nHost: ledger\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{\"payloadType\":")
	waitClosed(t, closed, "a request body that stopped arriving")
}
