package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/attest/rekorv2"
	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi/replica"
	"github.com/buildledger/buildledger/internal/atomicfile"
	"github.com/buildledger/buildledger/internal/diskspace"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/attlog"
	"github.com/buildledger/buildledger/ledger/trillianlog"
)

// node is an opened data directory.
type node struct {
	closer func() error // the log backend's connection, if any
	space  *diskspace.Guard
	db     *badger.DB
	store  *cas.Store
	ledger *ledger.Ledger
	vkey   string
	origin string
}

func (n *node) Close() error {
	n.ledger.Close()
	if n.closer != nil {
		n.closer()
	}
	if !n.space.BeforeClose() {
		// Too full to flush the memtable: leave the synced logs for the
		// next open to replay rather than die of SIGBUS closing.
		return diskspace.ErrFull
	}
	return n.db.Close()
}

// withNode returns a cobra RunE that opens the data directory, runs fn and
// closes it again.
func withNode(g *globals, fn func(cmd *cobra.Command, n *node) error) func(*cobra.Command, []string) error {
	return withOpened(openData, g, fn)
}

// withOpened returns a cobra RunE that opens the data directory with open,
// runs fn and closes it again.
func withOpened(open func(*globals) (*node, error), g *globals, fn func(cmd *cobra.Command, n *node) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		n, err := open(g)
		if err != nil {
			return err
		}
		defer n.Close()
		return fn(cmd, n)
	}
}

// openData opens (creating if needed) the data directory.
func openData(g *globals) (*node, error) {
	origin, err := g.newOrigin()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(g.data, 0o700); err != nil {
		return nil, err
	}
	if g.replicaKey != "" {
		return openReplica(g)
	}
	skey, vkey, created, err := loadOrCreateKey(g.data, origin)
	if err != nil {
		return nil, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("log key %s: %w", filepath.Join(g.data, "log.key"), err)
	}
	switch {
	case !g.serving:
	case signer.Name() == defaultOrigin:
		g.log.Warn("the log's origin is the default every deployment shares: a witness cannot tell two such logs apart. "+
			"A new data directory takes its origin from --origin NAME or --public-url URL (HOST/log); an existing one keeps the origin of its log.key",
			"origin", signer.Name(), "data", g.data)
	case created:
		g.log.Info("created a log key", "origin", signer.Name(), "data", g.data)
	default:
		g.log.Info("log", "origin", signer.Name(), "data", g.data)
	}
	db, space, err := openDB(g)
	if err != nil {
		return nil, err
	}
	store, err := cas.New(db, cas.Options{CheckSpace: space.Check})
	if err != nil {
		db.Close()
		return nil, err
	}
	cfg := ledger.Config{Origin: signer.Name(), Signer: signer, CheckSpace: space.Check}
	var closer func() error
	switch g.backend {
	case "embedded", "":
	case "trillian":
		if g.trillian == "" || g.treeID == 0 {
			db.Close()
			return nil, errors.New("--log trillian needs --trillian HOST:PORT and --tree-id ID")
		}
		creds, err := g.trillianTLS.Credentials(g.trillian)
		if err != nil {
			db.Close()
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		tl, err := trillianlog.Dial(ctx, g.trillian, g.treeID, creds)
		cancel()
		if err != nil {
			db.Close()
			return nil, err
		}
		cfg.Backend, closer = tl, tl.Close
	default:
		db.Close()
		return nil, fmt.Errorf("--log %q: want embedded or trillian", g.backend)
	}
	l, err := ledger.Open(db, store, cfg)
	if err != nil {
		if closer != nil {
			closer()
		}
		db.Close()
		return nil, err
	}
	return &node{db: db, space: space, store: store, ledger: l, vkey: vkey, origin: signer.Name(), closer: closer}, nil
}

// defaultOrigin is the origin of a data directory created with neither
// --origin nor --public-url.
const defaultOrigin = "buildledger.local/log"

// newOrigin is the origin a new data directory's log key is named: --origin,
// else HOST[/PATH]/log from --public-url, else the default. An existing
// directory keeps the name of its key.
func (g *globals) newOrigin() (string, error) {
	switch {
	case g.origin != "":
		return g.origin, nil
	case g.publicURL != "":
		u, err := url.Parse(g.publicURL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return "", fmt.Errorf("--public-url %q: want the URL clients reach this server at, e.g. https://ledger.example.org/", g.publicURL)
		}
		return u.Host + strings.TrimSuffix(u.Path, "/") + "/log", nil
	}
	return defaultOrigin, nil
}

// checkListen refuses a --listen address that is taken before anything is
// created, so a failed start leaves no new data directory or key behind.
func checkListen(cmd *cobra.Command) error {
	addr, err := cmd.Flags().GetString("listen")
	if err != nil {
		return nil // a command without --listen
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("--listen %s: the address is in use (another ledger serve?); stop it or pick another address. Nothing was created", addr)
		}
		return fmt.Errorf("--listen %s: %w. Nothing was created", addr, err)
	}
	return ln.Close()
}

// loadOrCreateKey reads DIR/log.key, or generates a key named origin.
func loadOrCreateKey(dir, origin string) (skey, vkey string, created bool, err error) {
	kp, vp := filepath.Join(dir, "log.key"), filepath.Join(dir, "log.pub")
	b, err := os.ReadFile(kp)
	if errors.Is(err, fs.ErrNotExist) {
		skey, vkey, err = ledger.GenerateLogKey(origin)
		if err != nil {
			return "", "", false, fmt.Errorf("log origin %q: %w", origin, err)
		}
		if err := os.WriteFile(kp, []byte(skey+"\n"), 0o600); err != nil {
			return "", "", false, err
		}
		if err := os.WriteFile(vp, []byte(vkey+"\n"), 0o644); err != nil {
			return "", "", false, err
		}
		return skey, vkey, true, nil
	}
	if err != nil {
		return "", "", false, err
	}
	skey = strings.TrimSpace(string(b))
	vb, err := os.ReadFile(vp)
	if err != nil {
		return "", "", false, fmt.Errorf("log key present but its public half is not: %w", err)
	}
	return skey, strings.TrimSpace(string(vb)), false, nil
}

// openReplica opens the data directory as a read replica of the primary
// whose log key is g.replicaKey. The key is pinned in primary.pub: a data
// directory replicates one log only.
func openReplica(g *globals) (*node, error) {
	pin := filepath.Join(g.data, "primary.pub")
	switch b, err := os.ReadFile(pin); {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Stat(filepath.Join(g.data, "log.key")); err == nil {
			return nil, fmt.Errorf("%s holds a primary ledger (log.key); a replica needs its own data directory", g.data)
		}
		// Only a key that parses is pinned: a placeholder pinned once
		// would refuse the real key until the directory is deleted.
		if _, err := note.NewVerifier(g.replicaKey); err != nil {
			return nil, fmt.Errorf("--log-key %q is not a log verifier key (the primary's ledger-data/log.pub holds it, e.g. --log-key \"$(cat ledger-data/log.pub)\"): %v", g.replicaKey, err)
		}
		if err := os.WriteFile(pin, []byte(g.replicaKey+"\n"), 0o644); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case strings.TrimSpace(string(b)) != g.replicaKey:
		return nil, fmt.Errorf("%s replicates the log with key %s, not %s", g.data, strings.TrimSpace(string(b)), g.replicaKey)
	}
	db, space, err := openDB(g)
	if err != nil {
		return nil, err
	}
	store, err := cas.New(db, cas.Options{CheckSpace: space.Check})
	if err != nil {
		db.Close()
		return nil, err
	}
	l, err := ledger.Open(db, store, ledger.Config{ReplicaOf: g.replicaKey, CheckSpace: space.Check})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &node{db: db, space: space, store: store, ledger: l, vkey: g.replicaKey, origin: l.Origin()}, nil
}

// openAttestationLog opens the ledger's attestation log (package
// ledger/attlog), described to Sigstore clients as served at base. Its
// checkpoints' origin is base's host; the key that signs them is
// DATA/attestation-log-ORIGIN.key (the key and, on a second line, when it
// was made), made on first use: another host name is another log to
// Sigstore clients, with a key and trusted root of its own. Without a host
// clients can reach (--listen on every address, no --public-url) or a key
// it can keep, the server runs without the log, saying why (nil, nil).
func openAttestationLog(g *globals, base string, n *node) (*attlog.Log, error) {
	desc := rekorv2.Log{BaseURL: base}
	origin, err := desc.Origin()
	if ip := net.ParseIP(origin); err != nil || (ip != nil && ip.IsUnspecified()) {
		g.log.Warn("no attestation log: give --public-url with the host name clients reach this server at", "base", base)
		return nil, nil
	}
	kp := filepath.Join(g.data, "attestation-log-"+origin+".key")
	b, err := os.ReadFile(kp)
	if errors.Is(err, fs.ErrNotExist) {
		skey, _, gerr := ledger.GenerateLogKey(origin)
		if gerr != nil {
			return nil, gerr
		}
		b = []byte(skey + "\n" + time.Now().UTC().Truncate(time.Second).Format(time.RFC3339) + "\n")
		if err = atomicfile.WriteFile(kp, b, 0o600); err != nil {
			g.log.Warn("no attestation log: its key cannot be written", "file", kp, "err", err)
			return nil, nil
		}
		g.log.Info("created an attestation log key", "origin", origin, "file", kp)
	}
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	signer, err := note.NewSigner(strings.TrimSpace(lines[0]))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kp, err)
	}
	if desc.Key, err = rekorv2.KeyOfNoteSigner(strings.TrimSpace(lines[0])); err != nil {
		return nil, fmt.Errorf("%s: %w", kp, err)
	}
	desc.ValidFrom = time.Unix(0, 0).UTC()
	if len(lines) > 1 {
		if desc.ValidFrom, err = time.Parse(time.RFC3339, strings.TrimSpace(lines[1])); err != nil {
			return nil, fmt.Errorf("%s: its second line is not a time: %w", kp, err)
		}
	}
	return attlog.Open(n.ledger, n.db, desc, signer, attlog.Options{CheckSpace: n.space.Check})
}

// openMirrorAttestationLog opens a read replica's copy of its primary's
// attestation log: described by the primary's trusted root (pinned in
// DATA/primary-trusted-root.json on first contact, as primary.pub pins its
// log key), derived here from the replicated events, and served with the
// primary's checkpoints. A primary without an attestation log gives none.
func openMirrorAttestationLog(ctx context.Context, g *globals, primary string, n *node) (*attlog.Log, error) {
	p := filepath.Join(g.data, "primary-trusted-root.json")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		b, err = fetchPrimary(ctx, primary, "trusted_root.json")
		var nf errNotServed
		if errors.As(err, &nf) {
			g.log.Warn("no attestation log: the primary serves none", "primary", primary)
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("fetching the primary's trusted root: %w", err)
		}
		if _, err := rekorv2.ParseTrustedRoot(b); err != nil {
			return nil, fmt.Errorf("the primary's trusted root: %w", err)
		}
		if err := atomicfile.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		g.log.Info("pinned the primary's attestation log (its trusted root) on first contact", "file", p)
	} else if err != nil {
		return nil, err
	}
	desc, err := rekorv2.ParseTrustedRoot(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return attlog.OpenMirror(n.ledger, n.db, desc, attlog.Options{CheckSpace: n.space.Check})
}

// errNotServed: the primary answered 404.
type errNotServed struct{ path string }

func (e errNotServed) Error() string { return "the primary serves no " + e.path }

// fetchPrimary GETs a small file (at most 1 MiB) from the primary.
func fetchPrimary(ctx context.Context, primary, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(primary, "/")+"/"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := replica.HTTPClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, errNotServed{path}
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}
