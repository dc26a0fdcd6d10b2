package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/buildledger/buildledger/ledger/trillianlog"
)

// trillianCmd prepares a Trillian cluster for a ledger.
func trillianCmd(g *globals) *cobra.Command {
	t := &cobra.Command{Use: "trillian", Short: "Prepare a Trillian log for a ledger (--log trillian)"}
	var name string
	create := &cobra.Command{
		Use:   "create-tree --trillian HOST:PORT",
		Short: "Create and initialise a PREORDERED_LOG tree and print its id (for --tree-id)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.trillian == "" {
				return errors.New("--trillian HOST:PORT (the log server's gRPC address) is required")
			}
			klog.LogToStderr(false) // the Trillian client's progress lines
			klog.SetOutput(io.Discard)
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			id, err := trillianlog.CreateTree(ctx, g.trillian, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "buildledger", "display name of the tree (at most 20 characters)")
	t.AddCommand(create)
	return t
}
