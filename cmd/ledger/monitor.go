package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/client"
	"github.com/buildledger/buildledger/httpapi/monitor"
	"github.com/buildledger/buildledger/internal/kv"
)

func monitorCmd() *cobra.Command {
	var server, logKey, state, blobs, webhook, witnessPolicy string
	var follow bool
	var interval time.Duration
	var jobs, keys, digests []string
	cmd := &cobra.Command{
		Use:   "monitor --server URL --state DIR",
		Short: "Audit a ledger from the outside: every entry, every rule a third party can check",
		Long: `monitor follows the log through its entry bundles from the last size it verified (kept in
the --state directory with the log key it pinned), checks each new checkpoint's signature and
its consistency with the last, recomputes the tree over the entries, and checks every event:
canonical encoding and schema, builds logged once and of defined jobs, keys registered once
under their own id and revoked once, attestations signed by a key registered and not revoked
before them, logged once, their envelopes served as logged and verifying, and (--blobs) that
the blobs builds name are served and hash to their digests.

Each violation is printed as "VIOLATION: log index N (kind): what". Without --follow it
verifies up to the current checkpoint and exits non-zero if it found any. With --follow it
keeps going every --interval (retrying after a server or network failure; a SECURITY error
stops it). Each event a --watch-* names is printed as "watch: ..."; with --webhook each
violation, watched event and error is also POSTed as JSON.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if server == "" || state == "" {
				return errors.New("--server and --state are required")
			}
			if interval <= 0 {
				return fmt.Errorf("--interval %s: give a positive duration", interval)
			}
			var b monitor.Blobs
			switch blobs {
			case "none":
				b = monitor.BlobsNone
			case "sample":
				b = monitor.BlobsSample
			case "all":
				b = monitor.BlobsAll
			default:
				return fmt.Errorf("--blobs %q: none, sample or all", blobs)
			}
			var w monitor.Watch
			w.Jobs = jobs
			for _, list := range []struct {
				in  []string
				out *[]digest.Digest
			}{{keys, &w.Keys}, {digests, &w.Digests}} {
				for _, s := range list.in {
					d, err := digest.ParseDigest(s)
					if err != nil {
						return fmt.Errorf("--watch-key/--watch-digest %q: %w", s, err)
					}
					*list.out = append(*list.out, d)
				}
			}
			ctx := cmd.Context()
			db, err := kv.Open(state, kv.Options{})
			if err != nil {
				return fmt.Errorf("--state %s: %w", state, err)
			}
			defer db.Close()
			key, err := pinMonitorKey(ctx, cmd, db, server, logKey)
			if err != nil {
				return err
			}
			c, err := httpapi.NewClient(server, key, nil)
			if err != nil {
				return err
			}
			if witnessPolicy != "" {
				p, err := os.ReadFile(witnessPolicy)
				if err != nil {
					return err
				}
				if err := c.RequireWitnesses(p); err != nil {
					return fmt.Errorf("--witness-policy: %w", err)
				}
			}
			m := monitor.New(monitor.Config{Client: c, DB: db, Blobs: b, Watch: w})
			out := cmd.OutOrStdout()
			total := 0
			errw := cmd.ErrOrStderr()
			for {
				res, err := m.Step(ctx)
				if err != nil {
					notify(ctx, errw, webhook, map[string]any{"error": err.Error()})
					var kc *client.KeyChangedError
					if !follow || strings.Contains(err.Error(), "SECURITY") || errors.As(err, &kc) || ctx.Err() != nil {
						return err
					}
					// A server down or a network failure: try again.
					fmt.Fprintf(errw, "monitor: %v (trying again in %s)\n", err, interval)
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(interval):
					}
					continue
				}
				for _, f := range res.Findings {
					fmt.Fprintf(out, "VIOLATION: %s\n", f)
					notify(ctx, errw, webhook, map[string]any{"violation": f})
				}
				for _, s := range res.Seen {
					fmt.Fprintf(out, "watch: log index %d (%s): %s\n", s.Index, s.Kind, s.What)
					notify(ctx, errw, webhook, map[string]any{"watch": s})
				}
				total += len(res.Findings)
				if res.To < res.Checkpoint.Size {
					continue
				}
				if !follow {
					// Every violation ever found stays one: a log does not
					// heal, and a run that stopped before reporting must
					// not let the next one pass.
					all, err := m.Findings()
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "verified the log up to checkpoint %d (root %x): %d new violation(s), %d in all\n", res.Checkpoint.Size, res.Checkpoint.Hash, total, len(all))
					if len(all) > 0 {
						return fmt.Errorf("%d violation(s) found in this log (%d in this run)", len(all), total)
					}
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "ledger server URL")
	f.StringVar(&logKey, "log-key", "", "the log's verifier key; default: the one pinned in --state, or trust on first use")
	f.StringVar(&state, "state", "", "directory of the monitor's state (created)")
	f.StringVar(&blobs, "blobs", "sample", "which blobs to fetch and hash: none, sample (one build in 64) or all")
	f.BoolVar(&follow, "follow", false, "keep following the log instead of exiting at the current checkpoint")
	f.DurationVar(&interval, "interval", 30*time.Second, "with --follow, how often to look for new entries")
	f.StringSliceVar(&jobs, "watch-job", nil, "report each event of this job")
	f.StringSliceVar(&keys, "watch-key", nil, "report each event of this key id")
	f.StringSliceVar(&digests, "watch-digest", nil, "report each build or attestation naming this SHA-256")
	f.StringVar(&webhook, "webhook", "", "POST each violation and watched event as JSON to this URL")
	f.StringVar(&witnessPolicy, "witness-policy", "", "accept only checkpoints cosigned by a quorum of this policy's witnesses")
	return cmd
}

// pinMonitorKey returns the log key: given, pinned in the state (a given
// one must match it), or fetched and pinned on first use.
func pinMonitorKey(ctx context.Context, cmd *cobra.Command, db *badger.DB, server, given string) (string, error) {
	given = strings.TrimSpace(given)
	var pinned string
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("logkey"))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		b, err := item.ValueCopy(nil)
		pinned = string(b)
		return err
	})
	switch {
	case err != nil:
		return "", err
	case pinned != "" && given != "" && pinned != given:
		return "", fmt.Errorf("--log-key differs from the key pinned in the monitor's state (%s)", pinned)
	case pinned != "":
		return pinned, nil
	case given == "":
		if given, err = httpapi.FetchLogKey(ctx, server, nil); err != nil {
			return "", fmt.Errorf("fetching the log key: %w", err)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "pinned log key %s (trust on first use; pass --log-key to check it)\n", given)
	}
	// Pinned only once it verifies the server's checkpoint.
	c, err := httpapi.NewClient(server, given, nil)
	if err != nil {
		return "", fmt.Errorf("the log key %q: %w", given, err)
	}
	if _, err := c.Checkpoint(ctx); err != nil {
		return "", fmt.Errorf("the log key does not verify the server's checkpoint, so it is not pinned: %w", err)
	}
	return given, db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("logkey"), []byte(given)) })
}

// notify POSTs v as JSON to the webhook, if any, within 10 s; a failure
// is reported on standard error and does not stop the monitor.
func notify(ctx context.Context, errw io.Writer, url string, v any) {
	if url == "" {
		return
	}
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		var resp *http.Response
		if resp, err = http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				err = fmt.Errorf("it answered %s", resp.Status)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(errw, "webhook %s: %v\n", url, err)
	}
}
