package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger/tree"
)

// projectionVersion changes whenever the projection layout below changes;
// Open then replays the log into the new layout.
const projectionVersion = 12

// Projection keys. Every projection is a set of badger keys under "p/",
// written in the same transaction as the event they derive from:
//
//	p/meta                       version(8) ‖ applied size(8)
//	p/job/<job>                  index(8) of the job's latest job_defined
//	p/jb/<job>\0<order(16)>                job → builds, newest first
//	p/jp/<job>\0<platform>\0<order(16)>    job and platform → builds, newest first
//	p/f/<order(16)>                        failed builds (not exited 0), newest first
//	p/fp/<platform>\0<order(16)>           failed builds of a platform, newest first
//	p/ls/<job>\0<platform>\0<order(16)>   successful builds (exited 0 and
//	                                       naming a main binary), newest first
//	p/b/<uuid(16)>               index(8) of build_recorded
//	p/h/<sha256(32)><index(8)><kind(1)>[<path>]  every build artifact and
//	                             attestation subject with this digest (see
//	                             hashindex.go): kind 'a' is an artifact of
//	                             the build at index, the key ends in its path
//	                             and the value is the build's summary
//	                             (hitValue); 's' an attestation naming the
//	                             digest, 'x' a "differs" verdict on a build
//	                             that recorded it (no value)
//	p/hd/<sha256(32)>            the digest's head: its newest build and,
//	                             while they are few, its hash index entries
//	                             (see hashhead.go)
//	p/i/<repro key(32)><index(8)>          reproducibility key (ReproKey) → builds
//	p/e/<envelope(32)>           index(8) of attestation_recorded
//	p/ab/<uuid(16)><index(8)>    build → attestations of it, in log order
//	p/k/<key id(32)><index(8)>   state(1): 1 added, 2 revoked
//	p/kn/<name>                  key id(32) most recently added under name
//
// Everything known about a digest (builds that produced it, attestations
// naming it) sits under one key prefix in log order, so a reverse lookup
// is one seek and a short scan, pageable by log index, and recording one
// more build of a digest writes one small key whatever the digest's
// history (BenchmarkHashIndexAppend).
// A build's "order" is MaxUint64 minus its start time in Unix nanoseconds,
// then MaxUint64 minus its log index (8 bytes each, big-endian), so a
// forward scan yields the newest start first and, between equal starts,
// the later log entry first; the smallest order is the latest build.
var (
	pMeta   = []byte("p/meta")
	pJob    = []byte("p/job/")
	pJobB   = []byte("p/jb/")
	pJobP   = []byte("p/jp/")
	pFailed = []byte("p/f/")
	pFailP  = []byte("p/fp/")
	pLatOK  = []byte("p/ls/")
	pBuild  = []byte("p/b/")
	pHash   = []byte("p/h/")
	pHashHd = []byte("p/hd/")
	pInput  = []byte("p/i/")
	pEnv    = []byte("p/e/")
	pAttB   = []byte("p/ab/")
	pKey    = []byte("p/k/")
	pKeyN   = []byte("p/kn/")
	pAll    = []byte("p/")
)

const (
	hashArtifact    byte = 'a'
	hashSubject     byte = 's'
	hashDisputed    byte = 'x'
	keyStateAdded   byte = 1
	keyStateRevoked byte = 2
)

func key(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// buildOrder is the sort key of build e at index (see the layout above).
func buildOrder(e *BuildRecorded, index uint64) []byte {
	return append(u64(math.MaxUint64-uint64(e.Started.UnixNano())), u64(math.MaxUint64-index)...)
}

// orderIndex returns the log index at the end of a key or value ending in
// an order.
func orderIndex(k []byte) uint64 { return math.MaxUint64 - binary.BigEndian.Uint64(k[len(k)-8:]) }

// project writes the projection keys that event ev at index derives.
func (l *Ledger) project(txn *badger.Txn, index uint64, ev Event) error {
	idx := u64(index)
	set := func(k, v []byte) error { return txn.Set(k, v) }
	switch e := ev.(type) {
	case *JobDefined:
		return set(key(pJob, []byte(e.Job)), idx)
	case *BuildRecorded:
		order := buildOrder(e, index)
		job, platform := []byte(e.Job), []byte(e.Platform)
		if err := set(key(pJobB, job, []byte{0}, order), nil); err != nil {
			return err
		}
		if err := set(key(pJobP, job, []byte{0}, platform, []byte{0}, order), nil); err != nil {
			return err
		}
		if !e.Succeeded() {
			if err := set(key(pFailed, order), nil); err != nil {
				return err
			}
			if err := set(key(pFailP, platform, []byte{0}, order), nil); err != nil {
				return err
			}
		}
		if err := projectLatest(txn, e, order); err != nil {
			return err
		}
		if err := set(key(pBuild, e.UUID[:]), idx); err != nil {
			return err
		}
		for _, a := range e.Artifacts {
			if err := l.setHashEntry(txn, a.SHA256, index, hashArtifact, a.Path, hitValue(e, a), order); err != nil {
				return err
			}
		}
		rk, ok := ReproKey(e)
		if !ok {
			return nil // nothing to compare reproductions on
		}
		return set(key(pInput, rk[:], idx), nil)
	case *KeyAdded:
		if err := set(key(pKey, e.KeyID[:], idx), append([]byte{keyStateAdded}, e.Name...)); err != nil {
			return err
		}
		return set(key(pKeyN, []byte(e.Name)), e.KeyID[:])
	case *KeyRevoked:
		return set(key(pKey, e.KeyID[:], idx), []byte{keyStateRevoked})
	case *AttestationRecorded:
		for _, s := range e.Subjects {
			if err := l.setHashEntry(txn, s.SHA256, index, hashSubject, "", nil, nil); err != nil {
				return err
			}
		}
		if e.Build != nil {
			if err := set(key(pAttB, e.Build[:], idx), nil); err != nil {
				return err
			}
			if err := l.projectDisputes(txn, index, e); err != nil {
				return err
			}
		}
		return set(key(pEnv, e.Envelope[:]), idx)
	}
	return fmt.Errorf("ledger: unknown event type %T", ev)
}

// projectDisputes files a "differs" attestation under the recorded digest of
// every artifact the rebuilder got other bytes for, so that a reverse lookup
// of the recorded digest shows who could not reproduce it.
func (l *Ledger) projectDisputes(txn *badger.Txn, index uint64, e *AttestationRecorded) error {
	if e.Verdict != VerdictDiffers {
		return nil
	}
	bi, err := getIndex(txn, key(pBuild, e.Build[:]))
	if err != nil {
		return fmt.Errorf("attestation %d: build %s: %w", index, e.Build, err)
	}
	b, err := eventAs[*BuildRecorded](l, txn, bi)
	if err != nil {
		return err
	}
	for _, s := range e.Subjects {
		if a, ok := b.Artifact(s.Name); ok && a.SHA256 != s.SHA256 {
			if err := l.setHashEntry(txn, a.SHA256, index, hashDisputed, "", nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func getIndex(txn *badger.Txn, k []byte) (uint64, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	var idx uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("ledger: corrupt index record %q", k)
		}
		idx = binary.BigEndian.Uint64(v)
		return nil
	})
	return idx, err
}

func (l *Ledger) projectionState() (applied uint64, version uint64, err error) {
	err = l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(pMeta)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 16 {
				return errors.New("ledger: corrupt projection metadata")
			}
			version, applied = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
			return nil
		})
	})
	return applied, version, err
}

func (l *Ledger) setApplied(txn *badger.Txn, size uint64) error {
	return txn.Set(pMeta, append(u64(projectionVersion), u64(size)...))
}

// Replay drops every projection and rebuilds it from the log alone, checking
// on the way that every stored event hashes to its leaf (the recomputed
// root must equal the tree's). Appends wait while it runs.
func (l *Ledger) Replay(ctx context.Context) error {
	l.commitMu.Lock()
	defer l.commitMu.Unlock()
	return l.replay(ctx)
}

// ErrCorrupt is wrapped by errors about stored data that does not match the
// log (an event that does not hash to its leaf, a root that differs).
var ErrCorrupt = errors.New("ledger: store corrupt")

// replayBatch is how many events replay projects per transaction: well
// below what badger takes in one (about 10 MB of writes; a build with
// four artifacts writes about 1.5 KB of projections), so that a
// transaction is seldom too big and its events projected twice.
const replayBatch = 2048

func (l *Ledger) replay(ctx context.Context) (err error) {
	if err := l.checkSpace(); err != nil {
		return err // nothing dropped: the store takes no writes now (a full disk)
	}
	defer func() {
		if err != nil {
			l.fail(fmt.Errorf("projections are incomplete after a failed replay (%v); reopen the ledger to rebuild them", err))
		}
	}()
	// Dropping p/ also drops p/meta: until the replay below completes and
	// the root checks out, Open sees no valid metadata and replays again.
	l.invalidateHashes([]Event{&AttestationRecorded{}}) // all of them
	defer l.invalidateHashes([]Event{&AttestationRecorded{}})
	if err := l.db.DropPrefix(pAll); err != nil {
		return err
	}
	// From nothing, a digest not filed yet in this replay has no head:
	// its read is skipped (appends wait, so only replay projects now).
	l.freshHeads = newDigestFilter()
	defer func() { l.freshHeads = nil }()
	size, root := l.tree.Head()
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	txn := l.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	ahead := l.decodeAhead(dctx, size)
	first := uint64(0) // first event projected in txn
	for i := uint64(0); i < size; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var d decodedEvent
		select {
		case out, ok := <-ahead:
			if !ok {
				return ctx.Err()
			}
			select {
			case d = <-out:
			case <-ctx.Done():
				return ctx.Err()
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		ev, data, err := d.ev, d.data, d.err
		if err != nil {
			return err
		}
		leaf := tree.LeafHash(data)
		if err := rng.Append(leaf[:], nil); err != nil {
			return err
		}
		if i-first >= replayBatch {
			// Commit before the transaction is too big for badger, which
			// would mean projecting its events again (below).
			if err := l.checkSpace(); err != nil {
				return err
			}
			if err := txn.Commit(); err != nil {
				return err
			}
			txn, first = l.db.NewTransaction(true), i
		}
		err = l.project(txn, i, ev)
		if errors.Is(err, badger.ErrTxnTooBig) && i > first {
			// Event i does not fit: redo events first…i-1 in a fresh
			// transaction (they fitted before), commit it, and start the
			// next one with event i. Projections are applied exactly once.
			txn.Discard()
			txn = l.db.NewTransaction(true)
			for j := first; j < i; j++ {
				prev, _, err := l.readEvent(txn, j)
				if err != nil {
					return err
				}
				if err := l.project(txn, j, prev); err != nil {
					return fmt.Errorf("projecting event %d: %w", j, err)
				}
			}
			// Rebuilding every projection writes as much as they hold:
			// the disk is checked before each commit, not only at the
			// start.
			if err := l.checkSpace(); err != nil {
				return err
			}
			if err := txn.Commit(); err != nil {
				return err
			}
			txn, first = l.db.NewTransaction(true), i
			err = l.project(txn, i, ev)
		}
		if err != nil {
			return fmt.Errorf("projecting event %d: %w", i, err)
		}
	}
	if err := l.checkSpace(); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	got := tree.EmptyRoot()
	if size > 0 {
		h, err := rng.GetRootHash(nil)
		if err != nil {
			return err
		}
		got = [32]byte(h)
	}
	if got != root {
		return fmt.Errorf("%w: events hash to root %x, tree says %x at size %d", ErrCorrupt, got, root, size)
	}
	return l.db.Update(func(txn *badger.Txn) error { return l.setApplied(txn, size) })
}

// decodedEvent is an event read and decoded ahead of its projection.
type decodedEvent struct {
	ev   Event
	data []byte
	err  error
}

// decodeAhead reads events 0…size-1 in order and decodes them (Decode,
// every check) on all cores, handing them on in log order: each value of
// the returned channel is the channel its event arrives on. At most 1,024
// events are in flight, so memory does not grow with the log. Reads come
// from snapshots of the store (replay writes projections only, never
// events), renewed every 65,536 events so none is held for long.
func (l *Ledger) decodeAhead(ctx context.Context, size uint64) <-chan chan decodedEvent {
	const inFlight = 1024
	order := make(chan chan decodedEvent, inFlight)
	type job struct {
		i    uint64
		data []byte
		err  error
		out  chan decodedEvent
	}
	jobs := make(chan job, inFlight)
	workers := max(runtime.GOMAXPROCS(0), 1)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				if j.err != nil {
					j.out <- decodedEvent{err: j.err}
					continue
				}
				ev, err := Decode(j.data)
				if err != nil {
					err = fmt.Errorf("%w: event %d: %v", ErrCorrupt, j.i, err)
				}
				j.out <- decodedEvent{ev: ev, data: j.data, err: err}
			}
		})
	}
	go func() {
		defer func() { close(jobs); wg.Wait(); close(order) }()
		var rtxn *badger.Txn
		defer func() {
			if rtxn != nil {
				rtxn.Discard()
			}
		}()
		for i := uint64(0); i < size; i++ {
			if i%65536 == 0 {
				if rtxn != nil {
					rtxn.Discard()
				}
				rtxn = l.db.NewTransaction(false)
			}
			j := job{i: i, out: make(chan decodedEvent, 1)}
			d, err := eventDigest(rtxn, i)
			if err == nil {
				if j.data, err = l.store.GetTxn(rtxn, d); err != nil {
					err = fmt.Errorf("event %d: %w", i, err)
				}
			}
			j.err = err
			select {
			case order <- j.out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	return order
}

// readEvent loads and fully decodes (Decode) the event at index.
func (l *Ledger) readEvent(txn *badger.Txn, i uint64) (Event, []byte, error) {
	return l.readEventWith(txn, i, Decode)
}

func (l *Ledger) readEventWith(txn *badger.Txn, i uint64, decode func([]byte) (Event, error)) (Event, []byte, error) {
	d, err := eventDigest(txn, i)
	if err != nil {
		return nil, nil, err
	}
	data, err := l.store.GetTxn(txn, d)
	if err != nil {
		return nil, nil, fmt.Errorf("event %d: %w", i, err)
	}
	ev, err := decode(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: event %d: %v", ErrCorrupt, i, err)
	}
	return ev, data, nil
}

// KeyState is a key's standing at a given log index.
type KeyState struct {
	KeyID     cas.Digest
	Name      string
	Status    KeyStatus
	AddedAt   uint64 // log index of key_added (if not unknown)
	RevokedAt uint64 // log index of key_revoked (if revoked)
}

// keyStateTxn folds the key's history up to (not including) index at.
func keyStateTxn(txn *badger.Txn, id cas.Digest, at uint64) (KeyState, error) {
	st := KeyState{KeyID: id, Status: KeyStatusUnknown}
	prefix := key(pKey, id[:])
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		idx := binary.BigEndian.Uint64(k[len(prefix):])
		if idx >= at {
			break
		}
		var state byte
		if err := it.Item().Value(func(v []byte) error {
			if len(v) < 1 {
				return fmt.Errorf("ledger: corrupt key state %x", k)
			}
			state = v[0]
			if state == keyStateAdded {
				st.Name = string(v[1:])
			}
			return nil
		}); err != nil {
			return st, err
		}
		switch state {
		case keyStateAdded:
			st.Status, st.AddedAt = KeyStatusActive, idx
		case keyStateRevoked:
			st.Status, st.RevokedAt = KeyStatusRevoked, idx
		}
	}
	return st, nil
}

// keyByName returns the state of the key most recently added under name.
func keyByName(txn *badger.Txn, name string, at uint64) (KeyState, error) {
	item, err := txn.Get(key(pKeyN, []byte(name)))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return KeyState{Name: name, Status: KeyStatusUnknown}, nil
	}
	if err != nil {
		return KeyState{}, err
	}
	var id cas.Digest
	if err := item.Value(func(v []byte) error {
		if len(v) != len(id) {
			return fmt.Errorf("ledger: corrupt key name record %q", name)
		}
		copy(id[:], v)
		return nil
	}); err != nil {
		return KeyState{}, err
	}
	return keyStateTxn(txn, id, at)
}
