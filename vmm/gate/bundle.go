package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/buildledger/buildledger/httpapi/api"
	"github.com/buildledger/buildledger/httpapi/client"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/event"

	"github.com/buildledger/buildledger/internal/atomicfile"
)

// Bundle is everything the gate needs to judge one image without the
// network: a signed checkpoint and, proven against it, the build records
// that produced the image, the attestations naming it (and the disputes of
// those builds) with their envelopes, and the key events of the trusted
// keys. Nothing in it is trusted: Admit verifies it all, every time.
type Bundle struct {
	Image        digest.Digest       `json:"image"`
	Fetched      time.Time           `json:"fetched"` // when, by this gate's clock
	Checkpoint   string              `json:"checkpoint"`
	Builds       []ProvenEvent       `json:"builds"`
	Attestations []ProvenAttestation `json:"attestations"`
	KeyEvents    []ProvenEvent       `json:"key_events"`
	// Consistency proves Checkpoint a prefix of a newer checkpoint this
	// gate accepted. The gate adds it when it accepts a newer checkpoint
	// than the bundle's (or saves a bundle older than the newest one), and
	// an offline decision from a bundle older than the newest checkpoint
	// seen requires it (TestGateOlderBundleNeedsConsistency).
	Consistency *Consistency `json:"consistency,omitempty"`
}

// Consistency is an RFC 6962 consistency proof from a bundle's checkpoint
// to a newer one.
type Consistency struct {
	Checkpoint string   `json:"checkpoint"` // the newer checkpoint
	Proof      [][]byte `json:"proof"`
}

// ProvenEvent is a log entry with its inclusion proof in the bundle's
// checkpoint.
type ProvenEvent struct {
	Index uint64   `json:"index"`
	Event []byte   `json:"event"`
	Proof [][]byte `json:"proof"`
}

// ProvenAttestation is an attestation event with the envelope it logs.
type ProvenAttestation struct {
	ProvenEvent
	Envelope []byte `json:"envelope"`
}

// state is what the gate remembers across restarts: the newest checkpoint
// it accepted, which every later one must extend.
type state struct {
	Checkpoint string `json:"checkpoint"`
}

func (g *Gate) bundlePath(d digest.Digest) string {
	return filepath.Join(g.cfg.CacheDir, "bundles", d.String()+".json")
}

// loadBundle reads the cached bundle of d; fs.ErrNotExist when there is none.
func (g *Gate) loadBundle(d digest.Digest) (*Bundle, error) {
	b, err := os.ReadFile(g.bundlePath(d))
	if err != nil {
		return nil, err
	}
	var bu Bundle
	if err := json.Unmarshal(b, &bu); err != nil {
		return nil, fmt.Errorf("cached bundle of %s is damaged (%v); fetch it again with 'vmm bundle'", d, err)
	}
	if bu.Image != d {
		return nil, fmt.Errorf("cached bundle %s is for image %s", g.bundlePath(d), bu.Image)
	}
	return &bu, nil
}

// writeFile replaces a file of the cache (Config.WriteFile).
func (g *Gate) writeFile(path string, data []byte) error {
	if g.cfg.WriteFile != nil {
		return g.cfg.WriteFile(path, data, 0o600)
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

func (g *Gate) saveBundle(b *Bundle) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(g.bundlePath(b.Image)), 0o700); err != nil {
		return err
	}
	return g.writeFile(g.bundlePath(b.Image), data)
}

// saveFresh caches a bundle just fetched against cp. If the gate has
// meanwhile accepted a newer checkpoint, the bundle gets the proof that
// cp is a prefix of it, which an offline decision needs.
func (g *Gate) saveFresh(ctx context.Context, c *client.Client, b *Bundle, cp *checkpoint.Checkpoint) error {
	unlock, err := g.lockState()
	if err != nil {
		return err
	}
	defer unlock()
	last, err := g.lastCheckpoint()
	if err != nil {
		return err
	}
	if last != nil && last.Size > cp.Size {
		p, err := c.ConsistencyProof(ctx, cp, last)
		if err != nil {
			return err
		}
		b.Consistency = &Consistency{Checkpoint: string(last.Note), Proof: p}
	}
	return g.saveBundle(b)
}

// refreshBundles gives every cached bundle older than cp the proof that
// its checkpoint is a prefix of cp, the newest checkpoint the gate
// accepted. The caller holds the state lock. A bundle whose proof cannot
// be fetched keeps its old one and will be refused offline until fetched
// again; a proof that shows the log rewrote its history is an error.
func (g *Gate) refreshBundles(ctx context.Context, c *client.Client, cp *checkpoint.Checkpoint) error {
	paths, err := filepath.Glob(filepath.Join(g.cfg.CacheDir, "bundles", "*.json"))
	if err != nil {
		return err
	}
	for _, path := range paths {
		d, err := digest.ParseDigest(strings.TrimSuffix(filepath.Base(path), ".json"))
		if err != nil {
			continue
		}
		b, err := g.loadBundle(d)
		if err != nil {
			continue
		}
		old, err := checkpoint.Open([]byte(b.Checkpoint), g.cfg.Policy.Origin, g.cfg.Policy.LogKey)
		if err != nil || old.Size >= cp.Size {
			continue
		}
		p, err := c.ConsistencyProof(ctx, old, cp)
		var ie *client.InconsistencyError
		if errors.As(err, &ie) {
			return err
		}
		if err != nil {
			continue
		}
		b.Consistency = &Consistency{Checkpoint: string(cp.Note), Proof: p}
		if err := g.saveBundle(b); err != nil {
			return err
		}
	}
	return nil
}

func (g *Gate) statePath() string { return filepath.Join(g.cfg.CacheDir, "checkpoint.json") }

// lastCheckpoint is the newest checkpoint accepted, nil before the first.
func (g *Gate) lastCheckpoint() (*checkpoint.Checkpoint, error) {
	b, err := os.ReadFile(g.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("gate state %s is damaged: %w", g.statePath(), err)
	}
	cp, err := checkpoint.Open([]byte(st.Checkpoint), g.cfg.Policy.Origin, g.cfg.Policy.LogKey)
	if err != nil {
		return nil, fmt.Errorf("gate state %s: %w", g.statePath(), err)
	}
	return cp, nil
}

// advance proves cp consistent with the newest checkpoint seen and, if it
// is newer, remembers it. A log that rewrote its history fails here with
// an *client.InconsistencyError.
func (g *Gate) advance(ctx context.Context, c *client.Client, cp *checkpoint.Checkpoint) error {
	unlock, err := g.lockState()
	if err != nil {
		return err
	}
	defer unlock()
	last, err := g.lastCheckpoint()
	if err != nil {
		return err
	}
	if last != nil {
		older, newer := last, cp
		if cp.Size < last.Size {
			older, newer = cp, last
		}
		if err := c.CheckConsistency(ctx, older, newer); err != nil {
			return err
		}
		if cp.Size <= last.Size {
			return nil
		}
	}
	data, err := json.Marshal(state{Checkpoint: string(cp.Note)})
	if err != nil {
		return err
	}
	if err := g.writeFile(g.statePath(), data); err != nil {
		return err
	}
	return g.refreshBundles(ctx, c, cp)
}

// FetchBundle fetches the bundle of image d from the ledger, proving every
// piece against a checkpoint that extends the last one this gate saw, and
// caches it. An image no build produced is an error wrapping
// client.ErrNotInLedger.
func (g *Gate) FetchBundle(ctx context.Context, d digest.Digest) (*Bundle, error) {
	c := g.client
	if c == nil {
		return nil, errors.New("the gate policy names no ledger; bundles cannot be fetched")
	}
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	if err := g.advance(ctx, c, cp); err != nil {
		return nil, err
	}
	hl, err := c.HashLookup(ctx, d)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Image: d, Checkpoint: string(cp.Note), Fetched: time.Now().UTC()}
	prove := func(index uint64) (ProvenEvent, event.Event, error) {
		ve, err := c.Event(ctx, index, cp)
		if err != nil {
			return ProvenEvent{}, nil, err
		}
		return ProvenEvent{Index: index, Event: ve.Bytes, Proof: ve.Proof}, ve.Event, nil
	}
	for _, h := range hl.Builds {
		if h.LogIndex >= cp.Size {
			continue
		}
		pe, _, err := prove(h.LogIndex)
		if err != nil {
			return nil, err
		}
		b.Builds = append(b.Builds, pe)
	}
	for _, a := range append(append([]api.AttestationInfo{}, hl.Attestations...), hl.Disputes...) {
		if a.LogIndex >= cp.Size {
			continue
		}
		pe, ev, err := prove(a.LogIndex)
		if err != nil {
			return nil, err
		}
		ar, ok := ev.(*event.AttestationRecorded)
		if !ok {
			return nil, fmt.Errorf("SECURITY: the ledger named event %d as an attestation; it is a %s", a.LogIndex, ev.Kind())
		}
		env, err := c.Envelope(ctx, ar.Envelope)
		if err != nil {
			return nil, err
		}
		b.Attestations = append(b.Attestations, ProvenAttestation{ProvenEvent: pe, Envelope: env})
	}
	keys, err := c.Keys(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if g.cfg.Policy.keys[k.KeyID] == nil {
			continue // only the trusted keys' events matter
		}
		idx := []uint64{k.AddedAt}
		if k.RevokedAt != nil {
			idx = append(idx, *k.RevokedAt)
		}
		for _, i := range idx {
			if i >= cp.Size {
				continue
			}
			pe, _, err := prove(i)
			if err != nil {
				return nil, err
			}
			b.KeyEvents = append(b.KeyEvents, pe)
		}
	}
	if err := g.saveFresh(ctx, c, b, cp); err != nil {
		return nil, err
	}
	return b, nil
}

func (g *Gate) revocationsPath() string { return filepath.Join(g.cfg.CacheDir, "revocations.json") }

// knownRevocations returns the key revocations (key id → log index) this
// gate has seen proven in any bundle.
func (g *Gate) knownRevocations() (map[digest.Digest]uint64, error) {
	out := map[digest.Digest]uint64{}
	b, err := os.ReadFile(g.revocationsPath())
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	var list map[string]uint64
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("gate state %s is damaged: %w", g.revocationsPath(), err)
	}
	for k, v := range list {
		d, err := digest.ParseDigest(k)
		if err != nil {
			return nil, fmt.Errorf("gate state %s: %w", g.revocationsPath(), err)
		}
		out[d] = v
	}
	return out, nil
}

// learnRevocations remembers proven revocations for good.
func (g *Gate) learnRevocations(r map[digest.Digest]uint64) error {
	unlock, err := g.lockState()
	if err != nil {
		return err
	}
	defer unlock()
	if known, err := g.knownRevocations(); err == nil {
		for k, v := range known {
			if _, ok := r[k]; !ok {
				r[k] = v
			}
		}
	}
	list := map[string]uint64{}
	for k, v := range r {
		list[k.String()] = v
	}
	data, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return g.writeFile(g.revocationsPath(), data)
}

// lockState serialises changes to the gate's state between goroutines and
// between processes sharing the cache (the daemon and 'vmm bundle'), so a
// checkpoint never goes backwards and no learned revocation is lost.
func (g *Gate) lockState() (func(), error) {
	g.mu.Lock()
	f, err := os.OpenFile(filepath.Join(g.cfg.CacheDir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		g.mu.Unlock()
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		g.mu.Unlock()
		return nil, err
	}
	return func() { f.Close(); g.mu.Unlock() }, nil
}
