package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer collects what the server logs from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestServeJSONLog: `ledger serve --log-format json` logs one JSON object
// per line, with an access line per request, none carrying a password,
// and serves /metrics, /healthz and /readyz.
func TestServeJSONLog(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	add := newRoot()
	add.SetArgs([]string{"user", "add", "farm", "--unrestricted", "--data", data})
	add.SetIn(strings.NewReader("farm-password\n"))
	add.SetOut(io.Discard)
	if err := add.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}

	var logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		srv := newRoot()
		srv.SetArgs([]string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--log-format", "json"})
		srv.SetOut(pw)
		srv.SetErr(&logs)
		done <- srv.ExecuteContext(ctx)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var url string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
			url = u
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if url == "" {
		t.Fatalf("server did not say where it listens: %v", <-done)
	}

	upload := func(pw string) int {
		req, _ := http.NewRequest(http.MethodPost, url+"/job/hello/platform/debian-12/upload?binary_name=hello.hvt", strings.NewReader("unikernel"))
		req.SetBasicAuth("farm", pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := upload("farm-password"); st != http.StatusCreated {
		t.Fatalf("upload: %d", st)
	}
	if st := upload("not-the-password"); st != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", st)
	}
	for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
		resp, err := http.Get(url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}

	out := logs.String()
	for _, secret := range []string{"farm-password", "not-the-password", "Basic ", "ZmFyb"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains %q:\n%s", secret, out)
		}
	}
	routes := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec struct {
			Msg, Route string
			Status     int
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %q (%v)", line, err)
		}
		if rec.Msg == "request" {
			routes[rec.Route] = rec.Status
		}
	}
	if routes["/job/{job}/platform/{platform}/upload"] != http.StatusUnauthorized || routes["/metrics"] != 200 || routes["/readyz"] != 200 {
		t.Fatalf("access lines by route: %v\n%s", routes, out)
	}
}
