// Command ledger runs and inspects a buildledger store.
//
//	ledger demo   [--data DIR]   record the bundled sample build and prove it
//	ledger verify [--data DIR]   replay the log and check every event against the tree
//	ledger checkpoint [--data DIR]  print the latest signed checkpoint
//
// A data directory holds the badger database (db/) and the log's Ed25519
// key in signed-note form (log.key, mode 0600; log.pub). Both are created on
// first use; the checkpoint origin is the key's name (--origin on creation).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/ledger/trillianlog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ledger:", err)
		os.Exit(1)
	}
}

type globals struct {
	data   string
	origin string
	// publicURL is where clients reach the server (serve --public-url);
	// a new data directory's origin is derived from it.
	publicURL string
	// serving is set when serve runs.
	serving  bool
	log      *slog.Logger
	backend  string // "embedded" or "trillian"
	trillian string // Trillian log server address
	treeID   int64
	// replicaKey is the primary's log key when serving as a read replica.
	replicaKey string
	space      spaceFlags
	// trillianTLS secures the connection to Trillian (--trillian-ca ...).
	trillianTLS trillianlog.TLS
}

func newRoot() *cobra.Command {
	g := &globals{log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	root := &cobra.Command{
		Use:           "ledger",
		Short:         "A transparency-logged ledger of reproducible builds",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(demoCmd(g), verifyCmd(g), checkpointCmd(g), serveCmd(g), userCmd(g), accessCmd(g), tokenCmd(g), lookupCmd(), uploadCmd(), keyCmd(g), trillianCmd(g), intotoCmd(), monitorCmd())
	// The data directory's flags belong to the commands that open one;
	// client-only commands list only what they use.
	for _, c := range root.Commands() {
		switch c.Name() {
		case "lookup", "upload":
		case "trillian":
			g.trillianFlags(c)
		case "serve":
			g.dataFlags(c)
			c.Flags().StringVar(&g.publicURL, "public-url", "", "the URL clients reach this server at; a new data directory's log origin is its HOST/log (unless --origin)")
			run := c.PreRunE
			c.PreRunE = func(cmd *cobra.Command, args []string) error {
				if run != nil {
					if err := run(cmd, args); err != nil {
						return err
					}
				}
				g.serving = true
				return checkListen(cmd)
			}
		default:
			g.dataFlags(c)
		}
	}
	return root
}

// dataFlags adds the flags of a data directory and its log to cmd and its
// subcommands.
func (g *globals) dataFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&g.data, "data", "./ledger-data", "data directory (created if missing)")
	f.StringVar(&g.origin, "origin", "", "checkpoint origin for a new data directory, unique to this log, e.g. ledger.example.org/log (default: from serve's --public-url, else "+defaultOrigin+")")
	f.StringVar(&g.backend, "log", "embedded", "transparency log backend: embedded (in the data directory) or trillian")
	f.Int64Var(&g.treeID, "tree-id", 0, "Trillian PREORDERED_LOG tree id (with --log trillian; make one with 'ledger trillian create-tree')")
	addSpaceFlags(cmd, g)
	g.trillianFlags(cmd)
}

// trillianFlags adds the flags that reach a Trillian log server.
func (g *globals) trillianFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&g.trillian, "trillian", "", "Trillian log server gRPC address host:port (with --log trillian)")
	addTrillianFlags(cmd, g)
}
