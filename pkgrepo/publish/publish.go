// Package publish keeps the ledger's package repositories, Debian (apt)
// and FreeBSD (pkg): a projection of the log, kept off its commit path, in
// the ledger's badger database under the prefix "r/".
//
// For every platform (a builder platform is a distribution, e.g.
// debian-12) with recorded builds whose main binary is a .deb, it keeps two
// suites (https://wiki.debian.org/DebianRepository/Format):
//
//   - PLATFORM: every distinct .deb the platform's builds produced, under
//     its repository version (deb.RepoVersion, as Robur's apt.robur.coop:
//     VERSION[-0-g0000000]-BUILDTIME-SHA256). Only the first build of a
//     given output publishes it: a rebuild with the same bytes from other
//     inputs adds nothing, so it never forces an upgrade.
//   - PLATFORM-reproduced: the packages whose exact original bytes at least
//     Config.Reproduced distinct registered, unrevoked rebuilder keys
//     attested as reproduced (a farm's "built" claim counts for nothing).
//     A revocation takes the key's claims away again.
//
// FreeBSD .pkg main binaries are published the same way in the
// repositories freebsd/PLATFORM and freebsd/PLATFORM-reproduced (package
// freebsd: version VERSION[.0.g0000000].BUILDTIME.SHA256, catalogues
// signed with an RSA key), offering the newest build's version of each
// package, as pkg offers one version of a package.
//
// The served .deb is the original with its control file's Version
// rewritten (deb.Rewrite; the data member byte for byte), stored in the
// content store as a blob of its own; Record links it to the build and the
// original digest, so anyone can redo the rewrite and compare. Indexes are
// written by pkgrepo/apt, signed with the repository's OpenPGP key, and
// kept in the content store too; Release asks for Acquire-By-Hash, so a
// client never mixes indexes of two publications.
//
// Publishing follows the log: Sync applies the events after the last one
// it applied, up to the checkpoint, in batches committed with its cursor,
// then rewrites the suites those events touched. State lost or from an
// older version is rebuilt from index 0. Everything it writes is derived
// from logged events and stored blobs, so two publishers of one log serve
// the same packages (the index files differ only in their Date and
// signatures).
package publish

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/pkgrepo/apt"
	"github.com/buildledger/buildledger/pkgrepo/deb"
	"github.com/buildledger/buildledger/pkgrepo/freebsd"
)

// Key prefixes of the publisher's state.
var (
	pAll      = []byte("r/")
	pMeta     = []byte("r/meta")
	pRecord   = []byte("r/d/") // platform 0x00 original digest → record
	pByOrig   = []byte("r/o/") // original digest, platform → ""
	pByServed = []byte("r/p/") // served digest → record key
	pCount    = []byte("r/k/") // original digest → reproducing keys (uint32)
	pPool     = []byte("r/f/") // pool path → served digest
	pSuite    = []byte("r/s/") // suite → manifest
	pDirty    = []byte("r/y/") // platform → "": its suites are to be rewritten
)

// stateVersion changes whenever what the publisher derives from the log
// changes: state of another version is dropped and rebuilt from index 0.
const stateVersion = 3

// ReproducedSuffix names a platform's reproduced-only suite.
const ReproducedSuffix = "-reproduced"

// batch is how many events one state transaction applies.
const batch = 256

// Config configures New. Ledger, DB and Key are required.
type Config struct {
	Ledger *ledger.Ledger
	// DB is the ledger's badger database (the publisher keeps its state
	// under "r/").
	DB *badger.DB
	// Key signs the suites' Release files.
	Key *apt.Key
	// PkgKey, if set, returns the key that signs the FreeBSD repositories'
	// catalogues, made if create is set and there is none yet (it is
	// called with create when a catalogue is first written, without when
	// the key is asked for: ErrNotFound until then); nil publishes no
	// FreeBSD packages.
	PkgKey func(create bool) (*freebsd.Key, error)
	// Reproduced is how many distinct rebuilder keys must have reproduced
	// a package's exact bytes for PLATFORM-reproduced to list it. Default 2.
	Reproduced int
	// Archs are listed in every suite's Release besides the architectures
	// of its packages (packages of Architecture "all" are listed in each).
	// Default amd64 and arm64.
	Archs []string
	// Logger receives a line per package not published and per failure.
	Logger *slog.Logger
	// Now is the clock of the Release files' Date (tests). Default time.Now.
	Now func() time.Time
}

// Record is a published package, linking the served .deb to the build
// that produced its original.
type Record struct {
	Platform string     `json:"platform"`
	Job      string     `json:"job"`
	Build    uuid.UUID  `json:"build"`
	Index    uint64     `json:"log_index"` // the build's log index
	Path     string     `json:"path"`      // the main binary's path in the build
	Format   string     `json:"format"`    // "deb" or "pkg" (FreeBSD)
	Original cas.Digest `json:"original_sha256"`
	Served   cas.Digest `json:"sha256"` // of the served package; zero when skipped
	Size     int64      `json:"size"`   // of the served package
	Package  string     `json:"package,omitempty"`
	Version  string     `json:"version,omitempty"` // the repository version
	Arch     string     `json:"architecture,omitempty"`
	Filename string     `json:"filename,omitempty"` // pool/…
	Control  string     `json:"control,omitempty"`  // the served control file
	// Skipped says why the build's main binary is not published (it is
	// not a Debian package the ledger can read); the other fields but the
	// first five are then empty.
	Skipped string `json:"skipped,omitempty"`
}

type fileJSON struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// manifest is a suite's current index files, by path under dists/SUITE/.
type manifest struct {
	Files    map[string]fileJSON `json:"files"`
	Packages int                 `json:"packages"`
	Size     uint64              `json:"log_size"` // the log size it reflects
	Written  time.Time           `json:"written"`  // served as Last-Modified
}

type meta struct {
	Version int    `json:"version"`
	Applied uint64 `json:"applied"`
}

// Publisher keeps the repositories. It is safe for concurrent use; Sync
// calls are serialized.
type Publisher struct {
	cfg    Config
	pub    []byte
	syncMu sync.Mutex
	suites atomic.Pointer[map[string]manifest]
	// applied is the log size the published state reflects.
	applied atomic.Uint64
	// pkgs and counts cache what the suites are written from (see
	// platformPackages, reproducedCounts); only Sync uses them.
	pkgs   map[string]*platformState
	counts map[cas.Digest]uint32
}

// New opens the publisher's state (dropping state of another version) and
// loads the current suites. Call Sync or Run to follow the log.
func New(cfg Config) (*Publisher, error) {
	if cfg.Ledger == nil || cfg.DB == nil || cfg.Key == nil {
		return nil, errors.New("publish: Ledger, DB and Key are required")
	}
	if cfg.Reproduced <= 0 {
		cfg.Reproduced = 2
	}
	if len(cfg.Archs) == 0 {
		cfg.Archs = []string{"amd64", "arm64"}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pub, err := cfg.Key.Public()
	if err != nil {
		return nil, err
	}
	p := &Publisher{cfg: cfg, pub: pub, pkgs: map[string]*platformState{}}
	m, err := p.meta()
	if err != nil {
		return nil, err
	}
	if m.Version != stateVersion {
		if m.Version != 0 {
			cfg.Logger.Info("package repositories: state of another version, rebuilding them from the log", "version", m.Version)
		}
		if err := cfg.DB.DropPrefix(pAll); err != nil {
			return nil, err
		}
		m = meta{}
	}
	if err := p.loadSuites(); err != nil {
		return nil, err
	}
	p.applied.Store(m.Applied)
	return p, nil
}

// PublicKey is the repository's armored OpenPGP public key, for apt's
// signed-by.
func (p *Publisher) PublicKey() []byte { return p.pub }

// PkgPublicKey is the FreeBSD repositories' public key, as pkg.conf's
// pubkey file wants it; ErrNotFound when FreeBSD packages are not
// published.
func (p *Publisher) PkgPublicKey() ([]byte, error) {
	if p.cfg.PkgKey == nil {
		return nil, ErrNotFound
	}
	k, err := p.cfg.PkgKey(false)
	if err != nil {
		return nil, err
	}
	return k.Public(), nil
}

// Applied is the log size the published suites reflect.
func (p *Publisher) Applied() uint64 { return p.applied.Load() }

func (p *Publisher) meta() (meta, error) {
	var m meta
	err := p.cfg.DB.View(func(txn *badger.Txn) error {
		it, err := txn.Get(pMeta)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { return json.Unmarshal(v, &m) })
	})
	return m, err
}

func setJSON(txn *badger.Txn, k []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set(k, b)
}

func (p *Publisher) loadSuites() error {
	suites := map[string]manifest{}
	err := p.cfg.DB.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pSuite, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var m manifest
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &m) }); err != nil {
				return err
			}
			suites[string(it.Item().Key()[len(pSuite):])] = m
		}
		return nil
	})
	if err == nil {
		p.suites.Store(&suites)
	}
	return err
}

// Run calls Sync whenever the checkpoint grows, until ctx is done. A
// failed Sync is logged and retried.
func (p *Publisher) Run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var failed time.Time // of the last failed Sync: retried after 5 s
	last := ""
	for {
		if cp := p.cfg.Ledger.Checkpoint(); cp != nil && (cp.Size > p.Applied() || !failed.IsZero() && time.Since(failed) > 5*time.Second) {
			err := p.Sync(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				failed = time.Now()
				if err.Error() != last { // each error once, not every retry
					p.cfg.Logger.Error("package repositories: publishing failed; retrying", "err", err)
					last = err.Error()
				}
			case err == nil:
				failed, last = time.Time{}, ""
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync applies the events up to the current checkpoint and rewrites the
// suites they touched.
func (p *Publisher) Sync(ctx context.Context) (err error) {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	defer func() {
		if err != nil {
			// The caches may be ahead of or behind the state: reread it.
			p.pkgs, p.counts = map[string]*platformState{}, nil
		}
	}()
	cp := p.cfg.Ledger.Checkpoint()
	if cp == nil {
		return nil
	}
	m, err := p.meta()
	if err != nil {
		return err
	}
	m.Version = stateVersion
	for m.Applied < cp.Size {
		end := min(m.Applied+batch, cp.Size)
		if err := p.apply(ctx, m.Applied, end, cp.Size); err != nil {
			return err
		}
		m.Applied = end
		if err := p.cfg.DB.Update(func(txn *badger.Txn) error { return setJSON(txn, pMeta, m) }); err != nil {
			return err
		}
	}
	// The platforms marked dirty, in the transactions that changed what
	// their suites list: each is rewritten, then unmarked.
	var dirty []string
	if err := p.cfg.DB.View(func(txn *badger.Txn) error {
		return scanKeys(txn, pDirty, func(k []byte) error { dirty = append(dirty, string(k[len(pDirty):])); return nil })
	}); err != nil {
		return err
	}
	var errs []error
	for _, platform := range dirty {
		if err := p.writeSuites(ctx, platform, m.Applied); err != nil {
			// The others are still published; this one stays marked.
			errs = append(errs, fmt.Errorf("publishing %s: %w", platform, err))
			continue
		}
		if err := p.cfg.DB.Update(func(txn *badger.Txn) error {
			return txn.Delete(append(slices.Clone(pDirty), platform...))
		}); err != nil {
			return err
		}
	}
	if len(dirty) > 0 {
		if err := p.loadSuites(); err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	p.applied.Store(m.Applied)
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// apply publishes what events [from, to) add, marking the platforms whose
// suites change dirty; size is the checkpoint's, against which keys'
// standing is judged.
func (p *Publisher) apply(ctx context.Context, from, to, size uint64) error {
	recount := map[cas.Digest]bool{}
	allKeys := false
	for i := from; i < to; i++ {
		ev, err := p.cfg.Ledger.Event(i)
		if err != nil {
			return err
		}
		switch e := ev.(type) {
		case *ledger.BuildRecorded:
			d, published, err := p.publishBuild(ctx, i, e)
			if err != nil {
				return err
			}
			if published {
				recount[d] = true
			}
		case *ledger.AttestationRecorded:
			if e.Verdict == ledger.VerdictReproduced {
				for _, s := range e.Subjects {
					recount[s.SHA256] = true
				}
			}
		case *ledger.KeyAdded, *ledger.KeyRevoked:
			allKeys = true
		}
	}
	if allKeys {
		if err := p.cfg.DB.View(func(txn *badger.Txn) error {
			return scanKeys(txn, pCount, func(k []byte) error {
				var d cas.Digest
				copy(d[:], k[len(pCount):])
				recount[d] = true
				return nil
			})
		}); err != nil {
			return err
		}
	}
	for d := range recount {
		if err := p.recount(d, size); err != nil {
			return err
		}
	}
	return nil
}

func scanKeys(txn *badger.Txn, prefix []byte, fn func(k []byte) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if err := fn(it.Item().KeyCopy(nil)); err != nil {
			return err
		}
	}
	return nil
}

func recordKey(platform string, d cas.Digest) []byte {
	return append(append(append(slices.Clone(pRecord), platform...), 0), d[:]...)
}

// publishBuild publishes a build's main binary if it is a .deb not yet
// published for the build's platform; it reports the original digest and
// whether a package was added.
func (p *Publisher) publishBuild(ctx context.Context, index uint64, e *ledger.BuildRecorded) (cas.Digest, bool, error) {
	if !e.Succeeded() || e.MainBinary == nil {
		return cas.Digest{}, false, nil
	}
	f := formatOf(*e.MainBinary)
	if f == nil || f == pkgFormat && p.cfg.PkgKey == nil {
		return cas.Digest{}, false, nil
	}
	a, ok := e.Artifact(*e.MainBinary)
	if !ok {
		return cas.Digest{}, false, nil
	}
	rk := recordKey(e.Platform, a.SHA256)
	var existing *Record
	if err := p.cfg.DB.View(func(txn *badger.Txn) error {
		it, err := txn.Get(rk)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		existing = &Record{}
		return it.Value(func(v []byte) error { return json.Unmarshal(v, existing) })
	}); err != nil {
		return a.SHA256, false, err
	}
	if existing != nil {
		// Published before; if by this very event (a batch applied again
		// after a failure), its count is checked again.
		return a.SHA256, existing.Index == index && existing.Skipped == "", nil
	}
	rec := Record{Platform: e.Platform, Job: e.Job, Build: e.UUID, Index: index, Path: a.Path, Original: a.SHA256, Format: f.name}
	if strings.HasSuffix(e.Platform, ReproducedSuffix) {
		// Its suite would be another platform's reproduced suite.
		rec.Skipped = "the platform's name ends in " + ReproducedSuffix + ", which names the reproduced suites"
		p.cfg.Logger.Warn("package repositories: not published", "job", e.Job, "build", e.UUID, "reason", rec.Skipped)
	} else if err := p.rewrite(ctx, f, e, &rec, a.Size); err != nil {
		var skip skipError
		if !errors.As(err, &skip) {
			return a.SHA256, false, err
		}
		rec.Skipped = skip.Error()
		p.cfg.Logger.Warn("package repositories: a ."+f.name+" main binary is not published", "job", e.Job, "build", e.UUID, "path", a.Path, "reason", rec.Skipped)
	}
	err := p.cfg.DB.Update(func(txn *badger.Txn) error {
		if err := setJSON(txn, rk, rec); err != nil {
			return err
		}
		if rec.Skipped != "" {
			return nil
		}
		if err := txn.Set(append(slices.Clone(pDirty), e.Platform...), nil); err != nil {
			return err
		}
		if err := txn.Set(append(append(slices.Clone(pByOrig), a.SHA256[:]...), e.Platform...), nil); err != nil {
			return err
		}
		if err := txn.Set(append(slices.Clone(pByServed), rec.Served[:]...), rk); err != nil {
			return err
		}
		return txn.Set(poolKey(&rec), append(rec.Served[:], binary.BigEndian.AppendUint64(nil, uint64(e.Finished.Unix()))...))
	})
	if err != nil || rec.Skipped != "" {
		return a.SHA256, false, err
	}
	if st, ok := p.pkgs[e.Platform]; ok {
		if err := st.add(&rec); err != nil {
			return a.SHA256, false, err
		}
	}
	return a.SHA256, true, nil
}

// skipError: the main binary cannot be published (not a package this
// publisher reads); recorded, never retried.
type skipError struct{ error }

// format is a package format the publisher rewrites and lists.
type format struct {
	name        string // Record.Format
	readVersion func(io.Reader) (string, error)
	repoVersion func(string, time.Time, cas.Digest) string
	rewrite     func(r io.Reader, w io.Writer, version string, size int64) error // size: the original's
	unreadable  func(error) bool                                                 // the file is not such a package
	describe    func(io.Reader, *Record) error
}

var (
	debFormat = &format{
		name: "deb",
		readVersion: func(r io.Reader) (string, error) {
			c, err := deb.ReadControl(r)
			if err != nil {
				return "", err
			}
			return c.Get("Version"), nil
		},
		repoVersion: deb.RepoVersion,
		// A .deb's data member is copied as it is: nothing unpacks.
		rewrite:    func(r io.Reader, w io.Writer, v string, _ int64) error { return deb.Rewrite(r, w, v) },
		unreadable: func(err error) bool { return errors.Is(err, deb.ErrNotDeb) || errors.Is(err, deb.ErrVersion) },
		describe: func(r io.Reader, rec *Record) error {
			c, err := deb.ReadControl(r)
			if err != nil {
				return err
			}
			rec.Package, rec.Version, rec.Arch = c.Get("Package"), c.Get("Version"), c.Get("Architecture")
			rec.Filename, rec.Control = apt.PoolName(c), string(c.Bytes())
			return nil
		},
	}
	pkgFormat = &format{
		name: "pkg",
		readVersion: func(r io.Reader) (string, error) {
			m, err := freebsd.ReadManifest(r)
			if err != nil {
				return "", err
			}
			return m.String("version"), nil
		},
		repoVersion: freebsd.RepoVersion,
		// Everything is unpacked and packed again: at most 64 times the
		// file's size (and 1 GiB for any package), so that a small
		// package that unpacks without end does not hold publishing up.
		rewrite: func(r io.Reader, w io.Writer, v string, size int64) error {
			return freebsd.RewriteLimit(r, w, v, min(freebsd.MaxUnpacked, max(1<<30, 64*size)))
		},
		unreadable: func(err error) bool {
			return errors.Is(err, freebsd.ErrNotPkg) || errors.Is(err, freebsd.ErrVersion)
		},
		describe: func(r io.Reader, rec *Record) error {
			m, err := freebsd.ReadManifest(r)
			if err != nil {
				return err
			}
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			rec.Package, rec.Version, rec.Arch = m.String("name"), m.String("version"), m.String("abi")
			rec.Filename, rec.Control = freebsd.PathOf(m), string(b)
			return nil
		},
	}
)

// formatOf is the format of a main binary by its name: .deb or .pkg.
func formatOf(path string) *format {
	switch {
	case strings.HasSuffix(path, ".deb"):
		return debFormat
	case strings.HasSuffix(path, ".pkg"):
		return pkgFormat
	}
	return nil
}

// poolKey is where a package's served digest is found by its path.
func poolKey(rec *Record) []byte {
	if rec.Format == "pkg" {
		return append(slices.Clone(pPool), "freebsd/"+rec.Filename...)
	}
	return append(slices.Clone(pPool), rec.Filename...)
}

// tracked remembers the first error reading its reader returned (other
// than io.EOF): the store's, not the package's.
type tracked struct {
	r   io.Reader
	err error
}

func (t *tracked) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// trackedW remembers the first error writing to its writer returned.
type trackedW struct {
	w   io.Writer
	err error
}

func (t *trackedW) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil && t.err == nil {
		t.err = err
	}
	return n, err
}

// errStopped: the content store stopped taking the rewritten bytes.
var errStopped = errors.New("publish: the content store stopped reading")

// rewrite stores the main binary (size bytes) rewritten under its
// repository version and fills in rec. Only a file that is no package the
// format reads gives a skipError: a failure to read or store it (a
// corrupt blob, a full disk, a shutdown) is returned as it is, to be
// retried.
func (p *Publisher) rewrite(ctx context.Context, f *format, e *ledger.BuildRecorded, rec *Record, size int64) error {
	store := p.cfg.Ledger.Store()
	open := func() (*cas.Reader, error) {
		r, err := store.Open(ctx, rec.Original)
		if errors.Is(err, cas.ErrNotFound) {
			return nil, skipError{fmt.Errorf("its bytes are not in the content store")}
		}
		return r, err
	}
	r, err := open()
	if err != nil {
		return err
	}
	in := &tracked{r: r}
	v, err := f.readVersion(in)
	r.Close()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case in.err != nil:
		return in.err
	case err != nil:
		return skipError{err}
	}
	version := f.repoVersion(v, e.Started, rec.Original)
	r, err = open()
	if err != nil {
		return err
	}
	defer r.Close()
	in = &tracked{r: r}
	pr, pw := io.Pipe()
	out := &trackedW{w: pw}
	rewritten := make(chan error, 1)
	go func() {
		err := f.rewrite(in, out, version, size)
		pw.CloseWithError(err)
		rewritten <- err
	}()
	info, err := store.Put(ctx, pr)
	pr.CloseWithError(errStopped)
	rerr := <-rewritten
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case in.err != nil: // reading the original failed
		return in.err
	case out.err != nil: // storing the rewrite failed
		if err != nil {
			return err
		}
		return out.err
	case rerr != nil && f.unreadable(rerr):
		return skipError{rerr}
	case rerr != nil:
		return rerr
	case err != nil:
		return err
	}
	served, err := store.Open(ctx, info.Digest)
	if err != nil {
		return err
	}
	err = f.describe(served, rec)
	served.Close()
	rec.Served, rec.Size = info.Digest, info.Size
	return err
}

// recount counts the distinct active keys whose attestations say they
// reproduced d's exact bytes, and marks the platforms publishing d dirty
// when the count crosses the threshold.
func (p *Publisher) recount(d cas.Digest, size uint64) error {
	var platforms []string
	var before uint32
	ck := append(slices.Clone(pCount), d[:]...)
	if err := p.cfg.DB.View(func(txn *badger.Txn) error {
		prefix := append(slices.Clone(pByOrig), d[:]...)
		if err := scanKeys(txn, prefix, func(k []byte) error {
			platforms = append(platforms, string(k[len(prefix):]))
			return nil
		}); err != nil {
			return err
		}
		it, err := txn.Get(ck)
		if err == nil {
			return it.Value(func(v []byte) error { before = binary.BigEndian.Uint32(v); return nil })
		}
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		return err
	}); err != nil || len(platforms) == 0 {
		return err
	}
	atts, err := p.cfg.Ledger.AttestationsFor(d)
	if err != nil {
		return err
	}
	keys := map[cas.Digest]bool{}
	for _, a := range atts {
		if a.Index >= size || a.Event.Verdict != ledger.VerdictReproduced || keys[a.Event.KeyID] {
			continue
		}
		st, err := p.cfg.Ledger.KeyState(a.Event.KeyID, size)
		if err != nil {
			return err
		}
		if st.Status == ledger.KeyStatusActive {
			keys[a.Event.KeyID] = true
		}
	}
	after := uint32(len(keys))
	if after == before {
		return nil
	}
	k := uint32(p.cfg.Reproduced)
	if err := p.cfg.DB.Update(func(txn *badger.Txn) error {
		if (before >= k) != (after >= k) {
			for _, pl := range platforms {
				if err := txn.Set(append(slices.Clone(pDirty), pl...), nil); err != nil {
					return err
				}
			}
		}
		return txn.Set(ck, binary.BigEndian.AppendUint32(nil, after))
	}); err != nil {
		return err
	}
	if p.counts != nil {
		p.counts[d] = after
	}
	return nil
}

// platformState is what a platform's repositories are written from: its
// published packages by their original digests.
type platformState struct {
	deb map[cas.Digest]apt.Package
	pkg map[cas.Digest]pkgEntry
}

type pkgEntry struct {
	freebsd.Package
	index uint64 // the log index of the build that first produced it
}

func (st *platformState) add(rec *Record) error {
	switch rec.Format {
	case "deb":
		c, err := deb.ParseControl([]byte(rec.Control))
		if err != nil {
			return fmt.Errorf("the stored control file of %s: %w", rec.Filename, err)
		}
		st.deb[rec.Original] = apt.Package{Control: c, Filename: rec.Filename, Size: rec.Size, SHA256: rec.Served}
	case "pkg":
		var m freebsd.Manifest
		if err := json.Unmarshal([]byte(rec.Control), &m); err != nil {
			return fmt.Errorf("the stored manifest of %s: %w", rec.Filename, err)
		}
		st.pkg[rec.Original] = pkgEntry{freebsd.Package{Manifest: m, Path: rec.Filename, Size: rec.Size, SHA256: rec.Served}, rec.Index}
	}
	return nil
}

// platformPackages returns the published packages of platform, read from
// the records once and then kept up to date by publishBuild (until a
// failed Sync drops the caches).
func (p *Publisher) platformPackages(platform string) (*platformState, error) {
	if st, ok := p.pkgs[platform]; ok {
		return st, nil
	}
	st := &platformState{deb: map[cas.Digest]apt.Package{}, pkg: map[cas.Digest]pkgEntry{}}
	err := p.cfg.DB.View(func(txn *badger.Txn) error {
		prefix := append(append(slices.Clone(pRecord), platform...), 0)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var rec Record
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &rec) }); err != nil {
				return err
			}
			if rec.Skipped == "" {
				if err := st.add(&rec); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.pkgs[platform] = st
	return st, nil
}

// reproducedCounts returns the reproducing keys of every published
// original digest, read once and then kept up to date by recount.
func (p *Publisher) reproducedCounts() (map[cas.Digest]uint32, error) {
	if p.counts != nil {
		return p.counts, nil
	}
	counts := map[cas.Digest]uint32{}
	err := p.cfg.DB.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pCount, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var d cas.Digest
			copy(d[:], it.Item().Key()[len(pCount):])
			if err := it.Item().Value(func(v []byte) error { counts[d] = binary.BigEndian.Uint32(v); return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.counts = counts
	return counts, nil
}

// FreeBSDPrefix starts the names of FreeBSD repositories among the
// suites (a platform's are "freebsd/PLATFORM/ABI" and
// "freebsd/PLATFORM-reproduced/ABI" for each ABI its packages are for).
const FreeBSDPrefix = "freebsd/"

// writeSuites rewrites a platform's repositories from the records: the
// apt suites PLATFORM and PLATFORM-reproduced if it has .deb packages, the
// FreeBSD repositories if it has .pkg ones.
func (p *Publisher) writeSuites(ctx context.Context, platform string, size uint64) error {
	st, err := p.platformPackages(platform)
	if err != nil {
		return err
	}
	counts, err := p.reproducedCounts()
	if err != nil {
		return err
	}
	k := uint32(p.cfg.Reproduced)
	if len(st.deb) > 0 {
		var all, reproduced []apt.Package
		archs := map[string]bool{}
		for _, a := range p.cfg.Archs {
			archs[a] = true
		}
		for orig, pkg := range st.deb {
			if a := pkg.Control.Get("Architecture"); a != "all" {
				archs[a] = true
			}
			all = append(all, pkg)
			if counts[orig] >= k {
				reproduced = append(reproduced, pkg)
			}
		}
		archList := slices.Sorted(mapKeys(archs))
		for _, s := range []struct {
			name string
			pkgs []apt.Package
		}{{platform, all}, {platform + ReproducedSuffix, reproduced}} {
			files, err := apt.BuildSuite(s.name, archList, s.pkgs, p.cfg.Key, p.cfg.Now(), true)
			if err != nil {
				return err
			}
			prefix := "dists/" + s.name + "/"
			renamed := map[string][]byte{}
			for name, b := range files {
				renamed[strings.TrimPrefix(name, prefix)] = b
			}
			if err := p.storeSuite(ctx, s.name, renamed, len(s.pkgs), size); err != nil {
				return err
			}
		}
	}
	if len(st.pkg) > 0 {
		key, err := p.cfg.PkgKey(true)
		if err != nil {
			return err
		}
		// pkg offers one version of a package: the newest build's. And a
		// repository holds the packages of one ABI (pkg refuses a
		// catalogue with a package of another): clients name theirs in
		// the URL, ".../freebsd/PLATFORM/${ABI}", as pkg.robur.coop.
		abis := map[string]bool{}
		for _, e := range st.pkg {
			abis[e.Manifest.String("abi")] = true
		}
		newest := func(abi string, ok func(cas.Digest) bool) []freebsd.Package {
			by := map[string]pkgEntry{}
			for orig, e := range st.pkg {
				if e.Manifest.String("abi") != abi {
					continue
				}
				name := e.Manifest.String("name")
				if cur, seen := by[name]; ok(orig) && (!seen || e.index > cur.index) {
					by[name] = e
				}
			}
			var out []freebsd.Package
			for _, e := range by {
				out = append(out, e.Package)
			}
			return out
		}
		for abi := range abis {
			for _, s := range []struct {
				name string
				pkgs []freebsd.Package
			}{
				{FreeBSDPrefix + platform + "/" + abi, newest(abi, func(cas.Digest) bool { return true })},
				{FreeBSDPrefix + platform + ReproducedSuffix + "/" + abi, newest(abi, func(d cas.Digest) bool { return counts[d] >= k })},
			} {
				files, err := freebsd.BuildRepo(s.pkgs, key)
				if err != nil {
					return err
				}
				if err := p.storeSuite(ctx, s.name, files, len(s.pkgs), size); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// storeSuite keeps a suite's files in the content store and its manifest
// under r/s/.
func (p *Publisher) storeSuite(ctx context.Context, name string, files map[string][]byte, packages int, size uint64) error {
	m := manifest{Files: map[string]fileJSON{}, Packages: packages, Size: size, Written: p.cfg.Now().UTC().Truncate(time.Second)}
	// Last-Modified has whole seconds, and clients ask If-Modified-Since:
	// a suite written again within a second must still look newer.
	if prev, ok := (*p.suites.Load())[name]; ok && !m.Written.After(prev.Written) {
		m.Written = prev.Written.Add(time.Second)
	}
	blobs := map[cas.Digest][]byte{} // architectures may share an index
	for f, b := range files {
		d := cas.Sum(b)
		blobs[d] = b
		m.Files[f] = fileJSON{d.String(), int64(len(b))}
	}
	for _, b := range blobs {
		if _, err := p.cfg.Ledger.Store().PutBytes(ctx, b); err != nil {
			return err
		}
	}
	return p.cfg.DB.Update(func(txn *badger.Txn) error {
		return setJSON(txn, append(slices.Clone(pSuite), name...), m)
	})
}

// Suites returns the names of the published apt suites, sorted.
func (p *Publisher) Suites() []string {
	var out []string
	for _, s := range slices.Sorted(mapKeys(*p.suites.Load())) {
		if !strings.HasPrefix(s, FreeBSDPrefix) {
			out = append(out, s)
		}
	}
	return out
}

// Repos returns the names of the published FreeBSD repositories
// (PLATFORM/ABI and PLATFORM-reproduced/ABI), sorted.
func (p *Publisher) Repos() []string {
	var out []string
	for _, s := range slices.Sorted(mapKeys(*p.suites.Load())) {
		if r, ok := strings.CutPrefix(s, FreeBSDPrefix); ok {
			out = append(out, r)
		}
	}
	return out
}

// SuiteInfo is what a suite lists.
type SuiteInfo struct {
	Name     string
	Packages int
	LogSize  uint64 // the log size it reflects
}

// Suite describes a published suite.
func (p *Publisher) Suite(name string) (SuiteInfo, bool) {
	m, ok := (*p.suites.Load())[name]
	return SuiteInfo{name, m.Packages, m.Size}, ok
}

// ErrNotFound: no such file in the repositories.
var ErrNotFound = errors.New("publish: no such file in the package repositories")

// Lookup resolves a path under the repositories' root to the blob holding
// it and when it last changed (for Last-Modified): "dists/SUITE/…"
// (including by-hash names of any index ever published), "pool/…", or
// "freebsd/PLATFORM[-reproduced]/ABI/{meta.conf,packagesite.pkg,data.pkg,
// All/…}".
func (p *Publisher) Lookup(path string) (cas.Digest, time.Time, error) {
	suiteFile := func(suite, name string) (cas.Digest, time.Time, bool, error) {
		m, ok := (*p.suites.Load())[suite]
		if !ok {
			return cas.Digest{}, time.Time{}, false, ErrNotFound
		}
		if f, ok := m.Files[name]; ok {
			d, err := cas.ParseDigest(f.SHA256)
			return d, m.Written, true, err
		}
		return cas.Digest{}, m.Written, false, nil
	}
	switch {
	case strings.HasPrefix(path, "dists/"):
		suite, name, ok := strings.Cut(strings.TrimPrefix(path, "dists/"), "/")
		if !ok {
			return cas.Digest{}, time.Time{}, ErrNotFound
		}
		d, written, found, err := suiteFile(suite, name)
		if found || err != nil {
			return d, written, err
		}
		// main/binary-ARCH/by-hash/SHA256/HEX: indexes are immutable
		// blobs, so any one this suite ever listed is still there.
		if dir, hex, ok := strings.Cut(name, "/by-hash/SHA256/"); ok && strings.HasPrefix(dir, "main/binary-") && !strings.Contains(hex, "/") {
			d, err := cas.ParseDigest(hex)
			if err != nil {
				return cas.Digest{}, time.Time{}, ErrNotFound
			}
			if has, err := p.cfg.Ledger.Store().Has(d); err != nil || !has {
				return cas.Digest{}, time.Time{}, errors.Join(err, ErrNotFound)
			}
			return d, time.Time{}, nil
		}
		return cas.Digest{}, time.Time{}, ErrNotFound
	case strings.HasPrefix(path, FreeBSDPrefix):
		parts := strings.SplitN(strings.TrimPrefix(path, FreeBSDPrefix), "/", 3)
		if len(parts) != 3 {
			return cas.Digest{}, time.Time{}, ErrNotFound
		}
		d, written, found, err := suiteFile(FreeBSDPrefix+parts[0]+"/"+parts[1], parts[2])
		if found || err != nil {
			return d, written, err
		}
		if strings.HasPrefix(parts[2], "All/") {
			return p.pool(FreeBSDPrefix + parts[2])
		}
		return cas.Digest{}, time.Time{}, ErrNotFound
	case strings.HasPrefix(path, "pool/"):
		return p.pool(path)
	}
	return cas.Digest{}, time.Time{}, ErrNotFound
}

// pool looks up a package file by its pool key: its digest and its
// build's finish time.
func (p *Publisher) pool(path string) (cas.Digest, time.Time, error) {
	var d cas.Digest
	var t time.Time
	err := p.cfg.DB.View(func(txn *badger.Txn) error {
		it, err := txn.Get(append(slices.Clone(pPool), path...))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			copy(d[:], v)
			if len(v) == 40 {
				t = time.Unix(int64(binary.BigEndian.Uint64(v[32:])), 0)
			}
			return nil
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return d, t, ErrNotFound
	}
	return d, t, err
}

// Provenance returns the record of the served .deb with this digest: the
// build whose main binary it was rewritten from.
func (p *Publisher) Provenance(served cas.Digest) (Record, error) {
	var rec Record
	err := p.cfg.DB.View(func(txn *badger.Txn) error {
		it, err := txn.Get(append(slices.Clone(pByServed), served[:]...))
		if err != nil {
			return err
		}
		rk, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		it, err = txn.Get(rk)
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { return json.Unmarshal(v, &rec) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return rec, ErrNotFound
	}
	return rec, err
}

// PublishedAs returns the record of the .deb with original digest orig
// on platform (published, or skipped with the reason); ErrNotFound if it
// is none (yet: see Applied).
func (p *Publisher) PublishedAs(platform string, orig cas.Digest) (Record, error) {
	var rec Record
	err := p.cfg.DB.View(func(txn *badger.Txn) error {
		it, err := txn.Get(recordKey(platform, orig))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { return json.Unmarshal(v, &rec) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return rec, ErrNotFound
	}
	return rec, err
}

// Published returns the records of a platform's packages (skipped ones
// included), in the order of their original digests, at most limit of them
// after the digest after (exclusive; zero for the first page).
func (p *Publisher) Published(platform string, after cas.Digest, limit int) ([]Record, error) {
	var out []Record
	err := p.cfg.DB.View(func(txn *badger.Txn) error {
		prefix := append(append(slices.Clone(pRecord), platform...), 0)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		start := prefix
		if !after.IsZero() {
			start = append(append(slices.Clone(prefix), after[:]...), 0)
		}
		for it.Seek(start); it.Valid() && len(out) < limit; it.Next() {
			var rec Record
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &rec) }); err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}
