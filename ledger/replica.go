package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/buildledger/buildledger/ledger/tree"
)

// ErrReadOnly: the ledger is a read replica; writes go to its primary.
var ErrReadOnly = errors.New("ledger: read replica")

// A replica (Config.ReplicaOf) holds a copy of another ledger's log: the
// same entries, the same tree, every projection rebuilt from the entries
// as they arrive (Replicate), and the primary's own signed checkpoints,
// which it cannot sign itself but serves as they are. It takes no appends.

// openReplicaCheckpoint loads the newest checkpoint of the primary this
// replica stored, or an unsigned empty one before the first.
func (l *Ledger) openReplicaCheckpoint() (*Checkpoint, error) {
	var note []byte
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyCheckpoint)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		note, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	if note == nil {
		// Before the first checkpoint it reached (a first catch-up cut
		// short): entries may be there, each chunk verified against the
		// primary's checkpoint before it was committed. Nothing signed is
		// served until the next sync proves them a prefix of the primary's
		// log again and reaches a checkpoint.
		return &Checkpoint{Origin: l.origin, Hash: tree.EmptyRoot()}, nil
	}
	cp, err := OpenCheckpoint(note, l.origin, l.replicaOf)
	if err != nil {
		return nil, fmt.Errorf("replica's stored checkpoint: %w (is this data directory a replica of another log?)", err)
	}
	root, err := l.tree.RootAt(cp.Size)
	if err != nil || root != cp.Hash {
		return nil, fmt.Errorf("%w: the replica's tree does not match its stored checkpoint of size %d", ErrCorrupt, cp.Size)
	}
	return cp, nil
}

// Replicate appends the primary's entries, which must follow this
// replica's last one, towards the signed checkpoint cp (verified here with
// the primary's key), and installs cp when they reach its size. Every entry is checked as an append
// would be and projected; the blobs its event names (artifacts, scripts,
// consoles, envelopes) must already be in the store. prove checks that the
// root of a prefix of size < cp.Size is consistent with cp (from the
// primary's tiles). Nothing is committed that does not verify.
//
// Entries are committed in chunks, and every committed chunk is a state the
// replica opens and resumes from, also before its first checkpoint (it then
// serves no checkpoint until the next sync has proven its entries a prefix
// of the primary's log and reached one): see
// TestReplicaKilledDuringFirstCatchUp in httpapi/replica.
func (l *Ledger) Replicate(ctx context.Context, leaves [][]byte, signed []byte, prove func(size uint64, root [32]byte) error) error {
	if l.replicaOf == "" {
		return errors.New("ledger: Replicate on a ledger that is not a replica")
	}
	cp, err := OpenCheckpoint(signed, l.origin, l.replicaOf)
	if err != nil {
		return err
	}
	l.commitMu.Lock()
	defer l.commitMu.Unlock()
	from := l.tree.Size()
	if from+uint64(len(leaves)) > cp.Size {
		return fmt.Errorf("ledger: %d entries after %d go beyond checkpoint size %d", len(leaves), from, cp.Size)
	}
	if from == cp.Size {
		if _, root := l.tree.Head(); cp.Hash != root {
			return fmt.Errorf("%w: SECURITY: the primary's checkpoint for size %d has another root than this replica", ErrCorrupt, cp.Size)
		}
		if cp.Size > 0 {
			l.cp.Store(cp)
		}
		return nil
	}
	if len(leaves) == 0 {
		return nil // short of the checkpoint: nothing to do yet
	}
	// The whole run is verified before any of it is stored: its end is
	// cp's root or proven consistent with cp, which makes every prefix of
	// it consistent too, so the parts committed below need only match the
	// roots computed here.
	f, err := l.tree.Frontier()
	if err != nil {
		return err
	}
	roots := make(map[uint64][32]byte)
	for i, data := range leaves {
		if err := f.Add(tree.LeafHash(data)); err != nil {
			return err
		}
		if (i+1)%replicateChunk == 0 || i == len(leaves)-1 {
			if roots[f.Size()], err = f.Root(); err != nil {
				return err
			}
		}
	}
	if err := checkAgainst(cp, f.Size(), roots[f.Size()], prove); err != nil {
		return err
	}
	for start := 0; start < len(leaves); start += replicateChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(start+replicateChunk, len(leaves))
		verify := func(size uint64, root [32]byte) error {
			if want, ok := roots[size]; !ok || root != want {
				return fmt.Errorf("%w: entries %d to %d give root %x at size %d, not the %x verified", ErrCorrupt, from+uint64(start), from+uint64(end), root, size, want)
			}
			return nil
		}
		checkpoint := func(size uint64, _ [32]byte) (*Checkpoint, error) {
			if size == cp.Size {
				return cp, nil
			}
			return nil, nil
		}
		if err := l.applyLeaves(from+uint64(start), leaves[start:end], verify, checkpoint); err != nil {
			return err
		}
	}
	return nil
}

// replicateChunk is how many entries Replicate commits at a time.
const replicateChunk = 256

// checkAgainst checks that root is cp's root when size is cp's size, else
// that prove shows it consistent with cp.
func checkAgainst(cp *Checkpoint, size uint64, root [32]byte, prove func(uint64, [32]byte) error) error {
	switch {
	case size > cp.Size:
		return fmt.Errorf("ledger: entries up to %d go beyond checkpoint size %d", size, cp.Size)
	case size == cp.Size && root != cp.Hash:
		return fmt.Errorf("%w: SECURITY: the primary's entries give root %x at size %d, its checkpoint says %x", ErrCorrupt, root, size, cp.Hash)
	case size < cp.Size:
		return prove(size, root)
	}
	return nil
}

// EntryVerifier checks runs of entries one after the other against a
// primary's checkpoint, from this replica's last entry on, without storing
// them: a replica verifies the next run, and fetches what it names, while
// the previous one is being applied.
type EntryVerifier struct {
	l *Ledger
	f *tree.Frontier
}

// NewEntryVerifier starts after this replica's last entry.
func (l *Ledger) NewEntryVerifier() (*EntryVerifier, error) {
	f, err := l.tree.Frontier()
	if err != nil {
		return nil, err
	}
	return &EntryVerifier{l: l, f: f}, nil
}

// Verify is VerifyEntries for the run after the previous one verified.
// After an error the verifier must not be used again.
func (v *EntryVerifier) Verify(leaves [][]byte, signed []byte, prove func(size uint64, root [32]byte) error) error {
	cp, err := OpenCheckpoint(signed, v.l.origin, v.l.replicaOf)
	if err != nil {
		return err
	}
	for _, data := range leaves {
		if err := v.f.Add(tree.LeafHash(data)); err != nil {
			return err
		}
	}
	root, err := v.f.Root()
	if err != nil {
		return err
	}
	return checkAgainst(cp, v.f.Size(), root, prove)
}

// VerifyEntries checks, without storing anything, that leaves appended
// after this replica's last entry make a tree consistent with the signed
// checkpoint: its root when they reach its size, else proven by prove. A
// replica calls it before fetching the blobs the entries name, so a
// primary cannot make it download anything for entries that are not in
// the log.
func (l *Ledger) VerifyEntries(leaves [][]byte, signed []byte, prove func(size uint64, root [32]byte) error) error {
	v, err := l.NewEntryVerifier()
	if err != nil {
		return err
	}
	return v.Verify(leaves, signed, prove)
}

// IsReplica reports whether the ledger is a read replica.
func (l *Ledger) IsReplica() bool { return l.replicaOf != "" }

func originOf(vkey string) string {
	name, _, _ := strings.Cut(vkey, "+")
	return name
}
