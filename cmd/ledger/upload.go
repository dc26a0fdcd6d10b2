package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger/builder"
)

func uploadCmd() *cobra.Command {
	var f clientFlags
	var job, platform, user string
	cmd := &cobra.Command{
		Use:   "upload DIR --job NAME --server URL [--user NAME]",
		Short: "Upload an orb output directory as a build (builder's exec format), and verify the receipt",
		Long: `upload sends every file of DIR (orb's --out directory: build-environment,
system-packages, opam-switch, *.build-hashes, bin/...) as one build of --job to the
server's /upload, the way builder-server does. DIR/script and DIR/console, if present,
become the build's script and console instead of artifacts. The password is read from
$BUILDLEDGER_PASSWORD or standard input; an API token in $BUILDLEDGER_TOKEN (ledger
token add) replaces both. The receipt's checkpoint and inclusion proof
are verified against the pinned log key.`,
		Args: cobra.ExactArgs(1),
		RunE: f.explained(func(cmd *cobra.Command, args []string) error {
			if job == "" {
				return errors.New("--job is required")
			}
			if user == "" && os.Getenv("BUILDLEDGER_TOKEN") == "" {
				return errors.New("upload needs --user NAME (password from $BUILDLEDGER_PASSWORD or standard input) or an API token in $BUILDLEDGER_TOKEN (ledger token add)")
			}
			ex, err := execFromDir(args[0], job, platform)
			if err != nil {
				return err
			}
			der, err := ex.Marshal()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, _, save, err := f.open(ctx, cmd)
			if err != nil {
				return err
			}
			// A server whose checkpoints do not verify gets no build.
			if _, err := c.Checkpoint(ctx); err != nil {
				return err
			}
			pw := os.Getenv("BUILDLEDGER_TOKEN")
			if pw == "" {
				pw = os.Getenv("BUILDLEDGER_PASSWORD")
			}
			if pw == "" {
				if pw, err = readPassword(cmd); err != nil {
					return err
				}
			}
			rc, b, err := c.Upload(ctx, der, ex.UUID, httpapi.Credentials{User: user, Password: pw})
			if err != nil {
				return err
			}
			cp, err := c.Checkpoint(ctx)
			if err != nil {
				return err
			}
			if err := save(cp); err != nil {
				return err
			}
			main := "none"
			if b.MainBinary != nil {
				main = *b.MainBinary
			}
			fmt.Fprintf(cmd.OutOrStdout(), "recorded build %s of job %s at log index %d (main binary: %s)\ninclusion verified against checkpoint %d\n%s%s\n",
				b.UUID, b.Job, rc.LogIndex, main, cp.Size, strings.TrimSuffix(f.server, "/"), rc.URL)
			return nil
		}),
	}
	f.register(cmd)
	cmd.Flags().StringVar(&job, "job", "", "job name")
	cmd.Flags().StringVar(&platform, "platform", "", "platform, e.g. debian-12 (default: from build-environment's OS_DISTRIBUTION-OS_VERSION)")
	cmd.Flags().StringVar(&user, "user", "", "uploader account (not needed with an API token in $BUILDLEDGER_TOKEN)")
	return cmd
}

// execFromDir reads an orb output directory into a builder exec record.
func execFromDir(dir, job, platform string) (*builder.Exec, error) {
	now := time.Now().UTC()
	ex := &builder.Exec{Job: builder.Job{Name: job, Platform: platform}, UUID: uuid.New(), Started: now, Finished: now,
		Result: builder.Result{Kind: builder.ResultExited}}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil // directories are walked; symlinks and devices are not uploaded
		}
		data, err := fs.ReadFile(root.FS(), p)
		if err != nil {
			return err
		}
		switch p {
		case "script":
			ex.Job.Script = string(data)
		case "console":
			for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
				ex.Console = append(ex.Console, builder.Line{Data: line})
			}
		default:
			ex.Output = append(ex.Output, builder.File{Path: filepath.ToSlash(p), Data: data})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(ex.Output) == 0 {
		return nil, fmt.Errorf("%s holds no files to upload", dir)
	}
	if ex.Job.Platform == "" {
		for _, o := range ex.Output {
			if o.Path == "build-environment" {
				vars := map[string]string{}
				for _, l := range strings.Split(string(o.Data), "\n") {
					if k, v, ok := strings.Cut(l, "="); ok {
						vars[k] = v
					}
				}
				if vars["OS_DISTRIBUTION"] != "" && vars["OS_VERSION"] != "" {
					ex.Job.Platform = vars["OS_DISTRIBUTION"] + "-" + vars["OS_VERSION"]
				}
			}
		}
	}
	if ex.Job.Platform == "" {
		return nil, errors.New("no --platform given and none derivable from build-environment (OS_DISTRIBUTION, OS_VERSION)")
	}
	return ex, nil
}
