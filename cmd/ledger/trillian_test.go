package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/internal/clitest"
	"github.com/buildledger/buildledger/internal/trilliantest"
)

// TestServeOnTrillian runs `ledger serve --log trillian` against a real
// Trillian with MariaDB: create a tree, upload, look up, verify, restart.
func TestServeOnTrillian(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/google/trillian").Output()
	if err != nil {
		t.Fatal(err)
	}
	env, err := trilliantest.Start(filepath.Join(strings.TrimSpace(string(out)), "storage/mysql/schema/storage.sql"))
	if err != nil {
		trilliantest.Skip(t, err)
	}
	defer env.Stop()
	id := strings.TrimSpace(run(t, "trillian", "create-tree", "--trillian", env.Addr))
	backend := []string{"--log", "trillian", "--trillian", env.Addr, "--tree-id", id}

	data := filepath.Join(t.TempDir(), "data")
	state := filepath.Join(t.TempDir(), "state.json")
	add := newRoot()
	add.SetArgs(append([]string{"user", "add", "farm", "--unrestricted", "--data", data}, backend...))
	add.SetIn(strings.NewReader("farm-password\n"))
	add.SetOut(&bytes.Buffer{})
	if err := add.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	url, stop := startServe(t, data, backend...)
	t.Setenv("BUILDLEDGER_PASSWORD", "farm-password")
	if out := run(t, "upload", "demo", "--job", "hello", "--server", url, "--user", "farm", "--state", state); !strings.Contains(out, "inclusion verified") {
		t.Fatalf("upload:\n%s", out)
	}
	if out := run(t, "lookup", "demo/bin/hello.hvt", "--server", url, "--state", state); !strings.Contains(out, "1 build(s)") {
		t.Fatalf("lookup:\n%s", out)
	}
	stop()
	// The local replay agrees with Trillian after a restart.
	if out := run(t, append([]string{"verify", "--data", data}, backend...)...); !strings.Contains(out, "ok: 2 events") {
		t.Fatalf("verify:\n%s", out)
	}
	// An empty tree is filled from the data directory (a ledger moving
	// onto Trillian), and appends continue there.
	other := strings.TrimSpace(run(t, "trillian", "create-tree", "--trillian", env.Addr))
	if out := run(t, "demo", "--data", data, "--log", "trillian", "--trillian", env.Addr, "--tree-id", other); !strings.Contains(out, "at log index 3") {
		t.Fatalf("demo on a fresh tree:\n%s", out)
	}
}

// TestTrillianRefusesPlaintextOffLoopback: --log trillian to an address
// that is not loopback, without --trillian-ca or --trillian-insecure, is
// refused before anything is dialled (192.0.2.1 is a documentation
// address), with a message naming the flags.
func TestTrillianRefusesPlaintextOffLoopback(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{
		{"serve", "--data", data, "--log", "trillian", "--trillian", "192.0.2.1:8090", "--tree-id", "1", "--listen", "127.0.0.1:0"},
		{"trillian", "create-tree", "--trillian", "192.0.2.1:8090"},
	} {
		_, err := clitest.Run(newRoot(), args...)
		if err == nil || !strings.Contains(err.Error(), "--trillian-ca") || !strings.Contains(err.Error(), "--trillian-insecure") {
			t.Errorf("%s: %v, want a refusal naming --trillian-ca and --trillian-insecure", strings.Join(args, " "), err)
		}
	}
}

// TestTrillianTLS runs a second real Trillian log server with a TLS
// certificate from a CA made for the test: create-tree and a ledger on the
// tree work with --trillian-ca; another CA, or plaintext, fail.
func TestTrillianTLS(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/google/trillian").Output()
	if err != nil {
		t.Fatal(err)
	}
	env, err := trilliantest.Start(filepath.Join(strings.TrimSpace(string(out)), "storage/mysql/schema/storage.sql"))
	if err != nil {
		trilliantest.Skip(t, err)
	}
	defer env.Stop()
	dir := t.TempDir()
	ca, err := trilliantest.NewCA(dir, "trillian-ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := trilliantest.NewCA(dir, "another-ca")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue("trillian", false)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := env.StartLogServer("--tls_cert_file="+cert, "--tls_key_file="+key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clitest.Run(newRoot(), "trillian", "create-tree", "--trillian", addr, "--trillian-ca", other.File); err == nil {
		t.Fatal("create-tree verified the server against another CA")
	}
	if _, err := clitest.Run(newRoot(), "trillian", "create-tree", "--trillian", addr); err == nil {
		t.Fatal("create-tree spoke plaintext to a TLS server")
	}
	id := strings.TrimSpace(run(t, "trillian", "create-tree", "--trillian", addr, "--trillian-ca", ca.File))
	data := filepath.Join(t.TempDir(), "data")
	backend := []string{"--log", "trillian", "--trillian", addr, "--tree-id", id, "--trillian-ca", ca.File}
	if out := run(t, append([]string{"demo", "--data", data}, backend...)...); !strings.Contains(out, "at log index 1") {
		t.Fatalf("demo over TLS:\n%s", out)
	}
	if out := run(t, append([]string{"verify", "--data", data}, backend...)...); !strings.Contains(out, "ok: 2 events") {
		t.Fatalf("verify over TLS:\n%s", out)
	}
}
