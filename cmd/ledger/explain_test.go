package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKeyChangedIsExplained: a client pinned a test server's key, then the
// server was reset with a new key. lookup, verify and upload say that the
// key changed, show both keys, name the state file and how to re-pin; and
// upload sends nothing to a server it cannot verify.
func TestKeyChangedIsExplained(t *testing.T) {
	first := filepath.Join(t.TempDir(), "first")
	run(t, "demo", "--data", first)
	state := filepath.Join(t.TempDir(), "state.json")
	url, stop := startServe(t, first)
	run(t, "verify", "--server", url, "--state", state)
	stop()
	pinned := readPub(t, first)

	reset := filepath.Join(t.TempDir(), "reset")
	run(t, "demo", "--data", reset)
	url, stop = startServe(t, reset)
	defer stop()
	served := readPub(t, reset)
	if pinned == served {
		t.Fatal("two data directories got the same key")
	}
	t.Setenv("BUILDLEDGER_PASSWORD", "whatever")
	for _, args := range [][]string{
		{"verify", "--server", url, "--state", state},
		{"lookup", "demo/bin/hello.hvt", "--server", url, "--state", state},
		{"upload", "demo", "--job", "hello", "--user", "farm", "--server", url, "--state", state},
	} {
		out, err := runErr(args...)
		if err == nil {
			t.Fatalf("%s against a server with a new key succeeded:\n%s", args[0], out)
		}
		msg := err.Error()
		for _, want := range []string{"log key changed", "pinned: " + pinned, "served: " + served, state, "rm " + state, "--log-key '" + served + "'"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: error lacks %q:\n%s", args[0], want, msg)
			}
		}
		if strings.Contains(msg, "no verifiable signatures") && !strings.Contains(msg, "log key changed") {
			t.Errorf("%s: unexplained: %s", args[0], msg)
		}
	}
	fresh := filepath.Join(t.TempDir(), "new.json")
	if out := run(t, "lookup", "demo/bin/hello.hvt", "--server", url, "--state", fresh); strings.Contains(out, "2 build(s)") {
		t.Fatalf("upload recorded a build on a server whose key changed:\n%s", out)
	}
	// Paths in the server's answers keep their leading slash.
	if _, err := runErr("upload", "demo", "--job", "hello", "--user", "nobody", "--server", url, "--state", fresh); err == nil || !strings.Contains(err.Error(), "POST /upload: ") {
		t.Fatalf("upload with an unknown account: %v", err)
	}
}

func readPub(t *testing.T, data string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "log.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestServerWithoutScheme: a bare host:port is refused with the URL meant.
func TestServerWithoutScheme(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	for _, args := range [][]string{
		{"verify", "--server", "127.0.0.1:3000", "--state", state},
		{"lookup", strings.Repeat("ab", 32), "--server", "127.0.0.1:3000"},
		{"upload", "demo", "--job", "hello", "--user", "farm", "--server", "127.0.0.1:3000", "--state", state},
	} {
		_, err := runErr(args...)
		if err == nil || !strings.Contains(err.Error(), "http://127.0.0.1:3000") {
			t.Errorf("%s --server 127.0.0.1:3000: %v", args[0], err)
		}
	}
}

// TestClientCommandsListNoServerFlags: lookup and upload talk to a server
// and do not offer the data directory's flags; the commands that open one
// still do.
func TestClientCommandsListNoServerFlags(t *testing.T) {
	server := []string{"--data", "--origin", "--log ", "--trillian", "--tree-id", "--min-free"}
	for _, c := range []string{"lookup", "upload"} {
		out := run(t, c, "--help")
		for _, f := range server {
			if strings.Contains(out, f) {
				t.Errorf("%s --help lists %s:\n%s", c, strings.TrimSpace(f), out)
			}
		}
		if _, err := runErr(c, "x", "--data", t.TempDir()); err == nil || !strings.Contains(err.Error(), "unknown flag: --data") {
			t.Errorf("%s --data: %v", c, err)
		}
	}
	for _, c := range [][]string{{"serve"}, {"demo"}, {"verify"}, {"checkpoint"}, {"user", "add"}, {"key", "add"}} {
		out := run(t, append(c, "--help")...)
		for _, f := range server {
			if !strings.Contains(out, f) {
				t.Errorf("%v --help lacks %s", c, strings.TrimSpace(f))
			}
		}
	}
	if out := run(t, "trillian", "create-tree", "--help"); !strings.Contains(out, "--trillian-ca") || strings.Contains(out, "--data") {
		t.Errorf("trillian create-tree --help:\n%s", out)
	}
}

// TestCreateTreeWithNothingListening fails at once, saying so.
func TestCreateTreeWithNothingListening(t *testing.T) {
	start := time.Now()
	_, err := runErr("trillian", "create-tree", "--trillian", "127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "no Trillian log server answers at 127.0.0.1:1") {
		t.Fatalf("create-tree with nothing listening: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("create-tree took %s to give up", d)
	}
}

// TestBusyPortCreatesNothing: serve on a port in use fails before a data
// directory or a log key exists.
func TestBusyPortCreatesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := filepath.Join(t.TempDir(), "data")
	_, err = runErr("serve", "--data", data, "--listen", ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "--listen "+ln.Addr().String()+": the address is in use") {
		t.Fatalf("serve on a busy port: %v", err)
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("serve on a busy port left %s behind (%v)", data, err)
	}
}

// serveOnce runs serve until it has started and returns what it printed.
func serveOnce(t *testing.T, data string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // serve starts, then stops at once
	var out bytes.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0"}, extra...))
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("serve: %v\n%s", err, out.String())
	}
	return out.String()
}

// TestOrigin: a new data directory's origin comes from --origin, else from
// serve's --public-url; serve warns about the shared default; an existing
// directory keeps the origin of its key.
func TestOrigin(t *testing.T) {
	const warning = "the log's origin is the default every deployment shares"
	data := filepath.Join(t.TempDir(), "default")
	out := serveOnce(t, data)
	if !strings.Contains(out, warning) || !strings.Contains(out, "origin=buildledger.local/log") {
		t.Fatalf("serve on a new directory with the default origin:\n%s", out)
	}
	if out := serveOnce(t, data, "--origin", "other.example/log"); !strings.Contains(out, warning) {
		t.Fatalf("no warning on an existing directory with the default origin:\n%s", out)
	}
	if pub := readPub(t, data); !strings.HasPrefix(pub, "buildledger.local/log+") {
		t.Fatalf("an existing directory changed origin: %s", pub)
	}

	named := filepath.Join(t.TempDir(), "named")
	run(t, "demo", "--data", named, "--origin", "ledger.example.org/log")
	if out := serveOnce(t, named); strings.Contains(out, warning) || !strings.Contains(out, "origin=ledger.example.org/log") {
		t.Fatalf("serve with an origin that was given:\n%s", out)
	}
	if pub := readPub(t, named); !strings.HasPrefix(pub, "ledger.example.org/log+") {
		t.Fatalf("--origin: %s", pub)
	}

	public := filepath.Join(t.TempDir(), "public")
	if out := serveOnce(t, public, "--public-url", "https://builds.example.net:8443/"); strings.Contains(out, warning) {
		t.Fatalf("serve --public-url:\n%s", out)
	}
	if pub := readPub(t, public); !strings.HasPrefix(pub, "builds.example.net:8443/log+") {
		t.Fatalf("--public-url: %s", pub)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if _, err := runErr("serve", "--data", bad, "--listen", "127.0.0.1:0", "--public-url", "builds.example.net"); err == nil || !strings.Contains(err.Error(), "--public-url") {
		t.Fatalf("--public-url without a scheme: %v", err)
	}
	if _, err := os.Stat(bad); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused --public-url left %s behind (%v)", bad, err)
	}
}
