package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/httpapi/api"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/event"

	"github.com/google/uuid"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/ledger/builder"
)

// Credentials are an account's HTTP Basic credentials.
// An API token (auth.TokenPrefix...) goes in Password: with no User it is
// sent as "Authorization: Bearer", with one as HTTP Basic (as builder's
// upload would).
type Credentials struct{ User, Password string }

// send makes a request and returns the body of a response with one of the
// wanted statuses, or an *Error carrying the server's message.
func (c *Client) send(ctx context.Context, method, path, ctype string, body []byte, cred *Credentials, want ...int) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	if cred != nil {
		cred.set(req)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, resp.StatusCode, err
	}
	for _, w := range want {
		if resp.StatusCode == w {
			return b, resp.StatusCode, nil
		}
	}
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return nil, resp.StatusCode, &Error{Status: resp.StatusCode, Msg: fmt.Sprintf("%s /%s: %s (%s)", method, strings.TrimPrefix(path, "/"), msg, resp.Status)}
}

// proveReceipt checks that a write's receipt is true: its checkpoint is
// signed by the log key and consistent with the latest one, and the event
// at its index is in the log (proven from tiles) and is what check expects.
func (c *Client) proveReceipt(ctx context.Context, index uint64, signed string, check func(event.Event) error) (*VerifiedEvent, *checkpoint.Checkpoint, error) {
	rcp, err := c.openCheckpoint(ctx, []byte(signed))
	if err != nil {
		return nil, nil, fmt.Errorf("SECURITY: the receipt's checkpoint: %w", err)
	}
	// The latest checkpoint, witnessed or not: a write is acknowledged by
	// the ledger before witnesses see it.
	cp, err := c.latest(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := c.CheckConsistency(ctx, rcp, cp); err != nil {
		return nil, nil, err
	}
	ve, err := c.Event(ctx, index, rcp)
	if err != nil {
		return nil, nil, err
	}
	if err := check(ve.Event); err != nil {
		return nil, nil, fmt.Errorf("SECURITY: log index %d: %w", index, err)
	}
	return ve, cp, nil
}

// Upload sends a build in builder's DER exec format to /upload and proves
// the receipt: the build event is in the log under a checkpoint signed by
// the log key.
func (c *Client) Upload(ctx context.Context, der []byte, id uuid.UUID, cred Credentials) (*api.UploadReceipt, *event.BuildRecorded, error) {
	b, _, err := c.send(ctx, http.MethodPost, "upload", "application/octet-stream", der, &cred, http.StatusCreated, http.StatusOK)
	if err != nil {
		return nil, nil, err
	}
	var rc api.UploadReceipt
	if err := json.Unmarshal(b, &rc); err != nil {
		return nil, nil, fmt.Errorf("upload receipt is not JSON: %w", err)
	}
	var br *event.BuildRecorded
	_, _, err = c.proveReceipt(ctx, rc.LogIndex, rc.Checkpoint, func(ev event.Event) error {
		var ok bool
		if br, ok = ev.(*event.BuildRecorded); !ok || br.UUID != id {
			return fmt.Errorf("the event is not build %s", id)
		}
		return nil
	})
	return &rc, br, err
}

// SubmitAttestation sends a DSSE envelope (or an in-toto link) to
// /attestations and proves the receipt: an attestation event of exactly
// this envelope is in the log.
func (c *Client) SubmitAttestation(ctx context.Context, envelope []byte) (*api.AttestationReceipt, error) {
	b, _, err := c.send(ctx, http.MethodPost, "attestations", "application/json", envelope, nil, http.StatusCreated, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var rc api.AttestationReceipt
	if err := json.Unmarshal(b, &rc); err != nil {
		return nil, fmt.Errorf("attestation receipt is not JSON: %w", err)
	}
	// The ledger stores the envelope in its canonical form, with the one
	// signature that verified.
	isLink := attest.IsLink(envelope)
	var forms [][]byte
	if !isLink {
		if forms, err = attest.CanonicalForms(envelope); err != nil {
			return nil, err
		}
	}
	_, _, err = c.proveReceipt(ctx, rc.LogIndex, rc.Checkpoint, func(ev event.Event) error {
		a, ok := ev.(*event.AttestationRecorded)
		if !ok {
			return fmt.Errorf("the event is a %s, not an attestation", ev.Kind())
		}
		if isLink {
			// Its stored form names the ledger's in-toto key id, which the
			// submitter's hint need not be: compare what is signed.
			logged, err := c.Envelope(ctx, a.Envelope)
			if err != nil {
				return err
			}
			if !attest.SameLink(logged, envelope) {
				return fmt.Errorf("the event logs link %s, not the one submitted", a.Envelope)
			}
			return nil
		}
		for _, f := range forms {
			if a.Envelope == digest.Sum(f) {
				return nil
			}
		}
		return fmt.Errorf("the event logs envelope %s, not the one submitted", a.Envelope)
	})
	return &rc, err
}

// Build fetches the record of a build and proves it is in the log.
func (c *Client) Build(ctx context.Context, id uuid.UUID) (*event.BuildRecorded, uint64, *checkpoint.Checkpoint, error) {
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, 0, nil, err
	}
	b, err := fetch(ctx, c.http, c.url("build/"+id.String()), "application/json")
	if err != nil {
		return nil, 0, nil, c.notFound(err, fmt.Sprintf("no build %s on %s", id, c.base))
	}
	var bv api.BuildView
	if err := json.Unmarshal(b, &bv); err != nil {
		return nil, 0, nil, fmt.Errorf("build %s: answer is not JSON: %w", id, err)
	}
	if bv.LogIndex >= cp.Size {
		if c.witnesses != nil {
			return nil, 0, nil, fmt.Errorf("build %s (log index %d) is newer than the newest witnessed checkpoint (size %d): not witnessed yet; try again once the witnesses cosigned a newer one", id, bv.LogIndex, cp.Size)
		}
		if cp, err = c.Checkpoint(ctx); err != nil {
			return nil, 0, nil, err
		}
	}
	ve, err := c.Event(ctx, bv.LogIndex, cp)
	if err != nil {
		return nil, 0, nil, err
	}
	br, ok := ve.Event.(*event.BuildRecorded)
	if !ok || br.UUID != id {
		return nil, 0, nil, fmt.Errorf("SECURITY: the server says build %s is at log index %d, which holds something else", id, bv.LogIndex)
	}
	return br, bv.LogIndex, cp, nil
}

// notFound words a 404 answer as msg, keeping its status; other errors
// are returned as they are.
func (c *Client) notFound(err error, msg string) error {
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return &Error{Status: e.Status, Msg: msg}
	}
	return err
}

// KeyReceipt is the answer to a key registration or revocation.
type KeyReceipt struct {
	Key        api.KeyInfo `json:"key"`
	LogIndex   uint64      `json:"log_index"`
	LeafHash   []byte      `json:"leaf_hash"`
	Checkpoint string      `json:"checkpoint"`
	Inclusion  [][]byte    `json:"inclusion_proof"`
}

func (c *Client) keyChange(ctx context.Context, path string, req api.KeyRequest, cred Credentials, want event.Kind) (*KeyReceipt, error) {
	body, _ := json.Marshal(req)
	b, _, err := c.send(ctx, http.MethodPost, path, "application/json", body, &cred, http.StatusCreated)
	if err != nil {
		return nil, err
	}
	var rc KeyReceipt
	if err := json.Unmarshal(b, &rc); err != nil {
		return nil, fmt.Errorf("key receipt is not JSON: %w", err)
	}
	_, _, err = c.proveReceipt(ctx, rc.LogIndex, rc.Checkpoint, func(ev event.Event) error {
		if ev.Kind() != want {
			return fmt.Errorf("the event is a %s, not %s", ev.Kind(), want)
		}
		return nil
	})
	return &rc, err
}

// AddKey registers a rebuilder's PEM public key under name (administrators
// only) and proves the logged event.
func (c *Client) AddKey(ctx context.Context, name, publicKeyPEM string, cred Credentials) (*KeyReceipt, error) {
	return c.keyChange(ctx, "keys/"+name, api.KeyRequest{PublicKey: publicKeyPEM}, cred, event.KindKeyAdded)
}

// RevokeKey revokes the key registered under name (administrators only).
func (c *Client) RevokeKey(ctx context.Context, name, reason string, cred Credentials) (*KeyReceipt, error) {
	return c.keyChange(ctx, "keys/"+name+"/revoke", api.KeyRequest{Reason: reason}, cred, event.KindKeyRevoked)
}

// Keys lists the registered keys as the server reports them.
func (c *Client) Keys(ctx context.Context) ([]api.KeyInfo, error) {
	b, err := fetch(ctx, c.http, c.url("keys"), "application/json")
	if err != nil {
		return nil, err
	}
	var out struct {
		Keys []api.KeyInfo `json:"keys"`
	}
	return out.Keys, json.Unmarshal(b, &out)
}

// Exec fetches a recorded build re-exported in builder's exec format (its
// script and every file, inputs included) and checks it against the build
// event: the same UUID, job and platform, the script's digest, and exactly
// the recorded files with their digests. A rebuild starts from this.
func (c *Client) Exec(ctx context.Context, b *event.BuildRecorded) (*builder.Exec, error) {
	var size int64 = 1 << 20 // DER framing, script and console
	for _, a := range b.Artifacts {
		size += a.Size + 1<<10
	}
	data, err := fetchLimit(ctx, c.http, c.url("job/"+b.Job+"/build/"+b.UUID.String()+"/exec"), "", size+maxFetch)
	if err != nil {
		return nil, c.notFound(err, fmt.Sprintf("no build %s in job %s on %s", b.UUID, b.Job, c.base))
	}
	// The answer is already bounded by the record's sizes; what it holds
	// was accepted when the build was recorded (perhaps under other
	// limits), so no part of it is refused for its size here.
	n := int64(len(data))
	ex, err := builder.Parse(data, builder.Limits{MaxTotal: n, MaxFileSize: n, MaxText: n,
		MaxFiles: max(len(b.Artifacts), builder.DefaultMaxFiles), MaxConsoleLines: len(data)})
	if err != nil {
		return nil, fmt.Errorf("exec of build %s: %w", b.UUID, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("SECURITY: the exec served for build %s does not match its logged record: %s", b.UUID, fmt.Sprintf(format, args...))
	}
	if ex.UUID != b.UUID || ex.Job.Name != b.Job || ex.Job.Platform != b.Platform {
		return nil, bad("it is build %s of job %q on %q", ex.UUID, ex.Job.Name, ex.Job.Platform)
	}
	if digest.Sum([]byte(ex.Job.Script)) != b.Script {
		return nil, bad("the script's digest differs")
	}
	if len(ex.Output) != len(b.Artifacts) {
		return nil, bad("%d files, the record has %d", len(ex.Output), len(b.Artifacts))
	}
	for _, f := range ex.Output {
		a, ok := b.Artifact(f.Path)
		if !ok || a.SHA256 != digest.Sum(f.Data) {
			return nil, bad("file %q is not recorded with these bytes", f.Path)
		}
	}
	return ex, nil
}

// AttestationsOfBuild lists the attestations of a build as the server
// reports them (not proven; use it to decide what to do, not what to trust).
func (c *Client) AttestationsOfBuild(ctx context.Context, id uuid.UUID) ([]api.ProvenAttestation, error) {
	b, err := fetch(ctx, c.http, c.url("attestations")+"?build="+id.String(), "application/json")
	if err != nil {
		return nil, err
	}
	var al api.AttestationList
	if err := json.Unmarshal(b, &al); err != nil {
		return nil, fmt.Errorf("attestations of %s: answer is not JSON: %w", id, err)
	}
	return al.Attestations, nil
}

// Envelope fetches a logged attestation envelope by its SHA-256 and checks
// the bytes against it.
func (c *Client) Envelope(ctx context.Context, d digest.Digest) ([]byte, error) {
	b, err := fetch(ctx, c.http, c.url("attestations/"+d.String()), "")
	if err != nil {
		return nil, err
	}
	if digest.Sum(b) != d {
		return nil, fmt.Errorf("SECURITY: envelope %s: the server sent other bytes", d)
	}
	return b, nil
}

// pageSize is how many hits or builds a page request asks for: PageSize,
// at most max (the server's largest page).
func (c *Client) pageSize(max int) int {
	if c.PageSize > 0 && c.PageSize < max {
		return c.PageSize
	}
	return max
}

// HashLookup returns the server's (unproven) answer to GET /hash; Lookup
// proves it. It follows the pages (the next cursor) to the end, keeping
// the first page's checkpoint and the entries below its size: a later
// page may answer with a newer checkpoint.
func (c *Client) HashLookup(ctx context.Context, d digest.Digest) (*api.HashLookup, error) {
	var all *api.HashLookup
	var size uint64
	for after := uint64(0); ; {
		u := c.url("hash") + "?sha256=" + d.String() + "&limit=" + strconv.Itoa(c.pageSize(api.MaxHashPage))
		if all != nil {
			u += "&after=" + strconv.FormatUint(after, 10)
		}
		b, err := fetch(ctx, c.http, u, "application/json")
		var he *Error
		if all == nil && errors.As(err, &he) && he.Status == http.StatusNotFound {
			return nil, fmt.Errorf("%s: %w", d, ErrNotInLedger)
		}
		if err != nil {
			return nil, err
		}
		var hl api.HashLookup
		if err := json.Unmarshal(b, &hl); err != nil {
			return nil, fmt.Errorf("lookup answer is not JSON: %w", err)
		}
		if all == nil {
			all = &hl
			if hl.Next == nil {
				return all, nil
			}
			cp, err := c.openCheckpoint(ctx, []byte(hl.Checkpoint))
			if err != nil {
				return nil, err
			}
			size = cp.Size
		} else {
			for _, h := range hl.Builds {
				if h.LogIndex <= after {
					return nil, fmt.Errorf("the server's lookup page after log index %d lists a build at %d", after, h.LogIndex)
				}
				if h.LogIndex < size {
					all.Builds = append(all.Builds, h)
				}
			}
			for _, list := range []struct{ from, to *[]api.AttestationInfo }{{&hl.Attestations, &all.Attestations}, {&hl.Disputes, &all.Disputes}} {
				for _, a := range *list.from {
					if a.LogIndex <= after {
						return nil, fmt.Errorf("the server's lookup page after log index %d lists an attestation at %d", after, a.LogIndex)
					}
					if a.LogIndex < size {
						*list.to = append(*list.to, a)
					}
				}
			}
		}
		if hl.Next == nil || *hl.Next+1 >= size {
			all.Next = nil
			return all, nil
		}
		if all != &hl && *hl.Next <= after {
			return nil, fmt.Errorf("the server's lookup pages do not advance (after %d, then %d)", after, *hl.Next)
		}
		after = *hl.Next
	}
}

// MaxJobBuilds bounds the builds JobBuilds reads: a server that keeps
// answering with a next page cannot make a client's memory grow forever.
const MaxJobBuilds = 100000

// JobBuilds returns the server's (unproven) list of a job's successful
// builds, newest first. It reads the job's pages (start=, count=) to the
// end of the list.
func (c *Client) JobBuilds(ctx context.Context, job string) ([]api.BuildSummary, error) {
	var out []api.BuildSummary
	seen := map[uuid.UUID]bool{}
	for start := 0; ; {
		if len(out) >= MaxJobBuilds {
			return nil, fmt.Errorf("job %s: the server lists more than %d builds, more than this client reads", job, MaxJobBuilds)
		}
		u := c.url("job/"+job) + "?count=" + strconv.Itoa(c.pageSize(api.MaxPage)) + "&start=" + strconv.Itoa(start)
		b, err := fetch(ctx, c.http, u, "application/json")
		if err != nil {
			return nil, c.notFound(err, fmt.Sprintf("no job %s on %s", job, c.base))
		}
		var jv api.JobView
		if err := json.Unmarshal(b, &jv); err != nil {
			return nil, fmt.Errorf("job %s: answer is not JSON: %w", job, err)
		}
		// Pages are offsets into a list that grows at its head: a build
		// recorded between two pages shifts it, repeating one; keep each
		// build once.
		for _, b := range jv.Builds {
			if !seen[b.UUID] {
				seen[b.UUID] = true
				out = append(out, b)
			}
		}
		// A server without pages answers the whole list with no next.
		if jv.Next == "" {
			return out, nil
		}
		if jv.Start != start || jv.Count < 1 {
			return nil, fmt.Errorf("job %s: the server answered the page at %d with start %d, count %d", job, start, jv.Start, jv.Count)
		}
		start += jv.Count
	}
}

// MainBinary downloads a build's main binary into w and checks its size
// (reading no more than size bytes) and its digest against the record.
func (c *Client) MainBinary(ctx context.Context, job string, id uuid.UUID, want digest.Digest, size int64, w io.Writer) error {
	what := "the main binary of build " + id.String()
	return c.streamVerified(ctx, "job/"+job+"/build/"+id.String()+"/main-binary", what, want, size, w)
}

// streamVerified copies the answer to GET path into w, reading at most
// size bytes (size < 0: no bound) and failing unless exactly size bytes
// (when bounded) with SHA-256 want arrived.
func (c *Client) streamVerified(ctx context.Context, path, what string, want digest.Digest, size int64, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &Error{Status: resp.StatusCode, Msg: fmt.Sprintf("%s: %s (%s)", what, strings.TrimSpace(string(b)), resp.Status)}
	}
	var body io.Reader = resp.Body
	if size >= 0 {
		body = io.LimitReader(resp.Body, size+1)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), body)
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("SECURITY: %s is not of its recorded size %d", what, size)
	}
	if got := digest.Digest(h.Sum(nil)); got != want {
		return fmt.Errorf("SECURITY: %s has SHA-256 %s, the log records %s", what, got, want)
	}
	return nil
}

// Entries fetches the log entries from, ..., to-1 (to ≤ cp.Size) from the
// C2SP entry bundles. They are not proven here: a replica checks them by
// recomputing the tree (see ProveConsistent).
func (c *Client) Entries(ctx context.Context, from, to uint64, cp *checkpoint.Checkpoint) ([][]byte, error) {
	if to > cp.Size {
		return nil, fmt.Errorf("entries up to %d are beyond the checkpoint of size %d", to, cp.Size)
	}
	var out [][]byte
	for i := from; i < to; {
		n := i / 256
		b, err := client.GetEntryBundle(ctx, c.tiles.ReadEntryBundle, n, cp.Size)
		if err != nil {
			return nil, fmt.Errorf("entry bundle %d: %w", n, err)
		}
		for ; i < to && i/256 == n; i++ {
			k := int(i % 256)
			if k >= len(b.Entries) {
				return nil, fmt.Errorf("entry bundle %d has %d entries; entry %d is missing", n, len(b.Entries), i)
			}
			out = append(out, b.Entries[k])
		}
	}
	return out, nil
}

// ProveConsistent checks that root is the log's root at size, a prefix of
// the checkpoint cp, with a consistency proof built from the tiles.
func (c *Client) ProveConsistent(ctx context.Context, size uint64, root [32]byte, cp *checkpoint.Checkpoint) error {
	if size == 0 {
		return nil
	}
	pb, err := client.NewProofBuilder(ctx, cp.Size, c.tiles.ReadTile)
	if err != nil {
		return fmt.Errorf("reading tiles: %w", err)
	}
	p, err := pb.ConsistencyProof(ctx, size, cp.Size)
	if err != nil {
		return fmt.Errorf("building a consistency proof from tiles: %w", err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size, cp.Size, p, root[:], cp.Hash[:]); err != nil {
		return fmt.Errorf("SECURITY: the entries up to %d are not a prefix of the log at checkpoint %d: %w", size, cp.Size, err)
	}
	return nil
}

// StoredBlob streams a blob from the server's content-addressed store
// (GET /blob/SHA256) into w and checks its digest.
func (c *Client) StoredBlob(ctx context.Context, d digest.Digest, w io.Writer) error {
	return c.streamVerified(ctx, "blob/"+d.String(), "blob "+d.String(), d, -1, w)
}

// ProvenLink is an in-toto link the log holds, proven: its event is in the
// log under the checkpoint, its bytes hash to what the event logs, and its
// signature verifies with the key the log registered.
type ProvenLink struct {
	Index   uint64 // log index of its attestation event
	KeyID   digest.Digest
	KeyName string
	Verdict event.Verdict
	Data    []byte // the link file
}

// Links returns the in-toto links logged for build id, proven against cp
// (see ProvenLink), in log order. Which attestations exist is as the
// server lists them: a server can hide one, not forge one.
func (c *Client) Links(ctx context.Context, id uuid.UUID, cp *checkpoint.Checkpoint) ([]ProvenLink, error) {
	listed, err := c.AttestationsOfBuild(ctx, id)
	if err != nil {
		return nil, err
	}
	keys := &proverKeys{c: c, cp: cp}
	var out []ProvenLink
	for _, a := range listed {
		if a.PredicateType != attest.LinkPredicateType || a.LogIndex >= cp.Size {
			continue
		}
		ve, err := c.Event(ctx, a.LogIndex, cp)
		if err != nil {
			return nil, err
		}
		ar, ok := ve.Event.(*event.AttestationRecorded)
		if !ok || ar.Build == nil || *ar.Build != id || ar.PredicateType != attest.LinkPredicateType {
			return nil, fmt.Errorf("SECURITY: the server lists log index %d as an in-toto link of build %s, which it is not", a.LogIndex, id)
		}
		name, data, err := keys.verify(ctx, ar)
		if err != nil {
			return nil, fmt.Errorf("the link at log index %d: %w", a.LogIndex, err)
		}
		out = append(out, ProvenLink{Index: a.LogIndex, KeyID: ar.KeyID, KeyName: name, Verdict: ar.Verdict, Data: data})
	}
	return out, nil
}

// set puts the credentials on req.
func (c *Credentials) set(req *http.Request) {
	if c.User == "" && strings.HasPrefix(c.Password, "blt_") {
		req.Header.Set("Authorization", "Bearer "+c.Password)
		return
	}
	req.SetBasicAuth(c.User, c.Password)
}
