// Package clitest runs a command's cobra tree in-process for tests,
// capturing what it prints.
package clitest

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Run executes root with args and returns its combined output and error.
func Run(root *cobra.Command, args ...string) (string, error) {
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// MustRun is Run that fails tb on an error, showing the output.
func MustRun(tb testing.TB, root *cobra.Command, args ...string) string {
	tb.Helper()
	out, err := Run(root, args...)
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", root.Name(), strings.Join(args, " "), err, out)
	}
	return out
}
