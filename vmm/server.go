package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/buildledger/buildledger/internal/unixsock"
)

// maxSocketPath is the room in sockaddr_un.sun_path, NUL included.
const maxSocketPath = 108

// Listen creates the daemon's Unix socket at path. The directory must be
// the daemon user's alone (it is created 0700 if missing); a socket a
// live daemon answers on is an error, a stale one is replaced; the
// socket is made 0600 and is removed when the listener closes.
func Listen(path string) (*net.UnixListener, error) {
	if len(path) >= maxSocketPath {
		return nil, fmt.Errorf("%w: socket path %s has %d bytes, Unix sockets need fewer than %d; choose a shorter --socket", ErrInvalid, path, len(path), maxSocketPath)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: the socket directory %s has mode %04o, so other users could reach the socket; chmod 700 %s, or choose a --socket in a directory only the daemon's user can enter",
			ErrInvalid, dir, fi.Mode().Perm(), dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%w: the socket directory %s belongs to uid %d, not to the daemon's uid %d; choose a --socket in a directory of the daemon's user",
			ErrInvalid, dir, st.Uid, os.Geteuid())
	}
	switch err := unixsock.ClearStale(path); {
	case errors.Is(err, unixsock.ErrNotSocket):
		return nil, fmt.Errorf("%w: %s exists and is not a socket; remove it or choose another --socket", ErrInvalid, path)
	case errors.Is(err, unixsock.ErrInUse):
		return nil, fmt.Errorf("%w: a daemon is already listening on %s; stop it first or choose another --socket", ErrExists, path)
	case err != nil:
		return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
	}
	return unixsock.ListenPrivate(path)
}

// Serve answers requests on ln (see the protocol in proto.go) until ln
// is closed.
func (d *Daemon) Serve(ln *net.UnixListener) error { return unixsock.Serve(ln, d.serveConn) }

// peerUID is the uid of the process at the other end (SO_PEERCRED).
func peerUID(c *net.UnixConn) (int, error) {
	uid, _, err := unixsock.PeerCred(c)
	return uid, err
}

func (d *Daemon) serveConn(c *net.UnixConn) {
	defer c.Close()
	fail := func(err error) {
		writeFrame(c, &Response{Done: true, Error: err.Error(), Kind: errorKind(err)})
	}
	uid, err := peerUID(c)
	if err != nil {
		fail(fmt.Errorf("%w: cannot tell who you are (%v)", ErrPermission, err))
		return
	}
	if uid != 0 && uid != d.cfg.OwnerUID {
		fail(fmt.Errorf("%w: uid %d may not use this daemon, only uid %d and root; run vmm as that user", ErrPermission, uid, d.cfg.OwnerUID))
		return
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	req, err := readFrame[Request](c)
	if err != nil {
		fail(fmt.Errorf("%w: reading the request: %v", ErrInvalid, err))
		return
	}
	c.SetReadDeadline(time.Time{})

	ctx, cancel := context.WithCancel(d.ctx)
	defer cancel()
	watch := func() {
		// The client sends nothing more; EOF means it went away.
		go func() {
			io.Copy(io.Discard, c)
			cancel()
		}()
	}
	resp, err := d.handle(ctx, c, req, watch)
	if err != nil {
		fail(err)
		return
	}
	resp.Done = true
	writeFrame(c, resp)
}

func (d *Daemon) handle(ctx context.Context, c *net.UnixConn, req *Request, watch func()) (*Response, error) {
	needName := func() error {
		if req.Name == "" {
			return fmt.Errorf("%w: %s needs a unikernel name", ErrInvalid, req.Op)
		}
		return nil
	}
	switch req.Op {
	case OpCreate:
		if req.Spec == nil {
			return nil, fmt.Errorf("%w: create without a spec", ErrInvalid)
		}
		if req.ImageSize <= 0 || req.ImageSize > d.cfg.MaxImageSize {
			return nil, fmt.Errorf("%w: image of %d bytes; the daemon takes 1 to %d bytes", ErrInvalid, req.ImageSize, d.cfg.MaxImageSize)
		}
		info, err := d.Create(ctx, *req.Spec, &sizedReader{r: c, n: req.ImageSize})
		if err != nil {
			return nil, err
		}
		return &Response{Info: []Info{*info}}, nil
	case OpDestroy:
		if err := needName(); err != nil {
			return nil, err
		}
		return &Response{}, d.Destroy(ctx, req.Name)
	case OpRestart:
		if err := needName(); err != nil {
			return nil, err
		}
		info, err := d.Restart(ctx, req.Name)
		if err != nil {
			return nil, err
		}
		return &Response{Info: []Info{*info}}, nil
	case OpInfo:
		info := d.Info
		if req.Recheck {
			info = func(name string) ([]Info, error) { return d.Recheck(ctx, name) }
		}
		infos, err := info(req.Name)
		if err != nil {
			return nil, err
		}
		return &Response{Info: infos}, nil
	case OpConsole:
		if err := needName(); err != nil {
			return nil, err
		}
		q := ConsoleQuery{}
		if req.Console != nil {
			q = *req.Console
		}
		watch()
		err := d.Console(ctx, req.Name, q, func(l Line) error { return writeFrame(c, &Response{Line: &l}) })
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err() // the client is gone
		}
		return &Response{}, err
	case OpUpdate:
		if err := needName(); err != nil {
			return nil, err
		}
		r, err := d.Update(ctx, req.Name, req.DryRun, func(msg string) { writeFrame(c, &Response{Message: msg}) })
		if err != nil {
			return nil, err
		}
		return &Response{Update: r}, nil
	case OpPolicyShow:
		p, u := d.Policy()
		return &Response{Policy: &p, Usage: &u}, nil
	case OpPolicySet:
		if req.Policy == nil {
			return nil, fmt.Errorf("%w: policy-set without a policy", ErrInvalid)
		}
		w, err := d.SetPolicy(*req.Policy)
		if err != nil {
			return nil, err
		}
		p, u := d.Policy()
		return &Response{Policy: &p, Usage: &u, Warnings: w}, nil
	default:
		return nil, fmt.Errorf("%w: unknown operation %q; this daemon may be older than the client", ErrInvalid, req.Op)
	}
}
