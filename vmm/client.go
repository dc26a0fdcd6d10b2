package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

// Client talks to a daemon over its Unix socket.
type Client struct {
	Socket string
}

// do sends req (and body, for create), passes every progress frame to
// each and returns the final one.
func (c *Client) do(ctx context.Context, req *Request, body io.Reader, each func(*Response) error) (*Response, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the vmm daemon at %s: %v; is it running (vmm daemon --socket %s), and may you open the socket?", c.Socket, err, c.Socket)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	err = writeFrame(conn, req)
	if err == nil && body != nil {
		_, err = io.Copy(conn, body)
	}
	if err != nil {
		// The daemon may have refused before reading everything.
		if resp, rerr := readFrame[Response](conn); rerr == nil && resp.Done && resp.Error != "" {
			return nil, errorKinds.Remote(resp.Kind, resp.Error)
		}
		return nil, c.lost(ctx, err)
	}
	for {
		resp, err := readFrame[Response](conn)
		if err != nil {
			return nil, c.lost(ctx, err)
		}
		if resp.Done {
			if resp.Error != "" {
				return nil, errorKinds.Remote(resp.Kind, resp.Error)
			}
			return resp, nil
		}
		if each != nil {
			if err := each(resp); err != nil {
				return nil, err
			}
		}
	}
}

func (c *Client) lost(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("the vmm daemon at %s closed the connection without an answer; see the daemon's log", c.Socket)
	}
	return fmt.Errorf("talking to the vmm daemon at %s: %w", c.Socket, err)
}

// Create sends the image file and creates the unikernel spec describes.
func (c *Client) Create(ctx context.Context, spec Spec, image string) (*Info, error) {
	f, err := os.Open(image)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, &Request{Op: OpCreate, Spec: &spec, ImageSize: fi.Size()}, &sizedReader{r: f, n: fi.Size()}, nil)
	if err != nil {
		return nil, err
	}
	return first(resp)
}

func first(resp *Response) (*Info, error) {
	if len(resp.Info) != 1 {
		return nil, fmt.Errorf("the daemon answered with %d unikernels, want 1", len(resp.Info))
	}
	return &resp.Info[0], nil
}

// Destroy stops and removes the unikernel.
func (c *Client) Destroy(ctx context.Context, name string) error {
	_, err := c.do(ctx, &Request{Op: OpDestroy, Name: name}, nil, nil)
	return err
}

// Restart boots the unikernel again, through the gate.
func (c *Client) Restart(ctx context.Context, name string) (*Info, error) {
	resp, err := c.do(ctx, &Request{Op: OpRestart, Name: name}, nil, nil)
	if err != nil {
		return nil, err
	}
	return first(resp)
}

// Recheck is Info with what the gate decides about each image now
// (Info.Recheck), beside the decision recorded when it was admitted.
func (c *Client) Recheck(ctx context.Context, name string) ([]Info, error) {
	resp, err := c.do(ctx, &Request{Op: OpInfo, Name: name, Recheck: true}, nil, nil)
	if err != nil {
		return nil, err
	}
	return resp.Info, nil
}

// Info describes the named unikernel, or all for "".
func (c *Client) Info(ctx context.Context, name string) ([]Info, error) {
	resp, err := c.do(ctx, &Request{Op: OpInfo, Name: name}, nil, nil)
	if err != nil {
		return nil, err
	}
	return resp.Info, nil
}

// Console calls fn for the console lines q selects; with q.Follow it
// returns when ctx ends (with ctx's error) or the unikernel is destroyed.
func (c *Client) Console(ctx context.Context, name string, q ConsoleQuery, fn func(Line) error) error {
	_, err := c.do(ctx, &Request{Op: OpConsole, Name: name, Console: &q}, nil, func(r *Response) error {
		if r.Line == nil {
			return nil
		}
		return fn(*r.Line)
	})
	return err
}

// Update updates the unikernel to the newest attested build (see
// Daemon.Update); progress receives the daemon's lines as they come.
func (c *Client) Update(ctx context.Context, name string, dryRun bool, progress func(string)) (*UpdateReport, error) {
	resp, err := c.do(ctx, &Request{Op: OpUpdate, Name: name, DryRun: dryRun}, nil, func(r *Response) error {
		if r.Message != "" && progress != nil {
			progress(r.Message)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp.Update, nil
}

// Policy returns the resource policy and what is in use.
func (c *Client) Policy(ctx context.Context) (*Policy, *Usage, error) {
	resp, err := c.do(ctx, &Request{Op: OpPolicyShow}, nil, nil)
	if err != nil {
		return nil, nil, err
	}
	return resp.Policy, resp.Usage, nil
}

// SetPolicy replaces the resource policy; the warnings say where what is
// in use already exceeds it.
func (c *Client) SetPolicy(ctx context.Context, p Policy) ([]string, error) {
	resp, err := c.do(ctx, &Request{Op: OpPolicySet, Policy: &p}, nil, nil)
	if err != nil {
		return nil, err
	}
	return resp.Warnings, nil
}
