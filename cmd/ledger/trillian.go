package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
			creds, err := g.trillianTLS.Credentials(g.trillian)
			if err != nil {
				return err
			}
			id, err := trillianlog.CreateTree(ctx, g.trillian, name, creds)
			if status.Code(err) == codes.Unavailable && !listening(g.trillian) {
				return fmt.Errorf("no Trillian log server answers at %s: start trillian_log_server with --rpc_endpoint %s, or pass its address with --trillian (%w)", g.trillian, g.trillian, err)
			}
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

// listening reports whether anything accepts a TCP connection at addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// addTrillianFlags adds the flags that secure the connection to Trillian.
func addTrillianFlags(root *cobra.Command, g *globals) {
	f := root.PersistentFlags()
	f.StringVar(&g.trillianTLS.CA, "trillian-ca", "", "PEM file of the CA that signs the Trillian server's certificate: TLS, the server verified against it")
	f.StringVar(&g.trillianTLS.Cert, "trillian-cert", "", "PEM client certificate for a Trillian server that requires mutual TLS (with --trillian-key)")
	f.StringVar(&g.trillianTLS.Key, "trillian-key", "", "PEM key of --trillian-cert")
	f.StringVar(&g.trillianTLS.ServerName, "trillian-server-name", "", "name the Trillian server's certificate must carry (default: the host of --trillian)")
	f.BoolVar(&g.trillianTLS.Insecure, "trillian-insecure", false, "allow plaintext gRPC to a Trillian server that is not on loopback (a private network you trust)")
}
