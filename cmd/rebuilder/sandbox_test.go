package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/farm/sandbox"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "none": -1, "4096": 4096, "512M": 512 << 20, "8G": 8 << 30, "8GiB": 8 << 30, "8g": 8 << 30, "1T": 1 << 40, "3k": 3 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "-1", "G", "8X", "8 G", "1.5G", "99999999999T"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestSandboxFlags(t *testing.T) {
	dir := t.TempDir()
	sf := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(sf, []byte("mkdir bin; ulimit -v > bin/as; touch /etc/cli-sandbox-probe 2>/dev/null && echo escaped > bin/etc; echo done\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove("/etc/cli-sandbox-probe") })
	base := []string{"build", "--job", "boxed", "--script", sf, "--source-date-epoch", "1700000000", "--skip-system", "--opam", "never"}

	// Limits without a sandbox are refused, before anything runs.
	if _, err := rebuilderRun(t, append(base, "--root", filepath.Join(dir, "r0"), "--memory", "1G")...); err == nil || !strings.Contains(err.Error(), "need --sandbox") {
		t.Errorf("--memory without --sandbox: %v", err)
	}

	// Without bwrap on PATH, --sandbox refuses and names the fixes;
	// --unsandboxed runs with the limits.
	t.Setenv("PATH", t.TempDir())
	_, err := rebuilderRun(t, append(base, "--root", filepath.Join(dir, "r1"), "--sandbox")...)
	if err == nil || !strings.Contains(err.Error(), "apt-get install bubblewrap") || !strings.Contains(err.Error(), "--unsandboxed") {
		t.Errorf("--sandbox without bwrap: %v", err)
	}
	out := filepath.Join(dir, "out1")
	if o, err := rebuilderRun(t, append(base, "--root", filepath.Join(dir, "r2"), "--unsandboxed", "--memory", "2G", "--out", out)...); err != nil {
		t.Fatalf("--unsandboxed: %v\n%s", err, o)
	}
	if b, err := os.ReadFile(filepath.Join(out, "bin", "as")); err != nil || strings.TrimSpace(string(b)) != "2097152" {
		t.Errorf("RLIMIT_AS in KiB: %q, %v", b, err)
	}
}

func TestBuildSandboxed(t *testing.T) {
	if err := (sandbox.Config{}).Check(context.Background()); err != nil {
		if os.Getenv("BUILDLEDGER_REQUIRE_BWRAP") == "1" {
			t.Fatalf("BUILDLEDGER_REQUIRE_BWRAP=1 and bubblewrap cannot run: %v", err)
		}
		t.Skipf("SKIPPED: bubblewrap cannot run here (set BUILDLEDGER_REQUIRE_BWRAP=1 to fail instead): %v", err)
	}
	dir := t.TempDir()
	sf := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(sf, []byte("mkdir bin; ulimit -t > bin/cpu; touch /etc/cli-sandbox-probe 2>/dev/null && echo escaped > bin/etc; echo done\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove("/etc/cli-sandbox-probe") })
	out := filepath.Join(dir, "out")
	o, err := rebuilderRun(t, "build", "--job", "boxed", "--script", sf, "--source-date-epoch", "1700000000", "--skip-system", "--opam", "never",
		"--root", filepath.Join(dir, "r"), "--out", out, "--sandbox", "--cpu-seconds", "100")
	if err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	con, err := os.ReadFile(filepath.Join(out, "console"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(con), "buildledger: sandbox: bubblewrap") || !strings.Contains(string(con), "CPU 100 s") {
		t.Errorf("console lacks the sandbox note:\n%s", con)
	}
	if b, err := os.ReadFile(filepath.Join(out, "bin", "cpu")); err != nil || strings.TrimSpace(string(b)) != "100" {
		t.Errorf("RLIMIT_CPU: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(out, "bin", "etc")); err == nil {
		t.Error("the job wrote /etc")
	}
}
