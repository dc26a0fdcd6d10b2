package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/ledger/event"
	"github.com/buildledger/buildledger/rebuilder"
)

func intotoCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "intoto", Short: "in-toto layouts for the rebuilders' links"}
	var f clientFlags
	var job, out, build string
	var threshold int
	var expires time.Duration
	var names []string
	layout := &cobra.Command{
		Use:   "layout --server URL --job NAME --threshold K [--out FILE]",
		Short: "Write an unsigned in-toto layout: K of the registered rebuilder keys must agree on a rebuild",
		Long: `layout writes an in-toto layout template for rebuilds of a build of --job (its latest,
or --build UUID): one step "rebuild" whose links (rebuilder rebuild --link-out) K of the
active registered keys (or those named with --key) must sign, with the same products, limited
to the build's output files. The build and the keys are read through the verifying client
(proven in the log). Sign it with the layout key, e.g. in-toto-sign -f root.layout -k KEY,
then check links with in-toto-verify.`,
		Args: cobra.NoArgs,
		RunE: f.explained(func(cmd *cobra.Command, _ []string) error {
			if job == "" && build == "" {
				return errors.New("--job or --build is required")
			}
			ctx := cmd.Context()
			c, _, save, err := f.open(ctx, cmd)
			if err != nil {
				return err
			}
			var id uuid.UUID
			if build != "" {
				if id, err = uuid.Parse(build); err != nil {
					return fmt.Errorf("--build: %w", err)
				}
			} else {
				builds, err := c.JobBuilds(ctx, job)
				if err != nil {
					return err
				}
				for _, b := range builds {
					if b.Succeeded {
						id = b.UUID
						break
					}
				}
				if id == uuid.Nil {
					return fmt.Errorf("job %s has no successful build", job)
				}
			}
			b, _, cp, err := c.Build(ctx, id)
			if err != nil {
				return err
			}
			if err := save(cp); err != nil {
				return err
			}
			keys, err := c.Keys(ctx)
			if err != nil {
				return err
			}
			want := map[string]bool{}
			for _, n := range names {
				want[n] = true
			}
			var lk []rebuilder.LayoutKey
			for _, k := range keys {
				if k.Status == event.KeyStatusActive && (len(want) == 0 || want[k.Name]) {
					lk = append(lk, rebuilder.LayoutKey{Name: k.Name, PEM: k.PublicKey})
					delete(want, k.Name)
				}
			}
			for n := range want {
				return fmt.Errorf("--key %s: no active registered key of that name", n)
			}
			mb, _, err := rebuilder.Layout(b, lk, threshold, time.Now().Add(expires))
			if err != nil {
				return err
			}
			j, err := json.MarshalIndent(mb, "", "  ")
			if err != nil {
				return err
			}
			j = append(j, '\n')
			if out == "" {
				_, err = cmd.OutOrStdout().Write(j)
				return err
			}
			if err := os.WriteFile(out, j, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "layout for build %s of job %s: %d of %d keys, written to %s (unsigned)\n", b.UUID, b.Job, threshold, len(lk), out)
			return nil
		}),
	}
	f.register(layout)
	layout.Flags().StringVar(&job, "job", "", "job whose latest successful build the layout describes")
	layout.Flags().StringVar(&build, "build", "", "the build (UUID) instead of the job's latest")
	layout.Flags().IntVar(&threshold, "threshold", 1, "K: how many rebuilders must agree")
	layout.Flags().StringSliceVar(&names, "key", nil, "registered key names to use (default: every active key)")
	layout.Flags().DurationVar(&expires, "expires", 365*24*time.Hour, "how long the layout is valid")
	layout.Flags().StringVar(&out, "out", "", "write the layout to this file (default: standard output)")
	cmd.AddCommand(layout)
	return cmd
}
