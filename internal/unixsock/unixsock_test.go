package unixsock

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestListenReplacesStale: a socket nobody answers on is replaced, a live
// one and a plain file are not; the new socket is 0600 and goes away with
// its listener.
func TestListenReplacesStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s")
	ln, err := ListenPrivate(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi, err)
	}
	go Serve(ln, func(c *net.UnixConn) { c.Close() })
	if err := ClearStale(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("live socket: %v", err)
	}
	ln.SetUnlinkOnClose(false) // leave a stale socket behind
	ln.Close()
	if err := ClearStale(path); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale socket still there: %v", err)
	}
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o600)
	if err := ClearStale(file); !errors.Is(err, ErrNotSocket) {
		t.Fatalf("plain file: %v", err)
	}
}

// TestPeerCred: the kernel names this process at the other end.
func TestPeerCred(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ln, err := ListenPrivate(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan [2]int, 1)
	go Serve(ln, func(c *net.UnixConn) {
		defer c.Close()
		uid, pid, err := PeerCred(c)
		if err != nil {
			t.Error(err)
		}
		got <- [2]int{uid, pid}
	})
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if g := <-got; g[0] != os.Geteuid() || g[1] != os.Getpid() {
		t.Fatalf("peer %v, want uid %d pid %d", g, os.Geteuid(), os.Getpid())
	}
}

// TestKinds: a server's error crosses the wire as its kind and comes back
// matching the same sentinel (and fs.ErrNotExist for "not-found").
func TestKinds(t *testing.T) {
	errA, errNF := errors.New("a"), fmt.Errorf("gone: %w", fs.ErrNotExist)
	ks := Kinds{{Name: "a", Err: errA}, {Name: "not-found", Err: errNF}}
	if k := ks.Of(fmt.Errorf("wrapped: %w", errA)); k != "a" {
		t.Fatalf("kind %q", k)
	}
	if k := ks.Of(errors.New("other")); k != "" {
		t.Fatalf("kind of an unknown error %q", k)
	}
	r := ks.Remote("a", "the server said a")
	if !errors.Is(r, errA) || errors.Is(r, errNF) || r.Error() != "the server said a" {
		t.Fatalf("remote a: %v", r)
	}
	if nf := ks.Remote("not-found", "no"); !errors.Is(nf, fs.ErrNotExist) || !errors.Is(nf, errNF) {
		t.Fatalf("remote not-found: %v", nf)
	}
}
