package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/httpapi/replica"
	"github.com/buildledger/buildledger/internal/atomicfile"
	"github.com/buildledger/buildledger/ledger/attlog"
	"github.com/buildledger/buildledger/ledger/witnessing"
	"github.com/buildledger/buildledger/pkgrepo/apt"
	"github.com/buildledger/buildledger/pkgrepo/freebsd"
	"github.com/buildledger/buildledger/pkgrepo/publish"
)

func serveCmd(g *globals) *cobra.Command {
	var listen, replicaOf, primaryKey, witnessPolicy, aptKey string
	var maxBody int64
	var maxUploads, aptReproduced int
	var aptOn bool
	var poll, stall time.Duration
	var ops opsFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the ledger over HTTP (uploads, builder-web pages, reverse lookup, tiles, proofs)",
		Long: `serve runs the ledger's HTTP server on the data directory. With --replica-of URL it
serves a read replica of that primary instead: it follows the primary's signed
checkpoints (verified with --log-key, or the key the primary serves on first contact,
pinned in DATA/primary.pub), proves each consistent with the last, fetches the new
entries and the blobs they name, replays them into its own projections, answers every
read route as the primary does and refuses writes. A primary that rewrites its
history stops the replica with a security error showing both checkpoints.

A primary also answers "ledger user" and "ledger access" on DATA/admin.sock (mode
0600; its own uid and root only), so accounts change while it serves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ops.setLogger(cmd, g); err != nil {
				return err
			}
			ctx := cmd.Context()
			var c *httpapi.Client
			if replicaOf != "" {
				key := primaryKey
				if key == "" {
					if b, err := os.ReadFile(filepath.Join(g.data, "primary.pub")); err == nil {
						key = strings.TrimSpace(string(b))
					}
				}
				if key == "" {
					var err error
					if key, err = httpapi.FetchLogKey(ctx, replicaOf, nil); err != nil {
						return fmt.Errorf("fetching the primary's log key: %w", err)
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "trusting the primary's log key on first contact (pin it with --log-key): %s\n", key)
				}
				g.replicaKey = key
				var err error
				if c, err = httpapi.NewClient(replicaOf, key, replica.HTTPClient()); err != nil {
					return err
				}
			}
			g.space.ballast = true
			n, err := openData(g)
			if err != nil {
				return err
			}
			defer n.Close()
			cfg := httpapi.Config{Ledger: n.ledger, VKey: n.vkey, Users: auth.New(n.db), MaxBody: maxBody, Logger: g.log, Primary: replicaOf, CheckSpace: n.space.Check}
			if replicaOf == "" {
				base := g.publicURL
				if base == "" {
					base = "http://" + listen
				}
				if cfg.AttestationLog, err = openAttestationLog(g, base, n); err != nil {
					return err
				}
			} else if cfg.AttestationLog, err = openMirrorAttestationLog(ctx, g, replicaOf, n); err != nil {
				return err
			}
			if cfg.AttestationLog != nil {
				// Keep it close behind the event log, so that a request
				// for a bundle rarely has a backlog to add first.
				// It stops before the store closes.
				al := cfg.AttestationLog
				actx, stop := context.WithCancel(ctx)
				done := make(chan struct{})
				defer func() { stop(); <-done }()
				go func() {
					defer close(done)
					t := time.NewTicker(2 * time.Second)
					defer t.Stop()
					last := ""
					for {
						// Each error once, not every 2 s.
						err := al.CatchUp(actx)
						if err == nil && replicaOf != "" {
							// A replica's checkpoints are its primary's.
							var raw []byte
							if raw, err = fetchPrimary(actx, replicaOf, "attestation-log/checkpoint"); err == nil {
								if err = al.Accept(actx, raw); errors.Is(err, attlog.ErrBehind) {
									err = nil // the events are still replicating
								}
							}
						}
						switch {
						case err != nil && actx.Err() == nil && err.Error() != last:
							g.log.Error("attestation log", "err", err)
							last = err.Error()
						case err == nil && last != "":
							g.log.Info("attestation log caught up")
							last = ""
						}
						select {
						case <-actx.Done():
							return
						case <-t.C:
						}
					}
				}()
			}
			cfg.ReadIdle, cfg.WriteIdle = stall, stall
			cfg.MaxUploads = maxUploads
			if replicaOf != "" {
				cfg.Users = nil
			}
			ops.configure(&cfg, g)
			if witnessPolicy != "" {
				if replicaOf != "" {
					return errors.New("--witness-policy: a replica serves its primary's checkpoints; give the policy to the primary")
				}
				stop, err := startWitnessing(ctx, g, n, witnessPolicy, &cfg)
				if err != nil {
					return err
				}
				defer stop()
			}
			if aptOn {
				stop, err := startPublishing(ctx, g, n, aptKey, aptReproduced, &cfg)
				if err != nil {
					return err
				}
				defer stop()
			}
			var rep *replica.Replica
			if c != nil {
				rep = &replica.Replica{Client: c, Ledger: n.ledger, Poll: poll, Log: g.log}
				cfg.Replica = rep
			}
			s, err := httpapi.New(cfg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			if cfg.Users != nil {
				stopAdmin, err := startAdmin(g, cfg.Users)
				if err != nil {
					ln.Close()
					return err
				}
				defer stopAdmin()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "log key: %s\nlistening on http://%s\n", n.vkey, ln.Addr())
			if c == nil {
				return serve(ctx, ln, s, g)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "read replica of %s\n", replicaOf)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			rerr := make(chan error, 1)
			go func() {
				rerr <- rep.Run(ctx)
				cancel()
			}()
			serr := serve(ctx, ln, s, g)
			if err := <-rerr; err != nil {
				return fmt.Errorf("replica stopped: %w", err)
			}
			return serr
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:3000", "address to listen on (loopback unless told otherwise)")
	cmd.Flags().Int64Var(&maxBody, "max-body", 512<<20, "largest accepted request body in bytes")
	cmd.Flags().IntVar(&maxUploads, "max-uploads", 4, "uploads received at once; more are answered 503 with Retry-After")
	cmd.Flags().StringVar(&replicaOf, "replica-of", "", "serve a read replica of the ledger at this URL")
	cmd.Flags().StringVar(&witnessPolicy, "witness-policy", "", "ask the witnesses of this policy file (\"witness NAME VKEY URL\", \"group NAME N|any|all MEMBERS\", \"quorum NAME\") to cosign each checkpoint (C2SP tlog-witness), and serve it with their cosignatures")
	cmd.Flags().BoolVar(&aptOn, "apt", true, "publish the .deb and .pkg main binaries of builds as signed Debian repositories under /apt and FreeBSD pkg repositories under /freebsd (one per platform and a PLATFORM-reproduced one; keys in DATA/apt.key and DATA/pkg.key)")
	cmd.Flags().StringVar(&aptKey, "apt-key", "", "the repositories' OpenPGP signing key (armored; created if missing; default DATA/apt.key)")
	cmd.Flags().IntVar(&aptReproduced, "apt-reproduced", 2, "distinct registered rebuilders that must have reproduced a package's exact bytes for the PLATFORM-reproduced repositories to offer it")
	cmd.Flags().StringVar(&primaryKey, "log-key", "", "the primary's log key (name+hash+key), with --replica-of")
	cmd.Flags().DurationVar(&poll, "poll", 2*time.Second, "how often a replica looks at its primary")
	cmd.Flags().DurationVar(&stall, "stall-timeout", time.Minute, "drop a client whose request body stops arriving, or who stops reading the response, for this long (transfers that keep moving are never cut off)")
	addOpsFlags(cmd, &ops)
	return cmd
}

// serve runs the HTTP server until ctx ends (SIGINT/SIGTERM), then drains
// requests for up to 10 s.
func serve(ctx context.Context, ln net.Listener, h http.Handler, g *globals) error {
	// No ReadTimeout or WriteTimeout: they bound a whole request, and none
	// is both short enough to drop a stalled client and long enough for a
	// 2 GB upload or download. The handler moves the connection's
	// deadlines before every read of a body and every write instead
	// (--stall-timeout, httpapi.Config.ReadIdle and WriteIdle).
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

// startPublishing keeps the package repositories (package
// pkgrepo/publish) following the log, in the background, and serves them.
func startPublishing(ctx context.Context, g *globals, n *node, keyFile string, reproduced int, cfg *httpapi.Config) (func(), error) {
	if keyFile == "" {
		keyFile = filepath.Join(g.data, "apt.key")
	}
	key, created, err := loadOrCreateAptKey(keyFile, n.origin)
	if err != nil {
		return nil, err
	}
	if created {
		g.log.Info("created the package repositories' signing key", "file", keyFile)
	}
	if reproduced < 1 {
		return nil, fmt.Errorf("--apt-reproduced %d: want at least 1", reproduced)
	}
	// The FreeBSD key (RSA, slow to make) is made when first needed.
	pkgKeyFile := filepath.Join(g.data, "pkg.key")
	var pkgKeyMu sync.Mutex
	var pkgKey *freebsd.Key
	loadPkgKey := func(create bool) (*freebsd.Key, error) {
		pkgKeyMu.Lock()
		defer pkgKeyMu.Unlock()
		if pkgKey != nil {
			return pkgKey, nil
		}
		b, err := os.ReadFile(pkgKeyFile)
		switch {
		case err == nil:
			if pkgKey, err = freebsd.ReadKey(b); err != nil {
				return nil, fmt.Errorf("%s: %w", pkgKeyFile, err)
			}
		case errors.Is(err, fs.ErrNotExist) && !create:
			return nil, publish.ErrNotFound
		case errors.Is(err, fs.ErrNotExist):
			k, err := freebsd.NewKey()
			if err != nil {
				return nil, err
			}
			if err := atomicfile.WriteFile(pkgKeyFile, k.MarshalPrivate(), 0o600); err != nil {
				return nil, err
			}
			g.log.Info("created the FreeBSD repositories' signing key", "file", pkgKeyFile)
			pkgKey = k
		default:
			return nil, err
		}
		return pkgKey, nil
	}
	p, err := publish.New(publish.Config{Ledger: n.ledger, DB: n.db, Key: key, PkgKey: loadPkgKey, Reproduced: reproduced, Logger: g.log})
	if err != nil {
		return nil, err
	}
	cfg.Packages = p
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.Run(pctx) }()
	return func() { cancel(); <-done }, nil
}

// loadOrCreateAptKey reads the armored OpenPGP key in file, or makes one
// (mode 0600) named after the log's origin.
func loadOrCreateAptKey(file, origin string) (*apt.Key, bool, error) {
	b, err := os.ReadFile(file)
	if err == nil {
		k, err := apt.ReadKey(b)
		if err != nil {
			return nil, false, fmt.Errorf("--apt-key %s: %w", file, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	k, err := apt.NewKey(origin + " package repositories")
	if err != nil {
		return nil, false, err
	}
	armored, err := k.MarshalPrivate()
	if err != nil {
		return nil, false, err
	}
	if err := atomicfile.WriteFile(file, armored, 0o600); err != nil {
		return nil, false, err
	}
	return k, true, nil
}

// startWitnessing asks the policy's witnesses to cosign each new
// checkpoint, in the background, and serves the cosigned checkpoint.
func startWitnessing(ctx context.Context, g *globals, n *node, policyFile string, cfg *httpapi.Config) (func(), error) {
	policy, err := os.ReadFile(policyFile)
	if err != nil {
		return nil, err
	}
	w, err := witnessing.New(witnessing.Config{Policy: policy, Prover: n.ledger.Tree(), Logger: g.log})
	if err != nil {
		return nil, fmt.Errorf("--witness-policy %s: %w", policyFile, err)
	}
	cfg.Witnessed, cfg.WitnessedQuorum = w.Latest, w.LatestQuorum
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last witnessing.Cosigned
		var asked time.Time
		for {
			cp := n.ledger.Checkpoint()
			// A new checkpoint, or one without quorum yet every 10 s.
			if cp.Note != nil && (cp.Size != last.Size || last.Note == nil || !last.Quorum && time.Since(asked) > 10*time.Second) {
				asked = time.Now()
				c := w.Cosign(wctx, cp)
				if !c.Quorum && (c.Size != last.Size || last.Quorum) {
					g.log.Warn("checkpoint without witness quorum", "size", c.Size, "cosigned by", c.Signed, "missing", c.Missing)
				}
				last = c
			}
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }, nil
}
