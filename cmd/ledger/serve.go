package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/auth"
)

func serveCmd(g *globals) *cobra.Command {
	var listen string
	var maxBody int64
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the ledger over HTTP (uploads, builder-web pages, reverse lookup, tiles, proofs)",
		Args:  cobra.NoArgs,
		RunE: withNode(g, func(cmd *cobra.Command, n *node) error {
			s, err := httpapi.New(httpapi.Config{Ledger: n.ledger, VKey: n.vkey, Users: auth.New(n.db), MaxBody: maxBody, Logger: g.log})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "log key: %s\nlistening on http://%s\n", n.vkey, ln.Addr())
			return serve(cmd.Context(), ln, s, g)
		}),
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:3000", "address to listen on (loopback unless told otherwise)")
	cmd.Flags().Int64Var(&maxBody, "max-body", 512<<20, "largest accepted request body in bytes")
	return cmd
}

// serve runs the HTTP server until ctx ends (SIGINT/SIGTERM), then drains
// requests for up to 10 s.
func serve(ctx context.Context, ln net.Listener, h http.Handler, g *globals) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	g.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func userCmd(g *globals) *cobra.Command {
	user := &cobra.Command{Use: "user", Short: "Manage uploader accounts (local; never logged)"}
	var unrestricted, admin bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add an uploader; the password is read from standard input",
		Args:  cobra.ExactArgs(1),
		RunE: withNode(g, func(cmd *cobra.Command, n *node) error {
			pw, err := readPassword(cmd)
			if err != nil {
				return err
			}
			users := auth.New(n.db)
			if admin {
				err = users.AddAdmin(cmd.Flags().Arg(0), pw)
			} else {
				err = users.Add(cmd.Flags().Arg(0), pw, unrestricted)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added user %s (unrestricted: %v, admin: %v)\n", cmd.Flags().Arg(0), unrestricted || admin, admin)
			return nil
		}),
	}
	add.Flags().BoolVar(&unrestricted, "unrestricted", false, "may upload to every job")
	add.Flags().BoolVar(&admin, "admin", false, "administrator: unrestricted, and may register and revoke rebuilder keys")
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an uploader and its access list",
		Args:  cobra.ExactArgs(1),
		RunE: withNode(g, func(cmd *cobra.Command, n *node) error {
			return auth.New(n.db).Remove(cmd.Flags().Arg(0))
		}),
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List uploaders and the jobs they may upload to",
		Args:  cobra.NoArgs,
		RunE: withNode(g, func(cmd *cobra.Command, n *node) error {
			users, err := auth.New(n.db).List()
			if err != nil {
				return err
			}
			for name, jobs := range users {
				u, err := auth.New(n.db).Get(name)
				if err != nil {
					return err
				}
				scope := strings.Join(jobs, ", ")
				if u.Unrestricted {
					scope = "all jobs"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", name, scope)
			}
			return nil
		}),
	}
	user.AddCommand(add, remove, list)
	return user
}

func accessCmd(g *globals) *cobra.Command {
	access := &cobra.Command{Use: "access", Short: "Manage which jobs restricted uploaders may upload to"}
	access.AddCommand(&cobra.Command{
		Use:   "add USER JOB",
		Short: "Let USER upload to JOB (which may not exist yet)",
		Args:  cobra.ExactArgs(2),
		RunE: withNode(g, func(cmd *cobra.Command, n *node) error {
			return auth.New(n.db).Grant(cmd.Flags().Arg(0), cmd.Flags().Arg(1))
		}),
	}, &cobra.Command{
		Use:   "remove USER JOB",
		Short: "Withdraw USER's access to JOB",
		Args:  cobra.ExactArgs(2),
		RunE: withNode(g, func(cmd *cobra.Command, n *node) error {
			return auth.New(n.db).Revoke(cmd.Flags().Arg(0), cmd.Flags().Arg(1))
		}),
	})
	return access
}

// readPassword reads one line from stdin, without echo on a terminal.
func readPassword(cmd *cobra.Command) (string, error) {
	if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(cmd.ErrOrStderr(), "password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		return string(b), err
	}
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("no password on standard input: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
