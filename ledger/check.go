package ledger

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// check decides whether ev may be appended at index next given the state in
// txn. It returns the index of an identical earlier event (idempotent
// append) or -1, or an error saying why the event is refused.
func (l *Ledger) check(txn *badger.Txn, req *request, next uint64) (int64, error) {
	switch e := req.ev.(type) {
	case *JobDefined:
		idx, err := getIndex(txn, key(pJob, []byte(e.Job)))
		if errors.Is(err, ErrNotFound) {
			return -1, nil
		}
		if err != nil {
			return -1, err
		}
		if req.ifMissing {
			return int64(idx), nil
		}
		prev, err := l.eventTxn(txn, idx)
		if err != nil {
			return -1, err
		}
		if p, ok := prev.(*JobDefined); ok && equalJob(p, e) {
			return int64(idx), nil
		}
		return -1, nil
	case *BuildRecorded:
		if _, err := getIndex(txn, key(pJob, []byte(e.Job))); errors.Is(err, ErrNotFound) && req.job == nil {
			return -1, fmt.Errorf("%w: job %q is not defined; define it before recording builds", ErrRejected, e.Job)
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			return -1, err
		}
		if idx, err := getIndex(txn, key(pBuild, e.UUID[:])); err == nil {
			// The same build sent again (a client retrying after an
			// answer it did not get) is answered with the recorded one.
			if d, err := eventDigest(txn, idx); err != nil {
				return -1, err
			} else if d == req.digest() {
				return int64(idx), nil
			}
			return -1, fmt.Errorf("%w: build %s is already recorded (log index %d)", ErrConflict, e.UUID, idx)
		} else if !errors.Is(err, ErrNotFound) {
			return -1, err
		}
		return -1, nil
	case *KeyAdded:
		st, err := keyStateTxn(txn, e.KeyID, next)
		if err != nil {
			return -1, err
		}
		switch st.Status {
		case KeyStatusActive:
			return -1, fmt.Errorf("%w: key %s is already registered (as %q, log index %d)", ErrConflict, e.KeyID, st.Name, st.AddedAt)
		case KeyStatusRevoked:
			return -1, fmt.Errorf("%w: key %s was revoked at log index %d and cannot be added again; generate a new key", ErrRejected, e.KeyID, st.RevokedAt)
		}
		if other, err := keyByName(txn, e.Name, next); err != nil {
			return -1, err
		} else if other.Status == KeyStatusActive {
			return -1, fmt.Errorf("%w: name %q already belongs to active key %s; revoke it first or choose another name", ErrConflict, e.Name, other.KeyID)
		}
		return -1, nil
	case *KeyRevoked:
		st, err := keyStateTxn(txn, e.KeyID, next)
		if err != nil {
			return -1, err
		}
		switch st.Status {
		case KeyStatusUnknown:
			return -1, fmt.Errorf("key %s is not registered: %w", e.KeyID, ErrNotFound)
		case KeyStatusRevoked:
			return -1, fmt.Errorf("%w: key %s was already revoked at log index %d", ErrConflict, e.KeyID, st.RevokedAt)
		}
		return -1, nil
	case *AttestationRecorded:
		if idx, err := getIndex(txn, key(pEnv, e.Envelope[:])); err == nil {
			return int64(idx), nil
		} else if !errors.Is(err, ErrNotFound) {
			return -1, err
		}
		st, err := keyStateTxn(txn, e.KeyID, next)
		if err != nil {
			return -1, err
		}
		switch st.Status {
		case KeyStatusUnknown:
			return -1, fmt.Errorf("%w: attestation signed by key %s, which is not registered", ErrRejected, e.KeyID)
		case KeyStatusRevoked:
			return -1, fmt.Errorf("%w: attestation signed by key %s (%q), revoked at log index %d", ErrRejected, e.KeyID, st.Name, st.RevokedAt)
		}
		if err := l.checkSubjects(txn, e); err != nil {
			return -1, err
		}
		if err := l.checkEnvelope(txn, e, st); err != nil {
			return -1, err
		}
		return -1, nil
	}
	return -1, fmt.Errorf("ledger: unknown event type %T", req.ev)
}

// checkSubjects enforces that an attestation speaks of what the log holds.
// With a build, every subject must name one of that build's artifacts, and
// a "reproduced" verdict must carry the recorded digest of each (a rebuilder
// claiming a reproduction of other bytes contradicts itself); a "differs"
// verdict carries the digests the rebuilder got instead. Without a build,
// every subject digest must be an artifact of some recorded build.
func (l *Ledger) checkSubjects(txn *badger.Txn, e *AttestationRecorded) error {
	if e.Build == nil {
		for _, s := range e.Subjects {
			built, err := hasArtifact(txn, s.SHA256)
			if err != nil {
				return err
			}
			if !built {
				return fmt.Errorf("%w: subject %q (sha256 %s) is not an artifact of any recorded build", ErrRejected, s.Name, s.SHA256)
			}
		}
		return nil
	}
	idx, err := getIndex(txn, key(pBuild, e.Build[:]))
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: attested build %s is not recorded", ErrRejected, e.Build)
	} else if err != nil {
		return err
	}
	b, err := eventAs[*BuildRecorded](l, txn, idx)
	if err != nil {
		return err
	}
	for _, s := range e.Subjects {
		a, ok := b.Artifact(s.Name)
		switch {
		case !ok:
			return fmt.Errorf("%w: subject %q is not an artifact of build %s (job %s); the build has %d artifacts", ErrRejected, s.Name, b.UUID, b.Job, len(b.Artifacts))
		case (e.Verdict == VerdictReproduced || e.Verdict == VerdictBuilt) && a.SHA256 != s.SHA256:
			return fmt.Errorf("%w: verdict is %q but subject %q has sha256 %s, while build %s recorded %s", ErrRejected, e.Verdict, s.Name, s.SHA256, b.UUID, a.SHA256)
		}
	}
	return nil
}

func equalJob(a, b *JobDefined) bool {
	ra, rb := a.Readme, b.Readme
	return a.Job == b.Job && a.Synopsis == b.Synopsis && a.Section == b.Section &&
		(ra == nil) == (rb == nil) && (ra == nil || *ra == *rb)
}
