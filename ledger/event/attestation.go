package event

import (
	"bytes"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas/digest"
)

// Verdict is what a rebuilder concluded, or (VerdictBuilt) what a build
// farm claims.
type Verdict string

// Verdicts.
const (
	VerdictReproduced Verdict = "reproduced" // every output matched the recorded build
	VerdictDiffers    Verdict = "differs"    // at least one output differed
	// VerdictBuilt is a build farm's claim that it ran the build itself
	// and produced exactly its outputs: provenance, not a reproduction.
	VerdictBuilt Verdict = "built"
)

// Subject is one attested artifact: a name and the digest the rebuilder got.
type Subject struct {
	Name   string        `json:"name"`
	SHA256 digest.Digest `json:"sha256"`
}

// AttestationRecorded logs a DSSE envelope whose bytes are in the CAS under
// Envelope. The fields are a summary of the envelope. The ledger core
// checks, for every append, backend catch-up and replicated entry, that the
// key was active at this point of the log, that the envelope is stored in
// canonical form and its signature verifies with that key, that the
// summary is what the signed statement says, that the build exists as the
// predicate describes it and that the subjects name its artifacts (with the
// recorded digests when the verdict is "reproduced"); see checkSubjects and
// checkEnvelope.
type AttestationRecorded struct {
	Envelope      digest.Digest `json:"envelope"`
	KeyID         digest.Digest `json:"key_id"`
	PredicateType string        `json:"predicate_type"`
	Build         *uuid.UUID    `json:"build"`
	Subjects      []Subject     `json:"subjects"`
	Verdict       Verdict       `json:"verdict"`
}

func (*AttestationRecorded) Kind() Kind { return KindAttestationRecorded }
func (e *AttestationRecorded) normalize() {
	slices.SortFunc(e.Subjects, CompareSubjects)
}

// CompareSubjects orders subjects as events list them: by digest, then name.
func CompareSubjects(a, b Subject) int {
	if c := bytes.Compare(a.SHA256[:], b.SHA256[:]); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

func (e *AttestationRecorded) validate() error {
	bad := func(format string, args ...any) error { return invalid(KindAttestationRecorded, format, args...) }
	if e.Envelope.IsZero() {
		return bad("envelope digest is missing")
	}
	if e.KeyID.IsZero() {
		return bad("key_id is missing")
	}
	if e.PredicateType == "" || len(e.PredicateType) > 512 || !utf8.ValidString(e.PredicateType) || strings.ContainsAny(e.PredicateType, " \t\r\n") {
		return bad("predicate_type %q is not a URI", e.PredicateType)
	}
	if e.Build != nil && *e.Build == uuid.Nil {
		return bad("build is the nil UUID")
	}
	if len(e.Subjects) == 0 {
		return bad("no subjects")
	}
	for i, s := range e.Subjects {
		if err := checkText("subject name", s.Name, 4096); err != nil || s.Name == "" {
			return bad("subject %d: name %q is empty or not printable text", i, s.Name)
		}
		if i > 0 {
			switch c := CompareSubjects(e.Subjects[i-1], s); {
			case c == 0:
				return bad("subject %q %s listed twice", s.Name, s.SHA256)
			case c > 0:
				return bad("subjects not sorted by digest then name")
			}
		}
	}
	switch e.Verdict {
	case VerdictReproduced, VerdictDiffers, VerdictBuilt:
	default:
		return bad("verdict %q is not %q, %q or %q", e.Verdict, VerdictReproduced, VerdictDiffers, VerdictBuilt)
	}
	return nil
}
