package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// On first use the monitor pins a key only once it verifies the server's
// checkpoint: a proxy's HTML page does not poison its state.
func TestMonitorPinsOnlyAVerifiedKey(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html>proxy login</html>")) }))
	defer bad.Close()
	state := filepath.Join(t.TempDir(), "m")
	_, err := runErr("monitor", "--server", bad.URL, "--state", state)
	data := filepath.Join(t.TempDir(), "primary")
	run(t, "demo", "--data", data)
	u, stop := startServe(t, data)
	defer stop()
	key, err := runErr("log", "key", "--server", u)
	_ = key
	_, err = runErr("monitor", "--server", u, "--state", state)
	if err != nil {
		t.Errorf("second run against the right server: %v", err)
	}
}

// --follow: a transient 503 of the checkpoint does not end the monitor.
func TestMonitorFollowSurvivesTransientErrors(t *testing.T) {
	data := filepath.Join(t.TempDir(), "primary")
	run(t, "demo", "--data", data)
	u, stop := startServe(t, data)
	defer stop()
	target, _ := url.Parse(u)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/checkpoint" && n.Add(1) == 3 {
			http.Error(w, "restarting", 503)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	done := make(chan error, 1)
	go func() {
		_, err := runErr("monitor", "--server", srv.URL, "--state", filepath.Join(t.TempDir(), "m"), "--follow", "--interval", "20ms")
		done <- err
	}()
	select {
	case err := <-done:
		t.Errorf("--follow stopped on one 503: %v", err)
	case <-time.After(2 * time.Second):
	}
}

// TestMonitorWebhook: watched events are printed and posted to the
// webhook as JSON.
func TestMonitorWebhook(t *testing.T) {
	data := filepath.Join(t.TempDir(), "primary")
	run(t, "demo", "--data", data)
	url, stop := startServe(t, data)
	defer stop()
	var mu sync.Mutex
	var posts []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts = append(posts, string(b))
		mu.Unlock()
	}))
	defer hook.Close()
	out, err := runErr("monitor", "--server", url, "--state", filepath.Join(t.TempDir(), "monitor"), "--watch-job", "hello-demo", "--webhook", hook.URL)
	if err != nil || !strings.Contains(out, "watch: log index") {
		t.Fatalf("monitor: %v\n%s", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posts) == 0 || !strings.Contains(posts[0], `"watch":{"index":`) || !strings.Contains(strings.Join(posts, ""), `hello-demo`) {
		t.Fatalf("posted: %q", posts)
	}
}
