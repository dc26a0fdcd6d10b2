package vmm

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/buildledger/buildledger/vmm/gate"
)

// Conditions a caller acts on. Errors are refined from these with %w or
// by typed errors whose Is matches them; the client rebuilds them from
// the error kind on the wire, so errors.Is works on both sides.
var (
	// ErrNotFound: no unikernel has that name. It is fs.ErrNotExist too.
	ErrNotFound error = notFoundError{}
	// ErrExists: a unikernel with that name exists already.
	ErrExists = errors.New("a unikernel with that name exists")
	// ErrInvalid: the request cannot be carried out as given.
	ErrInvalid = errors.New("invalid request")
	// ErrRefused: the boot gate refused the image (see RefusedError).
	ErrRefused = errors.New("refused by the boot gate")
	// ErrLimit: a resource policy limit would be exceeded (see LimitError).
	ErrLimit = errors.New("resource policy limit exceeded")
	// ErrPermission: the peer is not allowed to talk to the daemon.
	ErrPermission = errors.New("permission denied")
)

type notFoundError struct{}

func (notFoundError) Error() string        { return "no such unikernel" }
func (notFoundError) Is(target error) bool { return target == fs.ErrNotExist }

// RefusedError is a boot the gate refused; nothing was started. Reason is
// the gate's multi-line explanation.
type RefusedError struct {
	Name     string
	Op       string // create, restart, restore, update, rollback, restart-on-fail
	Decision *gate.Decision
	Err      error // a failure of the gate itself, which counts as a refusal
}

func (e *RefusedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s of %s refused by the boot gate", e.Op, e.Name)
	if e.Decision != nil && !e.Decision.Image.IsZero() {
		fmt.Fprintf(&b, " (image sha256 %s)", e.Decision.Image)
	}
	b.WriteString(":\n")
	b.WriteString(indent(e.Reason()))
	b.WriteString("\nnothing was started; have the image rebuilt and attested by enough trusted rebuilders, or boot an attested build")
	return b.String()
}

// Reason is the gate's explanation, or the gate's own failure.
func (e *RefusedError) Reason() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("the gate failed, which counts as a refusal: %v", e.Err)
	case e.Decision != nil && e.Decision.Reason != "":
		return e.Decision.Reason
	default:
		return "the gate gave no reason"
	}
}

func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// LimitError names the resource policy limit a create would exceed.
type LimitError struct {
	Limit   string // unikernels, memory, cpus, bridges, block
	Message string // what is in use, what was asked for, what is allowed, what to do
}

func (e *LimitError) Error() string        { return "resource policy: " + e.Message }
func (e *LimitError) Is(target error) bool { return target == ErrLimit }
