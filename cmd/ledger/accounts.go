package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/internal/adminsock"
)

// Accounts are managed through the running server when there is one:
// `ledger serve` answers on DATA/admin.sock (mode 0600; the server's uid
// and root only, checked with SO_PEERCRED), and `ledger user` and `ledger
// access` send their request there. When nobody answers on it (no server,
// or a socket left behind by one that died) they open the store and make
// the change themselves. Either way the change goes through
// adminsock.Admin, which writes it to DATA/accounts.log before making it
// (TestAccountsWhileServing, TestAccountsStaleSocket).
const (
	adminSocket = "admin.sock"
	auditFile   = "accounts.log"
)

// startAdmin starts the administration socket of a server whose accounts
// are users, and returns the function that stops it. A data directory
// whose path is too long for a socket gets no socket, with a warning:
// its accounts are then managed with the server stopped.
func startAdmin(g *globals, users *auth.Store) (func(), error) {
	path := filepath.Join(g.data, adminSocket)
	ln, err := adminsock.Listen(path)
	if errors.Is(err, adminsock.ErrPathTooLong) {
		g.log.Warn("no administration socket: manage accounts with the server stopped, or use a data directory with a shorter path", "err", err)
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("administration socket: %w", err)
	}
	audit, err := adminsock.OpenAudit(filepath.Join(g.data, auditFile))
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("account audit: %w", err)
	}
	s := &adminsock.Server{Admin: &adminsock.Admin{Accounts: users, Audit: audit}, OwnerUID: os.Geteuid(), Log: g.log}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	return func() {
		ln.Close()
		if err := <-done; err != nil {
			g.log.Error("administration socket", "err", err)
		}
		audit.Close()
	}, nil
}

// account sends req to the running server, or, when none answers, applies
// it to the data directory itself.
func account(cmd *cobra.Command, g *globals, req adminsock.Request) (adminsock.Response, error) {
	r, err := adminsock.Do(cmd.Context(), filepath.Join(g.data, adminSocket), req)
	if !errors.Is(err, adminsock.ErrNoServer) {
		if r.Warning != "" {
			fmt.Fprintln(cmd.ErrOrStderr(), "warning:", r.Warning)
		}
		return r, err
	}
	// With no server, the change is made in the data directory's store
	// itself. Only the store is opened, not the ledger: an account added
	// before the first `serve` must not give the directory its log key
	// and origin (serve's --public-url decides those).
	if _, err := os.Stat(g.data); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(cmd.ErrOrStderr(), "creating the data directory %s (its log key is made by the first 'ledger serve')\n", g.data)
	}
	if err := os.MkdirAll(g.data, 0o700); err != nil {
		return r, err
	}
	db, _, err := openDB(g)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return r, fmt.Errorf("%w\na server holds %s but answers on no administration socket (%s): stop it to manage accounts", err, g.data, filepath.Join(g.data, adminSocket))
		}
		return r, err
	}
	defer db.Close()
	a := &adminsock.Admin{Accounts: auth.New(db)}
	if req.Op != adminsock.OpUserList && req.Op != adminsock.OpTokenList { // a listing changes nothing and is not audited
		if a.Audit, err = adminsock.OpenAudit(filepath.Join(g.data, auditFile)); err != nil {
			return r, fmt.Errorf("account audit: %w", err)
		}
		defer a.Audit.Close()
	}
	r = a.Do(adminsock.Peer{UID: os.Getuid(), PID: os.Getpid(), Via: "direct"}, req)
	if r.Warning != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "warning:", r.Warning)
	}
	return r, r.Err()
}

func userCmd(g *globals) *cobra.Command {
	user := &cobra.Command{
		Use:   "user",
		Short: "Manage uploader accounts (local; never logged)",
		Long: `user manages the uploader accounts of the ledger in --data. While "ledger serve"
runs on that directory, the change is sent to it over DATA/admin.sock (only the
server's uid and root may use it) and takes effect at once; otherwise it is made
on the store directly. Every change is recorded in DATA/accounts.log (who, what,
when; never a password).`,
	}
	var unrestricted, admin bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add an uploader; the password is read from standard input",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := auth.CheckName(args[0]); err != nil {
				return err
			}
			pw, err := readPassword(cmd)
			if err != nil {
				return err
			}
			if _, err := account(cmd, g, adminsock.Request{Op: adminsock.OpUserAdd, User: args[0], Password: pw, Unrestricted: unrestricted, Admin: admin}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added user %s (unrestricted: %v, admin: %v)\n", args[0], unrestricted || admin, admin)
			return nil
		},
	}
	add.Flags().BoolVar(&unrestricted, "unrestricted", false, "may upload to every job")
	add.Flags().BoolVar(&admin, "admin", false, "administrator: unrestricted, and may register and revoke rebuilder keys")
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an uploader and its access list",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := account(cmd, g, adminsock.Request{Op: adminsock.OpUserRemove, User: args[0]})
			return err
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List uploaders and the jobs they may upload to",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := account(cmd, g, adminsock.Request{Op: adminsock.OpUserList})
			if err != nil {
				return err
			}
			printAccounts(cmd.OutOrStdout(), r.Accounts)
			return nil
		},
	}
	user.AddCommand(add, remove, list)
	return user
}

// printAccounts writes one line per account: name, scope, and "admin" for
// administrators.
func printAccounts(w io.Writer, accts []auth.Account) {
	for _, a := range accts {
		scope := strings.Join(a.Jobs, ", ")
		if a.Unrestricted {
			scope = "all jobs"
		}
		if a.Admin {
			scope += "\tadmin"
		}
		fmt.Fprintf(w, "%s\t%s\n", a.Name, scope)
	}
}

func tokenCmd(g *globals) *cobra.Command {
	token := &cobra.Command{
		Use:   "token",
		Short: "Manage API tokens: secrets for automation that authenticate without a password",
		Long: `token manages API tokens (through the running server, if any, as "ledger user"
does). A token acts for one account: it may upload where the account may, limited
to --job if given, and register rebuilder keys only if made with --admin for an
administrator. Give it as $BUILDLEDGER_TOKEN to "ledger upload", "ledger key" and
"farm server --upload", as "Authorization: Bearer TOKEN", or as the password of
HTTP Basic credentials with its user's name (builder's upload). Checking one costs
a hash lookup, not an scrypt. Only its SHA-256 is kept: the secret is shown once.`,
	}
	var jobs []string
	var name string
	var admin bool
	add := &cobra.Command{
		Use:   "add USER",
		Short: "Make a token for USER and print its secret (shown only this once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := account(cmd, g, adminsock.Request{Op: adminsock.OpTokenAdd, User: args[0], Name: name, Jobs: jobs, Admin: admin})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), r.Secret)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s for %s: keep the secret above; it is not stored and cannot be shown again\n", r.Tokens[0].ID, args[0])
			return nil
		},
	}
	add.Flags().StringSliceVar(&jobs, "job", nil, "the only job(s) the token may upload to (repeat, or comma-separated); default: the account's")
	add.Flags().StringVar(&name, "name", "", "what the token is for (shown by list)")
	add.Flags().BoolVar(&admin, "admin", false, "the token may also register and revoke rebuilder keys (the user must be an administrator)")
	list := &cobra.Command{
		Use:   "list [USER]",
		Short: "List tokens (IDs, users, jobs; never secrets)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := adminsock.Request{Op: adminsock.OpTokenList}
			if len(args) == 1 {
				req.User = args[0]
			}
			r, err := account(cmd, g, req)
			if err != nil {
				return err
			}
			for _, t := range r.Tokens {
				scope := "all the account's jobs"
				if len(t.Jobs) > 0 {
					scope = strings.Join(t.Jobs, ", ")
				}
				if t.Admin {
					scope += "\tadmin"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\t%s\t%s\n", t.ID, t.User, t.Created.Format(time.RFC3339), t.Name, scope)
			}
			return nil
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token (it fails from the next request on)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := account(cmd, g, adminsock.Request{Op: adminsock.OpTokenRevoke, Token: args[0]})
			return err
		},
	}
	token.AddCommand(add, list, revoke)
	return token
}

func accessCmd(g *globals) *cobra.Command {
	access := &cobra.Command{Use: "access", Short: "Manage which jobs restricted uploaders may upload to (through the running server, if any)"}
	access.AddCommand(&cobra.Command{
		Use:   "add USER JOB",
		Short: "Let USER upload to JOB (which may not exist yet)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := account(cmd, g, adminsock.Request{Op: adminsock.OpAccessAdd, User: args[0], Job: args[1]})
			return err
		},
	}, &cobra.Command{
		Use:   "remove USER JOB",
		Short: "Withdraw USER's access to JOB",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := account(cmd, g, adminsock.Request{Op: adminsock.OpAccessRemove, User: args[0], Job: args[1]})
			return err
		},
	})
	return access
}
