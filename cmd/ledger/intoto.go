package main

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	intoto "github.com/in-toto/in-toto-golang/in_toto"
	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/event"
	"github.com/buildledger/buildledger/rebuilder"
)

func intotoCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "intoto", Short: "in-toto layouts and links of the rebuilders' rebuilds"}
	var f clientFlags
	var job, out, build, recorder, linkDir string
	var threshold int
	var anyBuild bool
	var expires time.Duration
	var names []string
	layout := &cobra.Command{
		Use:   "layout --server URL (--job NAME | --build UUID | --any-build) --threshold K --recorder-key KEY.pub [--out FILE]",
		Short: "Write an unsigned in-toto layout: K registered rebuilders must reproduce the recorded build",
		Long: `layout writes an in-toto layout template for rebuilds of a successful build of --job (its
latest, or --build UUID), and the unsigned link of its step "recorded" into --link-dir: the
build's output files with their recorded digests, to be signed with the key of
--recorder-key. In the layout, step "rebuild" needs the links (rebuilder rebuild --link-out)
of K distinct keys among the active registered ones (or those named with --key), each with
every output file and exactly the recorded digest (MATCH ... FROM recorded).

The build, and each key's registration, are proven in the log through the verifying client;
whether a key is revoked is as the server reports it (a hidden revocation is not detected
here). Sign both files with the layout key (in-toto-sign -f FILE -k KEY), then check links
with in-toto-verify.

With --any-build it writes the standing layout a VMM gate policy takes ("intoto" in the policy
file): for any build, the links of K of the keys must have exactly the products of the step
"recorded", whose link the gate makes per image from the build record it proved in the log and
signs with the private half of --recorder-key.`,
		Args: cobra.NoArgs,
		RunE: f.explained(func(cmd *cobra.Command, _ []string) error {
			switch {
			case anyBuild && (job != "" || build != ""):
				return errors.New("--any-build writes one layout for every build: give neither --job nor --build")
			case !anyBuild && job == "" && build == "":
				return errors.New("--job or --build is required (or --any-build for the VMM gate's standing layout)")
			}
			ctx := cmd.Context()
			c, _, save, err := f.open(ctx, cmd)
			if err != nil {
				return err
			}
			var id uuid.UUID
			var b *event.BuildRecorded
			var cp *checkpoint.Checkpoint
			if anyBuild {
				if cp, err = c.Checkpoint(ctx); err != nil {
					return err
				}
			} else if build != "" {
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
			if !anyBuild {
				if b, _, cp, err = c.Build(ctx, id); err != nil {
					return err
				}
			}
			switch {
			case b != nil && job != "" && b.Job != job:
				return fmt.Errorf("build %s is of job %s, not %s", b.UUID, b.Job, job)
			case b != nil && !b.Succeeded():
				return fmt.Errorf("build %s ended %s: a failed build is not one to reproduce", b.UUID, b.Result)
			case expires <= 0:
				return fmt.Errorf("--expires %v: the layout would be expired", expires)
			case recorder == "":
				return errors.New("--recorder-key is required: the public key that signs the recorded link (e.g. the layout key)")
			}
			recPEM, err := os.ReadFile(recorder)
			if err != nil {
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
				if len(want) > 0 && !want[k.Name] {
					continue
				}
				delete(want, k.Name)
				if k.Status != event.KeyStatusActive {
					if len(names) > 0 {
						return fmt.Errorf("--key %s: the key is %s", k.Name, k.Status)
					}
					continue
				}
				// The registration, proven: the key the log holds, not the
				// one the server lists.
				ve, err := c.Event(ctx, k.AddedAt, cp)
				if err != nil {
					return err
				}
				ka, ok := ve.Event.(*event.KeyAdded)
				if !ok || ka.KeyID != k.KeyID || ka.Name != k.Name {
					return fmt.Errorf("SECURITY: log index %d does not register key %s (%s) as the server says", k.AddedAt, k.Name, k.KeyID)
				}
				lk = append(lk, rebuilder.LayoutKey{Name: k.Name, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ka.PublicKey}))})
			}
			for n := range want {
				return fmt.Errorf("--key %s: no registered key of that name", n)
			}
			if len(lk) == 0 {
				return errors.New("no active registered keys to require links of")
			}
			if err := save(cp); err != nil {
				return err
			}
			recKey := rebuilder.LayoutKey{Name: "recorder", PEM: string(recPEM)}
			if anyBuild {
				mb, _, err := rebuilder.StandingLayout(lk, threshold, recKey, time.Now().Add(expires))
				if err != nil {
					return err
				}
				if err := writeLayout(cmd, mb, out); err != nil {
					return err
				}
				if out != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "standing layout for any build: %d of %d keys, written to %s (unsigned); the VMM gate signs each build's recorded link with the private half of %s\n",
						threshold, len(lk), out, recorder)
				}
				return nil
			}
			mb, _, err := rebuilder.Layout(b, lk, threshold, recKey, time.Now().Add(expires))
			if err != nil {
				return err
			}
			rk, err := attest.LoadInTotoKey(recPEM)
			if err != nil {
				return fmt.Errorf("--recorder-key: %w", err)
			}
			recPath, err := rebuilder.WriteLinkAs(rebuilder.RecordedLink(b), linkDir, rebuilder.RecordedStep, rk)
			if err != nil {
				return err
			}
			if err := writeLayout(cmd, mb, out); err != nil || out == "" {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "layout for build %s of job %s: %d of %d keys, written to %s (unsigned)\nrecorded link written to %s (unsigned)\n",
				b.UUID, b.Job, threshold, len(lk), out, recPath)
			return nil
		}),
	}
	f.register(layout)
	layout.Flags().StringVar(&job, "job", "", "job whose latest successful build the layout describes")
	layout.Flags().StringVar(&build, "build", "", "the build (UUID) instead of the job's latest")
	layout.Flags().BoolVar(&anyBuild, "any-build", false, "write the standing layout the VMM gate takes as policy: for any build, the rebuilds' products must be exactly the recorded link's (which the gate makes from the log and signs with the recorder key)")
	layout.Flags().IntVar(&threshold, "threshold", 1, "K: how many rebuilders must agree")
	layout.Flags().StringSliceVar(&names, "key", nil, "registered key names to use (default: every active key)")
	layout.Flags().DurationVar(&expires, "expires", 365*24*time.Hour, "how long the layout is valid")
	layout.Flags().StringVar(&out, "out", "", "write the layout to this file (default: standard output)")
	layout.Flags().StringVar(&recorder, "recorder-key", "", "public key (PEM) that signs the recorded link, e.g. the layout key's")
	layout.Flags().StringVar(&linkDir, "link-dir", "links", "directory for the recorded link (beside the rebuilders' links)")
	cmd.AddCommand(layout, intotoExportCmd())
	return cmd
}

// writeLayout writes a layout to out, or to standard output for "".
func writeLayout(cmd *cobra.Command, mb *intoto.Metablock, out string) error {
	j, err := json.MarshalIndent(mb, "", "  ")
	if err != nil {
		return err
	}
	j = append(j, '\n')
	if out == "" {
		_, err = cmd.OutOrStdout().Write(j)
		return err
	}
	return os.WriteFile(out, j, 0o644)
}

func intotoExportCmd() *cobra.Command {
	var f clientFlags
	var build, dir string
	export := &cobra.Command{
		Use:   "export --server URL --build UUID [--dir DIR]",
		Short: "Write the in-toto links logged for a build, proven, under in-toto's file names",
		Long: `export writes the rebuilders' in-toto links of --build (rebuilder rebuild --link-out submits
them) into --dir as rebuild.KEYID.link, the names in-toto-verify looks for. Each is proven
through the verifying client: its event is in the log, the bytes are the ones logged, and its
signature verifies with the key the log registered. in-toto takes one link per key and step: for
a key that linked the build more than once, the latest is written and the others are named.
Which links exist is as the server lists them (a server could hide one, not forge one).`,
		Args: cobra.NoArgs,
		RunE: f.explained(func(cmd *cobra.Command, _ []string) error {
			id, err := uuid.Parse(build)
			if err != nil {
				return fmt.Errorf("--build %q is not a UUID", build)
			}
			ctx := cmd.Context()
			c, _, save, err := f.open(ctx, cmd)
			if err != nil {
				return err
			}
			_, _, cp, err := c.Build(ctx, id)
			if err != nil {
				return err
			}
			links, err := c.Links(ctx, id, cp)
			if err != nil {
				return err
			}
			if len(links) == 0 {
				return fmt.Errorf("no in-toto links are logged for build %s; a rebuilder writes and submits one with rebuilder rebuild --build %s --link-out DIR", id, id)
			}
			latest := map[string]int{}
			for i, l := range links {
				latest[l.KeyID.String()] = i
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for i, l := range links {
				if latest[l.KeyID.String()] != i {
					fmt.Fprintf(out, "not written: the older link of key %s at log index %d (its latest is at %d)\n", l.KeyName, l.Index, links[latest[l.KeyID.String()]].Index)
					continue
				}
				mb, err := attest.ParseLink(l.Data)
				if err != nil {
					return fmt.Errorf("the link at log index %d: %w", l.Index, err)
				}
				p := filepath.Join(dir, fmt.Sprintf(intoto.LinkNameFormat, attest.LinkStep, mb.Signatures[0].KeyID))
				if err := os.WriteFile(p, l.Data, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(out, "%s\tkey %s\tverdict %s\tlog index %d\n", p, l.KeyName, l.Verdict, l.Index)
			}
			return save(cp)
		}),
	}
	f.register(export)
	export.Flags().StringVar(&build, "build", "", "the build (UUID) whose links to write")
	export.Flags().StringVar(&dir, "dir", "links", "directory to write the links into")
	return export
}
