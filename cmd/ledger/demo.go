package main

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
)

//go:embed demo
var demoFiles embed.FS

func demoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Record the bundled sample orb build and prove its inclusion",
		Long: `demo records the sample orb output bundled with this command (build-environment,
system-packages, opam-switch, script, console, bin/hello.hvt) as a new build of job
"hello-demo", then verifies the receipt the way an auditor would: the checkpoint's
signature against the log key, the event's inclusion proof, and the reverse lookup
of the main binary's SHA-256. Each run adds one build; identical files are stored once.`,
		Args: cobra.NoArgs,
		RunE: withNode(g, func(cmd *cobra.Command, n *node) error { return runDemo(cmd.Context(), cmd, n) }),
	}
}

func runDemo(ctx context.Context, cmd *cobra.Command, n *node) error {
	out := cmd.OutOrStdout()
	sub, err := fs.Sub(demoFiles, "demo")
	if err != nil {
		return err
	}
	if _, err := n.ledger.Append(ctx, &ledger.JobDefined{Job: "hello-demo", Synopsis: "bundled sample build", Section: "Unikernels"}); err != nil {
		return err
	}
	start := time.Now().UTC()
	b, err := recordOrbDir(ctx, n.store, sub, "hello-demo", "debian-12")
	if err != nil {
		return err
	}
	b.Started, b.Finished = start, time.Now().UTC()
	r, err := n.ledger.Append(ctx, b)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "recorded build %s of job %s at log index %d (event %s)\n", b.UUID, b.Job, r.Index, r.Digest)

	// Verify like an auditor who only trusts the log key.
	cp, err := ledger.OpenCheckpoint(r.Checkpoint.Note, n.origin, n.vkey)
	if err != nil {
		return err
	}
	data, err := n.ledger.EventBytes(r.Index)
	if err != nil {
		return err
	}
	p, err := n.ledger.Tree().InclusionProof(r.Index, cp.Size)
	if err != nil {
		return err
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(data), p, cp.Hash[:]); err != nil {
		return fmt.Errorf("inclusion proof does not verify: %w", err)
	}
	fmt.Fprintf(out, "inclusion proof (%d hashes) verified against checkpoint:\n%s", len(p), indent(string(cp.Note)))
	fmt.Fprintf(out, "log key: %s\n", n.vkey)

	main, _ := b.Artifact(*b.MainBinary)
	hits, err := n.ledger.BuildsByArtifact(main.SHA256)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "reverse lookup of %s (%s): %d builds\n", main.SHA256, main.Path, len(hits))
	for _, h := range hits {
		fmt.Fprintf(out, "  index %-6d job %s build %s platform %s path %s\n", h.Index, h.Job, h.UUID, h.Platform, h.Path)
	}
	u, err := n.store.Usage()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "store: %d blobs, %d bytes logical, %d bytes stored\n", u.Blobs, u.LogicalBytes, u.StoredBytes)
	return nil
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
}

// recordOrbDir stores every file of an orb output directory in the CAS and
// returns the build record describing it: the three input files by name,
// script and console, every other file as an artifact, and the single file
// under bin/ as the main binary (none if there are zero or several).
func recordOrbDir(ctx context.Context, store *cas.Store, dir fs.FS, job, platform string) (*ledger.BuildRecorded, error) {
	b := &ledger.BuildRecorded{Job: job, UUID: uuid.New(), Platform: platform, Result: ledger.Result{Kind: ledger.ResultExited}}
	var bins []string
	err := fs.WalkDir(dir, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(dir, p)
		if err != nil {
			return err
		}
		info, err := store.Put(ctx, bytes.NewReader(data))
		if err != nil {
			return err
		}
		dg := info.Digest
		switch p {
		case "script":
			b.Script = dg
			return nil
		case "console":
			b.Console = dg
			return nil
		case "opam-switch":
			b.Inputs.OpamSwitch = &dg
		case "build-environment":
			b.Inputs.BuildEnvironment = &dg
		case "system-packages":
			b.Inputs.SystemPackages = &dg
		}
		if path.Dir(p) == "bin" {
			bins = append(bins, p)
		}
		b.Artifacts = append(b.Artifacts, ledger.Artifact{Path: p, SHA256: dg, Size: int64(len(data))})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(bins) == 1 {
		b.MainBinary = &bins[0]
	}
	return b, nil
}
