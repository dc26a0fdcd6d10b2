package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/internal/clitest"
)

func writeKey(t *testing.T, alg attest.KeyAlgorithm) string {
	t.Helper()
	p, err := attest.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.LoadSigner(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "key.pub")
	if err := os.WriteFile(f, s.PublicKeyPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func runErr(args ...string) (string, error) { return clitest.Run(newRoot(), args...) }

// TestKeyCommands registers and revokes keys locally and through a running
// server, as an administrator; an uploader may not.
func TestKeyCommands(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	state := filepath.Join(t.TempDir(), "state.json")
	pubA, pubB := writeKey(t, attest.ECDSAP256), writeKey(t, attest.Ed25519)
	if out := run(t, "key", "add", "alpha", pubA, "--data", data); !strings.Contains(out, `registered key "alpha" (ecdsa-p256`) {
		t.Fatalf("local key add: %s", out)
	}
	for _, u := range [][]string{{"root", "--admin"}, {"farm", "--unrestricted"}} {
		add := newRoot()
		add.SetArgs([]string{"user", "add", u[0], u[1], "--data", data})
		add.SetIn(strings.NewReader(u[0] + "-password\n"))
		add.SetOut(&bytes.Buffer{})
		if err := add.ExecuteContext(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	url, stop := startServe(t, data)
	defer stop()
	if out, err := runErr("key", "add", "beta", pubB, "--data", data); err == nil || !strings.Contains(err.Error(), "stop it, or pass --server") {
		t.Fatalf("local change while serving: %v %s", err, out)
	}
	t.Setenv("BUILDLEDGER_PASSWORD", "farm-password")
	if _, err := runErr("key", "add", "beta", pubB, "--server", url, "--user", "farm", "--state", state); err == nil || !strings.Contains(err.Error(), "not an administrator") {
		t.Fatalf("key add by an uploader: %v", err)
	}
	t.Setenv("BUILDLEDGER_PASSWORD", "root-password")
	if out := run(t, "key", "add", "beta", pubB, "--server", url, "--user", "root", "--state", state); !strings.Contains(out, `registered key "beta" (ed25519`) {
		t.Fatalf("remote key add: %s", out)
	}
	if out := run(t, "key", "revoke", "alpha", "--reason", "laptop lost", "--server", url, "--user", "root", "--state", state); !strings.Contains(out, `revoked key "alpha"`) {
		t.Fatalf("remote revoke: %s", out)
	}
	out := run(t, "key", "list", "--server", url, "--state", state)
	if !strings.Contains(out, "alpha") || !strings.Contains(out, "revoked") || !strings.Contains(out, "beta") || !strings.Contains(out, "active") {
		t.Fatalf("key list: %s", out)
	}
	if _, err := runErr("key", "add", "gamma", pubA, "--server", url, "--user", "root", "--state", state); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("re-adding a revoked key: %v", err)
	}
}
