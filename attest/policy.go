package attest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// Attestation is what policy evaluation needs to know of one attestation
// whose signature has already been verified (see Verified.Attestation) and
// which was logged at LogIndex.
type Attestation struct {
	KeyID         KeyID
	PredicateType string
	Build         uuid.UUID // the rebuilt build
	Subjects      []Subject
	Verdict       Verdict
	LogIndex      int64 // log index of the attestation's record
}

// TrustedKey is a rebuilder key the policy trusts. Attestations count from
// AddedAt (the index of the key's registration) on; if Revoked, those
// logged at or after RevokedAt do not count.
type TrustedKey struct {
	ID        KeyID
	Name      string
	AddedAt   int64
	Revoked   bool
	RevokedAt int64
}

// Policy decides whether an artifact is trusted: at least Threshold
// distinct trusted keys attest that rebuilding reproduced its digest and,
// with BuiltBy, one of those builders attests that it built it.
type Policy struct {
	Keys      []TrustedKey
	Threshold int // k; at least 1 and at most the keys not in BuiltBy
	// PredicateTypes lists the accepted predicate types; empty means
	// PredicateType (SLSA Provenance v1) only.
	PredicateTypes []string
	// BuiltBy, if not empty, names keys of Keys (build farms) of which one
	// must attest (verdict Built) that it built the artifact: "built by
	// F and reproduced by k others". These keys never count towards the
	// threshold.
	BuiltBy []KeyID
}

// ErrPolicy marks an invalid policy (a configuration error).
var ErrPolicy = errors.New("invalid policy")

// Check reports why p cannot be evaluated: a threshold below 1 or above
// the number of keys (never satisfiable), a key listed twice, a key
// revoked before it was added, or a negative index. The error wraps
// ErrPolicy.
func (p *Policy) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("attest: %w: %s", ErrPolicy, fmt.Sprintf(format, args...))
	}
	if p.Threshold < 1 {
		return bad("threshold %d is below 1", p.Threshold)
	}
	if p.Threshold > len(p.Keys)-len(p.BuiltBy) {
		return bad("threshold %d exceeds the %d trusted keys that are not builders: it can never be met", p.Threshold, len(p.Keys)-len(p.BuiltBy))
	}
	seen := map[KeyID]bool{}
	for _, k := range p.Keys {
		switch {
		case k.ID.IsZero():
			return bad("key %q has no id", k.Name)
		case seen[k.ID]:
			return bad("key %s listed twice", k.ID)
		case k.AddedAt < 0:
			return bad("key %s added at negative index %d", k.ID, k.AddedAt)
		case k.Revoked && k.RevokedAt <= k.AddedAt:
			return bad("key %s revoked at index %d, not after it was added at %d", k.ID, k.RevokedAt, k.AddedAt)
		}
		seen[k.ID] = true
	}
	for _, t := range p.PredicateTypes {
		if t == "" {
			return bad("empty predicate type")
		}
	}
	builders := map[KeyID]bool{}
	for _, id := range p.BuiltBy {
		switch {
		case !seen[id]:
			return bad("builder key %s is not a trusted key", id)
		case builders[id]:
			return bad("builder key %s listed twice", id)
		}
		builders[id] = true
	}
	return nil
}

// Disagreement is a reproducibility failure: a trusted key attested, for
// the same build and the same artifact name, a digest other than the one
// judged.
type Disagreement struct {
	KeyID    KeyID
	Build    uuid.UUID
	Name     string
	Digest   Digest // what the key got instead
	LogIndex int64
}

// Ignored is an attestation that did not count, and why.
type Ignored struct {
	Attestation Attestation
	Reason      string
}

// BuildArtifact names the judged digest within a recorded build: the
// artifact Name of build Build.
type BuildArtifact struct {
	Build uuid.UUID
	Name  string
}

// Target is what a policy judges: an artifact digest and, optionally, the
// recorded builds and artifact names that produced it. Attestations
// naming Digest add their own (build, name) pairs; an attestation of one
// of these builds that gives the same name a different digest is a
// disagreement.
type Target struct {
	Digest Digest
	Builds []BuildArtifact
}

// Decision is the outcome of evaluating a policy.
type Decision struct {
	Target      Digest
	Satisfied   bool           // len(Agreeing) >= K, and a builder attested if the policy asks for one
	K           int            // the threshold
	Agreeing    []KeyID        // distinct keys that attested a reproduction of Target, sorted
	Disagreeing []Disagreement // sorted by key, build, name, digest; without duplicates
	Missing     []KeyID        // unrevoked trusted keys that neither agreed nor disagreed, sorted
	Ignored     []Ignored      // in input order
	// BuiltBy are the builder keys (Policy.BuiltBy) that attested they
	// built Target, sorted; BuildRequired says the policy asks for one.
	BuiltBy       []KeyID
	BuildRequired bool

	names map[KeyID]string
}

// Evaluate judges t against the attestations, which must have verified
// signatures. An attestation counts for a key only if the key is trusted,
// the attestation was logged at or after the key was added and (if the
// key is revoked) before its revocation, its predicate type is accepted,
// its verdict is Reproduced and it names t.Digest among its subjects. A
// key counts once however many attestations it signed. A key that also
// attested a different digest for the same build and name (see Target)
// is listed as disagreeing and does not count as agreeing: it contradicts
// itself. Disagreements are reported but do not by themselves fail the
// policy. The error is non-nil only when p.Check fails.
func (p *Policy) Evaluate(t Target, atts []Attestation) (Decision, error) {
	if err := p.Check(); err != nil {
		return Decision{}, err
	}
	accepted := p.PredicateTypes
	if len(accepted) == 0 {
		accepted = []string{PredicateType}
	}
	keys := map[KeyID]TrustedKey{}
	d := Decision{Target: t.Digest, K: p.Threshold, names: map[KeyID]string{}, BuildRequired: len(p.BuiltBy) > 0}
	for _, k := range p.Keys {
		keys[k.ID] = k
		d.names[k.ID] = k.Name
	}

	// Pass 1: which attestations are eligible at all.
	eligible := make([]bool, len(atts))
	for i, a := range atts {
		k, ok := keys[a.KeyID]
		var reason string
		switch {
		case !ok:
			reason = fmt.Sprintf("key %s is not trusted", a.KeyID)
		case a.LogIndex < k.AddedAt:
			reason = fmt.Sprintf("logged at index %d, before key %q was added at %d", a.LogIndex, k.Name, k.AddedAt)
		case k.Revoked && a.LogIndex >= k.RevokedAt:
			reason = fmt.Sprintf("logged at index %d, at or after key %q was revoked at %d", a.LogIndex, k.Name, k.RevokedAt)
		case !slices.Contains(accepted, a.PredicateType):
			reason = fmt.Sprintf("predicate type %q is not accepted", a.PredicateType)
		case a.Verdict != Reproduced && a.Verdict != Differs && a.Verdict != Built:
			reason = fmt.Sprintf("unknown verdict %q", a.Verdict)
		}
		if reason != "" {
			d.Ignored = append(d.Ignored, Ignored{a, reason})
			continue
		}
		eligible[i] = true
	}

	// The (build, name) pairs under which the target is known.
	where := map[BuildArtifact]bool{}
	for _, b := range t.Builds {
		where[b] = true
	}
	for i, a := range atts {
		if !eligible[i] {
			continue
		}
		for _, s := range a.Subjects {
			if s.SHA256 == t.Digest {
				where[BuildArtifact{a.Build, s.Name}] = true
			}
		}
	}

	// Pass 2: classify.
	agree := map[KeyID]bool{}
	disagree := map[KeyID]bool{}
	built := map[KeyID]bool{}
	for i, a := range atts {
		if !eligible[i] {
			continue
		}
		names := false
		var other []Disagreement
		for _, s := range a.Subjects {
			switch {
			case s.SHA256 == t.Digest:
				names = true
			case where[BuildArtifact{a.Build, s.Name}]:
				other = append(other, Disagreement{KeyID: a.KeyID, Build: a.Build, Name: s.Name, Digest: s.SHA256, LogIndex: a.LogIndex})
			}
		}
		switch {
		case len(other) > 0:
			d.Disagreeing = append(d.Disagreeing, other...)
			disagree[a.KeyID] = true
		case !names:
			d.Ignored = append(d.Ignored, Ignored{a, "does not name the artifact or a differing version of it"})
		case a.Verdict == Built && slices.Contains(p.BuiltBy, a.KeyID):
			built[a.KeyID] = true
		case a.Verdict != Reproduced:
			d.Ignored = append(d.Ignored, Ignored{a, fmt.Sprintf("verdict is %q", a.Verdict)})
		case slices.Contains(p.BuiltBy, a.KeyID):
			d.Ignored = append(d.Ignored, Ignored{a, fmt.Sprintf("key %q is a builder under this policy: it does not count as a rebuilder", keys[a.KeyID].Name)})
		default:
			agree[a.KeyID] = true
		}
	}
	for k := range agree {
		if !disagree[k] {
			d.Agreeing = append(d.Agreeing, k)
		}
	}
	for k := range built {
		if !disagree[k] {
			d.BuiltBy = append(d.BuiltBy, k)
		}
	}
	slices.SortFunc(d.BuiltBy, compareKeyID)
	slices.SortFunc(d.Agreeing, compareKeyID)
	slices.SortFunc(d.Disagreeing, compareDisagreement)
	d.Disagreeing = slices.Compact(d.Disagreeing)
	for _, k := range p.Keys {
		if !k.Revoked && !agree[k.ID] && !disagree[k.ID] {
			d.Missing = append(d.Missing, k.ID)
		}
	}
	slices.SortFunc(d.Missing, compareKeyID)
	d.Satisfied = len(d.Agreeing) >= d.K && (!d.BuildRequired || len(d.BuiltBy) > 0)
	return d, nil
}

func compareKeyID(a, b KeyID) int { return bytes.Compare(a[:], b[:]) }

func compareDisagreement(a, b Disagreement) int {
	if c := compareKeyID(a.KeyID, b.KeyID); c != 0 {
		return c
	}
	if c := bytes.Compare(a.Build[:], b.Build[:]); c != 0 {
		return c
	}
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	if c := bytes.Compare(a.Digest[:], b.Digest[:]); c != 0 {
		return c
	}
	return cmp.Compare(a.LogIndex, b.LogIndex)
}

// String describes the decision for a person, naming keys by their
// policy names, disagreements first and loudly.
func (d Decision) String() string {
	var b strings.Builder
	name := func(k KeyID) string {
		if n := d.names[k]; n != "" {
			return fmt.Sprintf("%s (%s)", n, k.String()[:16])
		}
		return k.String()[:16]
	}
	if d.Satisfied {
		fmt.Fprintf(&b, "SATISFIED: %d of %d required keys reproduced %s\n", len(d.Agreeing), d.K, d.Target)
	} else {
		fmt.Fprintf(&b, "NOT SATISFIED: %d of %d required keys reproduced %s\n", len(d.Agreeing), d.K, d.Target)
	}
	for _, x := range d.Disagreeing {
		fmt.Fprintf(&b, "  DISAGREES: %s got %s for %s of build %s (log index %d)\n", name(x.KeyID), x.Digest, x.Name, x.Build, x.LogIndex)
	}
	if d.BuildRequired && len(d.BuiltBy) == 0 {
		fmt.Fprintf(&b, "  NOT BUILT: none of the policy's builders attested that it built %s\n", d.Target)
	}
	for _, k := range d.BuiltBy {
		fmt.Fprintf(&b, "  built by: %s\n", name(k))
	}
	for _, k := range d.Agreeing {
		fmt.Fprintf(&b, "  agrees: %s\n", name(k))
	}
	for _, k := range d.Missing {
		fmt.Fprintf(&b, "  missing: %s\n", name(k))
	}
	for _, x := range d.Ignored {
		fmt.Fprintf(&b, "  ignored: attestation by %s at log index %d: %s\n", name(x.Attestation.KeyID), x.Attestation.LogIndex, x.Reason)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
