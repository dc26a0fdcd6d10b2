package adminsock

import (
	"time"

	"github.com/buildledger/buildledger/internal/jsonl"
)

// Entry is one line of the audit. A change appears twice under one ID:
// first with Result "requested", written and synced before the change is
// made, then with "ok" or "failed: REASON". A "requested" line without a
// second one is a change whose outcome was never recorded (the process
// died, or the audit could not be written): look at the accounts.
type Entry struct {
	ID           string    `json:"id"`
	Time         time.Time `json:"time"`
	Peer         Peer      `json:"peer"`
	Op           string    `json:"op"`
	User         string    `json:"user"`
	Job          string    `json:"job,omitempty"`
	Unrestricted bool      `json:"unrestricted,omitempty"` // user-add
	Admin        bool      `json:"admin,omitempty"`        // user-add, token-add
	Jobs         []string  `json:"jobs,omitempty"`         // token-add
	TokenName    string    `json:"token_name,omitempty"`   // token-add
	Token        string    `json:"token,omitempty"`        // token-add, token-revoke: its ID, never its secret
	Result       string    `json:"result"`
}

// Audit is an append-only file of Entry lines. It never holds a password,
// a token's secret or a hash: Entry has no field for any.
type Audit struct{ log *jsonl.Log }

// OpenAudit opens (creating, mode 0600) the audit file at path for
// appending.
func OpenAudit(path string) (*Audit, error) {
	l, err := jsonl.Open(path)
	if err != nil {
		return nil, err
	}
	return &Audit{log: l}, nil
}

// Append writes e as one line and syncs the file.
func (a *Audit) Append(e Entry) error { return a.log.Append(e) }

// Close closes the file.
func (a *Audit) Close() error { return a.log.Close() }
