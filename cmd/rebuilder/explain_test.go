package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/httpapi/httpapitest"
)

// nowhere is a server URL nothing answers at: a command that reports a
// missing flag must do so without contacting it.
const nowhere = "http://127.0.0.1:1"

// TestBuildFailedJobExitsNonZero: a job that fails makes `rebuilder build`
// fail, after recording the failed build as builder does.
func TestBuildFailedJobExitsNonZero(t *testing.T) {
	s := httpapitest.New(t)
	t.Setenv("BUILDLEDGER_LOG_KEY", s.L.VKey)
	t.Setenv("BUILDLEDGER_PASSWORD", httpapitest.Farm.Password)
	dir := t.TempDir()
	sf := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(sf, []byte("echo going to fail; exit 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"build", "--job", "broken", "--script", sf, "--source-date-epoch", "1700000000", "--skip-system", "--opam", "never"}

	out, err := rebuilderRun(t, append(base, "--root", filepath.Join(dir, "r1"))...)
	if err == nil || !strings.Contains(err.Error(), "job broken failed (exited 3)") || !strings.Contains(err.Error(), "--out DIR") {
		t.Fatalf("failed job without a server: %v\n%s", err, out)
	}
	out, err = rebuilderRun(t, append(base, "--root", filepath.Join(dir, "r2"), "--server", s.URL, "--user", "farm")...)
	if err == nil || !strings.Contains(err.Error(), "job broken failed (exited 3); recorded as a failed build: "+s.URL+"/job/broken/build/") {
		t.Fatalf("failed job with a server: %v\n%s", err, out)
	}
	if !strings.Contains(out, "uploaded: log index") {
		t.Fatalf("the failed build was not recorded:\n%s", out)
	}
}

// TestRebuildReportsMissingFlagsFirst: what is missing is said before any
// server is contacted, the signing key first.
func TestRebuildReportsMissingFlagsFirst(t *testing.T) {
	id := uuid.NewString()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"rebuild"}, "missing:\n  --key KEY.pem"},
		{[]string{"rebuild", "--server", nowhere, "--key", "k.pem"}, "missing --build UUID"},
		{[]string{"rebuild", "--server", nowhere, "--build", id}, "missing --key KEY.pem"},
		{[]string{"rebuild", "--build", id, "--no-attest"}, "missing --server URL"},
		{[]string{"rebuild", "--server", "127.0.0.1:3000", "--build", id, "--no-attest"}, "use http://127.0.0.1:3000"},
		{[]string{"follow", "--server", nowhere}, "missing:\n  --key KEY.pem"},
		{[]string{"follow", "--server", nowhere, "--key", "k.pem"}, "missing --state FILE"},
	} {
		out, err := rebuilderRun(t, c.args...)
		if err == nil || !strings.HasPrefix(strings.TrimPrefix(err.Error(), "--server: server URL \"127.0.0.1:3000\" has no scheme; "), c.want) {
			t.Errorf("%v: %v\n%s", c.args, err, out)
		}
		if err != nil && strings.Contains(err.Error(), "connection refused") {
			t.Errorf("%v contacted the server: %v", c.args, err)
		}
	}
}

// TestRebuilderPinsLogKey: without --log-key the rebuilder pins the key it
// is first sent in a state file, as ledger does; a server that comes back
// with another key is explained, and an unknown build is named.
func TestRebuilderPinsLogKey(t *testing.T) {
	t.Setenv("BUILDLEDGER_LOG_KEY", "")
	first := httpapitest.New(t)
	pins := filepath.Join(t.TempDir(), "pins.json")
	id := uuid.NewString()
	out, err := rebuilderRun(t, "rebuild", "--server", first.URL, "--build", id, "--no-attest", "--pins", pins)
	if err == nil || !strings.Contains(err.Error(), "no build "+id+" on "+first.URL) {
		t.Fatalf("unknown build: %v\n%s", err, out)
	}
	if strings.Contains(err.Error(), "file does not exist") || !strings.Contains(out, "pinned log key "+first.L.VKey+" in "+pins) {
		t.Fatalf("unknown build: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(pins); err != nil || !strings.Contains(string(b), first.L.VKey) {
		t.Fatalf("pins file: %v\n%s", err, b)
	}

	reset := httpapitest.New(t) // a server reset with a new key, same pins file
	out, err = rebuilderRun(t, "rebuild", "--server", reset.URL, "--build", id, "--no-attest", "--pins", pins)
	if err == nil {
		t.Fatalf("a server with another key was trusted:\n%s", out)
	}
	for _, want := range []string{"log key changed", "pinned: " + first.L.VKey, "served: " + reset.L.VKey, "rm " + pins, "--log-key '" + reset.L.VKey + "'"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(out, "pinned log key") {
		t.Errorf("the new key was pinned:\n%s", out)
	}
	// Following the advice: remove the pin, pass the new key once; the
	// next run needs no flag.
	os.Remove(pins)
	if out, err := rebuilderRun(t, "rebuild", "--server", reset.URL, "--build", id, "--no-attest", "--pins", pins, "--log-key", reset.L.VKey); err == nil || !strings.Contains(err.Error(), "no build "+id) {
		t.Fatalf("with the new key: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(pins); err != nil || !strings.Contains(string(b), reset.L.VKey) {
		t.Fatalf("--log-key given once was not pinned: %v %s", err, b)
	}
	if out, err := rebuilderRun(t, "rebuild", "--server", reset.URL, "--build", id, "--no-attest", "--pins", pins); err == nil || !strings.Contains(err.Error(), "no build "+id) || strings.Contains(err.Error(), "log key changed") {
		t.Fatalf("after pinning with --log-key once: %v\n%s", err, out)
	}
}
