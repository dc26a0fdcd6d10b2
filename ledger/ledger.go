// Package ledger is the domain core of buildledger: the append-only log of
// build, key and attestation events, its projections, and replay.
//
// Appending an event (Append) encodes it canonically (see Encode and the
// JSON Schemas in schemas/event/), stores its bytes in the content-addressed
// store, makes it the next leaf of the RFC 6962 transparency log kept in
// package ledger/tree, updates every projection and signs a new C2SP
// checkpoint — all in one badger transaction, so either all of it happens
// or none. Concurrent appenders are grouped: a single committer goroutine
// takes every request waiting at the time into one transaction and one
// sync (group commit), and an Append returns only after that sync.
//
// The projections (job → builds, latest build per job and platform, build
// UUID → build, artifact digest → builds, reproducibility key → builds,
// subject digest → attestations, key id → key state by log index) are
// derived from the log alone: Replay drops and rebuilds them, re-verifying
// every event against the Merkle tree, and must produce identical keys and
// values (TestReplayIdentical). TestCrashRecovery kills an appending child
// process with SIGKILL and checks that every acknowledged event and every
// checkpoint handed out survive.
//
// Reproducibility is judged on ReproKey: two builds had the same inputs
// when their opam-switch, build-environment and system-packages files
// (each either missing or present with the same digest) and their job
// script are the same; the job name and platform are labels and do not
// count. Only builds that exited 0 are compared (ReproductionsOf).
// builder-web's input_id (Inputs.ID, over the three digests alone, a
// missing file counting as zeros) stays in every build event but is not
// used to compare. TestReproductionsDifferentScripts: builds of two jobs
// on one host are not "same inputs, different output".
package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger/event"
	"github.com/buildledger/buildledger/ledger/tree"
)

// Sentinel errors; callers test with errors.Is. Messages of the wrapping
// errors say what was wrong in terms a submitter can act on.
var (
	// ErrNotFound: no such build, event, job, key or hash.
	ErrNotFound = fmt.Errorf("ledger: %w", fs.ErrNotExist)
	// ErrConflict: the event contradicts the log (a build UUID recorded
	// twice, a key added twice).
	ErrConflict = errors.New("ledger: conflict")
	// ErrRejected: the event is well-formed but not acceptable now (a build
	// for an undefined job, an attestation by an unknown or revoked key, a
	// revoked key added again).
	ErrRejected = errors.New("ledger: rejected")
	// ErrClosed: the ledger was closed.
	ErrClosed = errors.New("ledger: closed")
	// ErrUnavailable: a commit or replay failed; the ledger refuses appends
	// until it is reopened (which rebuilds its state from the store).
	ErrUnavailable = errors.New("ledger: unavailable")
)

// Config configures Open. Origin and Signer are required.
type Config struct {
	// Origin is the first line of every checkpoint, e.g.
	// "builds.example.org/ledger".
	Origin string
	// Signer signs checkpoints (see GenerateLogKey, note.NewSigner).
	Signer note.Signer
	// MaxBatch bounds how many appends share one commit. Default 1024.
	MaxBatch int
	// EventCache is how many decoded events reads keep in memory
	// (about 1 KB each). Default 131072.
	EventCache int
	// GC configures the periodic value-log garbage collection (see
	// GCConfig); the zero value collects every 10 minutes.
	GC GCConfig
	// Backend, if set, is the log of record the ledger writes through
	// (see Backend); nil keeps the log in the embedded tree only.
	Backend Backend
	// ReplicaOf, if set, is the verifier key (signed-note form) of the
	// primary ledger this one replicates (see Replicate): the ledger then
	// takes no appends, serves the primary's checkpoints, and Origin and
	// Signer are not used.
	ReplicaOf string
	// CheckSpace, if set, is asked before every write (append, catch-up,
	// replication); its error refuses the write unchanged, before anything
	// is written. cmd/ledger passes a free-space check (internal/diskspace):
	// badger dies of SIGBUS, not an error, when the disk fills under it.
	CheckSpace func() error
}

// Ledger is an open ledger. It is safe for concurrent use.
type Ledger struct {
	db        *badger.DB
	store     *cas.Store
	tree      *tree.Tree
	backend   Backend
	replicaOf string
	pending   atomic.Bool // a batch sent to the backend is not committed yet
	origin    string
	signer    note.Signer
	max       int

	// space is Config.CheckSpace, or nil.
	space func() error

	reqs    chan *request
	quit    chan struct{}
	done    chan struct{}
	closing sync.Once
	gc      gcLoop
	// commitMu is held by the committer for each commit and by Replay.
	commitMu sync.Mutex
	cp       atomic.Pointer[Checkpoint]
	failed   atomic.Pointer[error]
	stats    stats // see Metrics
	// events caches decoded events by the digest of their bytes (see
	// eventTxn).
	events *lru.Cache[cas.Digest, Event]
	// hashes caches reverse lookups; hashGen counts the commits that
	// invalidated some (see Hash).
	hashes *lru.Cache[cas.Digest, HashInfo]
	// freshHeads is set while replay rebuilds the projections (commitMu
	// held): see fileHead.
	freshHeads *digestFilter
	// verifiers caches the attest.Verifier of each registered key by id.
	verifiers sync.Map
	hashMu    sync.Mutex
	hashGen   uint64
}

// fail puts the ledger in the failed state: appends are refused from now on.
func (l *Ledger) fail(err error) {
	err = fmt.Errorf("%w: %v", ErrUnavailable, err)
	l.failed.CompareAndSwap(nil, &err)
}

// Err returns why the ledger refuses appends, or nil.
func (l *Ledger) Err() error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Receipt acknowledges a durable append.
type Receipt struct {
	// Index is the event's leaf index in the log.
	Index uint64
	// LeafHash is the RFC 6962 leaf hash of the event bytes.
	LeafHash [32]byte
	// Digest is the SHA-256 of the event bytes, its CAS name.
	Digest cas.Digest
	// Checkpoint covers the event (its size is greater than Index).
	Checkpoint *Checkpoint
	// Existing is true when the same event was already in the log (an
	// identical job definition or attestation envelope) and nothing was
	// appended; Index is then the earlier event's.
	Existing bool
}

type request struct {
	ev        Event
	ifMissing bool // job_defined: keep an existing definition; build_recorded: define a missing job
	data      []byte
	// blob and leaf are data's stored record and leaf hash, computed by
	// prepare on the appender's goroutine rather than the committer's.
	blob     cas.Inline
	leaf     [32]byte
	prepared bool
	// job is the job_defined event written just before a build_recorded
	// one whose job is not defined yet (ifMissing), prepared.
	job   *request
	reply chan result
}

// prepare computes what writing req needs from its bytes alone: the stored
// blob and the leaf hash.
func (l *Ledger) prepare(req *request) error {
	blob, err := l.store.PrepareInline(req.data)
	if err != nil {
		return err
	}
	req.blob, req.leaf, req.prepared = blob, tree.LeafHash(req.data), true
	return nil
}

type result struct {
	r   Receipt
	err error
}

// Open opens the ledger stored in db, whose CAS is store. It checks that the
// projections are up to date with the log and replays them if not (first
// start after a projection format change).
func Open(db *badger.DB, store *cas.Store, cfg Config) (*Ledger, error) {
	if cfg.ReplicaOf != "" {
		if cfg.Backend != nil {
			return nil, errors.New("ledger: a replica has no log backend of its own")
		}
		cfg.Origin = originOf(cfg.ReplicaOf)
	} else if cfg.Origin == "" || cfg.Signer == nil {
		return nil, errors.New("ledger: Config needs Origin and Signer")
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1024
	}
	if cfg.EventCache <= 0 {
		cfg.EventCache = 1 << 17
	}
	events, err := lru.New[cas.Digest, Event](cfg.EventCache)
	if err != nil {
		return nil, err
	}
	hashes, err := lru.New[cas.Digest, HashInfo](1 << 16)
	if err != nil {
		return nil, err
	}
	tr, err := tree.Open(db)
	if err != nil {
		return nil, err
	}
	l := &Ledger{
		db: db, store: store, tree: tr, backend: cfg.Backend, replicaOf: cfg.ReplicaOf, space: cfg.CheckSpace, origin: cfg.Origin, signer: cfg.Signer, max: cfg.MaxBatch,
		reqs: make(chan *request, cfg.MaxBatch), quit: make(chan struct{}), done: make(chan struct{}),
		events: events, hashes: hashes,
	}
	applied, version, err := l.projectionState()
	if err != nil {
		return nil, err
	}
	if version != projectionVersion || applied != tr.Size() {
		if err := l.replay(context.Background()); err != nil {
			return nil, fmt.Errorf("ledger: rebuilding projections: %w", err)
		}
	}
	var cp *Checkpoint
	if l.replicaOf != "" {
		cp, err = l.openReplicaCheckpoint()
	} else {
		size, root := tr.Head()
		cp, err = signCheckpoint(l.signer, l.origin, size, root)
	}
	if err != nil {
		return nil, err
	}
	l.cp.Store(cp)
	if l.backend != nil {
		if err := l.openBackend(); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
	}
	go l.commitLoop()
	l.startGC(cfg.GC)
	return l, nil
}

// Close stops accepting appends, waits for the ones in progress and returns.
// It does not close the badger database or the store.
func (l *Ledger) Close() error {
	l.closing.Do(func() { close(l.quit) })
	<-l.done
	l.stopGC()
	return nil
}

// Checkpoint returns the latest signed checkpoint.
func (l *Ledger) Checkpoint() *Checkpoint { return l.cp.Load() }

// Origin returns the log's origin line.
func (l *Ledger) Origin() string { return l.origin }

// Size returns the number of events in the log.
func (l *Ledger) Size() uint64 { return l.tree.Size() }

// Store returns the content-addressed store holding event and artifact bytes.
func (l *Ledger) Store() *cas.Store { return l.store }

// Tree returns the Merkle tree (proofs, tiles).
func (l *Ledger) Tree() *tree.Tree { return l.tree }

// Append validates e, appends it durably and returns its receipt. It
// returns an *InvalidEventError for a malformed event, and errors wrapping
// ErrConflict, ErrRejected or ErrNotFound when the log's state forbids it.
func (l *Ledger) Append(ctx context.Context, e Event) (Receipt, error) {
	return l.append(ctx, e, false)
}

// DefineJob appends a job_defined event for job unless the job is already
// defined, in which case its definition is kept and its receipt returned
// (Existing). Uploads use it so a build's first upload creates its job.
func (l *Ledger) DefineJob(ctx context.Context, job string) (Receipt, error) {
	return l.append(ctx, &JobDefined{Job: job}, true)
}

// RecordBuild appends build b, defining its job first when the job is not
// defined yet. Both events are one operation: they land in the same
// transaction, and if the build is refused (a duplicate UUID, an invalid
// field) neither reaches the log. Uploads use it, so a build's first upload
// creates its job and a refused upload leaves nothing behind.
func (l *Ledger) RecordBuild(ctx context.Context, b *BuildRecorded) (Receipt, error) {
	return l.append(ctx, b, true)
}

func (l *Ledger) append(ctx context.Context, e Event, ifMissing bool) (Receipt, error) {
	defer l.stats.appended(now())
	if l.replicaOf != "" {
		return Receipt{}, ErrReadOnly
	}
	if err := l.checkSpace(); err != nil {
		return Receipt{}, err
	}
	if err := l.Err(); err != nil {
		return Receipt{}, err
	}
	norm, data, err := event.Canonical(e)
	if err != nil {
		return Receipt{}, err
	}
	if err := admit(norm); err != nil {
		return Receipt{}, err
	}
	req := &request{ev: norm, data: data, ifMissing: ifMissing, reply: make(chan result, 1)}
	if err := l.prepare(req); err != nil {
		return Receipt{}, err
	}
	if b, ok := norm.(*BuildRecorded); ok && ifMissing {
		job := &request{}
		if job.ev, job.data, err = event.Canonical(&JobDefined{Job: b.Job}); err != nil {
			return Receipt{}, err
		}
		if err := l.prepare(job); err != nil {
			return Receipt{}, err
		}
		req.job = job
	}
	select {
	case <-l.quit:
		return Receipt{}, ErrClosed
	case <-ctx.Done():
		return Receipt{}, ctx.Err()
	case l.reqs <- req:
	}
	// Once queued the append will be decided; wait for it even if ctx ends,
	// so a caller never mistakes a durable append for a failed one.
	select {
	case res := <-req.reply:
		return res.r, res.err
	case <-l.done:
		// The committer answers before it exits, so an answer, if any,
		// is already waiting.
		select {
		case res := <-req.reply:
			return res.r, res.err
		default:
			return Receipt{}, ErrClosed
		}
	}
}

func (l *Ledger) commitLoop() {
	defer close(l.done)
	batch := make([]*request, 0, l.max)
	for {
		var first *request
		select {
		case first = <-l.reqs:
		case <-l.quit:
			// Decide whatever is still queued, then stop.
			for {
				select {
				case r := <-l.reqs:
					r.reply <- result{err: ErrClosed}
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	drain:
		for len(batch) < l.max {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		l.commitMu.Lock()
		l.commit(batch)
		l.stats.committed(len(batch))
		l.commitMu.Unlock()
	}
}

// commit writes as many requests of batch as fit into one transaction,
// answering each, and recurses on the rest.
func (l *Ledger) commit(batch []*request) {
	for len(batch) > 0 {
		n := l.commitOnce(batch)
		batch = batch[n:]
	}
}

// commitOnce commits a prefix of batch in one transaction and returns its
// length (at least 1: a request that alone is too big is answered with an
// error).
func (l *Ledger) commitOnce(batch []*request) int {
	if l.backend != nil && l.pending.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), backendTimeout)
		err := l.resolvePending(ctx)
		cancel()
		if err != nil {
			for _, req := range batch {
				req.reply <- result{err: fmt.Errorf("%w: an earlier batch is not settled: %v", ErrBackend, err)}
			}
			return len(batch)
		}
	}
	txn := l.db.NewTransaction(true)
	defer txn.Discard()
	tb := l.tree.Begin()
	type done struct {
		req *request
		r   Receipt
		err error
		job *request // the job_defined written just before req, if any
	}
	out := make([]done, 0, len(batch))
	n := len(batch)
	for i, req := range batch {
		existing, err := l.check(txn, req, tb.Size())
		if err != nil {
			out = append(out, done{req: req, err: err})
			continue
		}
		if existing >= 0 {
			r, err := l.receiptFor(txn, uint64(existing))
			out = append(out, done{req: req, r: r, err: err})
			continue
		}
		job, err := l.missingJob(txn, req)
		var r Receipt
		if err == nil && job != nil {
			_, err = l.write(txn, tb, job)
		}
		if err == nil {
			r, err = l.write(txn, tb, req)
		}
		if err != nil {
			// The transaction now holds part of this request: never commit
			// it. Commit the requests before it (answering all of them)
			// and let the caller retry from here.
			if i > 0 {
				txn.Discard()
				l.commit(batch[:i])
				return i
			}
			if errors.Is(err, badger.ErrTxnTooBig) {
				err = invalid(req.ev.Kind(), "event of %d bytes is too large to commit", len(req.data))
			}
			req.reply <- result{err: fmt.Errorf("ledger: append failed: %w", err)}
			return 1
		}
		out = append(out, done{req: req, r: r, job: job})
	}
	size := tb.Size()
	root, err := tb.Root()
	var cp *Checkpoint
	if err == nil {
		cp, err = signCheckpoint(l.signer, l.origin, size, root)
	}
	if err == nil && size != l.tree.Size() {
		err = l.setApplied(txn, size)
		if err == nil {
			err = txn.Set(keyCheckpoint, cp.Note)
		}
		if err == nil && l.backend != nil {
			var leaves [][]byte
			for _, d := range out {
				if d.err == nil && !d.r.Existing {
					if d.job != nil {
						leaves = append(leaves, d.job.data)
					}
					leaves = append(leaves, d.req.data)
				}
			}
			var retry bool
			if retry, err = l.integrate(l.tree.Size(), leaves, root); retry {
				txn.Discard()
				return l.commitOnce(batch[:n])
			}
			if err != nil {
				err = fmt.Errorf("%w: %v", ErrBackend, err)
			} else {
				err = txn.Delete(keyPending) // settled with this commit
			}
		}
	}
	if err == nil {
		if l.Err() != nil {
			err = l.Err()
		} else if err = txn.Commit(); err != nil {
			// badger may have applied some of the writes before failing:
			// the in-memory state can no longer be trusted.
			l.fail(fmt.Errorf("commit failed: %v", err))
		}
	}
	if err == nil {
		if err = l.tree.Install(tb); err != nil {
			l.fail(err)
		}
		if l.backend != nil {
			l.pending.Store(false)
		}
	}
	if err != nil {
		for _, d := range out {
			if d.err == nil {
				d.err = fmt.Errorf("ledger: commit failed: %w", err)
			}
			d.req.reply <- result{err: d.err}
		}
		return n
	}
	var committed []Event
	for _, d := range out {
		if d.err == nil && !d.r.Existing {
			if d.job != nil {
				committed = append(committed, d.job.ev)
			}
			committed = append(committed, d.req.ev)
		}
	}
	l.invalidateHashes(committed)
	l.cp.Store(cp)
	for _, d := range out {
		if d.err == nil && d.r.Checkpoint == nil {
			d.r.Checkpoint = cp
		}
		d.req.reply <- result{r: d.r, err: d.err}
	}
	return n
}

// missingJob returns the job_defined request to write before req: for a
// build recorded with RecordBuild whose job is not defined yet (also not by
// an earlier request of this transaction), else nil.
func (l *Ledger) missingJob(txn *badger.Txn, req *request) (*request, error) {
	b, ok := req.ev.(*BuildRecorded)
	if !ok || req.job == nil {
		return nil, nil
	}
	_, err := getIndex(txn, key(pJob, []byte(b.Job)))
	if errors.Is(err, ErrNotFound) {
		return req.job, nil
	}
	return nil, err
}

// write stores an accepted event, its leaf and its projections in txn.
func (l *Ledger) write(txn *badger.Txn, tb *tree.Batch, req *request) (Receipt, error) {
	if !req.prepared {
		if err := l.prepare(req); err != nil {
			return Receipt{}, err
		}
	}
	if err := l.store.PutInlineTxn(txn, req.blob); err != nil {
		return Receipt{}, err
	}
	digest, leaf := req.blob.Digest, req.leaf
	index, err := tb.Add(txn, leaf)
	if err != nil {
		return Receipt{}, err
	}
	if err := txn.Set(eventKey(index), digest[:]); err != nil {
		return Receipt{}, err
	}
	if err := l.project(txn, index, req.ev); err != nil {
		return Receipt{}, err
	}
	return Receipt{Index: index, LeafHash: leaf, Digest: digest}, nil
}

// receiptFor answers an idempotent append with the earlier event.
func (l *Ledger) receiptFor(txn *badger.Txn, index uint64) (Receipt, error) {
	d, err := eventDigest(txn, index)
	if err != nil {
		return Receipt{}, err
	}
	data, err := l.store.GetTxn(txn, d)
	if err != nil {
		return Receipt{}, err
	}
	r := Receipt{Index: index, LeafHash: tree.LeafHash(data), Digest: d, Existing: true}
	if index < l.tree.Size() {
		r.Checkpoint = l.cp.Load()
	}
	return r, nil
}

var keyCheckpoint = []byte("l/checkpoint")

func eventKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("e/"), index)
}

func eventDigest(txn *badger.Txn, index uint64) (cas.Digest, error) {
	item, err := txn.Get(eventKey(index))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return cas.Digest{}, fmt.Errorf("event %d: %w", index, ErrNotFound)
	}
	if err != nil {
		return cas.Digest{}, err
	}
	var d cas.Digest
	err = item.Value(func(v []byte) error {
		if len(v) != len(d) {
			return fmt.Errorf("ledger: corrupt event record %d", index)
		}
		copy(d[:], v)
		return nil
	})
	return d, err
}

// digest is the CAS digest of req's bytes.
func (req *request) digest() cas.Digest {
	if req.prepared {
		return req.blob.Digest
	}
	return cas.Sum(req.data)
}
