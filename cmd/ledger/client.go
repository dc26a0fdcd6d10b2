package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/client"
	"github.com/buildledger/buildledger/internal/atomicfile"
	"github.com/buildledger/buildledger/ledger"
)

// clientFlags are shared by the commands that talk to a server.
type clientFlags struct {
	server        string
	logKey        string
	state         string
	witnessPolicy string
	// path is the state file open used.
	path string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", "", "ledger server URL, e.g. http://127.0.0.1:3000")
	cmd.Flags().StringVar(&f.logKey, "log-key", "", "the log's verifier key (name+hash+key); default: the key pinned in the state file, or trust on first use")
	cmd.Flags().StringVar(&f.state, "state", "", "state file keeping the pinned key and last checkpoint seen (default: user config dir)")
	cmd.Flags().StringVar(&f.witnessPolicy, "witness-policy", "", "accept only checkpoints cosigned by a quorum of this policy's witnesses (\"witness NAME VKEY URL\", \"group NAME N|any|all MEMBERS\", \"quorum NAME\"; the URLs are not used), so that a server cannot show this client a history it hides from others")
}

// clientState is what a client remembers about one server.
type clientState struct {
	Server     string `json:"server"`
	LogKey     string `json:"log_key"`
	Checkpoint string `json:"checkpoint"`
}

func (f *clientFlags) statePath() (string, error) {
	if f.state != "" {
		return f.state, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no --state given and no user config directory: %w", err)
	}
	u, err := url.Parse(f.server)
	if err != nil {
		return "", err
	}
	name := strings.NewReplacer(":", "_", "/", "_").Replace(u.Host + u.Path)
	return filepath.Join(dir, "buildledger", name+".json"), nil
}

// open returns a verifying client, the remembered state and a function to
// save a newer checkpoint after proving it consistent with the old one.
func (f *clientFlags) open(ctx context.Context, cmd *cobra.Command) (*httpapi.Client, *ledger.Checkpoint, func(*ledger.Checkpoint) error, error) {
	if f.server == "" {
		return nil, nil, nil, errors.New("--server is required")
	}
	if _, err := client.ParseServerURL(f.server); err != nil {
		return nil, nil, nil, fmt.Errorf("--server: %w", err)
	}
	path, err := f.statePath()
	if err != nil {
		return nil, nil, nil, err
	}
	f.path = path
	var st clientState
	switch b, err := os.ReadFile(path); {
	case err == nil:
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, nil, nil, fmt.Errorf("state file %s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, nil, nil, err
	}
	key := f.logKey
	switch {
	case key != "" && st.LogKey != "" && key != st.LogKey:
		return nil, nil, nil, fmt.Errorf("--log-key differs from the key pinned in %s (%s); remove the state file to re-pin deliberately", path, st.LogKey)
	case key == "" && st.LogKey != "":
		key = st.LogKey
	case key == "":
		if key, err = httpapi.FetchLogKey(ctx, f.server, nil); err != nil {
			return nil, nil, nil, fmt.Errorf("fetching the log key: %w", err)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "pinned log key %s (trust on first use; pass --log-key to check it)\n", key)
	}
	c, err := httpapi.NewClient(f.server, key, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	if f.witnessPolicy != "" {
		p, err := os.ReadFile(f.witnessPolicy)
		if err != nil {
			return nil, nil, nil, err
		}
		if err := c.RequireWitnesses(p); err != nil {
			return nil, nil, nil, fmt.Errorf("--witness-policy %s: %w", f.witnessPolicy, err)
		}
	}
	var last *ledger.Checkpoint
	if st.Checkpoint != "" {
		origin, _, _ := strings.Cut(key, "+")
		if last, err = ledger.OpenCheckpoint([]byte(st.Checkpoint), origin, key); err != nil {
			return nil, nil, nil, fmt.Errorf("state file %s: %w", path, err)
		}
	}
	save := func(cp *ledger.Checkpoint) error {
		if last != nil {
			if cp.Size < last.Size {
				// An older checkpoint (the newest witnessed one, or a
				// replica behind): proven a prefix of the one kept,
				// which stays.
				return c.CheckConsistency(ctx, cp, last)
			}
			if err := c.CheckConsistency(ctx, last, cp); err != nil {
				return err
			}
		}
		b, err := json.MarshalIndent(clientState{Server: f.server, LogKey: key, Checkpoint: string(cp.Note)}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
	}
	return c, last, save, nil
}

// explain adds to an error that the server's log key changed where the
// pinned key is kept and how to pin the new one.
func (f *clientFlags) explain(err error) error {
	var kc *client.KeyChangedError
	if !errors.As(err, &kc) {
		return err
	}
	return fmt.Errorf(`%w
The pinned key is kept in %s. A test server that was reset gets a new key; a
production log never changes its key, so ask its operator before trusting the new one.
To pin the new key, remove the state file and name the key you expect:
  rm %s
  ledger verify --server %s --state %s --log-key '%s'`, err, f.path, f.path, f.server, f.path, kc.Served)
}

// explained wraps a command's RunE so a changed log key is explained.
func (f *clientFlags) explained(run func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error { return f.explain(run(cmd, args)) }
}

func remoteVerifyCmd(cmd *cobra.Command, f *clientFlags) error {
	return f.explain(remoteVerify(cmd, f))
}

func remoteVerify(cmd *cobra.Command, f *clientFlags) error {
	ctx := cmd.Context()
	c, last, save, err := f.open(ctx, cmd)
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
	out := cmd.OutOrStdout()
	if last == nil {
		fmt.Fprintf(out, "first checkpoint from %s: size %d, root %x (remembered)\n", f.server, cp.Size, cp.Hash)
		return nil
	}
	fmt.Fprintf(out, "ok: size %d (root %x) extends the size %d seen before (root %x)\n", cp.Size, cp.Hash, last.Size, last.Hash)
	return nil
}

func lookupCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "lookup FILE|SHA256",
		Short: "Find where a binary came from, verifying every answer against the log",
		Long: `lookup hashes FILE (or takes a 64-digit SHA-256) and asks the server which builds
produced it. It verifies the checkpoint's signature against the pinned log key, that
the checkpoint extends the last one this client saw, and the inclusion of every build
and attestation event it prints.`,
		Args: cobra.ExactArgs(1),
		RunE: f.explained(func(cmd *cobra.Command, args []string) error {
			d, err := digestOf(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, _, save, err := f.open(ctx, cmd)
			if err != nil {
				return err
			}
			res, err := c.Lookup(ctx, d)
			if err != nil {
				return err
			}
			if err := save(res.Checkpoint); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %d build(s), verified against checkpoint %d (root %x)\n", d, len(res.Builds), res.Checkpoint.Size, res.Checkpoint.Hash)
			for _, b := range res.Builds {
				e := b.Build
				fmt.Fprintf(out, "\n  job %s, build %s, platform %s\n  %s … %s, %s\n  file %s, log index %d (inclusion verified)\n",
					e.Job, e.UUID, e.Platform, e.Started.Format("2006-01-02 15:04:05Z"), e.Finished.Format("15:04:05Z"), e.Result, b.Path, b.Index)
				fmt.Fprintf(out, "  inputs: opam-switch %s, build-environment %s, system-packages %s, script %s\n",
					opt(e.Inputs.OpamSwitch), opt(e.Inputs.BuildEnvironment), opt(e.Inputs.SystemPackages), e.Script)
				fmt.Fprintf(out, "  %s/job/%s/build/%s\n", strings.TrimSuffix(f.server, "/"), url.PathEscape(e.Job), e.UUID)
			}
			if len(res.Attestations)+len(res.Disputes) == 0 {
				fmt.Fprintln(out, "\nno attestations")
			}
			name := func(id cas.Digest) string {
				if n := res.KeyNames[id]; n != "" {
					return n + " (" + id.String()[:16] + ")"
				}
				return id.String()
			}
			for i, a := range res.Attestations {
				fmt.Fprintf(out, "\n  attestation at log index %d (inclusion verified): key %s, verdict %s, predicate %s\n", res.AttIndices[i], name(a.KeyID), a.Verdict, a.PredicateType)
			}
			for i, a := range res.Disputes {
				fmt.Fprintf(out, "\n  NOT REPRODUCED: at log index %d (inclusion verified) key %s rebuilt build %s and got other bytes\n", res.DisputeIndices[i], name(a.KeyID), a.Build)
			}
			return nil
		}),
	}
	f.register(cmd)
	return cmd
}

func opt(d *cas.Digest) string {
	if d == nil {
		return "none"
	}
	return d.String()
}

// digestOf reads a SHA-256 from arg: a file to hash, or 64 hex digits.
func digestOf(arg string) (cas.Digest, error) {
	fh, err := os.Open(arg)
	if errors.Is(err, fs.ErrNotExist) {
		d, perr := cas.ParseDigest(arg)
		if perr != nil {
			return d, fmt.Errorf("%q is neither a file nor a SHA-256 (%v)", arg, perr)
		}
		return d, nil
	}
	if err != nil {
		return cas.Digest{}, err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return cas.Digest{}, err
	}
	var d cas.Digest
	h.Sum(d[:0])
	return d, nil
}
