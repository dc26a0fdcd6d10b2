// Package attlog keeps the ledger's attestation log: a Rekor v2 style
// transparency log (package attest/rekorv2) whose entries are the
// attestation envelopes the ledger logged, in the order of its event log,
// each as a hashedrekord 0.0.2 entry. Sigstore clients verify a bundle of
// an attestation with its entry's inclusion proof and a checkpoint signed
// by the attestation log's key, offline, against the trusted root the
// ledger serves (cosign verify-blob-attestation --bundle --trusted-root).
//
// The attestation log is derived from the event log, like every other
// state of the ledger: entry i is the i-th attestation_recorded event, so
// a replica or a rebuilt data directory derives the same tree (except
// envelopes whose key has no Sigstore algorithm, below). It is
// brought up to date on demand (CatchUp, in chunks, each committed with the
// position reached) rather than in the event log's commit: an attestation
// is in the event log first, and in this log by the time a bundle of it is
// asked for. Its Merkle tree lives in the ledger's database under its own
// key prefix (package ledger/tree).
//
// Envelopes signed with a key Sigstore has no algorithm for (RSA beyond
// 4096 bits) have no hashedrekord entry: they are not in this log, and
// their bundles carry no log entry (Bundle says so). In-toto links
// (attest.LinkPredicateType) are not DSSE envelopes and have no entry
// either; they have no bundle.
package attlog

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/attest/rekorv2"
	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/tree"
)

// Keys of the attestation log in the ledger's database.
const (
	prefix    = "al/"
	treeKeys  = prefix + "t/"
	cursorKey = prefix + "cursor" // 8 bytes: event-log index processed up to (exclusive)
	entryKeys = prefix + "e/"     // + envelope digest → 8-byte attestation-log index
	dataKeys  = prefix + "d/"     // + 8-byte index: the entry's bytes (for entry bundles)
	chunk     = 512               // events per catch-up transaction
	// RequestBacklog is the most events a request catches up itself;
	// beyond, it is answered with ErrBehind (the background follower
	// gets there).
	RequestBacklog = 2 * chunk
)

// ErrBehind: the attestation log has not reached the attestation yet and
// has too many events to process on a request's path; retry shortly.
var ErrBehind = errors.New("attlog: the attestation log is catching up with the event log; retry shortly")

// ErrNotFound: the envelope is not (yet) in the attestation log.
var ErrNotFound = fmt.Errorf("attlog: not in the attestation log: %w", ledger.ErrNotFound)

// Log is the attestation log of one ledger.
type Log struct {
	l          *ledger.Ledger
	db         *badger.DB
	tree       *tree.Tree
	desc       rekorv2.Log
	origin     string
	signer     note.Signer
	checkSpace func() error

	mu     sync.Mutex // one catch-up chunk at a time
	broken error      // set when a commit failed: no more writes until restart

	cpMu sync.Mutex
	cp   *checkpoint.Checkpoint

	// A read replica's log (OpenMirror) signs nothing: it serves the
	// primary's checkpoints, each accepted only once the tree derived
	// here has its root at its size (Accept).
	mirrorKey string
}

// Options are optional settings of Open.
type Options struct {
	// CheckSpace, if set, is asked before each write; an error (a disk
	// below its reserve, a read-only start) defers catching up, and what
	// the log holds is served as it is.
	CheckSpace func() error
}

// Open opens the attestation log of l in db, described to clients as desc
// and signed with signer, whose name must be desc's origin.
func Open(l *ledger.Ledger, db *badger.DB, desc rekorv2.Log, signer note.Signer, opts ...Options) (*Log, error) {
	origin, err := desc.Origin()
	if err != nil {
		return nil, err
	}
	if signer.Name() != origin {
		return nil, fmt.Errorf("attlog: the signing key is named %q, but the log's origin (the host of %s) is %q", signer.Name(), desc.BaseURL, origin)
	}
	t, err := tree.OpenPrefix(db, treeKeys)
	if err != nil {
		return nil, err
	}
	a := &Log{l: l, db: db, tree: t, desc: desc, origin: origin, signer: signer}
	for _, o := range opts {
		a.checkSpace = o.CheckSpace
	}
	return a, nil
}

// OpenMirror opens the attestation log of a read replica of the ledger
// whose attestation log desc describes: the tree is derived here from the
// replicated events, exactly as the primary derives its own, and the
// checkpoints are the primary's (Accept), so a replica's bundles verify
// against the primary's trusted root.
func OpenMirror(l *ledger.Ledger, db *badger.DB, desc rekorv2.Log, opts ...Options) (*Log, error) {
	origin, err := desc.Origin()
	if err != nil {
		return nil, err
	}
	vkey, err := desc.NoteVerifierKey()
	if err != nil {
		return nil, err
	}
	t, err := tree.OpenPrefix(db, treeKeys)
	if err != nil {
		return nil, err
	}
	a := &Log{l: l, db: db, tree: t, desc: desc, origin: origin, mirrorKey: vkey}
	for _, o := range opts {
		a.checkSpace = o.CheckSpace
	}
	if b, err := readKey(db, mirrorCheckpointKey); err == nil && b != nil {
		if cp, err := checkpoint.Open(b, origin, vkey); err == nil {
			a.cp = cp
		}
	}
	return a, nil
}

// mirrorCheckpointKey holds the last primary checkpoint a mirror accepted.
const mirrorCheckpointKey = "al/mirror-checkpoint"

func readKey(db *badger.DB, k string) ([]byte, error) {
	var out []byte
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(k))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	return out, err
}

// ErrForeignTree: the primary's attestation-log checkpoint does not match
// the tree derived here from the events it replicated.
var ErrForeignTree = errors.New("attlog: SECURITY: the primary's attestation log is not the one its events derive")

// Accept takes a checkpoint of the primary's attestation log (a mirror's
// only way to get one): it must be signed by the log's key, and the tree
// derived here must have its root at its size (catching up first). A
// checkpoint beyond what is derived here yet is ErrBehind; an older one
// than accepted before is ignored; one that contradicts the derived tree
// stops the log with ErrForeignTree.
func (a *Log) Accept(ctx context.Context, raw []byte) error {
	if a.mirrorKey == "" {
		return errors.New("attlog: only a mirror accepts checkpoints")
	}
	cp, err := checkpoint.Open(raw, a.origin, a.mirrorKey)
	if err != nil {
		return fmt.Errorf("attlog: the primary's attestation-log checkpoint: %w", err)
	}
	if err := a.CatchUp(ctx); err != nil {
		return err
	}
	if cp.Size > a.tree.Size() {
		return ErrBehind
	}
	root, err := a.tree.RootAt(cp.Size)
	if err != nil {
		return err
	}
	if root != cp.Hash {
		a.mu.Lock()
		a.broken = fmt.Errorf("%w: at size %d its checkpoint says root %x, the events replicated here give %x", ErrForeignTree, cp.Size, cp.Hash, root)
		err := a.broken
		a.mu.Unlock()
		return err
	}
	a.cpMu.Lock()
	defer a.cpMu.Unlock()
	if a.cp != nil && cp.Size <= a.cp.Size {
		return nil
	}
	if err := a.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(mirrorCheckpointKey), raw) }); err != nil {
		return err
	}
	a.cp = cp
	return nil
}

// Describe returns the log as its trusted root describes it.
func (a *Log) Describe() rekorv2.Log { return a.desc }

// TrustedRoot is the Sigstore trusted root naming this log.
func (a *Log) TrustedRoot() ([]byte, error) { return a.desc.TrustedRoot() }

// Size is the number of entries.
func (a *Log) Size() uint64 { return a.tree.Size() }

func (a *Log) cursor(txn *badger.Txn) (uint64, error) {
	item, err := txn.Get([]byte(cursorKey))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil || len(v) != 8 {
		return 0, fmt.Errorf("attlog: corrupt cursor")
	}
	return binary.BigEndian.Uint64(v), nil
}

// CatchUp adds the attestations the event log holds beyond what this log
// has processed, in chunks, each committed with the position reached.
func (a *Log) CatchUp(ctx context.Context) error {
	_, err := a.catchUp(ctx, 0)
	return err
}

// catchUp processes at most max events (0: all) and reports whether it
// reached the end of the event log. The lock is taken per chunk, so
// readers (Index, Checkpoint) are never held up by a long backlog.
func (a *Log) catchUp(ctx context.Context, max uint64) (bool, error) {
	done := uint64(0)
	for {
		reached, n, err := a.step(ctx)
		if err != nil || reached {
			return reached, err
		}
		if done += n; max > 0 && done >= max {
			return false, nil
		}
	}
}

// step commits one chunk; it reports whether the log had reached the end.
func (a *Log) step(ctx context.Context) (reached bool, n uint64, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.broken != nil {
		return false, 0, a.broken
	}
	var from uint64
	if err := a.db.View(func(txn *badger.Txn) (err error) { from, err = a.cursor(txn); return }); err != nil {
		return false, 0, err
	}
	end := a.l.Size()
	if from >= end {
		return true, 0, nil
	}
	if err := ctx.Err(); err != nil {
		return false, 0, err
	}
	if a.checkSpace != nil {
		if err := a.checkSpace(); err != nil {
			return false, 0, fmt.Errorf("attlog: not catching up: %w", err)
		}
	}
	to := min(end, from+chunk)
	b := a.tree.Begin()
	err = a.db.Update(func(txn *badger.Txn) error {
		for i := from; i < to; i++ {
			e, err := a.l.Event(i)
			if err != nil {
				return err
			}
			ar, ok := e.(*ledger.AttestationRecorded)
			if !ok || ar.PredicateType == attest.LinkPredicateType {
				continue // in-toto links are not DSSE envelopes: no entry
			}
			entry, err := a.entryOf(ctx, ar, i)
			if errors.Is(err, rekorv2.ErrUnsupportedKey) {
				continue // not an entry: see the package documentation
			}
			if err != nil {
				return fmt.Errorf("attlog: the attestation at log index %d: %w", i, err)
			}
			idx, err := b.Add(txn, tree.LeafHash(entry))
			if err != nil {
				return err
			}
			if err := txn.Set(append([]byte(entryKeys), ar.Envelope[:]...), binary.BigEndian.AppendUint64(nil, idx)); err != nil {
				return err
			}
			if err := txn.Set(binary.BigEndian.AppendUint64([]byte(dataKeys), idx), entry); err != nil {
				return err
			}
		}
		return txn.Set([]byte(cursorKey), binary.BigEndian.AppendUint64(nil, to))
	})
	if err != nil {
		// As the ledger does after a failed commit: badger may have
		// applied part of it, so no more writes until a restart
		// reopens the tree and cursor from what is stored.
		a.broken = fmt.Errorf("attlog: stopped after a failed commit (restart the server): %w", err)
		return false, 0, err
	}
	if err := a.tree.Install(b); err != nil {
		a.broken = fmt.Errorf("attlog: stopped: %w", err)
		return false, 0, err
	}
	return false, to - from, nil
}

// entryOf is the log entry of the attestation logged at index.
func (a *Log) entryOf(ctx context.Context, ar *ledger.AttestationRecorded, index uint64) ([]byte, error) {
	env, err := a.l.Store().Bytes(ctx, ar.Envelope, attest.MaxEnvelopeSize)
	if err != nil {
		return nil, err
	}
	st, err := a.l.KeyState(ar.KeyID, index)
	if err != nil {
		return nil, err
	}
	ke, err := a.l.Event(st.AddedAt)
	if err != nil {
		return nil, err
	}
	added, ok := ke.(*ledger.KeyAdded)
	if !ok {
		return nil, fmt.Errorf("key %s: log index %d is not its key_added event", ar.KeyID, st.AddedAt)
	}
	pub, err := x509.ParsePKIXPublicKey(added.PublicKey)
	if err != nil {
		return nil, err
	}
	return rekorv2.Entry(env, pub)
}

// Index returns the attestation-log index of a logged envelope.
func (a *Log) Index(envelope digest.Digest) (uint64, error) {
	var idx uint64
	err := a.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(append([]byte(entryKeys), envelope[:]...))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: envelope %s", ErrNotFound, envelope)
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil || len(v) != 8 {
			return fmt.Errorf("attlog: corrupt entry record of %s", envelope)
		}
		idx = binary.BigEndian.Uint64(v)
		return nil
	})
	return idx, err
}

// Checkpoint returns a signed checkpoint of the log at its current size
// (signed once per size).
func (a *Log) Checkpoint() (*checkpoint.Checkpoint, error) {
	a.cpMu.Lock()
	defer a.cpMu.Unlock()
	if a.mirrorKey != "" {
		// A mirror's checkpoint is the primary's, accepted.
		a.mu.Lock()
		broken := a.broken
		a.mu.Unlock()
		switch {
		case broken != nil:
			return nil, broken
		case a.cp == nil:
			return nil, ErrBehind
		}
		return a.cp, nil
	}
	size, root := a.tree.Head()
	if a.cp != nil && a.cp.Size == size {
		return a.cp, nil
	}
	cp, err := checkpoint.Sign(a.signer, a.origin, size, root)
	if err != nil {
		return nil, err
	}
	a.cp = cp
	return cp, nil
}

// Bundle returns a Sigstore bundle v0.3 of a logged envelope with its
// entry in this log, the entry's inclusion proof and a checkpoint.
func (a *Log) Bundle(ctx context.Context, envelope digest.Digest) ([]byte, error) {
	li, err := a.l.AttestationIndex(envelope)
	if err != nil {
		return nil, err
	}
	e, err := a.l.Event(li)
	if err != nil {
		return nil, err
	}
	ar, ok := e.(*ledger.AttestationRecorded)
	if !ok {
		return nil, fmt.Errorf("%w: log index %d is not an attestation", ledger.ErrCorrupt, li)
	}
	if ar.PredicateType == attest.LinkPredicateType {
		return nil, fmt.Errorf("attlog: %s is an in-toto link, and Sigstore bundles carry DSSE envelopes only", envelope)
	}
	entry, err := a.entryOf(ctx, ar, li)
	if errors.Is(err, rekorv2.ErrUnsupportedKey) {
		return nil, fmt.Errorf("%w: envelope %s: %v (GET it without ?format=bundle for the envelope alone)", ErrNotFound, envelope, err)
	}
	if err != nil {
		return nil, err
	}
	idx, err := a.Index(envelope)
	if errors.Is(err, ErrNotFound) {
		// Not reached yet: catch up here if the backlog is short.
		reached, cerr := a.catchUp(ctx, RequestBacklog)
		if cerr != nil {
			return nil, cerr
		}
		if idx, err = a.Index(envelope); err != nil && !reached {
			return nil, ErrBehind
		}
	}
	if err != nil {
		return nil, err
	}
	// What is served must be what the tree holds.
	if at, err := a.tree.LeafIndex(tree.LeafHash(entry)); err != nil || at != idx {
		return nil, fmt.Errorf("%w: the attestation log's leaf %d is not the entry of envelope %s", ledger.ErrCorrupt, idx, envelope)
	}
	cp, err := a.Checkpoint()
	if err != nil {
		return nil, err
	}
	if idx >= cp.Size {
		return nil, ErrBehind // committed, not yet installed
	}
	hashes, err := a.tree.InclusionProof(idx, cp.Size)
	if err != nil {
		return nil, err
	}
	env, err := a.l.Store().Bytes(ctx, envelope, attest.MaxEnvelopeSize)
	if err != nil {
		return nil, err
	}
	return a.desc.Bundle(env, ar.KeyID, entry, rekorv2.Proof{Index: idx, Size: cp.Size, Root: cp.Hash[:], Hashes: hashes, Checkpoint: cp.Note})
}

// Tile returns a C2SP tlog-tiles hash tile of the log (see tree.Tile).
func (a *Log) Tile(level uint8, index uint64, width int) ([]byte, error) {
	return a.tree.Tile(level, index, width)
}

// EntryBundle returns the C2SP tlog-tiles entry bundle n of width entries
// (each a 2-byte big-endian length and the entry's bytes), or an error
// wrapping ledger.ErrNotFound beyond the log.
func (a *Log) EntryBundle(n uint64, width int) ([]byte, error) {
	const w = tree.TileWidth
	if width < 1 || width > w {
		return nil, fmt.Errorf("entry bundle width %d not in 1..%d: %w", width, w, ledger.ErrNotFound)
	}
	first := n * w
	if first/w != n || first+uint64(width) > a.tree.Size() {
		return nil, fmt.Errorf("entry bundle %d of width %d is beyond the attestation log's size %d: %w", n, width, a.tree.Size(), ledger.ErrNotFound)
	}
	var out []byte
	err := a.db.View(func(txn *badger.Txn) error {
		for i := first; i < first+uint64(width); i++ {
			item, err := txn.Get(binary.BigEndian.AppendUint64([]byte(dataKeys), i))
			if err != nil {
				return fmt.Errorf("attlog: entry %d: %w", i, err)
			}
			if err := item.Value(func(v []byte) error {
				out = binary.BigEndian.AppendUint16(out, uint16(len(v)))
				out = append(out, v...)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}
