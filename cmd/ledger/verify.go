package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func verifyCmd(g *globals) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "verify [--server URL]",
		Short: "Check a log: a server's new checkpoint against the last one seen, or the local store by replay",
		Long: `With --server, verify fetches the server's checkpoint, checks its signature against the
pinned log key, proves it consistent with the last checkpoint this client saw (kept in a
state file) and remembers it. A server that rewrote history is reported as a security
error showing both checkpoints.

Without --server, verify replays the local data directory (a primary's or a
replica's; nothing is created in it): every event is re-hashed against the Merkle tree
and every projection rebuilt.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.server != "" {
				return remoteVerifyCmd(cmd, &f)
			}
			return withExisting(g, func(cmd *cobra.Command, n *node) error {
				if err := n.ledger.Replay(cmd.Context()); err != nil {
					return err
				}
				size, root := n.ledger.Tree().Head()
				fmt.Fprintf(cmd.OutOrStdout(), "ok: %d events hash to root %x; projections rebuilt\n", size, root)
				return nil
			})(cmd, args)
		},
	}
	f.register(cmd)
	return cmd
}

func checkpointCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the latest signed checkpoint (C2SP tlog-checkpoint signed note)",
		Args:  cobra.NoArgs,
		RunE: withExisting(g, func(cmd *cobra.Command, n *node) error {
			_, err := cmd.OutOrStdout().Write(n.ledger.Checkpoint().Note)
			return err
		}),
	}
}
