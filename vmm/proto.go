package vmm

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	"github.com/buildledger/buildledger/internal/unixsock"
)

// The protocol on the daemon's Unix socket, one request per connection:
//
//   - A frame is a 4-byte big-endian length, at most MaxFrame, then that
//     many bytes of JSON.
//   - The client sends one Request frame. For "create", exactly
//     Request.ImageSize bytes of the image follow it, raw.
//   - The daemon answers with any number of progress frames (Response
//     with Message, for update, or Line, for console) and then one final
//     frame with Done set, carrying either Error and Kind or the result.
//   - A console --follow request streams Line frames until the client
//     closes the connection or the unikernel is destroyed. The client
//     must not half-close its side: the daemon takes EOF as the client
//     going away.
//
// Before reading anything, the daemon checks the peer's uid with
// SO_PEERCRED: root and Config.OwnerUID only.

// MaxFrame bounds a frame.
const MaxFrame = 1 << 20

// Operations.
const (
	OpCreate     = "create"
	OpDestroy    = "destroy"
	OpRestart    = "restart"
	OpInfo       = "info"
	OpConsole    = "console"
	OpUpdate     = "update"
	OpPolicyShow = "policy-show"
	OpPolicySet  = "policy-set"
)

// Request is a client's request.
type Request struct {
	Op        string        `json:"op"`
	Name      string        `json:"name,omitempty"`
	Spec      *Spec         `json:"spec,omitempty"`       // create
	ImageSize int64         `json:"image_size,omitempty"` // create
	Console   *ConsoleQuery `json:"console,omitempty"`    // console
	DryRun    bool          `json:"dry_run,omitempty"`    // update
	Recheck   bool          `json:"recheck,omitempty"`    // info: ask the gate again
	Policy    *Policy       `json:"policy,omitempty"`     // policy-set
}

// Response is one frame of the daemon's answer.
type Response struct {
	Done    bool   `json:"done,omitempty"`
	Error   string `json:"error,omitempty"`
	Kind    string `json:"kind,omitempty"` // see errorKinds
	Message string `json:"message,omitempty"`
	Line    *Line  `json:"line,omitempty"`

	Info     []Info        `json:"info,omitempty"`
	Update   *UpdateReport `json:"update,omitempty"`
	Policy   *Policy       `json:"policy,omitempty"`
	Usage    *Usage        `json:"usage,omitempty"`
	Warnings []string      `json:"warnings,omitempty"`
}

// errorKinds name the sentinel errors on the wire, most specific first.
var errorKinds = unixsock.Kinds{
	{Name: "permission", Err: ErrPermission},
	{Name: "refused", Err: ErrRefused},
	{Name: "limit", Err: ErrLimit},
	{Name: "rolled-back", Err: ErrRolledBack},
	{Name: "not-found", Err: ErrNotFound},
	{Name: "exists", Err: ErrExists},
	{Name: "invalid", Err: ErrInvalid},
}

func errorKind(err error) string { return errorKinds.Of(err) }

// RemoteError is an error the server answered with (see unixsock.RemoteError).
type RemoteError = unixsock.RemoteError

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > MaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(b), MaxFrame)
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

// readFrame reads one frame into v; v is unchanged unless it decodes.
func readFrame[T any](r io.Reader) (*T, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return nil, fmt.Errorf("frame of %d bytes exceeds %d", n, MaxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("truncated frame: %w", err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("bad frame: %w", err)
	}
	return &v, nil
}

// sizedReader reads exactly n bytes of r, failing on an early EOF.
type sizedReader struct {
	r io.Reader
	n int64
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.n {
		p = p[:s.n]
	}
	n, err := s.r.Read(p)
	s.n -= int64(n)
	if err == io.EOF && s.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
