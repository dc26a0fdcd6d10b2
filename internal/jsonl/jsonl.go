// Package jsonl appends records to a durable log of JSON lines: each
// Append writes one line and syncs the file before it returns, so a
// record reported written survives a crash. The VMM's decision audit and
// the ledger's account audit use it. TestAppend proves it.
package jsonl

import (
	"encoding/json"
	"os"
	"sync"
)

// Log is an open JSON-lines file. It is safe for concurrent use.
type Log struct {
	mu sync.Mutex
	f  *os.File
}

// Open opens (creating, mode 0600) the log at path for appending.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return &Log{f: f}, nil
}

// Append writes v as one JSON line and syncs the file.
func (l *Log) Append(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return err
	}
	return l.f.Sync()
}

// Close closes the file.
func (l *Log) Close() error { return l.f.Close() }
