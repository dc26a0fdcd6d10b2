package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas"
)

// Entry is a logged event with its index.
type Entry[E Event] struct {
	Index uint64
	Event E
}

// BuildEntry is a recorded build and its log index.
type BuildEntry = Entry[*BuildRecorded]

// ArtifactHit is one artifact path of one build carrying a digest, with
// the build's summary as the hash index keeps it (no event decoding).
type ArtifactHit struct {
	Index      uint64
	Path       string
	Size       int64
	MainBinary bool // Path is the build's main binary
	Job        string
	UUID       uuid.UUID
	Platform   string
	Started    time.Time
	Finished   time.Time
	Succeeded  bool
}

// hitValue encodes the build summary stored with an artifact's hash index
// key: uuid(16) started(8) finished(8) size(8) flags(1) job-len(1) job
// platform. Times are Unix nanoseconds; flags bit 0 = main binary, bit 1 =
// succeeded.
func hitValue(e *BuildRecorded, a Artifact) []byte {
	v := make([]byte, 0, 42+len(e.Job)+len(e.Platform))
	v = append(v, e.UUID[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(e.Started.UnixNano()))
	v = binary.BigEndian.AppendUint64(v, uint64(e.Finished.UnixNano()))
	v = binary.BigEndian.AppendUint64(v, uint64(a.Size))
	var flags byte
	if e.MainBinary != nil && *e.MainBinary == a.Path {
		flags |= 1
	}
	if e.Succeeded() {
		flags |= 2
	}
	v = append(v, flags, byte(len(e.Job)))
	v = append(v, e.Job...)
	return append(v, e.Platform...)
}

func parseHit(index uint64, path string, v []byte) (ArtifactHit, error) {
	if len(v) < 42 || len(v) < 42+int(v[41]) {
		return ArtifactHit{}, fmt.Errorf("%w: hash index value of %d bytes", ErrCorrupt, len(v))
	}
	h := ArtifactHit{Index: index, Path: path}
	copy(h.UUID[:], v)
	h.Started = time.Unix(0, int64(binary.BigEndian.Uint64(v[16:]))).UTC()
	h.Finished = time.Unix(0, int64(binary.BigEndian.Uint64(v[24:]))).UTC()
	h.Size = int64(binary.BigEndian.Uint64(v[32:]))
	h.MainBinary, h.Succeeded = v[40]&1 != 0, v[40]&2 != 0
	n := int(v[41])
	h.Job, h.Platform = string(v[42:42+n]), string(v[42+n:])
	return h, nil
}

// EventBytes returns the exact bytes of the event at index (the leaf data).
func (l *Ledger) EventBytes(index uint64) ([]byte, error) {
	var data []byte
	err := l.db.View(func(txn *badger.Txn) error {
		d, err := eventDigest(txn, index)
		if err != nil {
			return err
		}
		data, err = l.store.GetTxn(txn, d)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("event %d is beyond the log (size %d): %w", index, l.Size(), ErrNotFound)
	}
	return data, err
}

// Event returns the decoded event at index.
func (l *Ledger) Event(index uint64) (Event, error) {
	var ev Event
	err := l.db.View(func(txn *badger.Txn) error {
		var err error
		ev, err = l.eventTxn(txn, index)
		return err
	})
	return ev, err
}

// eventTxn returns the decoded event at index, from the cache of recently
// decoded events if possible. The cache is keyed by the digest of the
// event's bytes, which the index record e/<index> in txn names, not by the
// index: a read-write transaction sees events it has written but may never
// commit (a batch retried after the backend's ErrBehind, a failed one), and
// another event may be committed at that index later. Keyed by content, an
// entry is right whichever transaction put it there. Cached values are
// shared and must not be modified. TestEventCacheDiscardedTxn.
func (l *Ledger) eventTxn(txn *badger.Txn, index uint64) (Event, error) {
	d, err := eventDigest(txn, index)
	if err != nil {
		return nil, err
	}
	if ev, ok := l.events.Get(d); ok {
		return ev, nil
	}
	data, err := l.store.GetTxn(txn, d)
	if err != nil {
		return nil, fmt.Errorf("event %d: %w", index, err)
	}
	ev, err := decodeStored(data)
	if err != nil {
		return nil, fmt.Errorf("%w: event %d: %v", ErrCorrupt, index, err)
	}
	l.events.Add(d, ev)
	return ev, nil
}

func eventAs[E Event](l *Ledger, txn *badger.Txn, index uint64) (E, error) {
	var zero E
	ev, err := l.eventTxn(txn, index)
	if err != nil {
		return zero, err
	}
	e, ok := ev.(E)
	if !ok {
		return zero, fmt.Errorf("%w: event %d is %s, index expected %T", ErrCorrupt, index, ev.Kind(), zero)
	}
	return e, nil
}

// Build returns the build with the given UUID.
func (l *Ledger) Build(id uuid.UUID) (BuildEntry, error) {
	var out BuildEntry
	err := l.view(func(txn *badger.Txn) error {
		idx, err := getIndex(txn, key(pBuild, id[:]))
		if err != nil {
			return fmt.Errorf("build %s: %w", id, err)
		}
		b, err := eventAs[*BuildRecorded](l, txn, idx)
		out = BuildEntry{idx, b}
		return err
	})
	return out, err
}

// Job returns the latest definition of a job.
func (l *Ledger) Job(name string) (Entry[*JobDefined], error) {
	var out Entry[*JobDefined]
	err := l.view(func(txn *badger.Txn) error {
		idx, err := getIndex(txn, key(pJob, []byte(name)))
		if err != nil {
			return fmt.Errorf("job %q: %w", name, err)
		}
		j, err := eventAs[*JobDefined](l, txn, idx)
		out = Entry[*JobDefined]{idx, j}
		return err
	})
	return out, err
}

// Jobs returns every defined job, sorted by name.
func (l *Ledger) Jobs() ([]Entry[*JobDefined], error) {
	var out []Entry[*JobDefined]
	err := l.view(func(txn *badger.Txn) error {
		return scan(txn, pJob, func(k, v []byte) (bool, error) {
			if len(v) != 8 {
				return false, fmt.Errorf("%w: job record %q", ErrCorrupt, k)
			}
			idx := binary.BigEndian.Uint64(v)
			j, err := eventAs[*JobDefined](l, txn, idx)
			out = append(out, Entry[*JobDefined]{idx, j})
			return true, err
		})
	})
	return out, err
}

// BuildFilter selects builds in JobBuilds and FailedBuilds.
type BuildFilter struct {
	Platform string // "" for every platform
	Skip     int    // number of matching builds to skip (paging)
	Limit    int    // 0 for no limit
}

// JobBuilds returns the builds of a job, newest start time first (between
// equal start times the later log entry first). A platform filter reads
// the job's per-platform index, and skipped builds are not decoded, so a
// page costs its Skip in key reads and its Limit in event reads.
func (l *Ledger) JobBuilds(job string, f BuildFilter) ([]BuildEntry, error) {
	if f.Platform != "" {
		return l.builds(key(pJobP, []byte(job), []byte{0}, []byte(f.Platform), []byte{0}), f)
	}
	return l.builds(key(pJobB, []byte(job), []byte{0}), f)
}

// FailedBuilds returns builds that did not exit 0, across all jobs, newest
// start time first, paged like JobBuilds. (A build without a single main
// binary is not failed.)
func (l *Ledger) FailedBuilds(f BuildFilter) ([]BuildEntry, error) {
	if f.Platform != "" {
		return l.builds(key(pFailP, []byte(f.Platform), []byte{0}), f)
	}
	return l.builds(pFailed, f)
}

// builds lists the builds whose order keys sit under prefix, skipping
// f.Skip keys without decoding them.
func (l *Ledger) builds(prefix []byte, f BuildFilter) ([]BuildEntry, error) {
	var out []BuildEntry
	skip := f.Skip
	err := l.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if skip > 0 {
				skip--
				continue
			}
			k := it.Item().Key()
			if len(k) != len(prefix)+orderLen {
				return fmt.Errorf("%w: build list key %q", ErrCorrupt, k)
			}
			idx := orderIndex(k)
			b, err := eventAs[*BuildRecorded](l, txn, idx)
			if err != nil {
				return err
			}
			out = append(out, BuildEntry{idx, b})
			if f.Limit > 0 && len(out) >= f.Limit {
				return nil
			}
		}
		return nil
	})
	return out, err
}

// BuildsByArtifact returns every build and path that produced an artifact
// with this SHA-256, oldest log entry first.
func (l *Ledger) BuildsByArtifact(d cas.Digest) ([]ArtifactHit, error) {
	h, err := l.Hash(d)
	return h.Builds, err
}

// BuildsWithReproKey returns the newest limit builds (by log index; 0 for
// all of them) whose reproducibility key (ReproKey) is k, oldest first, and
// whether older ones exist.
func (l *Ledger) BuildsWithReproKey(k cas.Digest, limit int) (builds []BuildEntry, more bool, err error) {
	prefix := key(pInput, k[:])
	err = l.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
		defer it.Close()
		for it.Seek(key(prefix, u64(math.MaxUint64))); it.Valid(); it.Next() {
			if limit > 0 && len(builds) == limit {
				more = true
				return nil
			}
			k := it.Item().Key()
			if len(k) != len(prefix)+8 {
				return fmt.Errorf("%w: input key %x", ErrCorrupt, k)
			}
			idx := binary.BigEndian.Uint64(k[len(prefix):])
			b, err := eventAs[*BuildRecorded](l, txn, idx)
			if err != nil {
				return err
			}
			builds = append(builds, BuildEntry{idx, b})
		}
		return nil
	})
	slices.Reverse(builds)
	return builds, more, err
}

// maxReproductions bounds how many builds with the same inputs a build is
// compared with (the newest), so a build page costs the same whatever the
// history of its inputs.
const maxReproductions = 256

// Reproductions sorts the other builds with the same inputs as build b
// into those with the same main binary digest (reproduced it) and those with
// a different one (the build is not reproducible), oldest first. Builds
// without a main binary are compared on their full artifact lists.
type Reproductions struct {
	Same      []BuildEntry
	Different []BuildEntry
	// More is set when older builds with the same inputs exist than were
	// compared (only the newest 256 are).
	More bool
}

// ReproductionsOf classifies the builds with the same inputs as b: the
// same reproducibility key (ReproKey: opam-switch, build-environment and
// system-packages, each present or missing, and the job script; not the
// job name or platform). Only builds that exited 0 are compared: a failed
// build has no output to differ in, so b failing, or another build
// failing, is no claim about reproducibility. A build that recorded no
// input file is compared with nothing. At most the newest 256 builds with
// the key are read (TestReproductionsBounded).
func (l *Ledger) ReproductionsOf(b BuildEntry) (Reproductions, error) {
	rk, ok := ReproKey(b.Event)
	if !ok || !b.Event.Succeeded() {
		return Reproductions{}, nil
	}
	all, more, err := l.BuildsWithReproKey(rk, maxReproductions)
	if err != nil {
		return Reproductions{}, err
	}
	r := Reproductions{More: more}
	want := outputs(b.Event)
	for _, o := range all {
		if o.Index == b.Index || !o.Event.Succeeded() {
			continue
		}
		if bytes.Equal(outputs(o.Event), want) {
			r.Same = append(r.Same, o)
		} else {
			r.Different = append(r.Different, o)
		}
	}
	return r, nil
}

// outputs is a comparable summary of a build's result: its main binary's
// digest, or all artifact paths and digests.
func outputs(b *BuildRecorded) []byte {
	if b.MainBinary != nil {
		a, _ := b.Artifact(*b.MainBinary)
		return a.SHA256[:]
	}
	var out []byte
	for _, a := range b.Artifacts {
		out = append(append(append(out, a.Path...), 0), a.SHA256[:]...)
	}
	return out
}

// AttestationIndex returns the log index of the attestation that logged
// the envelope with this digest.
func (l *Ledger) AttestationIndex(envelope cas.Digest) (uint64, error) {
	var idx uint64
	err := l.view(func(txn *badger.Txn) error {
		var err error
		idx, err = getIndex(txn, key(pEnv, envelope[:]))
		if err != nil {
			return fmt.Errorf("attestation envelope %s: %w", envelope, err)
		}
		return nil
	})
	return idx, err
}

// AttestationsOf returns every attestation of the build with this UUID,
// agreeing or not, oldest first.
func (l *Ledger) AttestationsOf(build uuid.UUID) ([]Entry[*AttestationRecorded], error) {
	var out []Entry[*AttestationRecorded]
	prefix := key(pAttB, build[:])
	err := l.view(func(txn *badger.Txn) error {
		return scan(txn, prefix, func(k, _ []byte) (bool, error) {
			idx := binary.BigEndian.Uint64(k[len(prefix):])
			a, err := eventAs[*AttestationRecorded](l, txn, idx)
			out = append(out, Entry[*AttestationRecorded]{idx, a})
			return true, err
		})
	})
	return out, err
}

// RegisteredKey is a rebuilder key as the log knows it now: its standing,
// and the public key and algorithm its key_added event registered.
type RegisteredKey struct {
	KeyState
	Algorithm string
	PublicKey []byte // DER SubjectPublicKeyInfo
}

// Keys returns every key ever registered, active and revoked, sorted by id.
func (l *Ledger) Keys() ([]RegisteredKey, error) {
	var out []RegisteredKey
	err := l.view(func(txn *badger.Txn) error {
		size := l.tree.Size()
		var last cas.Digest
		return scan(txn, pKey, func(k, _ []byte) (bool, error) {
			if len(k) != len(pKey)+40 {
				return false, fmt.Errorf("%w: key record %x", ErrCorrupt, k)
			}
			var id cas.Digest
			copy(id[:], k[len(pKey):])
			if len(out) > 0 && id == last {
				return true, nil
			}
			last = id
			st, err := keyStateTxn(txn, id, size)
			if err != nil || st.Status == KeyStatusUnknown {
				return err == nil, err
			}
			add, err := eventAs[*KeyAdded](l, txn, st.AddedAt)
			if err != nil {
				return false, err
			}
			out = append(out, RegisteredKey{st, add.Algorithm, add.PublicKey})
			return true, nil
		})
	})
	return out, err
}

// AttestationsFor returns every attestation naming this subject digest,
// oldest first.
func (l *Ledger) AttestationsFor(d cas.Digest) ([]Entry[*AttestationRecorded], error) {
	h, err := l.Hash(d)
	return h.Attestations, err
}

// KeyState returns a key's standing just before log index at: unknown,
// active (with the index that added it) or revoked (with both indices).
// Pass Size() for its current standing.
func (l *Ledger) KeyState(id cas.Digest, at uint64) (KeyState, error) {
	var st KeyState
	err := l.view(func(txn *badger.Txn) error {
		var err error
		st, err = keyStateTxn(txn, id, at)
		return err
	})
	return st, err
}

// KeyByName returns the standing of the key most recently added under name.
func (l *Ledger) KeyByName(name string) (KeyState, error) {
	var st KeyState
	err := l.view(func(txn *badger.Txn) error {
		var err error
		st, err = keyByName(txn, name, l.tree.Size())
		return err
	})
	if err == nil && st.Status == KeyStatusUnknown {
		return st, fmt.Errorf("key named %q: %w", name, ErrNotFound)
	}
	return st, err
}

// view runs fn in a read transaction. Projections are only ever written
// together with the leaves they derive from, so every read sees a state
// that some prefix of the log produces.
func (l *Ledger) view(fn func(txn *badger.Txn) error) error {
	return l.db.View(fn)
}

// scan calls fn for every key with prefix, in order, until fn returns false
// or an error.
func scan(txn *badger.Txn, prefix []byte, fn func(k, v []byte) (bool, error)) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		more, err := fn(item.KeyCopy(nil), v)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
	return nil
}

// EntryBundle returns the C2SP tlog-tiles entry bundle with index n and the
// given width (1…256): the events n·256 … n·256+width-1, each as a
// big-endian uint16 length followed by its bytes.
func (l *Ledger) EntryBundle(n uint64, width int) ([]byte, error) {
	const w = 256
	if width < 1 || width > w {
		return nil, fmt.Errorf("entry bundle width %d not in 1..%d: %w", width, w, ErrNotFound)
	}
	first := n * w
	if first/w != n || first+uint64(width) > l.tree.Size() {
		return nil, fmt.Errorf("entry bundle %d of width %d is beyond log size %d: %w", n, width, l.tree.Size(), ErrNotFound)
	}
	var out []byte
	err := l.view(func(txn *badger.Txn) error {
		for i := first; i < first+uint64(width); i++ {
			d, err := eventDigest(txn, i)
			if err != nil {
				return err
			}
			data, err := l.store.GetTxn(txn, d)
			if err != nil {
				return fmt.Errorf("event %d: %w", i, err)
			}
			out = binary.BigEndian.AppendUint16(out, uint16(len(data)))
			out = append(out, data...)
		}
		return nil
	})
	return out, err
}

// MaxNeighbourScan bounds how many older builds Neighbours reads looking
// for one with another main binary.
const MaxNeighbourScan = 1000

// Neighbours are the builds next to one of the same job and platform, in
// start-time order (as builder-web links them).
type Neighbours struct {
	Previous *BuildEntry // the build started before it
	Next     *BuildEntry // the build started after it
	// PreviousSucceeded is the latest earlier successful build (none
	// among the MaxNeighbourScan earlier builds: nil).
	PreviousSucceeded *BuildEntry
	// PreviousOtherMain is the latest earlier successful build whose main
	// binary differs from this build's (none when this build has no main
	// binary, or none among the MaxNeighbourScan earlier builds).
	PreviousOtherMain *BuildEntry
}

// Neighbours returns b's neighbours: a seek into the job's per-platform
// order, one step each way, and at most MaxNeighbourScan steps back for
// another main binary.
func (l *Ledger) Neighbours(b BuildEntry) (Neighbours, error) {
	var n Neighbours
	prefix := key(pJobP, []byte(b.Event.Job), []byte{0}, []byte(b.Event.Platform), []byte{0})
	at := append(slices.Clip(prefix), buildOrder(b.Event, b.Index)...)
	var main *Artifact
	if b.Event.MainBinary != nil {
		if a, ok := b.Event.Artifact(*b.Event.MainBinary); ok {
			main = &a
		}
	}
	err := l.view(func(txn *badger.Txn) error {
		entry := func(k []byte) (*BuildEntry, error) {
			if len(k) != len(prefix)+orderLen {
				return nil, fmt.Errorf("%w: build list key %q", ErrCorrupt, k)
			}
			idx := orderIndex(k)
			e, err := eventAs[*BuildRecorded](l, txn, idx)
			if err != nil {
				return nil, err
			}
			return &BuildEntry{idx, e}, nil
		}
		// Older builds sort after it.
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		it.Seek(at)
		if it.Valid() && bytes.Equal(it.Item().Key(), at) {
			it.Next()
		}
		for i := 0; it.Valid() && i < MaxNeighbourScan; i++ {
			e, err := entry(it.Item().Key())
			if err != nil {
				return err
			}
			if n.Previous == nil {
				n.Previous = e
			}
			if n.PreviousSucceeded == nil && e.Event.Succeeded() {
				n.PreviousSucceeded = e
			}
			if main == nil {
				if n.PreviousSucceeded != nil {
					break
				}
				it.Next()
				continue
			}
			if e.Event.Succeeded() && e.Event.MainBinary != nil {
				if a, ok := e.Event.Artifact(*e.Event.MainBinary); ok && a.SHA256 != main.SHA256 {
					n.PreviousOtherMain = e
					break
				}
			}
			it.Next()
		}
		// Newer builds sort before it.
		rit := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
		defer rit.Close()
		rit.Seek(at)
		if rit.Valid() && bytes.Equal(rit.Item().Key(), at) {
			rit.Next()
		}
		if rit.Valid() {
			e, err := entry(rit.Item().Key())
			if err != nil {
				return err
			}
			n.Next = e
		}
		return nil
	})
	return n, err
}
