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
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"

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
	pKeyName    = "n/"
	pFinding    = "f/"
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
		// A server behind what was verified (a replica) is proven a prefix
		// and has nothing new.
		if cp.Size < last.Size {
			err := c.CheckConsistency(ctx, cp, last)
			var ie *client.InconsistencyError
			if err != nil && !errors.As(err, &ie) {
				// A replica behind has no tiles up to what was verified.
				return nil, fmt.Errorf("the server is behind this monitor (its checkpoint has %d entries, %d were verified) and cannot prove its checkpoint a prefix of theirs: %w; ask a server that is caught up", cp.Size, last.Size, err)
			}
			if err != nil {
				return nil, err
			}
			return &Result{From: cp.Size, To: cp.Size, Checkpoint: cp}, nil
		}
		if err := c.CheckConsistency(ctx, last, cp); err != nil {
			return nil, err
		}
	}
	// The range never passes the checkpoint kept, which is at least as new
	// as the last one the range was proven against.
	from := rng.End()
	to := min(cp.Size, from+uint64(m.cfg.Chunk))
	res := &Result{From: from, To: to, Checkpoint: cp}
	entries, err := c.Entries(ctx, from, to, cp)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(e), nil); err != nil {
			return nil, err
		}
	}
	// The entries so far must be the log's: the range's root is cp's, or
	// that of a prefix of cp (proven from the tiles).
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	if to == cp.Size {
		if !bytes.Equal(root, cp.Hash[:]) {
			return nil, fmt.Errorf("SECURITY: the %d entries verified so far do not hash to the server's checkpoint's root", to)
		}
	} else if err := c.ProveConsistent(ctx, to, [32]byte(root), cp); err != nil {
		return nil, err
	}
	// Fetches (envelopes, blobs) first: a network failure or a cancel
	// is an error that leaves the state as it was, not a finding.
	fetched, err := m.fetch(ctx, from, entries)
	if err != nil {
		return nil, err
	}
	err = m.cfg.DB.Update(func(txn *badger.Txn) error {
		for i, e := range entries {
			if err := m.check(txn, from+uint64(i), e, fetched, res); err != nil {
				return err
			}
		}
		// Findings are kept with the state they were found in, so a run
		// that stops before reporting them loses none (Findings).
		for i, f := range res.Findings {
			b, _ := json.Marshal(f)
			if err := txn.Set(append(append([]byte(pFinding), u64(f.Index)...), u64(uint64(i))...), b); err != nil {
				return err
			}
		}
		return m.saveIn(txn, cp, rng)
	})
	return res, err
}

// Findings returns every violation found so far, in log order.
func (m *Monitor) Findings() ([]Finding, error) {
	var out []Finding
	err := m.cfg.DB.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pFinding), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var f Finding
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &f) }); err != nil {
				return err
			}
			out = append(out, f)
		}
		return nil
	})
	return out, err
}

func (m *Monitor) saveIn(txn *badger.Txn, cp *checkpoint.Checkpoint, rng *compact.Range) error {
	// The checkpoint the range was proven against (its root, or a prefix
	// of it): a later run proves consistency from it.
	if err := txn.Set([]byte(kCheckpoint), cp.Note); err != nil {
		return err
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

// fetched is what fetch got for a chunk: by log index, an attestation's
// envelope (or why it is not served as logged), and a build's blob
// problems.
type fetched struct {
	envelopes map[uint64][]byte
	envErrs   map[uint64]error
	blobErrs  map[uint64][]string
}

// transient reports whether a fetch failed for a reason that says nothing
// about the log: a cancel, a timeout, the network, a server error.
func transient(ctx context.Context, err error) bool {
	var ce *client.Error
	switch {
	case ctx.Err() != nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &ce):
		return ce.Status >= 500 || ce.Status == http.StatusTooManyRequests
	case strings.Contains(err.Error(), "SECURITY"):
		return false
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne)
}

// fetch gets the envelopes and blobs a chunk's events name. A transient
// failure is an error (the chunk is verified again later); a missing or
// wrong one is kept for check to report.
func (m *Monitor) fetch(ctx context.Context, from uint64, entries [][]byte) (*fetched, error) {
	f := &fetched{envelopes: map[uint64][]byte{}, envErrs: map[uint64]error{}, blobErrs: map[uint64][]string{}}
	for i, data := range entries {
		index := from + uint64(i)
		ev, err := event.Decode(data)
		if err != nil {
			continue
		}
		switch e := ev.(type) {
		case *event.AttestationRecorded:
			env, err := m.cfg.Client.Envelope(ctx, e.Envelope)
			if err != nil && transient(ctx, err) {
				return nil, fmt.Errorf("fetching envelope %s (log index %d): %w", e.Envelope, index, err)
			}
			f.envelopes[index], f.envErrs[index] = env, err
		case *event.BuildRecorded:
			if m.cfg.Blobs == BlobsNone || m.cfg.Blobs == BlobsSample && index%64 != 0 {
				continue
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
					if transient(ctx, err) {
						return nil, fmt.Errorf("fetching blob %s (log index %d): %w", d, index, err)
					}
					f.blobErrs[index] = append(f.blobErrs[index], fmt.Sprintf("blob %s of build %s: %s", d, e.UUID, strings.TrimPrefix(err.Error(), "SECURITY: ")))
				}
			}
		case *event.JobDefined:
			if e.Readme == nil || m.cfg.Blobs == BlobsNone {
				continue
			}
			if err := m.cfg.Client.StoredBlob(ctx, *e.Readme, io.Discard); err != nil {
				if transient(ctx, err) {
					return nil, fmt.Errorf("fetching blob %s (log index %d): %w", e.Readme, index, err)
				}
				f.blobErrs[index] = append(f.blobErrs[index], fmt.Sprintf("README blob %s of job %s: %s", e.Readme, e.Job, strings.TrimPrefix(err.Error(), "SECURITY: ")))
			}
		}
	}
	return f, nil
}

// buildRecord is what the monitor keeps of a build, for the attestations
// of it.
type buildRecord struct {
	Index     uint64                   `json:"index"`
	Job       string                   `json:"job"`
	Platform  string                   `json:"platform"`
	Artifacts map[string]digest.Digest `json:"artifacts"`
}

// check verifies one entry at index against the state and what fetch
// got, and records it; an error is the state's (the chunk is not
// committed).
func (m *Monitor) check(txn *badger.Txn, index uint64, data []byte, f *fetched, res *Result) error {
	var serr error
	set := func(k string, v []byte) {
		if err := txn.Set([]byte(k), v); err != nil && serr == nil {
			serr = err
		}
	}
	find := func(kind, format string, args ...any) {
		res.Findings = append(res.Findings, Finding{Index: index, Kind: kind, What: fmt.Sprintf(format, args...)})
	}
	ev, err := event.Decode(data)
	if err != nil {
		find("invalid", "%v", err)
		return nil
	}
	kind := string(ev.Kind())
	if err := schemas.Validate("event.json", data); err != nil {
		find(kind, "does not match the event schema: %v", err)
	}
	for _, b := range f.blobErrs[index] {
		find(kind, "%s", b)
	}
	seen := func(format string, args ...any) {
		res.Seen = append(res.Seen, Seen{Index: index, Kind: kind, What: fmt.Sprintf(format, args...)})
	}
	switch e := ev.(type) {
	case *event.JobDefined:
		set(pJob+e.Job, u64(index))
		if slices.Contains(m.cfg.Watch.Jobs, e.Job) {
			seen("job %s defined", e.Job)
		}
	case *event.BuildRecorded:
		if b, _ := get(txn, pBuild+e.UUID.String()); b != nil {
			var first buildRecord
			json.Unmarshal(b, &first)
			find(kind, "build %s is logged a second time (first at log index %d)", e.UUID, first.Index)
		} else {
			rec := buildRecord{Index: index, Job: e.Job, Platform: e.Platform, Artifacts: map[string]digest.Digest{}}
			for _, a := range e.Artifacts {
				rec.Artifacts[a.Path] = a.SHA256
			}
			b, _ := json.Marshal(rec)
			set(pBuild+e.UUID.String(), b)
		}
		if b, _ := get(txn, pJob+e.Job); b == nil {
			find(kind, "build %s is of job %s, which no earlier event defines", e.UUID, e.Job)
		}
		if slices.Contains(m.cfg.Watch.Jobs, e.Job) {
			seen("build %s of job %s on %s: %s", e.UUID, e.Job, e.Platform, e.Result)
		}
		for _, a := range e.Artifacts {
			if slices.Contains(m.cfg.Watch.Digests, a.SHA256) {
				seen("build %s of job %s produced %s with SHA-256 %s", e.UUID, e.Job, a.Path, a.SHA256)
			}
		}
	case *event.KeyAdded:
		if b, _ := get(txn, pKey+e.KeyID.String()); b != nil {
			find(kind, "key %s is registered a second time", e.KeyID)
			break
		}
		if b, _ := get(txn, pKeyName+e.Name); b != nil {
			var other digest.Digest
			copy(other[:], b)
			if ob, _ := get(txn, pKey+other.String()); ob != nil {
				var st keyState
				if json.Unmarshal(ob, &st) == nil && st.RevokedAt == nil {
					find(kind, "key %s is registered under the name %q of the active key %s", e.KeyID, e.Name, other)
				}
			}
		}
		st, _ := json.Marshal(keyState{AddedAt: index, PublicKey: e.PublicKey})
		set(pKey+e.KeyID.String(), st)
		set(pKeyName+e.Name, e.KeyID[:])
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
		set(pKey+e.KeyID.String(), nb)
		if slices.Contains(m.cfg.Watch.Keys, e.KeyID) {
			seen("key %s revoked: %s", e.KeyID, e.Reason)
		}
	case *event.AttestationRecorded:
		if b, _ := get(txn, pEnvelope+e.Envelope.String()); b != nil {
			find(kind, "envelope %s is logged a second time (first at log index %d)", e.Envelope, binary.BigEndian.Uint64(b))
		} else {
			set(pEnvelope+e.Envelope.String(), u64(index))
		}
		for _, p := range m.checkAttestation(txn, index, e, f) {
			find(kind, "%s", p)
		}
		if slices.Contains(m.cfg.Watch.Keys, e.KeyID) {
			seen("attestation by key %s: %s", e.KeyID, e.Verdict)
		}
		for _, s := range e.Subjects {
			if slices.Contains(m.cfg.Watch.Digests, s.SHA256) {
				seen("attestation by key %s of %s (%s): %s", e.KeyID, s.Name, s.SHA256, e.Verdict)
			}
		}
	}
	return serr
}

// checkAttestation checks an attestation against the keys and builds seen
// and its envelope as served, and returns what is wrong.
func (m *Monitor) checkAttestation(txn *badger.Txn, index uint64, e *event.AttestationRecorded, f *fetched) []string {
	var bad []string
	var rec *buildRecord
	if e.Build != nil {
		b, _ := get(txn, pBuild+e.Build.String())
		if b == nil {
			bad = append(bad, fmt.Sprintf("it attests build %s, which no earlier event records", e.Build))
		} else {
			rec = &buildRecord{}
			json.Unmarshal(b, rec)
		}
	}
	if rec != nil {
		for _, s := range e.Subjects {
			d, ok := rec.Artifacts[s.Name]
			switch {
			case !ok:
				bad = append(bad, fmt.Sprintf("subject %q is not an artifact of build %s", s.Name, e.Build))
			case (e.Verdict == event.VerdictReproduced || e.Verdict == event.VerdictBuilt) && d != s.SHA256:
				bad = append(bad, fmt.Sprintf("verdict %q, but subject %q has %s while build %s recorded %s", e.Verdict, s.Name, s.SHA256, e.Build, d))
			}
		}
	}
	b, _ := get(txn, pKey+e.KeyID.String())
	var st keyState
	if b == nil || json.Unmarshal(b, &st) != nil {
		return append(bad, fmt.Sprintf("it is signed with key %s, which no earlier event registers", e.KeyID))
	}
	if st.RevokedAt != nil {
		return append(bad, fmt.Sprintf("it is signed with key %s, revoked at log index %d", e.KeyID, *st.RevokedAt))
	}
	pub, err := x509.ParsePKIXPublicKey(st.PublicKey)
	if err != nil {
		return append(bad, fmt.Sprintf("key %s's registered public key does not parse: %v", e.KeyID, err))
	}
	v, err := attest.NewVerifier(pub)
	if err != nil {
		return append(bad, fmt.Sprintf("key %s: %v", e.KeyID, err))
	}
	if err := f.envErrs[index]; err != nil {
		return append(bad, fmt.Sprintf("its envelope %s is not served as logged: %v", e.Envelope, err))
	}
	env := f.envelopes[index]
	var signedBuild *uuid.UUID
	var signedVerdict string
	var signed []event.Subject
	if e.PredicateType == attest.LinkPredicateType {
		vl, err := attest.VerifyLink(env, v)
		if err != nil {
			return append(bad, fmt.Sprintf("its link %s does not verify with key %s: %v", e.Envelope, e.KeyID, err))
		}
		signedBuild, signedVerdict = &vl.Build, string(vl.Verdict)
		for _, s := range vl.Subjects {
			if rec != nil {
				if _, ok := rec.Artifacts[s.Name]; !ok {
					continue // an extra product: in the link, not among the subjects
				}
			}
			signed = append(signed, event.Subject{Name: s.Name, SHA256: s.SHA256})
		}
	} else {
		ver, err := attest.Verify(env, v)
		if err != nil {
			return append(bad, fmt.Sprintf("its envelope %s does not verify with key %s: %v", e.Envelope, e.KeyID, err))
		}
		if ver.PredicateType != e.PredicateType {
			bad = append(bad, fmt.Sprintf("the signed predicate type is %q, the event says %q", ver.PredicateType, e.PredicateType))
		}
		for _, s := range ver.Subjects {
			signed = append(signed, event.Subject{Name: s.Name, SHA256: s.SHA256})
		}
		rb, err := ver.Rebuild()
		if err != nil {
			return append(bad, fmt.Sprintf("the signed statement is not a rebuild attestation: %v", err))
		}
		signedBuild, signedVerdict = &rb.Build, string(rb.Verdict)
		if rec != nil && (rb.Job != rec.Job || rb.Platform != rec.Platform || rb.LogIndex != int64(rec.Index)) {
			bad = append(bad, fmt.Sprintf("the signed predicate describes job %s on %s at log index %d; build %s is of job %s on %s at log index %d",
				rb.Job, rb.Platform, rb.LogIndex, e.Build, rec.Job, rec.Platform, rec.Index))
		}
	}
	slices.SortFunc(signed, event.CompareSubjects)
	switch {
	case e.Build == nil:
		bad = append(bad, fmt.Sprintf("the signed attestation is of build %s; the event names no build", signedBuild))
	case *signedBuild != *e.Build:
		bad = append(bad, fmt.Sprintf("the signed attestation is of build %s, the event says %s", signedBuild, e.Build))
	}
	if signedVerdict != string(e.Verdict) {
		bad = append(bad, fmt.Sprintf("the signed verdict is %q, the event says %q", signedVerdict, e.Verdict))
	}
	if !slices.Equal(signed, e.Subjects) {
		bad = append(bad, fmt.Sprintf("the signed subjects %v are not the event's %v", signed, e.Subjects))
	}
	return bad
}
