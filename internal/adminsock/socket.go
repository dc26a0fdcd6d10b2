package adminsock

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/buildledger/buildledger/internal/unixsock"
)

// MaxPath is the longest socket path: sockaddr_un.sun_path holds 108
// bytes, NUL included.
const MaxPath = 107

// ErrPathTooLong: the socket path does not fit in a sockaddr_un.
var ErrPathTooLong = errors.New("adminsock: socket path too long")

// Listen creates the administration socket at path, mode 0600, replacing
// a stale one (a socket file nobody answers on). The directory must exist
// and belong to this process's uid. The socket is removed when the
// listener closes.
func Listen(path string) (*net.UnixListener, error) {
	if len(path) > MaxPath {
		return nil, fmt.Errorf("%w: %s has %d bytes, at most %d fit", ErrPathTooLong, path, len(path), MaxPath)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%s belongs to uid %d, not to this server's uid %d; run the server as the data directory's owner", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s has mode %04o: others could replace the administration socket in it; chmod go-w %s", dir, fi.Mode().Perm(), dir)
	}
	switch err := unixsock.ClearStale(path); {
	case errors.Is(err, unixsock.ErrNotSocket):
		return nil, fmt.Errorf("%s exists and is not a socket; remove it", path)
	case errors.Is(err, unixsock.ErrInUse):
		return nil, fmt.Errorf("a server already answers on %s; stop it first", path)
	case err != nil:
		return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
	}
	return unixsock.ListenPrivate(path)
}

// Server answers requests on the administration socket.
type Server struct {
	Admin *Admin
	// OwnerUID is the uid allowed besides root: the server's own.
	OwnerUID int
	// Log gets one line per request (never its password); nil is silent.
	Log *slog.Logger

	// peer tells who is at the other end (default SO_PEERCRED); tests
	// feed it other uids.
	peer func(*net.UnixConn) (Peer, error)
}

// Serve answers connections on ln until ln is closed, then waits for the
// requests in progress (a change being made finishes and is audited
// before the caller closes the audit and the store).
func (s *Server) Serve(ln *net.UnixListener) error {
	var inflight sync.WaitGroup
	err := unixsock.Serve(ln, func(c *net.UnixConn) {
		inflight.Add(1)
		defer inflight.Done()
		s.serveConn(c)
	})
	inflight.Wait()
	return err
}

// peerCred asks the kernel who is at the other end (SO_PEERCRED).
func peerCred(c *net.UnixConn) (Peer, error) {
	uid, pid, err := unixsock.PeerCred(c)
	if err != nil {
		return Peer{}, err
	}
	return Peer{UID: uid, PID: pid, Via: "socket"}, nil
}

func (s *Server) serveConn(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	peer := s.peer
	if peer == nil {
		peer = peerCred
	}
	answer := func(r Response) { writeLine(c, r) }
	who, err := peer(c)
	if err != nil {
		answer(failure(fmt.Errorf("%w: cannot tell who you are (%v)", ErrPermission, err)))
		return
	}
	if who.UID != 0 && who.UID != s.OwnerUID {
		if s.Log != nil {
			s.Log.Warn("admin socket: refused a peer", "uid", who.UID, "pid", who.PID)
		}
		answer(failure(fmt.Errorf("%w: uid %d may not manage accounts, only uid %d (the server's) and root", ErrPermission, who.UID, s.OwnerUID)))
		return
	}
	var req Request
	if err := readLine(c, &req); err != nil {
		answer(failure(fmt.Errorf("%w: reading the request: %v", ErrInvalid, err)))
		return
	}
	r := s.Admin.Do(who, req)
	if s.Log != nil && req.Op != OpUserList {
		s.Log.Info("account change", "request", req, "uid", who.UID, "pid", who.PID, "error", r.Error)
	}
	answer(r)
}

func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func readLine(r io.Reader, v any) error {
	line, err := bufio.NewReader(io.LimitReader(r, MaxRequest+1)).ReadBytes('\n')
	if err != nil {
		if len(line) > MaxRequest {
			return fmt.Errorf("longer than %d bytes", MaxRequest)
		}
		return err
	}
	return json.Unmarshal(line, v)
}

// Do sends req to the server listening at path and returns its answer.
// It returns an error wrapping ErrNoServer when no server listens there
// (no socket file, or a stale one), so that the caller may make the change
// on the store itself; an answer that is an error is returned as a
// *RemoteError.
func Do(ctx context.Context, path string, req Request) (Response, error) {
	if len(path) > MaxPath {
		return Response{}, fmt.Errorf("%w (%w: %s)", ErrNoServer, ErrPathTooLong, path)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		return Response{}, fmt.Errorf("%w on %s: %w", ErrNoServer, path, err)
	}
	if err != nil {
		return Response{}, fmt.Errorf("the server's administration socket: %w", err)
	}
	defer c.Close()
	// The request may carry a password: send it only to a server of this
	// user (or root), never to whoever managed to bind the path.
	if uid, _, err := unixsock.PeerCred(c.(*net.UnixConn)); err != nil {
		return Response{}, fmt.Errorf("the server's administration socket: cannot tell who listens on %s: %w", path, err)
	} else if uid != 0 && uid != os.Geteuid() {
		return Response{}, fmt.Errorf("%w: %s is served by uid %d, not by this user (%d) or root; nothing was sent", ErrPermission, path, uid, os.Geteuid())
	}
	deadline := time.Now().Add(time.Minute)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	c.SetDeadline(deadline)
	// A server that refuses the peer answers without reading the
	// request, and may have closed before it is written: its answer
	// is still there to read.
	werr := writeLine(c, req)
	var r Response
	if err := json.NewDecoder(io.LimitReader(c, 64<<20)).Decode(&r); err != nil {
		if werr != nil {
			err = werr
		}
		return Response{}, fmt.Errorf("the server's administration socket: %w", err)
	}
	return r, r.Err()
}
