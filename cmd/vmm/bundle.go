package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/vmm/gate"
)

func bundleCmd() *cobra.Command {
	var state, policy string
	cmd := &cobra.Command{
		Use:   "bundle IMAGE...",
		Short: "Fetch and cache the gate's evidence for images, so they can boot without network",
		Long: `Fetch from the ledger, prove and cache in the daemon's state directory the
bundle the boot gate decides from (checkpoint, build records, attestations,
key events) for each image file, then print the gate's decision on it. The
daemon boots from cached bundles when the ledger cannot be reached.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if state == "" || policy == "" {
				return errors.New("--state and --gate-policy are required: those the daemon runs with")
			}
			p, err := gate.LoadPolicy(policy)
			if err != nil {
				return fmt.Errorf("gate policy: %w", err)
			}
			g, err := gate.New(gate.Config{Policy: p, CacheDir: filepath.Join(state, "gate")})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			var failed error
			for _, img := range args {
				d, err := gate.HashFile(img)
				if err != nil {
					return err
				}
				if _, err := g.FetchBundle(cmd.Context(), d); err != nil {
					failed = errors.Join(failed, fmt.Errorf("%s (sha256 %s): %w", img, d, err))
					continue
				}
				dec, err := g.Check(cmd.Context(), d)
				if err != nil {
					return err
				}
				verdict := "refused"
				if dec.Admitted {
					verdict = "admitted"
				}
				fmt.Fprintf(w, "%s (sha256 %s): bundle cached; the gate %s it:\n  %s\n", img, d, verdict, dec.Reason)
			}
			return failed
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "the daemon's state directory (the bundles go to its gate/ cache)")
	cmd.Flags().StringVar(&policy, "gate-policy", "", "the daemon's gate policy file")
	return cmd
}
