package vmm_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/buildledger/buildledger/vmm"
)

func TestListen(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "private", "vmm.sock")
	ln, err := vmm.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{sock: os.ModeSocket | 0o600, filepath.Dir(sock): os.ModeDir | 0o700} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: %v, %v, want mode %v", path, fi.Mode(), err, want)
		}
	}
	// A live socket is not taken over.
	go func(ln net.Listener) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}(ln)
	if _, err := vmm.Listen(sock); !errors.Is(err, vmm.ErrExists) || !strings.Contains(err.Error(), "already listening") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
	// A stale one (its daemon died) is replaced.
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatal(err)
	}
	ln, err = vmm.Listen(sock)
	if err != nil {
		t.Fatalf("Listen on a stale socket: %v", err)
	}
	ln.Close()
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}

	loose := filepath.Join(dir, "loose")
	os.Mkdir(loose, 0o755)
	os.Chmod(loose, 0o755)
	if _, err := vmm.Listen(filepath.Join(loose, "s")); !errors.Is(err, vmm.ErrInvalid) || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("Listen in a 0755 directory: %v", err)
	}
	file := filepath.Join(dir, "private", "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := vmm.Listen(file); !errors.Is(err, vmm.ErrInvalid) || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a regular file: %v", err)
	}
	long := filepath.Join(dir, strings.Repeat("d", 100), "vmm.sock")
	if _, err := vmm.Listen(long); !errors.Is(err, vmm.ErrInvalid) || !strings.Contains(err.Error(), "fewer than 108") {
		t.Errorf("Listen on a long path: %v", err)
	}
}

func TestProtocolErrors(t *testing.T) {
	e := newEnv(t)
	raw := func(b []byte) string {
		c, err := net.Dial("unix", e.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(b)
		out, _ := io.ReadAll(c)
		return string(out)
	}
	if got := raw([]byte("\x00\x00\x00\x02{}")); !strings.Contains(got, `unknown operation \"\"`) {
		t.Errorf("empty request: %q", got)
	}
	if got := raw([]byte("\xff\xff\xff\xff")); !strings.Contains(got, "exceeds") {
		t.Errorf("huge frame: %q", got)
	}
	if got := raw([]byte("\x00\x00\x00\x03{x}")); !strings.Contains(got, "bad frame") {
		t.Errorf("bad JSON: %q", got)
	}
	c := &vmm.Client{Socket: filepath.Join(shortDir(t), "none.sock")}
	if _, err := c.Info(ctx, ""); err == nil || !strings.Contains(err.Error(), "is it running") {
		t.Errorf("no daemon: %v", err)
	}
}

// TestPeerCredentials: root and the owner uid get in; another user who
// reaches the socket (here through permissions loosened on purpose) is
// refused by SO_PEERCRED.
func TestPeerCredentials(t *testing.T) {
	if os.Getenv("VMM_TEST_PEER_SOCKET") != "" {
		return // the helper, see below
	}
	e := newEnv(t, func(c *vmm.Config) { c.OwnerUID = 4242 })
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	if _, err := e.c.Info(ctx, ""); err != nil {
		t.Fatalf("root refused: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := shortDir(t)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "vmm.test")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(e.sock), 0o711)
	os.Chmod(filepath.Dir(filepath.Dir(e.sock)), 0o711)
	os.Chmod(e.sock, 0o666)
	for uid, want := range map[uint32]string{
		65534: "permission denied: uid 65534 may not use this daemon, only uid 4242 and root",
		4242:  "OK",
	} {
		cmd := exec.Command(bin, "-test.run=^TestPeerHelper$", "-test.count=1")
		cmd.Env = []string{"VMM_TEST_PEER_SOCKET=" + e.sock, "HOME=/"}
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("client as uid %d: %v\n%s", uid, err, out)
		}
	}
}

func TestPeerHelper(t *testing.T) {
	sock := os.Getenv("VMM_TEST_PEER_SOCKET")
	if sock == "" {
		t.Skip("run by TestPeerCredentials")
	}
	_, err := (&vmm.Client{Socket: sock}).Info(ctx, "")
	if err == nil {
		fmt.Println("OK")
	} else if errors.Is(err, vmm.ErrPermission) {
		fmt.Println(err)
	} else {
		t.Fatal(err)
	}
}
