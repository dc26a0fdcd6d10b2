// Package client connects to a build farm scheduler (package
// farm/scheduler, or Robur's builder-server) as builder-client and
// builder-worker do: TCP, or TLS with a client certificate, then builder's
// hello (package farm/proto), then commands.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/farm/proto"
)

// DefaultAddr is builder's default scheduler address.
const DefaultAddr = "127.0.0.1:1234"

// maxReply bounds a scheduler's answer (an info reply lists every job with
// its script).
const maxReply = 1 << 30

// Dialer says how to reach the scheduler.
type Dialer struct {
	Addr string      // host:port; "" means DefaultAddr
	TLS  *tls.Config // nil: plain TCP (builder's protocol)
	// Timeout bounds connecting and the hello; 0 means 30 s.
	Timeout time.Duration
}

// Dial connects and says hello as role, with builder's protocol version
// for it. The scheduler closes the connection without an answer when it
// speaks another version; Dial then says so.
func (d Dialer) Dial(ctx context.Context, role proto.Role) (net.Conn, error) {
	addr := d.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	timeout := d.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	nd := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	var c net.Conn
	var err error
	if d.TLS != nil {
		td := &tls.Dialer{NetDialer: nd, Config: d.TLS}
		c, err = td.DialContext(ctx, "tcp", addr)
	} else {
		c, err = nd.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to the scheduler at %s: %w", addr, err)
	}
	version := int64(proto.ClientVersion)
	if role == proto.RoleWorker {
		version = proto.WorkerVersion
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := proto.WriteCmd(c, proto.ClientHello{Role: role, Version: version}, maxReply); err != nil {
		c.Close()
		return nil, fmt.Errorf("scheduler %s: hello: %w", addr, err)
	}
	reply, err := proto.ReadCmd(c, maxReply)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		c.Close()
		return nil, fmt.Errorf("scheduler %s closed the connection after the hello: it does not speak %s protocol version %d", addr, role, version)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("scheduler %s: hello: %w", addr, err)
	}
	if _, ok := reply.(proto.ServerHello); !ok {
		c.Close()
		return nil, fmt.Errorf("scheduler %s: expected server hello, got message [%d]", addr, reply.Tag())
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// Error is the scheduler's Failure answer.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

// teardown reads the Success or Failure that ends every command.
func teardown(c net.Conn) error {
	reply, err := proto.ReadCmd(c, maxReply)
	if err != nil {
		return fmt.Errorf("reading the scheduler's answer: %w", err)
	}
	switch m := reply.(type) {
	case proto.Success:
		return nil
	case proto.Failure:
		return &Error{Msg: m.Msg}
	}
	return fmt.Errorf("unexpected answer from the scheduler: message [%d]", reply.Tag())
}

func withConn(ctx context.Context, d Dialer, f func(net.Conn) error) error {
	c, err := d.Dial(ctx, proto.RoleClient)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	err = f(c)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Do sends one command (schedule, orb-build, unschedule, reschedule,
// execute, drop-platform, undrop-platform) and returns the scheduler's
// Failure as an *Error.
func Do(ctx context.Context, d Dialer, cmd proto.Cmd) error {
	return withConn(ctx, d, func(c net.Conn) error {
		if err := proto.WriteCmd(c, cmd, maxReply); err != nil {
			return err
		}
		return teardown(c)
	})
}

// Info returns the scheduler's schedule, queues, running jobs and dropped
// platforms.
func Info(ctx context.Context, d Dialer) (proto.InfoReply, error) {
	var info proto.InfoReply
	err := withConn(ctx, d, func(c net.Conn) error {
		if err := proto.WriteCmd(c, proto.Info{}, maxReply); err != nil {
			return err
		}
		reply, err := proto.ReadCmd(c, maxReply)
		if err != nil {
			return err
		}
		switch m := reply.(type) {
		case proto.InfoReply:
			info = m
		case proto.OldInfoReply:
			info = proto.InfoReply{Schedule: m.Schedule, Queues: m.Queues, Running: m.Running}
		case proto.Failure:
			return &Error{Msg: m.Msg}
		default:
			return fmt.Errorf("unexpected reply to 'info': message [%d]", reply.Tag())
		}
		return teardown(c)
	})
	return info, err
}

// Observe calls line for every console line of the running job id (the
// lines so far, then live ones, the last saying how the job ended) and
// returns when the job ended.
func Observe(ctx context.Context, d Dialer, id uuid.UUID, line func(delta time.Duration, text string)) error {
	return withConn(ctx, d, func(c net.Conn) error {
		if err := proto.WriteCmd(c, proto.Observe{UUID: id}, maxReply); err != nil {
			return err
		}
		for {
			reply, err := proto.ReadCmd(c, maxReply)
			if err != nil {
				return fmt.Errorf("observing %s: %w", id, err)
			}
			switch m := reply.(type) {
			case proto.Output:
				var delta time.Duration
				if m.Timestamp != nil {
					delta = time.Duration(*m.Timestamp)
				}
				line(delta, m.Line)
			case proto.Success:
				return nil
			case proto.Failure:
				return &Error{Msg: m.Msg}
			default:
				return fmt.Errorf("expected output, got message [%d]", reply.Tag())
			}
		}
	})
}

// Latest picks the running job that started last, optionally only of one
// job name or platform (builder's observe-latest, without its quirk of
// starting from a job that does not match).
func Latest(info proto.InfoReply, job, platform string) (proto.Running, bool) {
	var best proto.Running
	found := false
	for _, r := range info.Running {
		p := ""
		if r.Job.Platform != nil {
			p = *r.Job.Platform
		}
		if (job != "" && r.Job.Name != job) || (platform != "" && p != platform) {
			continue
		}
		if !found || r.Started.T.After(best.Started.T) {
			best, found = r, true
		}
	}
	return best, found
}
