package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplicaRefusesPlaceholderKey: a --log-key that is not a verifier key
// (the README's old placeholder) is refused before anything is pinned, so
// the real key is accepted on the next try.
func TestReplicaRefusesPlaceholderKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	_, err := runErr("serve", "--data", dir, "--listen", "127.0.0.1:0", "--replica-of", "http://127.0.0.1:9", "--log-key", "buildledger.local/log+…")
	if err == nil || !strings.Contains(err.Error(), "not a log verifier key") || !strings.Contains(err.Error(), "log.pub") {
		t.Fatalf("placeholder key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "primary.pub")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the placeholder was pinned (%v)", err)
	}
}
