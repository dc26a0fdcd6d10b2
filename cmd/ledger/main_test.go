package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := newRoot()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("ledger %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestDemoTwice runs the README's main command twice on one data directory:
// the second run adds a build, the reverse lookup finds both, the sample's
// files are stored once, and verify replays the log.
func TestDemoTwice(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	first := run(t, "demo", "--data", data)
	if !strings.Contains(first, "at log index 1") || !strings.Contains(first, "verified against checkpoint") {
		t.Fatalf("first run:\n%s", first)
	}
	second := run(t, "demo", "--data", data)
	if !strings.Contains(second, "at log index 2") || !strings.Contains(second, ": 2 builds") {
		t.Fatalf("second run:\n%s", second)
	}
	if v := run(t, "verify", "--data", data); !strings.Contains(v, "ok: 3 events") {
		t.Fatalf("verify: %s", v)
	}
	cp := run(t, "checkpoint", "--data", data)
	if !strings.HasPrefix(cp, "buildledger.local/log\n3\n") {
		t.Fatalf("checkpoint:\n%s", cp)
	}
}
