// Package unixsock holds what the local control sockets of buildledger
// (the VMM daemon's and the ledger's administration socket) share: a
// socket file only its owner can open, replacing a stale one left by a
// process that died, an accept loop, and the kernel's word on who is at
// the other end (SO_PEERCRED). Callers decide who may talk and word their
// own errors. TestListenReplacesStale and TestPeerCred prove it.
package unixsock

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"
)

// Conditions ClearStale reports; callers wrap them with their advice.
var (
	// ErrNotSocket: something other than a socket is at the path.
	ErrNotSocket = errors.New("exists and is not a socket")
	// ErrInUse: a live process answers on the socket.
	ErrInUse = errors.New("a process already answers on the socket")
)

// ClearStale makes path free for a new socket: nothing there is fine, a
// socket nobody answers on (left by a process that died) is removed.
func ClearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return ErrNotSocket
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return ErrInUse
	}
	// Only a refused connection proves nobody listens; a full backlog or
	// a permission problem may hide a live process.
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w (cannot tell whether it is stale: %v)", ErrInUse, err)
	}
	return os.Remove(path)
}

// ListenPrivate listens on a new socket at path, mode 0600, removed when
// the listener closes. The path must be free (see ClearStale).
func ListenPrivate(path string) (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Serve calls handle, on its own goroutine, for every connection ln
// accepts, until ln is closed (then it returns nil).
func Serve(ln *net.UnixListener, handle func(*net.UnixConn)) error {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go handle(c)
	}
}

// PeerCred returns the uid and pid of the process at the other end of c,
// as the kernel recorded them when it connected (SO_PEERCRED).
func PeerCred(c *net.UnixConn) (uid, pid int, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if cerr != nil {
		return 0, 0, cerr
	}
	return int(cred.Uid), int(cred.Pid), nil
}

// Kind names a sentinel error on the wire, so that a client can tell the
// conditions it acts on apart (errors.Is) in a server's answer.
type Kind struct {
	Name string
	Err  error
}

// Kinds is a protocol's table of error kinds, most specific first.
type Kinds []Kind

// Of names the first kind err is, or "" for none.
func (ks Kinds) Of(err error) string {
	for _, k := range ks {
		if errors.Is(err, k.Err) {
			return k.Name
		}
	}
	return ""
}

// Remote is the error a server answered with: message, of kind.
func (ks Kinds) Remote(kind, message string) *RemoteError {
	return &RemoteError{Kind: kind, Message: message, kinds: ks}
}

// RemoteError is an error a server answered with. errors.Is matches the
// sentinel its Kind names in its protocol's table, and fs.ErrNotExist
// for the kind "not-found".
type RemoteError struct {
	Kind    string
	Message string
	kinds   Kinds
}

func (e *RemoteError) Error() string { return e.Message }

// Is reports whether the answer is of the kind target names.
func (e *RemoteError) Is(target error) bool {
	if e.Kind == "not-found" && target == fs.ErrNotExist {
		return true
	}
	for _, k := range e.kinds {
		if k.Name == e.Kind {
			return k.Err == target
		}
	}
	return false
}
