// Package monitor audits a ledger from the outside, as any third party
// can: it follows the log through its C2SP entry bundles from the last
// size it verified, recomputes the RFC 6962 tree over them (a compact
// range kept between runs) and checks it against each signed checkpoint,
// proven consistent with the one before, and checks every event against
// what the log's own history allows:
//
//   - the event decodes, in canonical form (ledger/event), and matches
//     the JSON Schema of its kind (schemas/event.json);
//   - a build's UUID is logged once, of a job defined before it;
//   - a key is registered once, under the id of its public key, and
//     revoked at most once, after it was registered;
//   - an attestation names a key registered before it and not revoked
//     before it, is logged once, and its envelope (or in-toto link), as
//     the server serves it, hashes to what the event names and verifies
//     with that key, attesting the build and verdict the event says;
//   - the blobs an event names are served and hash to their digests (all
//     of them, a sample, or none).
//
// Each violation is a Finding: the log index, the kind and what is wrong.
// The state (checkpoint, compact range, builds, jobs, keys and envelopes
// seen) is a badger database, so memory does not grow with the log.
package monitor

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/httpapi/client"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/event"
	"github.com/buildledger/buildledger/schemas"
)

// Blobs says which blobs the monitor fetches and hashes.
type Blobs int

const (
	BlobsNone   Blobs = iota
	BlobsSample       // the blobs of one event in 64 (by index)
	BlobsAll
)

// Finding is a violation of the log's rules.
type Finding struct {
	Index uint64 `json:"index"`
	Kind  string `json:"kind"`
	What  string `json:"what"`
}

func (f Finding) String() string {
	return fmt.Sprintf("log index %d (%s): %s", f.Index, f.Kind, f.What)
}

// Watch names what to report when it appears in the log.
type Watch struct {
	Jobs    []string
	Keys    []digest.Digest
	Digests []digest.Digest
}

// Seen is an event a watch matched.
type Seen struct {
	Index uint64 `json:"index"`
	Kind  string `json:"kind"`
	What  string `json:"what"`
}

// Config configures a Monitor.
type Config struct {
	Client *client.Client
	DB     *badger.DB // the monitor's state
	Blobs  Blobs
	Watch  Watch
	// Chunk is how many entries are verified per step (default 1,024).
	Chunk int
}

// Monitor audits one ledger.
type Monitor struct {
	cfg Config
	rf  *compact.RangeFactory
}

// New returns a monitor.
func New(cfg Config) *Monitor {
	if cfg.Chunk <= 0 {
		cfg.Chunk = 1024
	}
	return &Monitor{cfg: cfg, rf: &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}}
}

// State keys.
const (
	kCheckpoint = "cp"
	kRange      = "range"
	pBuild      = "u/"
	pJob        = "j/"
	pKey        = "k/"
	pEnvelope   = "e/"
)

// keyState is what the monitor knows of a key.
type keyState struct {
	AddedAt   uint64  `json:"added_at"`
	RevokedAt *uint64 `json:"revoked_at"`
	PublicKey []byte  `json:"public_key"`
}

// Result is what one Step verified.
type Result struct {
	From, To   uint64 // the entries verified
	Checkpoint *checkpoint.Checkpoint
	Findings   []Finding
	Seen       []Seen
}

// Step fetches the server's checkpoint, proves it consistent with the last
// one verified (a SECURITY error otherwise), and verifies the entries up
// to it, at most Chunk of them; call again until To == Checkpoint.Size.
// The state advances only over verified entries; findings do not stop it.
func (m *Monitor) Step(ctx context.Context) (*Result, error) {
	c := m.cfg.Client
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	var last *checkpoint.Checkpoint
	var rng *compact.Range
	err = m.cfg.DB.View(func(txn *badger.Txn) error {
		if b, err := get(txn, kCheckpoint); err != nil || b == nil {
			return err
		} else if last, err = checkpoint.Open(b, cp.Origin, c.LogKey()); err != nil {
			return fmt.Errorf("the monitor's state: %w", err)
		}
		return nil
	})
	if err == nil {
		err = m.cfg.DB.View(func(txn *badger.Txn) error {
			b, err := get(txn, kRange)
			if err != nil || b == nil {
				return err
			}
			var r savedRange
			if err := json.Unmarshal(b, &r); err != nil {
				return fmt.Errorf("the monitor's state: %w", err)
			}
			rng, err = m.rf.NewRange(0, r.End, r.Hashes)
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	if rng == nil {
		rng = m.rf.NewEmptyRange(0)
	}
	if last != nil {
		// Proven with the server's tiles; a rewritten history fails here.
		// A server behind what was verified (a replica) is proven a prefix.
		older, newer := last, cp
		if cp.Size < last.Size {
			older, newer = cp, last
		}
		if err := c.CheckConsistency(ctx, older, newer); err != nil {
			return nil, err
		}
		cp = newer
	}
	from := rng.End()
	if cp.Size < from {
		return nil, fmt.Errorf("SECURITY: the server's checkpoint has %d entries, fewer than the %d this monitor verified as part of its log", cp.Size, from)
	}
	to := min(cp.Size, from+uint64(m.cfg.Chunk))
	res := &Result{From: from, To: to, Checkpoint: cp}
	if from == to {
		return res, m.save(nil, cp, rng)
	}
	entries, err := c.Entries(ctx, from, to, cp)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(e), nil); err != nil {
			return nil, err
		}
	}
	// The entries must be the log's: the range up to "to" a prefix of cp.
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	if to == cp.Size {
		if !bytes.Equal(root, cp.Hash[:]) {
			return nil, fmt.Errorf("SECURITY: the entries %d..%d the server serves do not hash to its checkpoint's root", from, to-1)
		}
	} else if err := c.ProveConsistent(ctx, to, [32]byte(root), cp); err != nil {
		return nil, err
	}
	err = m.cfg.DB.Update(func(txn *badger.Txn) error {
		for i, e := range entries {
			m.check(ctx, txn, from+uint64(i), e, res)
		}
		return m.saveIn(txn, cp, rng)
	})
	return res, err
}

// save records the checkpoint and range.
func (m *Monitor) save(_ *badger.Txn, cp *checkpoint.Checkpoint, rng *compact.Range) error {
	return m.cfg.DB.Update(func(txn *badger.Txn) error { return m.saveIn(txn, cp, rng) })
}

func (m *Monitor) saveIn(txn *badger.Txn, cp *checkpoint.Checkpoint, rng *compact.Range) error {
	// The checkpoint kept is the one the range reached, or cp when the
	// range is at its size: a later run proves consistency from it.
	if rng.End() == cp.Size {
		if err := txn.Set([]byte(kCheckpoint), cp.Note); err != nil {
			return err
		}
	}
	b, err := json.Marshal(savedRange{End: rng.End(), Hashes: rng.Hashes()})
	if err != nil {
		return err
	}
	return txn.Set([]byte(kRange), b)
}

// savedRange is the compact range of the entries verified so far.
type savedRange struct {
	End    uint64   `json:"end"`
	Hashes [][]byte `json:"hashes"`
}

func get(txn *badger.Txn, k string) ([]byte, error) {
	item, err := txn.Get([]byte(k))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// check verifies one entry at index against the state, and records it.
func (m *Monitor) check(ctx context.Context, txn *badger.Txn, index uint64, data []byte, res *Result) {
	find := func(kind, format string, args ...any) {
		res.Findings = append(res.Findings, Finding{Index: index, Kind: kind, What: fmt.Sprintf(format, args...)})
	}
	ev, err := event.Decode(data)
	if err != nil {
		find("invalid", "%v", err)
		return
	}
	kind := string(ev.Kind())
	if err := schemas.Validate("event.json", data); err != nil {
		find(kind, "does not match the event schema: %v", err)
	}
	seen := func(format string, args ...any) {
		res.Seen = append(res.Seen, Seen{Index: index, Kind: kind, What: fmt.Sprintf(format, args...)})
	}
	switch e := ev.(type) {
	case *event.JobDefined:
		txn.Set([]byte(pJob+e.Job), u64(index))
		if slices.Contains(m.cfg.Watch.Jobs, e.Job) {
			seen("job %s defined", e.Job)
		}
	case *event.BuildRecorded:
		if b, _ := get(txn, pBuild+e.UUID.String()); b != nil {
			find(kind, "build %s is logged a second time (first at log index %d)", e.UUID, binary.BigEndian.Uint64(b))
		} else {
			txn.Set([]byte(pBuild+e.UUID.String()), u64(index))
		}
		if b, _ := get(txn, pJob+e.Job); b == nil {
			find(kind, "build %s is of job %s, which no earlier event defines", e.UUID, e.Job)
		}
		m.checkBlobs(ctx, index, kind, e, find)
		if slices.Contains(m.cfg.Watch.Jobs, e.Job) {
			seen("build %s of job %s on %s: %s", e.UUID, e.Job, e.Platform, e.Result)
		}
		for _, a := range e.Artifacts {
			if slices.Contains(m.cfg.Watch.Digests, a.SHA256) {
				seen("build %s of job %s produced %s with SHA-256 %s", e.UUID, e.Job, a.Path, a.SHA256)
			}
		}
	case *event.KeyAdded:
		if event.KeyID(e.PublicKey) != e.KeyID {
			find(kind, "key %q is logged under id %s, but its public key's id is %s", e.Name, e.KeyID, event.KeyID(e.PublicKey))
		}
		if b, _ := get(txn, pKey+e.KeyID.String()); b != nil {
			find(kind, "key %s is registered a second time", e.KeyID)
			break
		}
		st, _ := json.Marshal(keyState{AddedAt: index, PublicKey: e.PublicKey})
		txn.Set([]byte(pKey+e.KeyID.String()), st)
		if slices.Contains(m.cfg.Watch.Keys, e.KeyID) {
			seen("key %s registered as %q", e.KeyID, e.Name)
		}
	case *event.KeyRevoked:
		b, _ := get(txn, pKey+e.KeyID.String())
		var st keyState
		if b == nil || json.Unmarshal(b, &st) != nil {
			find(kind, "key %s is revoked, but no earlier event registers it", e.KeyID)
			break
		}
		if st.RevokedAt != nil {
			find(kind, "key %s is revoked a second time (first at log index %d)", e.KeyID, *st.RevokedAt)
			break
		}
		st.RevokedAt = &index
		nb, _ := json.Marshal(st)
		txn.Set([]byte(pKey+e.KeyID.String()), nb)
		if slices.Contains(m.cfg.Watch.Keys, e.KeyID) {
			seen("key %s revoked: %s", e.KeyID, e.Reason)
		}
	case *event.AttestationRecorded:
		m.checkAttestation(ctx, txn, index, kind, e, find)
		if slices.Contains(m.cfg.Watch.Keys, e.KeyID) {
			seen("attestation by key %s: %s", e.KeyID, e.Verdict)
		}
		for _, s := range e.Subjects {
			if slices.Contains(m.cfg.Watch.Digests, s.SHA256) {
				seen("attestation by key %s of %s (%s): %s", e.KeyID, s.Name, s.SHA256, e.Verdict)
			}
		}
	}
}

// checkAttestation checks an attestation against the keys and builds seen
// and its envelope as served.
func (m *Monitor) checkAttestation(ctx context.Context, txn *badger.Txn, index uint64, kind string, e *event.AttestationRecorded, find func(string, string, ...any)) {
	if b, _ := get(txn, pEnvelope+e.Envelope.String()); b != nil {
		find(kind, "envelope %s is logged a second time (first at log index %d)", e.Envelope, binary.BigEndian.Uint64(b))
	} else {
		txn.Set([]byte(pEnvelope+e.Envelope.String()), u64(index))
	}
	if e.Build != nil {
		if b, _ := get(txn, pBuild+e.Build.String()); b == nil {
			find(kind, "it attests build %s, which no earlier event records", e.Build)
		}
	}
	b, _ := get(txn, pKey+e.KeyID.String())
	var st keyState
	if b == nil || json.Unmarshal(b, &st) != nil {
		find(kind, "it is signed with key %s, which no earlier event registers", e.KeyID)
		return
	}
	if st.RevokedAt != nil {
		find(kind, "it is signed with key %s, revoked at log index %d", e.KeyID, *st.RevokedAt)
		return
	}
	pub, err := x509.ParsePKIXPublicKey(st.PublicKey)
	if err != nil {
		find(kind, "key %s's registered public key does not parse: %v", e.KeyID, err)
		return
	}
	v, err := attest.NewVerifier(pub)
	if err != nil {
		find(kind, "key %s: %v", e.KeyID, err)
		return
	}
	env, err := m.cfg.Client.Envelope(ctx, e.Envelope)
	if err != nil {
		find(kind, "its envelope %s is not served as logged: %v", e.Envelope, err)
		return
	}
	a, err := attest.VerifyLogged(env, e.PredicateType, v, int64(index))
	if err != nil {
		find(kind, "its envelope %s does not verify with key %s: %v", e.Envelope, e.KeyID, err)
		return
	}
	switch {
	case e.Build != nil && a.Build != *e.Build:
		find(kind, "the signed attestation is of build %s, the event says %s", a.Build, e.Build)
	case string(a.Verdict) != string(e.Verdict):
		find(kind, "the signed verdict is %q, the event says %q", a.Verdict, e.Verdict)
	case e.PredicateType != attest.LinkPredicateType && a.PredicateType != e.PredicateType:
		find(kind, "the signed predicate type is %q, the event says %q", a.PredicateType, e.PredicateType)
	}
}

// checkBlobs fetches and hashes the blobs a build names, as Blobs says.
func (m *Monitor) checkBlobs(ctx context.Context, index uint64, kind string, e *event.BuildRecorded, find func(string, string, ...any)) {
	if m.cfg.Blobs == BlobsNone || m.cfg.Blobs == BlobsSample && index%64 != 0 {
		return
	}
	ds := []digest.Digest{e.Script, e.Console}
	for _, a := range e.Artifacts {
		ds = append(ds, a.SHA256)
	}
	for _, d := range ds {
		if d.IsZero() {
			continue
		}
		if err := m.cfg.Client.StoredBlob(ctx, d, io.Discard); err != nil {
			find(kind, "blob %s of build %s: %s", d, e.UUID, strings.TrimPrefix(err.Error(), "SECURITY: "))
		}
	}
}
