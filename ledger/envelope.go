package ledger

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas"
)

// checkEnvelope verifies the DSSE envelope an attestation_recorded event
// logs, so that nothing reaches the log — by an append, a backend catch-up
// or a replica — that its signer did not say:
//
//   - the envelope is in the store, in the canonical form of
//     attest.Verified.Canonical (its digest is the event's Envelope);
//   - its signature verifies with the public key that the key_added event
//     of KeyID registered (the key was active here: see check);
//   - it is an in-toto statement of a rebuild attestation (attest.ParseStatement)
//     whose predicate type, subjects, build and verdict are the event's;
//   - the build it attests is recorded as the predicate describes it: job,
//     platform, log index and every input the build recorded.
//
// Refusals wrap ErrRejected with the reason.
func (l *Ledger) checkEnvelope(txn *badger.Txn, e *AttestationRecorded, signer KeyState) error {
	rejected := func(format string, args ...any) error {
		return fmt.Errorf("%w: attestation envelope %s: %s", ErrRejected, e.Envelope, fmt.Sprintf(format, args...))
	}
	// Envelopes are stored (and committed) before the event that logs
	// them, so a read outside txn sees them; they may exceed GetTxn's
	// inline limit.
	env, err := l.store.Bytes(context.Background(), e.Envelope, attest.MaxEnvelopeSize)
	switch {
	case errors.Is(err, cas.ErrNotFound):
		return rejected("not in the store; store it before logging it")
	case errors.Is(err, cas.ErrTooLarge):
		return rejected("larger than %d bytes", attest.MaxEnvelopeSize)
	case err != nil:
		return err
	}
	v, err := l.verifier(txn, signer)
	if err != nil {
		return err
	}
	if e.PredicateType == attest.LinkPredicateType {
		return l.checkLink(txn, e, env, v, rejected)
	}
	ver, err := attest.Verify(env, v)
	if err != nil {
		return rejected("%s", strings.TrimPrefix(err.Error(), "attest: "))
	}
	if cas.Sum(ver.Canonical()) != e.Envelope {
		return rejected("not in canonical form (one signature, no keyid, as attest.Verified.Canonical writes it)")
	}
	if ver.PredicateType != e.PredicateType {
		return rejected("the statement's predicate type is %q, the event says %q", ver.PredicateType, e.PredicateType)
	}
	subjects := make([]Subject, len(ver.Subjects))
	for i, s := range ver.Subjects {
		subjects[i] = Subject{Name: s.Name, SHA256: s.SHA256}
	}
	slices.SortFunc(subjects, compareSubjects)
	if !slices.Equal(subjects, e.Subjects) {
		return rejected("the statement's subjects %v are not the event's %v", subjects, e.Subjects)
	}
	rb, err := ver.Rebuild()
	if err != nil {
		return rejected("the statement is not a rebuild attestation: %s", strings.TrimPrefix(err.Error(), "attest: "))
	}
	switch {
	case e.Build == nil:
		return rejected("the statement attests build %s, the event names no build", rb.Build)
	case rb.Build != *e.Build:
		return rejected("the statement attests build %s, the event says %s", rb.Build, *e.Build)
	case Verdict(rb.Verdict) != e.Verdict:
		return rejected("the statement's verdict is %q, the event says %q", rb.Verdict, e.Verdict)
	}
	idx, err := getIndex(txn, key(pBuild, e.Build[:]))
	if err != nil {
		return err // checkSubjects found it
	}
	b, err := eventAs[*BuildRecorded](l, txn, idx)
	if err != nil {
		return err
	}
	return CheckRebuildMatches(rb, b, idx)
}

// CheckRebuildMatches checks that a rebuild predicate describes build b,
// recorded at log index, as the log holds it (an error wrapping ErrRejected
// says where not). Inputs the build did not
// record under the names the predicate uses are the rebuilder's business.
func CheckRebuildMatches(rb *attest.Rebuild, b *BuildRecorded, index uint64) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: the predicate does not describe build %s as recorded: %s", ErrRejected, b.UUID, fmt.Sprintf(format, args...))
	}
	switch {
	case rb.Job != b.Job:
		return bad("job %q, recorded %q", rb.Job, b.Job)
	case rb.Platform != b.Platform:
		return bad("platform %q, recorded %q", rb.Platform, b.Platform)
	case rb.LogIndex != int64(index):
		return bad("log index %d, recorded at %d", rb.LogIndex, index)
	}
	return checkInputs(rb.Inputs, b, bad)
}

// recordedInputs are the inputs build b recorded, by attest's input
// names; nil for an input file it did not record.
func recordedInputs(b *BuildRecorded) map[string]*cas.Digest {
	return map[string]*cas.Digest{
		attest.InputOpamSwitch: b.Inputs.OpamSwitch, attest.InputBuildEnvironment: b.Inputs.BuildEnvironment,
		attest.InputSystemPackages: b.Inputs.SystemPackages, attest.InputScript: &b.Script,
	}
}

// checkInputs checks that inputs (of a rebuild predicate or link) name
// build b's recorded inputs with their recorded digests; inputs under
// other names are the rebuilder's business.
func checkInputs(inputs []attest.Input, b *BuildRecorded, bad func(format string, args ...any) error) error {
	recorded := recordedInputs(b)
	for _, in := range inputs {
		want, known := recorded[in.Name]
		switch {
		case !known:
		case want == nil:
			return bad("input %s %s, but the build recorded none", in.Name, in.SHA256)
		case in.SHA256 != *want:
			return bad("input %s %s, recorded %s", in.Name, in.SHA256, want)
		}
	}
	return nil
}

// verifier returns the signature verifier of a registered key, from the
// public key its key_added event logged. Key ids are digests of the public
// key, so a verifier once built is cached for good.
func (l *Ledger) verifier(txn *badger.Txn, st KeyState) (*attest.Verifier, error) {
	if v, ok := l.verifiers.Load(st.KeyID); ok {
		return v.(*attest.Verifier), nil
	}
	added, err := eventAs[*KeyAdded](l, txn, st.AddedAt)
	if err != nil {
		return nil, fmt.Errorf("key %s: its key_added event: %w", st.KeyID, err)
	}
	pub, err := x509.ParsePKIXPublicKey(added.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: key %s logged at %d: %v", ErrCorrupt, st.KeyID, st.AddedAt, err)
	}
	v, err := attest.NewVerifier(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: key %s logged at %d: %v", ErrCorrupt, st.KeyID, st.AddedAt, err)
	}
	if v.KeyID() != st.KeyID {
		return nil, fmt.Errorf("%w: key %s logged at %d has id %s", ErrCorrupt, st.KeyID, st.AddedAt, v.KeyID())
	}
	l.verifiers.Store(st.KeyID, v)
	return v, nil
}
