package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/internal/clitest"
	"github.com/buildledger/buildledger/internal/witnesstest"
)

func run(t *testing.T, args ...string) string {
	t.Helper()
	return clitest.MustRun(t, newRoot(), args...)
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

// TestServeUploadLookupVerify runs the server command and the client
// commands against it on loopback: add an uploader, upload the bundled orb
// directory, look its binary up, verify the log.
func TestServeUploadLookupVerify(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	state := filepath.Join(t.TempDir(), "state.json")
	add := newRoot()
	add.SetArgs([]string{"user", "add", "farm", "--unrestricted", "--data", data})
	add.SetIn(strings.NewReader("farm-password\n"))
	var addOut bytes.Buffer
	add.SetOut(&addOut)
	if err := add.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}

	url, stop := startServe(t, data)
	defer stop()

	t.Setenv("BUILDLEDGER_PASSWORD", "farm-password")
	out := run(t, "upload", "demo", "--job", "hello", "--server", url, "--user", "farm", "--state", state)
	if !strings.Contains(out, "main binary: bin/hello.hvt") || !strings.Contains(out, "inclusion verified") {
		t.Fatalf("upload:\n%s", out)
	}
	out = run(t, "lookup", "demo/bin/hello.hvt", "--server", url, "--state", state)
	if !strings.Contains(out, "1 build(s)") || !strings.Contains(out, "job hello") || !strings.Contains(out, "inclusion verified") {
		t.Fatalf("lookup:\n%s", out)
	}
	out = run(t, "verify", "--server", url, "--state", state)
	if !strings.Contains(out, "ok: size") {
		t.Fatalf("verify:\n%s", out)
	}
}

// startServe runs `ledger serve` on a loopback port and returns its URL and
// a function that stops it (and checks it shut down cleanly).
func startServe(t *testing.T, data string, extra ...string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		srv := newRoot()
		srv.SetArgs(append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0"}, extra...))
		srv.SetOut(pw)
		done <- srv.ExecuteContext(ctx)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var url string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
			url = u
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if url == "" {
		cancel()
		t.Fatalf("server did not say where it listens: %v", <-done)
	}
	return url, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
}

// TestVerifyCatchesRewrittenHistory: a client verifies a server, then the
// operator swaps in a store with another history under the same log key.
// `ledger verify` must fail with a security error showing both checkpoints.
func TestVerifyCatchesRewrittenHistory(t *testing.T) {
	honest := filepath.Join(t.TempDir(), "honest")
	run(t, "demo", "--data", honest)
	run(t, "demo", "--data", honest)
	state := filepath.Join(t.TempDir(), "state.json")
	url, stop := startServe(t, honest)
	if out := run(t, "verify", "--server", url, "--state", state); !strings.Contains(out, "first checkpoint") {
		t.Fatalf("first verify: %s", out)
	}
	stop()

	// Same key, different history (more builds, different events).
	forged := filepath.Join(t.TempDir(), "forged")
	if err := os.MkdirAll(forged, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"log.key", "log.pub"} {
		b, err := os.ReadFile(filepath.Join(honest, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(forged, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		run(t, "demo", "--data", forged)
	}
	url, stop = startServe(t, forged)
	defer stop()
	cmd := newRoot()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"verify", "--server", url, "--state", state})
	err := cmd.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "SECURITY") {
		t.Fatalf("rewritten history not reported: %v\n%s", err, out.String())
	}
	if !strings.Contains(err.Error(), "earlier checkpoint:") || !strings.Contains(err.Error(), "new checkpoint:") {
		t.Fatalf("error does not show both checkpoints: %v", err)
	}
}

// TestServeReplica runs a primary and `serve --replica-of` on loopback: an
// upload to the primary becomes findable on the replica, which refuses
// uploads.
func TestServeReplica(t *testing.T) {
	data := filepath.Join(t.TempDir(), "primary")
	state := filepath.Join(t.TempDir(), "state.json")
	add := newRoot()
	add.SetArgs([]string{"user", "add", "farm", "--unrestricted", "--data", data})
	add.SetIn(strings.NewReader("farm-password\n"))
	add.SetOut(&bytes.Buffer{})
	if err := add.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	primary, stopPrimary := startServe(t, data)
	defer stopPrimary()
	replicaURL, stopReplica := startServe(t, filepath.Join(t.TempDir(), "replica"), "--replica-of", primary, "--poll", "50ms")
	defer stopReplica()

	t.Setenv("BUILDLEDGER_PASSWORD", "farm-password")
	run(t, "upload", "demo", "--job", "hello", "--server", primary, "--user", "farm", "--state", state)
	rstate := filepath.Join(t.TempDir(), "rstate.json")
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := runErr("lookup", "demo/bin/hello.hvt", "--server", replicaURL, "--state", rstate)
		if err == nil && strings.Contains(out, "1 build(s)") && strings.Contains(out, "inclusion verified") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica never served the build: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := runErr("upload", "demo", "--job", "hello", "--server", replicaURL, "--user", "farm", "--state", rstate); err == nil || !strings.Contains(err.Error(), "read replica of "+primary) {
		t.Fatalf("upload to the replica: %v", err)
	}
	// The replica serves the primary's attestation log: its trusted root,
	// and its checkpoint once the tree derived here matches it.
	for _, path := range []string{"/trusted_root.json", "/attestation-log/checkpoint"} {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			c1, b1 := httpGet(t, primary+path)
			c2, b2 := httpGet(t, replicaURL+path)
			if c1 == http.StatusOK && c2 == c1 && b1 == b2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: primary %d %q, replica %d %q", path, c1, b1, c2, b2)
			}
		}
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadOnlyCommandsCreateNothing: verify and checkpoint on a replica's
// data directory open it as the replica it is (no log key appears), and on
// a directory without a ledger they refuse and leave it as it was.
func TestReadOnlyCommandsCreateNothing(t *testing.T) {
	primaryDir := filepath.Join(t.TempDir(), "primary")
	run(t, "demo", "--data", primaryDir) // a replica takes its first checkpoint once there is an entry
	primary, stopPrimary := startServe(t, primaryDir)
	replicaDir := filepath.Join(t.TempDir(), "replica")
	replicaURL, stopReplica := startServe(t, replicaDir, "--replica-of", primary, "--poll", "50ms")
	rstate := filepath.Join(t.TempDir(), "rstate.json")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := runErr("verify", "--server", replicaURL, "--state", rstate); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replica never served a checkpoint")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopReplica()
	stopPrimary()
	for _, args := range [][]string{{"verify"}, {"checkpoint"}} {
		if _, err := runErr(append(args, "--data", replicaDir)...); err != nil {
			t.Fatalf("%v on a replica's directory: %v", args, err)
		}
		if _, err := os.Stat(filepath.Join(replicaDir, "log.key")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%v wrote a log key into the replica's directory (%v)", args, err)
		}
		empty := t.TempDir()
		if _, err := runErr(append(args, "--data", empty)...); err == nil || !strings.Contains(err.Error(), "holds no ledger") {
			t.Fatalf("%v on an empty directory: %v", args, err)
		}
		if ents, _ := os.ReadDir(empty); len(ents) != 0 {
			t.Fatalf("%v created %d entries in an empty directory", args, len(ents))
		}
	}
}

// TestServeAttestationLog: a primary keeps an attestation log named after
// the host clients reach it at, with its key made once; with no such host
// (--listen on every address, no --public-url) it serves without one
// rather than refusing to start.
func TestServeAttestationLog(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	url, stop := startServe(t, data, "--listen", ":0")
	if resp, err := http.Get(url + "/trusted_root.json"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("without a host: %v %v", resp, err)
	}
	stop()
	url, stop = startServe(t, data, "--public-url", "https://ledger.example.org/")
	resp, err := http.Get(url + "/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	stop()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"baseUrl": "https://ledger.example.org/"`) {
		t.Fatalf("trusted root: %s %s", resp.Status, body)
	}
	key := filepath.Join(data, "attestation-log-ledger.example.org.key")
	first, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	url, stop = startServe(t, data, "--public-url", "https://ledger.example.org/")
	defer stop()
	resp, err = http.Get(url + "/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if second, _ := os.ReadFile(key); string(second) != string(first) || string(again) != string(body) {
		t.Fatal("a restart changed the attestation log's key or trusted root")
	}
}

// TestServeWitnessPolicy: with --witness-policy the primary asks the
// policy's witnesses for each checkpoint and says on /checkpoint whether
// they made a quorum (here its one witness is unreachable: not met); a
// policy that does not parse stops it from starting.
func TestServeWitnessPolicy(t *testing.T) {
	data := filepath.Join(t.TempDir(), "primary")
	run(t, "demo", "--data", data)
	policy := filepath.Join(t.TempDir(), "witnesses")
	os.WriteFile(policy, []byte("witness one witness.example/one+d9c7ae05+BJQwgBAqXNxQXUkt0+Ya0bmgdXGQ5ct+QsMQ+tFOe1ZT http://127.0.0.1:1\nquorum one\n"), 0o644)
	url, stop := startServe(t, data, "--witness-policy", policy)
	defer stop()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url + "/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Witness-Quorum") == "not met" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Witness-Quorum: %q", resp.Header.Get("Witness-Quorum"))
		}
	}
	os.WriteFile(policy, []byte("witness one not-a-key http://127.0.0.1:1\nquorum one\n"), 0o644)
	other := filepath.Join(t.TempDir(), "other")
	run(t, "demo", "--data", other)
	if _, err := runErr("serve", "--data", other, "--listen", "127.0.0.1:0", "--witness-policy", policy); err == nil || !strings.Contains(err.Error(), "--witness-policy") {
		t.Fatalf("a bad policy: %v", err)
	}
}

// TestLookupRequiresWitnesses: a primary cosigned by a real witness; a
// client with a witness policy verifies lookups within a witnessed
// checkpoint, and refuses a server whose checkpoints lack the quorum its
// policy asks for.
func TestLookupRequiresWitnesses(t *testing.T) {
	data := filepath.Join(t.TempDir(), "primary")
	run(t, "demo", "--data", data)
	b, err := os.ReadFile(filepath.Join(data, "log.pub"))
	if err != nil {
		t.Fatal(err)
	}
	logKey := strings.TrimSpace(string(b))
	w := witnesstest.Start(t, "witness.example/one", logKey)
	dir := t.TempDir()
	policy := filepath.Join(dir, "witnesses")
	os.WriteFile(policy, []byte(fmt.Sprintf("witness one %s %s\nquorum one\n", w.VKey, w.URL)), 0o644)
	url, stop := startServe(t, data, "--witness-policy", policy)
	defer stop()
	args := func(extra ...string) []string {
		return append([]string{"--server", url, "--log-key", logKey, "--state", filepath.Join(dir, "state.json"), "--witness-policy", policy}, extra...)
	}
	var out string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if out, err = runErr(append([]string{"lookup", "demo/bin/hello.hvt"}, args()...)...); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lookup with witnesses: %v\n%s", err, out)
		}
	}
	if !strings.Contains(out, "1 build(s), verified against checkpoint") {
		t.Fatalf("lookup: %s", out)
	}
	if out, err := runErr(append([]string{"verify"}, args()...)...); err != nil {
		t.Fatalf("verify with witnesses: %v\n%s", err, out)
	}
	// A policy that also requires a witness this server never asked.
	other := witnesstest.Start(t, "witness.example/two", logKey)
	strict := filepath.Join(dir, "strict")
	os.WriteFile(strict, []byte(fmt.Sprintf("witness one %s %s\nwitness two %s %s\ngroup both all one two\nquorum both\n", w.VKey, w.URL, other.VKey, other.URL)), 0o644)
	_, err = runErr("lookup", "demo/bin/hello.hvt", "--server", url, "--log-key", logKey, "--state", filepath.Join(dir, "strict.json"), "--witness-policy", strict)
	if err == nil || !strings.Contains(err.Error(), "lacks the witness cosignatures") {
		t.Fatalf("a policy the server's checkpoints do not meet: %v", err)
	}
}

// TestMonitorCommand: ledger monitor verifies a served ledger to its
// checkpoint and says so; run again, it continues from there.
func TestMonitorCommand(t *testing.T) {
	data := filepath.Join(t.TempDir(), "primary")
	run(t, "demo", "--data", data)
	url, stop := startServe(t, data)
	defer stop()
	state := filepath.Join(t.TempDir(), "monitor")
	for range 2 {
		out, err := runErr("monitor", "--server", url, "--state", state, "--blobs", "all")
		if err != nil || !strings.Contains(out, ": 0 new violation(s), 0 in all") {
			t.Fatalf("monitor: %v\n%s", err, out)
		}
	}
	if _, err := runErr("monitor", "--server", url, "--state", state, "--blobs", "some"); err == nil || !strings.Contains(err.Error(), "none, sample or all") {
		t.Fatalf("--blobs some: %v", err)
	}
}
