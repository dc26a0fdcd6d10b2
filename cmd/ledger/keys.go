package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
)

// keyCmd manages rebuilder keys. With --server it asks a running server
// (as an administrator account); without, it appends to the local data
// directory, which the server must not hold open. Either way the change is
// a logged key_added or key_revoked event.
func keyCmd(g *globals) *cobra.Command {
	key := &cobra.Command{Use: "key", Short: "Register, revoke and list rebuilder keys (logged events)"}
	var f clientFlags
	var user, reason string
	remote := func(cmd *cobra.Command) (*httpapi.Client, *httpapi.Credentials, error) {
		if f.server == "" {
			return nil, nil, nil
		}
		c, _, _, err := f.open(cmd.Context(), cmd)
		if err != nil {
			return nil, nil, err
		}
		if tok := os.Getenv("BUILDLEDGER_TOKEN"); tok != "" {
			return c, &httpapi.Credentials{User: user, Password: tok}, nil
		}
		if user == "" {
			return c, nil, nil
		}
		pw := os.Getenv("BUILDLEDGER_PASSWORD")
		if pw == "" {
			if pw, err = readPassword(cmd); err != nil {
				return nil, nil, err
			}
		}
		return c, &httpapi.Credentials{User: user, Password: pw}, nil
	}
	flags := func(cmd *cobra.Command, admin bool) {
		f.register(cmd)
		cmd.RunE = f.explained(cmd.RunE)
		if admin {
			cmd.Flags().StringVar(&user, "user", "", "administrator account (with --server); password from $BUILDLEDGER_PASSWORD or standard input, or an administrator's API token in $BUILDLEDGER_TOKEN (then --user may be left out)")
		}
	}
	report := func(cmd *cobra.Command, what string, k httpapi.KeyInfo, index uint64) {
		fmt.Fprintf(cmd.OutOrStdout(), "%s key %q (%s, id %s) at log index %d\n", what, k.Name, k.Algorithm, k.KeyID, index)
	}
	add := &cobra.Command{
		Use:   "add NAME PUBKEY.pem",
		Short: "Register a rebuilder's public key (PEM, as cosign writes it) under NAME",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pemBytes, err := os.ReadFile(args[1])
			if err != nil {
				return err
			}
			v, err := attest.LoadVerifier(pemBytes)
			if err != nil {
				return fmt.Errorf("%s: %w", args[1], err)
			}
			c, cred, err := remote(cmd)
			if err != nil {
				return err
			}
			if c != nil {
				if cred == nil {
					return errors.New("--user (an administrator account) is required with --server")
				}
				rc, err := c.AddKey(cmd.Context(), args[0], string(pemBytes), *cred)
				if err != nil {
					return err
				}
				report(cmd, "registered", rc.Key, rc.LogIndex)
				return nil
			}
			return withLocal(g, func(n *node) error {
				r, err := n.ledger.Append(cmd.Context(), &ledger.KeyAdded{Name: args[0], PublicKey: v.PublicKeyDER()})
				if err != nil {
					return err
				}
				st, err := n.ledger.KeyByName(args[0])
				if err != nil {
					return err
				}
				alg, _ := ledger.KeyAlgorithm(v.PublicKeyDER())
				report(cmd, "registered", httpapi.KeyInfo{Name: st.Name, KeyID: st.KeyID, Algorithm: alg}, r.Index)
				return nil
			})
		},
	}
	flags(add, true)
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke the key registered under NAME: attestations logged after this no longer count",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := remote(cmd)
			if err != nil {
				return err
			}
			if c != nil {
				if cred == nil {
					return errors.New("--user (an administrator account) is required with --server")
				}
				rc, err := c.RevokeKey(cmd.Context(), args[0], reason, *cred)
				if err != nil {
					return err
				}
				report(cmd, "revoked", rc.Key, rc.LogIndex)
				return nil
			}
			return withLocal(g, func(n *node) error {
				st, err := n.ledger.KeyByName(args[0])
				if err != nil {
					return err
				}
				r, err := n.ledger.Append(cmd.Context(), &ledger.KeyRevoked{KeyID: st.KeyID, Reason: reason})
				if err != nil {
					return err
				}
				report(cmd, "revoked", httpapi.KeyInfo{Name: st.Name, KeyID: st.KeyID}, r.Index)
				return nil
			})
		},
	}
	flags(revoke, true)
	revoke.Flags().StringVar(&reason, "reason", "", "why the key is revoked (logged)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List every registered key with its standing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := remote(cmd)
			if err != nil {
				return err
			}
			var keys []httpapi.KeyInfo
			if c != nil {
				if keys, err = c.Keys(cmd.Context()); err != nil {
					return err
				}
			} else if err := withLocal(g, func(n *node) error {
				reg, err := n.ledger.Keys()
				for _, k := range reg {
					keys = append(keys, httpapi.KeyInfo{Name: k.Name, KeyID: k.KeyID, Algorithm: k.Algorithm, Status: k.Status, AddedAt: k.AddedAt})
				}
				return err
			}); err != nil {
				return err
			}
			for _, k := range keys {
				fmt.Fprintf(cmd.OutOrStdout(), "%-20s %-8s %-11s %s (added at %d)\n", k.Name, k.Status, k.Algorithm, k.KeyID, k.AddedAt)
			}
			if len(keys) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no keys registered")
			}
			return nil
		},
	}
	flags(list, false)
	key.AddCommand(add, revoke, list)
	return key
}

// withLocal opens the data directory for one change.
func withLocal(g *globals, fn func(n *node) error) error {
	n, err := openData(g)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return fmt.Errorf("%w\nthe server holds %s: stop it, or pass --server URL --user ADMIN", err, g.data)
		}
		return err
	}
	defer n.Close()
	return fn(n)
}
