package gate

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/buildledger/buildledger/httpapi/client"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/event"

	"github.com/google/uuid"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/buildledger/buildledger/attest"
)

// Config configures a Gate.
type Config struct {
	Policy *Policy
	// CacheDir keeps the bundles and the newest checkpoint seen.
	CacheDir string
	// HTTP is the client for the ledger; nil means http.DefaultClient.
	HTTP *http.Client
	// Offline never contacts the ledger, even if the policy names one.
	Offline bool
	// WriteFile replaces a file of the cache atomically and durably; nil:
	// atomicfile.WriteFile. Tests make it fail (TestGateMarkerWriteFails).
	WriteFile func(path string, data []byte, perm fs.FileMode) error
}

// Gate decides whether an image may boot.
type Gate struct {
	cfg    Config
	client *client.Client
	mu     sync.Mutex // state file
}

// New returns a gate for cfg.
func New(cfg Config) (*Gate, error) {
	if cfg.Policy == nil || cfg.CacheDir == "" {
		return nil, errors.New("gate: Config needs Policy and CacheDir")
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
		return nil, err
	}
	g := &Gate{cfg: cfg}
	if cfg.Policy.Ledger != "" && !cfg.Offline {
		c, err := client.New(cfg.Policy.Ledger, cfg.Policy.LogKey, cfg.HTTP)
		if err != nil {
			return nil, err
		}
		if cfg.Policy.witnesses != nil {
			// Every checkpoint fetched is the newest witnessed one.
			if err := c.RequireWitnesses(cfg.Policy.witnesses); err != nil {
				return nil, err
			}
		}
		g.client = c
	}
	return g, nil
}

// Decision is the gate's verdict on one image.
type Decision struct {
	Admitted bool
	Image    digest.Digest
	Build    *BuildRef // the newest build with this hash; nil when none
	Verdicts []Verdict
	K        int
	Agreeing []string // the distinct agreeing parties, by name
	// BuiltBy are the policy's builders (built_by) that attested they
	// built the image, by name.
	BuiltBy []string
	Offline bool   // decided from the cached bundle without the network
	Reason  string // for the operator: why refused, or a summary
}

// BuildRef names a recorded build.
type BuildRef struct {
	Job, Platform string
	UUID          uuid.UUID
	LogIndex      uint64
}

// Verdict is what the gate made of one attestation.
type Verdict struct {
	KeyName  string
	KeyID    digest.Digest
	LogIndex uint64
	Status   string // see the Status constants
	Detail   string
}

// Attestation statuses.
const (
	StatusValid           = "valid"
	StatusBuilt           = "built"             // a builder's valid claim that it built the image
	StatusBuilderRebuild  = "builder's rebuild" // a built_by key's reproduction: valid, not counted
	StatusUntrusted       = "untrusted key"
	StatusRevoked         = "revoked"
	StatusBadSignature    = "bad signature"
	StatusDifferentDigest = "different digest"
	StatusNotInLog        = "not in log"
	StatusPredicateType   = "predicate type not accepted"
	StatusBeforeKey       = "logged before the key was added"
)

// HashFile returns the SHA-256 of a file, streaming.
func HashFile(path string) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return digest.Digest{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return digest.Digest{}, err
	}
	return digest.Digest(h.Sum(nil)), nil
}

// Admit hashes the image file and decides (see Check).
func (g *Gate) Admit(ctx context.Context, image string) (*Decision, error) {
	d, err := HashFile(image)
	if err != nil {
		return &Decision{Reason: fmt.Sprintf("refused: cannot read image %s: %v", image, err)}, nil
	}
	return g.Check(ctx, d)
}

// Check decides whether the image with digest d may boot. It fetches a
// fresh bundle when the ledger is reachable and otherwise uses the cached
// one; without either it refuses. It fails closed: a decision is Admitted
// only when at least K distinct trusted parties agree, every piece of
// evidence verified. The error is non-nil only for failures of the gate
// itself (an unreadable cache); callers must treat it as a refusal.
func (g *Gate) Check(ctx context.Context, d digest.Digest) (*Decision, error) {
	why, err := os.ReadFile(g.inconsistentPath())
	switch {
	case err == nil:
		return g.refuse(d, true, "this VMM once saw the ledger rewrite its history and refuses every boot until an operator has looked into it and removed %s:\n%s", g.inconsistentPath(), why), nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("cannot tell whether this VMM once saw the ledger rewrite its history (%w), so no boot is allowed; check %s", err, g.inconsistentPath())
	}
	var b *Bundle
	var fetchErr error
	offline := true
	if g.client != nil {
		b, fetchErr = g.FetchBundle(ctx, d)
		var ie *client.InconsistencyError
		switch {
		case fetchErr == nil:
			offline = false
		case errors.As(fetchErr, &ie):
			if err := g.writeFile(g.inconsistentPath(), []byte(fetchErr.Error()+"\n")); err != nil {
				// Without the marker a later offline decision could
				// trust the rewritten history's checkpoint: fail closed.
				return nil, fmt.Errorf("the ledger rewrote its history, and the marker that stops every later boot could not be written (%v); no boot is allowed until %s exists or an operator has looked into it:\n%w", err, g.inconsistentPath(), fetchErr)
			}
			return g.refuse(d, true, "the ledger's log is NOT consistent with the checkpoint this VMM saw before; it rewrote its history:\n%v", fetchErr), nil
		case errors.Is(fetchErr, client.ErrNotInLedger):
			return g.refuse(d, false, "no build in the ledger has SHA-256 %s", d), nil
		case !unreachable(fetchErr):
			// The ledger answered, and the answer did not verify: never
			// fall back to older evidence then.
			return g.refuse(d, false, "the ledger's answer did not verify (%v); not falling back to the cached bundle", fetchErr), nil
		}
	}
	if b == nil {
		var err error
		b, err = g.loadBundle(d)
		if errors.Is(err, fs.ErrNotExist) {
			why := "the gate policy names no ledger"
			if fetchErr != nil {
				why = "the ledger could not be reached (" + fetchErr.Error() + ")"
			}
			return g.refuse(d, true, "%s and no bundle for %s is cached; fetch one with 'vmm bundle IMAGE' while online", why, d), nil
		}
		if err != nil {
			return g.refuse(d, true, "%v", err), nil
		}
		if max := g.cfg.Policy.maxAge; max > 0 && time.Since(b.Fetched) > max {
			return g.refuse(d, true, "the ledger could not be reached and the cached bundle was fetched %s ago, more than the policy's max_bundle_age %s", time.Since(b.Fetched).Round(time.Second), max), nil
		}
	}
	dec := g.judge(b)
	dec.Offline = offline
	return dec, nil
}

// unreachable reports whether err means the ledger could not be asked
// (no connection, a timeout, a server error), as opposed to an answer that
// failed verification.
func unreachable(err error) bool {
	var ue *url.Error
	var ne net.Error
	var he *client.Error
	switch {
	case errors.As(err, &he):
		return he.Status >= 500
	case errors.As(err, &ue), errors.As(err, &ne):
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

func (g *Gate) inconsistentPath() string { return filepath.Join(g.cfg.CacheDir, "INCONSISTENT") }

func (g *Gate) refuse(d digest.Digest, offline bool, format string, args ...any) *Decision {
	return &Decision{Image: d, K: g.cfg.Policy.Threshold, Offline: offline,
		Reason: fmt.Sprintf("refused image %s: ", d) + fmt.Sprintf(format, args...)}
}

// judge verifies a bundle and applies the policy to it.
func (g *Gate) judge(b *Bundle) *Decision {
	p := g.cfg.Policy
	d := b.Image
	cp, err := checkpoint.Open([]byte(b.Checkpoint), p.Origin, p.LogKey)
	if err != nil {
		return g.refuse(d, true, "the bundle's checkpoint is not signed by the policy's log key: %v", err)
	}
	if p.quorum != nil && !p.quorum.Satisfied([]byte(b.Checkpoint)) {
		return g.refuse(d, true, "the bundle's checkpoint (size %d) lacks the witness cosignatures the policy's witness_policy_file requires: it may be a history the ledger hides from others", cp.Size)
	}
	last, err := g.lastCheckpoint()
	if err != nil {
		return g.refuse(d, true, "%v", err)
	}
	switch {
	case last == nil:
		return g.refuse(d, true, "this VMM has never verified a checkpoint of the log; fetch a bundle while online")
	case cp.Size > last.Size:
		return g.refuse(d, true, "the bundle's checkpoint (size %d) is newer than any this VMM proved consistent (size %d); fetch it again while online", cp.Size, last.Size)
	case cp.Size == last.Size && cp.Hash != last.Hash:
		return g.refuse(d, true, "the bundle's checkpoint contradicts the one this VMM saw for size %d: the log forked", cp.Size)
	case cp.Size < last.Size:
		if why := g.provenPrefix(b, cp, last); why != "" {
			return g.refuse(d, true, "the bundle's checkpoint (size %d) is older than the newest this VMM accepted (size %d), and %s; fetch the bundle again while online", cp.Size, last.Size, why)
		}
	}
	included := func(e ProvenEvent) bool {
		return e.Index < cp.Size && proof.VerifyInclusion(rfc6962.DefaultHasher, e.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(e.Event), e.Proof, cp.Hash[:]) == nil
	}
	dec := &Decision{Image: d, K: p.Threshold}

	// The builds that produced the image.
	target := attest.Target{Digest: d}
	var uploader *event.BuildRecorded
	var problems []string
	var builds []*event.BuildRecorded // newest first
	buildAt := map[uuid.UUID]uint64{}
	for _, pe := range b.Builds {
		if !included(pe) {
			problems = append(problems, fmt.Sprintf("build record at log index %d is not in the log (its proof fails)", pe.Index))
			continue
		}
		ev, err := event.Decode(pe.Event)
		br, ok := ev.(*event.BuildRecorded)
		if err != nil || !ok {
			problems = append(problems, fmt.Sprintf("log index %d is not a build record", pe.Index))
			continue
		}
		for _, a := range br.Artifacts {
			if a.SHA256 == d {
				if _, seen := buildAt[br.UUID]; !seen {
					builds, buildAt[br.UUID] = append(builds, br), pe.Index
				}
				target.Builds = append(target.Builds, attest.BuildArtifact{Build: br.UUID, Name: a.Path})
				if dec.Build == nil || pe.Index > dec.Build.LogIndex {
					dec.Build = &BuildRef{Job: br.Job, Platform: br.Platform, UUID: br.UUID, LogIndex: pe.Index}
				}
				if br.Succeeded() && br.MainBinary != nil && *br.MainBinary == a.Path {
					uploader = br // the uploader vouches for its main binary only
				}
			}
		}
	}
	if dec.Build == nil {
		reason := fmt.Sprintf("refused image %s: no build in the ledger has this SHA-256", d)
		if len(problems) > 0 {
			reason += "\n  " + strings.Join(problems, "\n  ")
		}
		dec.Reason = reason
		return dec
	}

	// The trusted keys as the log knows them.
	added := map[digest.Digest]uint64{}
	revoked := map[digest.Digest]uint64{}
	for _, pe := range b.KeyEvents {
		if !included(pe) {
			continue
		}
		switch e := mustDecode(pe.Event).(type) {
		case *event.KeyAdded:
			added[e.KeyID] = pe.Index
		case *event.KeyRevoked:
			revoked[e.KeyID] = pe.Index
		}
	}
	pol := attest.Policy{Threshold: 1, PredicateTypes: p.PredicateTypes}
	builder := map[digest.Digest]bool{}
	// Revocations proven by any bundle this gate fetched count for every
	// decision, so an older cached bundle cannot bring a key back.
	known, err := g.knownRevocations()
	if err != nil {
		return g.refuse(d, true, "%v", err)
	}
	for id, at := range known {
		if _, ok := revoked[id]; !ok {
			revoked[id] = at
		}
	}
	if len(revoked) > len(known) {
		if err := g.learnRevocations(revoked); err != nil {
			return g.refuse(d, true, "%v", err)
		}
	}
	// A revoked key counts for nothing, whenever its attestations were
	// logged: keys are revoked when compromised, and when that happened is
	// not known.
	for id, k := range p.keys {
		tk := attest.TrustedKey{ID: id, Name: k.name, AddedAt: int64(added[id])}
		if _, ok := revoked[id]; ok || k.revoked {
			tk.Revoked, tk.RevokedAt = true, tk.AddedAt+1 // the first index an attestation can have
		}
		pol.Keys = append(pol.Keys, tk)
		if slices.Contains(p.BuiltBy, k.name) {
			pol.BuiltBy = append(pol.BuiltBy, id)
			builder[id] = true
		}
	}
	slices.SortFunc(pol.Keys, func(a, b attest.TrustedKey) int { return strings.Compare(a.Name, b.Name) })

	slices.SortFunc(builds, func(a, b *event.BuildRecorded) int { return int(buildAt[b.UUID]) - int(buildAt[a.UUID]) })

	// Every attestation, verified.
	var atts []attest.Attestation
	links := map[uuid.UUID][]loggedLink{} // for an in-toto policy
	for _, pa := range b.Attestations {
		v := Verdict{LogIndex: pa.Index}
		ev, err := event.Decode(pa.Event)
		ar, ok := ev.(*event.AttestationRecorded)
		if err != nil || !ok {
			v.Status, v.Detail = StatusNotInLog, "the bundle's entry is not an attestation record"
			dec.Verdicts = append(dec.Verdicts, v)
			continue
		}
		v.KeyID = ar.KeyID
		k := p.keys[ar.KeyID]
		if k != nil {
			v.KeyName = k.name
		}
		switch {
		case !included(pa.ProvenEvent):
			v.Status, v.Detail = StatusNotInLog, "its inclusion proof does not verify against the checkpoint"
		case digest.Sum(pa.Envelope) != ar.Envelope:
			v.Status, v.Detail = StatusNotInLog, "the envelope is not the one the log records"
		case k == nil:
			v.Status, v.Detail = StatusUntrusted, "key "+ar.KeyID.String()+" is not in the policy"
		}
		if v.Status != "" {
			dec.Verdicts = append(dec.Verdicts, v)
			continue
		}
		a, err := attest.VerifyLogged(pa.Envelope, ar.PredicateType, k.verifier, int64(pa.Index))
		if err == nil && ar.Build != nil && a.Build != *ar.Build {
			err = fmt.Errorf("the signed attestation is of build %s, its log record says %s", a.Build, ar.Build)
		}
		if err != nil {
			v.Status, v.Detail = StatusBadSignature, err.Error()
			dec.Verdicts = append(dec.Verdicts, v)
			continue
		}
		atts = append(atts, a)
		tk := pol.Keys[slices.IndexFunc(pol.Keys, func(t attest.TrustedKey) bool { return t.ID == ar.KeyID })]
		names := slices.ContainsFunc(a.Subjects, func(s attest.Subject) bool { return s.SHA256 == d })
		switch {
		case tk.Revoked:
			v.Status, v.Detail = StatusRevoked, revokedDetail(revoked, ar.KeyID)
		case a.LogIndex < tk.AddedAt:
			v.Status = StatusBeforeKey
		case !slices.Contains(p.PredicateTypes, a.PredicateType):
			v.Status, v.Detail = StatusPredicateType, a.PredicateType
		case a.Verdict == attest.Built && names:
			v.Status = StatusBuilt
			if !builder[ar.KeyID] {
				v.Detail = "the policy does not name this key in built_by"
			}
		case a.Verdict == attest.Reproduced && names && builder[ar.KeyID]:
			v.Status, v.Detail = StatusBuilderRebuild, "a key in built_by does not count towards k"
		case a.Verdict != attest.Reproduced || !names:
			v.Status, v.Detail = StatusDifferentDigest, "the rebuilder got other bytes"
			for _, s := range a.Subjects {
				for _, t := range target.Builds {
					if a.Build == t.Build && s.Name == t.Name && s.SHA256 != d {
						v.Detail = fmt.Sprintf("the rebuilder got %s for %s", s.SHA256, s.Name)
					}
				}
			}
		default:
			v.Status = StatusValid
		}
		if (v.Status == StatusValid || v.Status == StatusDifferentDigest) && ar.PredicateType == attest.LinkPredicateType && ar.Build != nil {
			links[*ar.Build] = append(links[*ar.Build], loggedLink{index: pa.Index, key: ar.KeyID, data: pa.Envelope, differs: v.Status == StatusDifferentDigest})
		}
		dec.Verdicts = append(dec.Verdicts, v)
	}
	if p.intoto != nil {
		return g.judgeInToto(dec, builds, links, revoked, problems)
	}

	ev, err := pol.Evaluate(target, atts)
	if err != nil {
		return g.refuse(d, true, "the policy cannot be evaluated: %v", err)
	}
	for _, id := range ev.Agreeing {
		dec.Agreeing = append(dec.Agreeing, p.keys[id].name)
	}
	slices.Sort(dec.Agreeing)
	if p.UploaderCounts && uploader != nil {
		dec.Agreeing = append(dec.Agreeing, "uploader (build "+uploader.UUID.String()+")")
	}
	for _, id := range ev.BuiltBy {
		dec.BuiltBy = append(dec.BuiltBy, p.keys[id].name)
	}
	slices.Sort(dec.BuiltBy)
	dec.Admitted = len(dec.Agreeing) >= p.Threshold && (len(p.BuiltBy) == 0 || len(dec.BuiltBy) > 0)
	dec.Reason = dec.describe(ev.Disagreeing, p, problems)
	return dec
}

// provenPrefix checks the bundle's consistency proof from cp to last,
// returning "" when it proves cp a prefix of last, and otherwise why not.
func (g *Gate) provenPrefix(b *Bundle, cp, last *checkpoint.Checkpoint) string {
	if b.Consistency == nil {
		return "the bundle holds no proof that the log grew from one to the other"
	}
	to, err := checkpoint.Open([]byte(b.Consistency.Checkpoint), g.cfg.Policy.Origin, g.cfg.Policy.LogKey)
	if err != nil {
		return fmt.Sprintf("the checkpoint of its consistency proof does not verify (%v)", err)
	}
	if to.Size != last.Size || to.Hash != last.Hash {
		return fmt.Sprintf("its consistency proof leads to size %d, not to the newest checkpoint", to.Size)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, last.Size, b.Consistency.Proof, cp.Hash[:], last.Hash[:]); err != nil {
		return fmt.Sprintf("its consistency proof does not verify (%v)", err)
	}
	return ""
}

func revokedDetail(revoked map[digest.Digest]uint64, id digest.Digest) string {
	if at, ok := revoked[id]; ok {
		return fmt.Sprintf("the ledger logged the key's revocation at index %d; a revoked key counts for nothing", at)
	}
	return "the policy marks the key revoked"
}

func mustDecode(b []byte) event.Event {
	ev, _ := event.Decode(b)
	return ev
}

// describe writes the decision for the operator.
func (d *Decision) describe(dis []attest.Disagreement, p *Policy, problems []string) string {
	var b strings.Builder
	word := "ADMITTED"
	if !d.Admitted {
		word = "REFUSED"
	}
	fmt.Fprintf(&b, "%s image %s: %d of %d required agreeing parties", word, d.Image, len(d.Agreeing), d.K)
	if len(d.Agreeing) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(d.Agreeing, ", "))
	}
	b.WriteString("\n")
	if d.Build != nil {
		fmt.Fprintf(&b, "  build: job %s, build %s, platform %s, log index %d\n", d.Build.Job, d.Build.UUID, d.Build.Platform, d.Build.LogIndex)
	}
	switch {
	case len(d.BuiltBy) > 0:
		fmt.Fprintf(&b, "  built by: %s\n", strings.Join(d.BuiltBy, ", "))
	case len(p.BuiltBy) > 0:
		fmt.Fprintf(&b, "  NOT BUILT by any of %s: none of them attested that it built this image\n", strings.Join(p.BuiltBy, ", "))
	}
	if len(dis) > 0 {
		fmt.Fprintf(&b, "  WARNING: %d trusted key(s) rebuilt it and got OTHER BYTES: the build is not reproducible for them\n", len(dis))
	}
	if len(d.Verdicts) == 0 {
		b.WriteString("  no attestations\n")
	}
	for _, v := range d.Verdicts {
		name := v.KeyName
		if name == "" {
			name = "key " + v.KeyID.String()
		}
		fmt.Fprintf(&b, "  attestation at log index %d by %s: %s", v.LogIndex, name, v.Status)
		if v.Detail != "" {
			fmt.Fprintf(&b, " (%s)", v.Detail)
		}
		b.WriteString("\n")
	}
	for _, pr := range problems {
		fmt.Fprintf(&b, "  %s\n", pr)
	}
	if p.intoto != nil {
		fmt.Fprintf(&b, "  policy: in-toto layout: the links of %d of its %d keys of step %q must pass it and agree (one that got other bytes vetoes), with the image's exact digest; it expires %s",
			p.Threshold, p.intoto.keys, attest.LinkStep, p.intoto.expires.Format(time.RFC3339))
		if d.Offline {
			b.WriteString(" (decided offline from the cached bundle)")
		}
		b.WriteString("\n")
	} else if !d.Admitted {
		fmt.Fprintf(&b, "  policy: k=%d of %d trusted keys%s", p.Threshold, len(p.Keys)-len(p.BuiltBy), map[bool]string{true: " plus the uploader", false: ""}[p.UploaderCounts])
		if len(p.BuiltBy) > 0 {
			fmt.Fprintf(&b, ", built by one of %s", strings.Join(p.BuiltBy, ", "))
		}
		if d.Offline {
			b.WriteString(" (decided offline from the cached bundle)")
		}
		b.WriteString("\n")
	}
	return b.String()
}
