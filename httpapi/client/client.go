package client

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/httpapi/api"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/event"

	"github.com/google/uuid"
	"github.com/transparency-dev/formats/witness"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	tclient "github.com/transparency-dev/tessera/client"

	"github.com/buildledger/buildledger/attest"
)

// Error is an answer of the server other than the one asked for: its
// HTTP status and the message it gave.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// KeyChangedError: a checkpoint did not verify with the pinned log key,
// and the server now presents another key. A test server that was reset
// answers like this; so would a server that lost its key or an impostor,
// which is why the client never re-pins by itself.
type KeyChangedError struct {
	Pinned, Served string
	// Err is why the checkpoint did not verify with the pinned key.
	Err error
}

func (e *KeyChangedError) Error() string {
	return fmt.Sprintf("the server's log key changed: its checkpoint does not verify with the pinned key\n  pinned: %s\n  served: %s", e.Pinned, e.Served)
}

func (e *KeyChangedError) Unwrap() error { return e.Err }

// Client talks to a ledger server and verifies what it is told: every
// checkpoint against the pinned log key, every event against a checkpoint
// by an inclusion proof it builds itself from the server's C2SP tiles (with
// transparency-dev/tessera's client), and every new checkpoint against the
// previous one by a consistency proof.
type Client struct {
	// PageSize, if positive, is how many hits or builds HashLookup and
	// JobBuilds ask for per page (default: the server's largest page).
	PageSize int

	base   *url.URL
	http   *http.Client
	vkey   string
	origin string
	tiles  *tclient.HTTPFetcher

	witnesses *witness.Group // RequireWitnesses
}

// New returns a client for the server at base that trusts checkpoints
// signed by vkey (signed-note verifier key; its name is the log's origin).
func New(base string, vkey string, hc *http.Client) (*Client, error) {
	u, err := ParseServerURL(base)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	origin, _, _ := strings.Cut(vkey, "+")
	if origin == "" {
		return nil, fmt.Errorf("log key %q is not a signed-note verifier key (name+hash+key)", vkey)
	}
	f, err := tclient.NewHTTPFetcher(u, hc)
	if err != nil {
		return nil, err
	}
	return &Client{base: u, http: hc, vkey: vkey, origin: origin, tiles: f}, nil
}

// ParseServerURL checks that base is an http:// or https:// URL with a
// host, and returns it ending in a slash. A bare host:port is refused with
// the URL it probably meant.
func ParseServerURL(base string) (*url.URL, error) {
	if base == "" {
		return nil, errors.New("no server URL given (e.g. http://127.0.0.1:3000)")
	}
	u, err := url.Parse(strings.TrimSuffix(base, "/") + "/")
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return u, nil
	}
	if !strings.Contains(base, "://") {
		return nil, fmt.Errorf("server URL %q has no scheme; use http://%s (or https://)", base, base)
	}
	return nil, fmt.Errorf("server URL %q must be http:// or https:// followed by a host, e.g. http://127.0.0.1:3000", base)
}

// FetchLogKey asks a server for its log key. Use it only to pin a key on
// first contact (trust on first use); afterwards pass the pinned key.
func FetchLogKey(ctx context.Context, base string, hc *http.Client) (string, error) {
	u, err := ParseServerURL(base)
	if err != nil {
		return "", err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	b, err := fetch(ctx, hc, u.JoinPath("log/key").String(), "")
	return strings.TrimSpace(string(b)), err
}

// maxFetch bounds what the client reads from one answer; fetchLimit
// raises it for build records with their files.
const maxFetch = 64 << 20

func fetch(ctx context.Context, hc *http.Client, u, accept string) ([]byte, error) {
	return fetchLimit(ctx, hc, u, accept, maxFetch)
}

func fetchLimit(ctx context.Context, hc *http.Client, u, accept string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: the answer is larger than %d MiB, more than this client reads", u, limit>>20)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, &Error{Status: resp.StatusCode, Msg: fmt.Sprintf("%s: %s", u, msg)}
	}
	return b, nil
}

func (c *Client) url(p string) string { return c.base.JoinPath(p).String() }

// LogKey returns the verifier key the client trusts.
func (c *Client) LogKey() string { return c.vkey }

// Checkpoint fetches and verifies the latest checkpoint (with
// RequireWitnesses: the newest witnessed one).
func (c *Client) Checkpoint(ctx context.Context) (*checkpoint.Checkpoint, error) {
	if c.witnesses != nil {
		return c.Witnessed(ctx)
	}
	return c.latest(ctx)
}

// latest fetches and verifies the latest checkpoint, witnessed or not.
func (c *Client) latest(ctx context.Context) (*checkpoint.Checkpoint, error) {
	b, err := fetch(ctx, c.http, c.url("checkpoint"), "")
	if err != nil {
		return nil, err
	}
	return c.openCheckpoint(ctx, b)
}

// openCheckpoint verifies a checkpoint the server signed; when it does not
// verify, it asks the server for its key to say whether the key changed.
func (c *Client) openCheckpoint(ctx context.Context, signed []byte) (*checkpoint.Checkpoint, error) {
	cp, err := checkpoint.Open(signed, c.origin, c.vkey)
	if err == nil || !errors.Is(err, checkpoint.ErrBad) {
		return cp, err
	}
	served, kerr := FetchLogKey(ctx, c.base.String(), c.http)
	if kerr == nil && served != "" && served != c.vkey {
		return nil, &KeyChangedError{Pinned: c.vkey, Served: served, Err: err}
	}
	return nil, err
}

// InconsistencyError is a security error: the server showed two checkpoints
// that cannot both be true (it rewrote or forked its history).
type InconsistencyError struct {
	Old, New *checkpoint.Checkpoint
	Reason   string
}

func (e *InconsistencyError) Error() string {
	return fmt.Sprintf("SECURITY: the log is not consistent with a checkpoint seen before (%s)\nearlier checkpoint:\n%s\nnew checkpoint:\n%s",
		e.Reason, e.Old.Note, e.New.Note)
}

// CheckConsistency proves that newer extends older, building the proof
// from the server's tiles.
func (c *Client) CheckConsistency(ctx context.Context, older, newer *checkpoint.Checkpoint) error {
	_, err := c.ConsistencyProof(ctx, older, newer)
	return err
}

// ConsistencyProof is CheckConsistency returning the verified proof, for
// callers that keep it to show the consistency again offline (empty when
// the sizes are equal or older is empty).
func (c *Client) ConsistencyProof(ctx context.Context, older, newer *checkpoint.Checkpoint) ([][]byte, error) {
	switch {
	case newer.Size < older.Size:
		return nil, &InconsistencyError{older, newer, fmt.Sprintf("the log shrank from %d to %d entries", older.Size, newer.Size)}
	case newer.Size == older.Size:
		if newer.Hash != older.Hash {
			return nil, &InconsistencyError{older, newer, fmt.Sprintf("two different roots for size %d", newer.Size)}
		}
		return nil, nil
	case older.Size == 0:
		return nil, nil
	}
	pb, err := client.NewProofBuilder(ctx, newer.Size, c.tiles.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("reading tiles: %w", err)
	}
	p, err := pb.ConsistencyProof(ctx, older.Size, newer.Size)
	if err != nil {
		return nil, fmt.Errorf("building consistency proof from tiles: %w", err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, older.Size, newer.Size, p, older.Hash[:], newer.Hash[:]); err != nil {
		return nil, &InconsistencyError{older, newer, err.Error()}
	}
	return p, nil
}

// VerifiedEvent is an event proven to be in the log.
type VerifiedEvent struct {
	Index uint64
	Bytes []byte
	Event event.Event
	// Proof is the inclusion proof of Bytes at Index in the checkpoint
	// the event was verified against.
	Proof [][]byte
}

// Event fetches the event at index and proves its inclusion in cp.
func (c *Client) Event(ctx context.Context, index uint64, cp *checkpoint.Checkpoint) (*VerifiedEvent, error) {
	if index >= cp.Size {
		return nil, fmt.Errorf("event %d is not covered by the checkpoint of size %d", index, cp.Size)
	}
	data, err := fetch(ctx, c.http, c.url(fmt.Sprintf("event/%d", index)), "")
	if err != nil {
		return nil, err
	}
	pb, err := client.NewProofBuilder(ctx, cp.Size, c.tiles.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("reading tiles: %w", err)
	}
	p, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("building inclusion proof from tiles: %w", err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, cp.Size, rfc6962.DefaultHasher.HashLeaf(data), p, cp.Hash[:]); err != nil {
		return nil, fmt.Errorf("SECURITY: event %d served by the server is not in the log at checkpoint %d: %w", index, cp.Size, err)
	}
	ev, err := event.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("event %d: %w", index, err)
	}
	return &VerifiedEvent{Index: index, Bytes: data, Event: ev, Proof: p}, nil
}

// LookupResult is a verified reverse hash lookup.
type LookupResult struct {
	Checkpoint   *checkpoint.Checkpoint
	Builds       []VerifiedBuild
	Attestations []*event.AttestationRecorded
	AttIndices   []uint64
	// Disputes are "differs" attestations of the builds found: rebuilders
	// that got other bytes.
	Disputes       []*event.AttestationRecorded
	DisputeIndices []uint64
	// KeyNames are the names the keys were registered under, from their
	// proven key_added events.
	KeyNames map[digest.Digest]string
}

// VerifiedBuild is a build proven to be in the log that has an artifact
// with the looked-up digest at Path.
type VerifiedBuild struct {
	Index uint64
	Path  string
	Build *event.BuildRecorded
}

// ErrNotInLedger: no recorded build produced the digest.
var ErrNotInLedger = errors.New("no recorded build produced this digest")

// Lookup asks where a digest came from and verifies every answer: the
// checkpoint's signature, each build event's inclusion, and that the event
// really lists the digest.
func (c *Client) Lookup(ctx context.Context, d digest.Digest) (*LookupResult, error) {
	hl, err := c.HashLookup(ctx, d)
	if err != nil {
		return nil, err
	}
	cp, err := c.openCheckpoint(ctx, []byte(hl.Checkpoint))
	if err != nil {
		return nil, err
	}
	res := &LookupResult{Checkpoint: cp}
	for _, h := range hl.Builds {
		ve, err := c.Event(ctx, h.LogIndex, cp)
		if err != nil {
			return nil, err
		}
		br, ok := ve.Event.(*event.BuildRecorded)
		if !ok {
			return nil, fmt.Errorf("SECURITY: server named event %d as a build, but it is a %s", h.LogIndex, ve.Event.Kind())
		}
		if a, ok := br.Artifact(h.Path); !ok || a.SHA256 != d {
			return nil, fmt.Errorf("SECURITY: build event %d has no artifact %q with digest %s", h.LogIndex, h.Path, d)
		}
		res.Builds = append(res.Builds, VerifiedBuild{Index: h.LogIndex, Path: h.Path, Build: br})
	}
	res.KeyNames = map[digest.Digest]string{}
	found := map[uuid.UUID]string{} // build → path of the artifact with digest d
	for _, b := range res.Builds {
		found[b.Build.UUID] = b.Path
	}
	var keys *proverKeys
	for _, list := range []struct {
		infos   []api.AttestationInfo
		events  *[]*event.AttestationRecorded
		indices *[]uint64
		dispute bool
	}{{hl.Attestations, &res.Attestations, &res.AttIndices, false}, {hl.Disputes, &res.Disputes, &res.DisputeIndices, true}} {
		for _, a := range list.infos {
			ve, err := c.Event(ctx, a.LogIndex, cp)
			if err != nil {
				return nil, err
			}
			ar, ok := ve.Event.(*event.AttestationRecorded)
			if !ok {
				return nil, fmt.Errorf("SECURITY: server named event %d as an attestation, but it is a %s", a.LogIndex, ve.Event.Kind())
			}
			if err := attestationConcerns(ar, d, found, list.dispute); err != nil {
				return nil, fmt.Errorf("SECURITY: attestation at log index %d %v", a.LogIndex, err)
			}
			if keys == nil {
				keys = &proverKeys{c: c, cp: cp}
			}
			name, _, err := keys.verify(ctx, ar)
			if err != nil {
				return nil, fmt.Errorf("attestation at log index %d: %w", a.LogIndex, err)
			}
			*list.events = append(*list.events, ar)
			*list.indices = append(*list.indices, a.LogIndex)
			res.KeyNames[ar.KeyID] = name
		}
	}
	if c.witnesses != nil {
		// Within a witnessed checkpoint, or not at all.
		var indices []uint64
		for _, b := range res.Builds {
			indices = append(indices, b.Index)
		}
		indices = append(append(indices, res.AttIndices...), res.DisputeIndices...)
		if keys != nil {
			// The keys' registrations give their names.
			for id := range keys.proven {
				indices = append(indices, keys.listed[id].AddedAt)
			}
		}
		w, err := c.WitnessedCovers(ctx, res.Checkpoint, indices)
		if err != nil {
			return nil, err
		}
		res.Checkpoint = w
	}
	return res, nil
}

// attestationConcerns checks that an attestation the server listed for
// digest d does concern it: it names d, or (a dispute) it attests one of
// the builds found with another digest for the artifact.
func attestationConcerns(a *event.AttestationRecorded, d digest.Digest, found map[uuid.UUID]string, dispute bool) error {
	for _, s := range a.Subjects {
		switch {
		case !dispute && s.SHA256 == d:
			return nil
		case dispute && a.Build != nil && a.Verdict == event.VerdictDiffers && found[*a.Build] == s.Name && s.SHA256 != d:
			return nil
		}
	}
	if dispute {
		return fmt.Errorf("is listed as disputing %s but does not", d)
	}
	return fmt.Errorf("is listed for %s but does not name it", d)
}

// proverKeys verifies attestation envelopes against the keys the log
// registered, proving each key's key_added event.
type proverKeys struct {
	c      *Client
	cp     *checkpoint.Checkpoint
	listed map[digest.Digest]api.KeyInfo
	proven map[digest.Digest]*event.KeyAdded
}

// verify fetches the envelope (or in-toto link) an attestation event logs,
// checks its digest and its signature with the key the event names, and
// returns the key's registered name and the bytes.
func (p *proverKeys) verify(ctx context.Context, a *event.AttestationRecorded) (string, []byte, error) {
	if p.listed == nil {
		keys, err := p.c.Keys(ctx)
		if err != nil {
			return "", nil, err
		}
		p.listed, p.proven = map[digest.Digest]api.KeyInfo{}, map[digest.Digest]*event.KeyAdded{}
		for _, k := range keys {
			p.listed[k.KeyID] = k
		}
	}
	ka := p.proven[a.KeyID]
	if ka == nil {
		k, ok := p.listed[a.KeyID]
		if !ok {
			return "", nil, fmt.Errorf("SECURITY: key %s is not among the server's registered keys", a.KeyID)
		}
		ve, err := p.c.Event(ctx, k.AddedAt, p.cp)
		if err != nil {
			return "", nil, err
		}
		if ka, ok = ve.Event.(*event.KeyAdded); !ok || ka.KeyID != a.KeyID {
			return "", nil, fmt.Errorf("SECURITY: log index %d does not register key %s", k.AddedAt, a.KeyID)
		}
		p.proven[a.KeyID] = ka
	}
	env, err := p.c.Envelope(ctx, a.Envelope)
	if err != nil {
		return "", nil, err
	}
	pub, err := x509.ParsePKIXPublicKey(ka.PublicKey)
	if err != nil {
		return "", nil, err
	}
	v, err := attest.NewVerifier(pub)
	if err != nil {
		return "", nil, err
	}
	att, err := attest.VerifyLogged(env, a.PredicateType, v, 0)
	if err == nil && a.Build != nil && att.Build != *a.Build {
		return "", nil, fmt.Errorf("SECURITY: the logged attestation %s attests build %s, its log record says %s", a.Envelope, att.Build, a.Build)
	}
	if err != nil {
		return "", nil, fmt.Errorf("SECURITY: the logged attestation %s does not verify with key %s (%s): %v", a.Envelope, a.KeyID, ka.Name, err)
	}
	return ka.Name, env, nil
}
