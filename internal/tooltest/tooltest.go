// Package tooltest finds the outside programs interoperability tests run
// (cosign v2 and v3, in-toto-verify, ...): on PATH, then in the tools
// cache .ci/run fills ($BUILDLEDGER_TOOLS, else ~/.cache/buildledger-tools).
// A missing program fails the test when its requirement variable is set
// (as .ci/run sets them) and skips it otherwise, saying so and how to
// install it: such tests never pass silently without the program.
package tooltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Find returns the path of the program name, or fails the test (require
// set to a non-empty value in the environment) or skips it (install says
// how to get the program).
func Find(tb testing.TB, name, require, install string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	home, _ := os.UserHomeDir()
	for _, dir := range []string{os.Getenv("BUILDLEDGER_TOOLS"), filepath.Join(home, ".cache", "buildledger-tools")} {
		if dir == "" {
			continue
		}
		if p := filepath.Join(dir, name); isExec(p) {
			return p
		}
	}
	if os.Getenv(require) != "" {
		tb.Fatalf("%s is required (%s is set) but not on PATH or in the tools cache; .ci/run installs it", name, require)
	}
	tb.Skipf("SKIPPED: %s not found, so the interoperability check does not run; %s", name, install)
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Cosign is cosign v2 ($COSIGN if set).
func Cosign(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("COSIGN"); p != "" {
		return p
	}
	return Find(tb, "cosign", "BUILDLEDGER_REQUIRE_COSIGN", "install with: go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5")
}

// CosignV3 is cosign v3, installed as cosign-v3 ($COSIGN_V3 if set).
func CosignV3(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("COSIGN_V3"); p != "" {
		return p
	}
	return Find(tb, "cosign-v3", "BUILDLEDGER_REQUIRE_COSIGN",
		"install with: GOTOOLCHAIN=go1.27.3 go install github.com/sigstore/cosign/v3/cmd/cosign@v3.1.4, as cosign-v3")
}

// InTotoVerify is Debian's in-toto-verify (Python in-toto, the reference
// implementation).
func InTotoVerify(tb testing.TB) string {
	tb.Helper()
	return Find(tb, "in-toto-verify", "BUILDLEDGER_REQUIRE_INTOTO", "install Debian's in-toto package")
}

// InTotoGolang is in-toto-golang's command (in-toto-golang verify).
func InTotoGolang(tb testing.TB) string {
	tb.Helper()
	return Find(tb, "in-toto-golang", "BUILDLEDGER_REQUIRE_INTOTO", "install with: go install github.com/in-toto/in-toto-golang@v0.11.0")
}
