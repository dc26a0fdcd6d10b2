package adminsock

import (
	"encoding/json"
	"os"
	"sync"
	"time"
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
	Admin        bool      `json:"admin,omitempty"`        // user-add
	Result       string    `json:"result"`
}

// Audit is an append-only file of Entry lines. It never holds a password
// or a hash: Entry has no field for either.
type Audit struct {
	mu sync.Mutex
	f  *os.File
}

// OpenAudit opens (creating, mode 0600) the audit file at path for
// appending.
func OpenAudit(path string) (*Audit, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return &Audit{f: f}, nil
}

// Append writes e as one line and syncs the file.
func (a *Audit) Append(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.f.Write(append(b, '\n')); err != nil {
		return err
	}
	return a.f.Sync()
}

// Close closes the file.
func (a *Audit) Close() error { return a.f.Close() }
