// Package adminsock manages a ledger's uploader accounts while its server
// runs: `ledger serve` answers on a Unix socket in its data directory, and
// `ledger user` and `ledger access` send their change there, or, when no
// server listens, make it on the store themselves through the same Admin.
//
// Who may connect is decided by the operating system twice: the socket is
// mode 0600 (Listen), and before reading a request the server asks the
// kernel for the peer's uid (SO_PEERCRED) and answers only its own uid and
// root (TestPeerRefused, TestOtherUIDRefused). Passwords cross the socket
// in the clear, to be hashed by the server; hashes never do: a listing
// carries auth.Account, which has none (TestListHasNoHashes).
//
// Every change is written to an audit file before it is made, and its
// outcome after (Audit; TestAuditRecordsChanges): an append-only file of
// JSON lines, synced before the change goes ahead, so that no change is
// ever made that the audit does not show, whichever process made it. A
// file in the data directory rather than the server's log lines, because
// the server's log may go nowhere or be rotated away, and because changes
// made with the server stopped have no server log to go to.
//
// The protocol, one request per connection: the client writes one Request
// as a line of JSON (at most MaxRequest bytes), the server answers with
// one Response as a line of JSON and closes the connection.
package adminsock

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/internal/unixsock"
)

// Operations.
const (
	OpUserAdd      = "user-add"
	OpUserRemove   = "user-remove"
	OpUserList     = "user-list"
	OpAccessAdd    = "access-add"
	OpAccessRemove = "access-remove"
	OpTokenAdd     = "token-add"
	OpTokenList    = "token-list"
	OpTokenRevoke  = "token-revoke"
)

// MaxRequest bounds a request line.
const MaxRequest = 64 << 10

// Request is one account operation.
type Request struct {
	Op           string `json:"op"`
	User         string `json:"user,omitempty"`
	Password     string `json:"password,omitempty"` // user-add; hashed by the server, never stored or logged
	Unrestricted bool   `json:"unrestricted,omitempty"`
	Admin        bool   `json:"admin,omitempty"`
	Job          string `json:"job,omitempty"`
	// token-add: what the token is for, and the jobs it is limited to;
	// token-revoke: its ID (in Token).
	Name  string   `json:"name,omitempty"`
	Jobs  []string `json:"jobs,omitempty"`
	Token string   `json:"token,omitempty"`
}

// LogValue leaves the password out of any log line.
func (r Request) LogValue() slog.Value {
	return slog.GroupValue(slog.String("op", r.Op), slog.String("user", r.User), slog.String("job", r.Job))
}

// Response is the answer to a Request.
type Response struct {
	Error    string         `json:"error,omitempty"`
	Kind     string         `json:"kind,omitempty"` // see errorKinds
	Accounts []auth.Account `json:"accounts,omitempty"`
	// Secret is a new token's secret (token-add), shown once; Tokens a
	// token listing (never with secrets).
	Secret string       `json:"secret,omitempty"`
	Tokens []auth.Token `json:"tokens,omitempty"`
	// Warning is set when the change was made but its outcome could
	// not be added to the audit (which does show the request).
	Warning string `json:"warning,omitempty"`
}

// Errors callers act on.
var (
	// ErrPermission: the peer is neither the server's uid nor root.
	ErrPermission = errors.New("adminsock: permission denied")
	// ErrInvalid: a malformed or unknown request.
	ErrInvalid = errors.New("adminsock: invalid request")
	// ErrNoServer: nobody listens on the socket (it is missing, or stale).
	ErrNoServer = errors.New("adminsock: no server listening")
)

// errorKinds name the sentinel errors on the wire.
var errorKinds = unixsock.Kinds{
	{Name: "permission", Err: ErrPermission},
	{Name: "invalid", Err: ErrInvalid},
	{Name: "not-found", Err: auth.ErrNotFound},
	{Name: "exists", Err: auth.ErrExists},
	{Name: "forbidden", Err: auth.ErrForbidden},
}

func errorKind(err error) string { return errorKinds.Of(err) }

// RemoteError is an error the server answered with (see unixsock.RemoteError).
type RemoteError = unixsock.RemoteError

// Err returns the response's error, or nil.
func (r *Response) Err() error {
	if r.Error == "" {
		return nil
	}
	return errorKinds.Remote(r.Kind, r.Error)
}

// Accounts is the account store an Admin changes; *auth.Store is one.
// Each method must make its change completely or not at all.
type Accounts interface {
	Add(name, password string, unrestricted bool) error
	AddAdmin(name, password string) error
	Remove(name string) error
	Grant(name, job string) error
	Revoke(name, job string) error
	// Accounts must return no password hash.
	Accounts() ([]auth.Account, error)
	AddToken(user, name string, jobs []string, admin bool) (string, auth.Token, error)
	RevokeToken(id string) error
	Tokens(user string) ([]auth.Token, error)
}

var _ Accounts = (*auth.Store)(nil)

// Peer is who asked for a change: the peer process of a socket
// connection, or the process itself when it changes the store directly.
type Peer struct {
	UID int    `json:"uid"`
	PID int    `json:"pid"`
	Via string `json:"via"` // "socket" or "direct"
}

// Admin applies account requests to Accounts, auditing every change.
// It is safe for concurrent use; changes are made one at a time.
type Admin struct {
	Accounts Accounts
	Audit    *Audit // may be nil for an Admin that only lists
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu sync.Mutex
}

// Do applies req on behalf of who. A change is refused, and nothing
// changed, when its request cannot be written to the audit.
func (a *Admin) Do(who Peer, req Request) Response {
	switch req.Op {
	case OpUserList:
		accts, err := a.Accounts.Accounts()
		if err != nil {
			return failure(err)
		}
		return Response{Accounts: accts}
	case OpTokenList:
		toks, err := a.Accounts.Tokens(req.User)
		if err != nil {
			return failure(err)
		}
		return Response{Tokens: toks}
	}
	apply, err := a.change(req)
	if err != nil {
		return failure(err)
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e := Entry{ID: newID(), Time: now().UTC(), Peer: who, Op: req.Op, User: req.User, Job: req.Job, Result: "requested"}
	switch req.Op {
	case OpUserAdd:
		e.Unrestricted, e.Admin = req.Unrestricted || req.Admin, req.Admin
	case OpTokenAdd:
		e.Admin, e.Jobs, e.TokenName = req.Admin, req.Jobs, req.Name
	case OpTokenRevoke:
		e.Token = req.Token
	}
	if err := a.Audit.Append(e); err != nil {
		return failure(fmt.Errorf("the change was not made: writing the audit: %w", err))
	}
	resp, err := apply()
	e.Time, e.Result = now().UTC(), "ok"
	if err != nil {
		e.Result = "failed: " + err.Error()
	}
	if req.Op == OpTokenAdd && err == nil {
		e.Token = resp.Tokens[0].ID // the ID, never the secret
	}
	var warning string
	if aerr := a.Audit.Append(e); aerr != nil {
		warning = fmt.Sprintf("the audit shows the request %s but not its outcome: %v", e.ID, aerr)
	}
	if err != nil {
		r := failure(err)
		r.Warning = warning
		return r
	}
	resp.Warning = warning
	return resp
}

// change checks req and returns the function that makes it.
func (a *Admin) change(req Request) (func() (Response, error), error) {
	plain := func(f func() error) func() (Response, error) {
		return func() (Response, error) { return Response{}, f() }
	}
	needUser := func() error {
		if err := auth.CheckName(req.User); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return nil
	}
	needJob := func() error {
		if err := needUser(); err != nil {
			return err
		}
		if req.Job == "" {
			return fmt.Errorf("%w: %s needs a job", ErrInvalid, req.Op)
		}
		return nil
	}
	switch req.Op {
	case OpUserAdd:
		if err := needUser(); err != nil {
			return nil, err
		}
		if req.Admin {
			return plain(func() error { return a.Accounts.AddAdmin(req.User, req.Password) }), nil
		}
		return plain(func() error { return a.Accounts.Add(req.User, req.Password, req.Unrestricted) }), nil
	case OpUserRemove:
		if err := needUser(); err != nil {
			return nil, err
		}
		return plain(func() error { return a.Accounts.Remove(req.User) }), nil
	case OpAccessAdd:
		if err := needJob(); err != nil {
			return nil, err
		}
		return plain(func() error { return a.Accounts.Grant(req.User, req.Job) }), nil
	case OpAccessRemove:
		if err := needJob(); err != nil {
			return nil, err
		}
		return plain(func() error { return a.Accounts.Revoke(req.User, req.Job) }), nil
	case OpTokenAdd:
		if err := needUser(); err != nil {
			return nil, err
		}
		return func() (Response, error) {
			secret, t, err := a.Accounts.AddToken(req.User, req.Name, req.Jobs, req.Admin)
			return Response{Secret: secret, Tokens: []auth.Token{t}}, err
		}, nil
	case OpTokenRevoke:
		if req.Token == "" {
			return nil, fmt.Errorf("%w: token-revoke needs a token ID", ErrInvalid)
		}
		return plain(func() error { return a.Accounts.RevokeToken(req.Token) }), nil
	}
	return nil, fmt.Errorf("%w: unknown operation %q", ErrInvalid, req.Op)
}

func failure(err error) Response { return Response{Error: err.Error(), Kind: errorKind(err)} }

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
