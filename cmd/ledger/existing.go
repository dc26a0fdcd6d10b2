package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// openExisting opens a data directory that already holds a ledger — a
// primary (log.key) or a replica (primary.pub, opened as a replica of the
// log it pins) — and creates nothing: commands that only read (verify,
// checkpoint) must not leave a new log key in a replica's directory or a
// new ledger where none was.
func openExisting(g *globals) (*node, error) {
	b, err := os.ReadFile(filepath.Join(g.data, "primary.pub"))
	switch {
	case err == nil:
		rg := *g
		rg.replicaKey = strings.TrimSpace(string(b))
		return openReplica(&rg)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(g.data, "log.key")); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s holds no ledger (neither log.key nor primary.pub); pass --data DIR of a ledger", g.data)
	} else if err != nil {
		return nil, err
	}
	return openData(g)
}

// withExisting is withNode for commands that only read: see openExisting.
func withExisting(g *globals, fn func(cmd *cobra.Command, n *node) error) func(*cobra.Command, []string) error {
	return withOpened(openExisting, g, fn)
}
