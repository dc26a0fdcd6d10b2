package scheduler

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/httpapi/client"
	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/buildledger/buildledger/ledger/event"
	"github.com/buildledger/buildledger/rebuilder"
)

// LedgerUploader records builds in a buildledger through its verifying
// client: an upload counts only when the receipt proves the build is in
// the log under a checkpoint signed by the pinned log key. The ledger's
// 4xx answers are permanent refusals, except 401, 403 (credentials an
// operator can fix), 408 and 429 (a busy ledger), which are retried, and
// 409 for a UUID the log holds already: when the logged build (proven in
// the log) is this one, an earlier attempt recorded it and the upload is
// done; another build under the same UUID is a refusal.
//
// With a Signer, every recorded build is then attested with verdict
// "built" (attest.Built): an in-toto statement with a SLSA Provenance v1
// predicate naming BuilderID, whose subjects are the build's artifacts as
// logged and whose inputs are its recorded inputs and script. The key must
// be registered in the ledger; until the attestation is logged the build
// stays in the upload queue (retried: the upload then finds it logged).
type LedgerUploader struct {
	Client    *client.Client
	Cred      client.Credentials
	Signer    *attest.Signer
	BuilderID string // a URI naming the farm, e.g. https://farm.example/
}

// Upload implements Uploader.
func (u *LedgerUploader) Upload(ctx context.Context, der []byte, id uuid.UUID) error {
	rc, logged, err := u.Client.Upload(ctx, der, id, u.Cred)
	var index uint64
	if err == nil {
		index = rc.LogIndex
	}
	var he *client.Error
	switch {
	case err == nil:
	case !errors.As(err, &he) || he.Status < 400 || he.Status >= 500:
		return err
	case he.Status == http.StatusUnauthorized, he.Status == http.StatusForbidden, he.Status == http.StatusRequestTimeout, he.Status == http.StatusTooManyRequests:
		return err
	case he.Status == http.StatusConflict:
		var lerr error
		if logged, index, _, lerr = u.Client.Build(ctx, id); lerr != nil {
			return fmt.Errorf("%v; and the logged build %s cannot be read: %w", err, id, lerr)
		}
		if why := differs(logged, der); why != "" {
			return fmt.Errorf("%w: %v; the log holds another build under this UUID: %s", ErrPermanent, err, why)
		}
	default:
		return fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	if u.Signer == nil {
		return nil
	}
	if err := u.attest(ctx, logged, index); err != nil {
		var he *client.Error
		if errors.As(err, &he) && he.Status >= 400 && he.Status < 500 && he.Status != http.StatusTooManyRequests && he.Status != http.StatusRequestTimeout {
			// E.g. the farm's key is not registered, or revoked.
			return fmt.Errorf("%w: build %s is recorded, but the ledger refused its provenance: %v", ErrPermanent, id, err)
		}
		return fmt.Errorf("build %s is recorded, but its provenance is not yet: %w", id, err)
	}
	return nil
}

// attest signs and submits the farm's claim that it built b, unless the
// log holds one by this key already (an earlier attempt whose answer was
// lost: signing again would log a second claim).
func (u *LedgerUploader) attest(ctx context.Context, b *event.BuildRecorded, index uint64) error {
	atts, err := u.Client.AttestationsOfBuild(ctx, b.UUID)
	if err != nil {
		return err
	}
	for _, a := range atts {
		if a.KeyID == u.Signer.KeyID() && a.Verdict == event.VerdictBuilt {
			return nil
		}
	}
	rb := &attest.Rebuild{Job: b.Job, Build: b.UUID, Platform: b.Platform, LogIndex: int64(index),
		Verdict: attest.Built, BuilderID: u.BuilderID, Inputs: rebuilder.AttestedInputs(b),
		StartedOn: b.Started, FinishedOn: b.Finished}
	for _, a := range b.Artifacts {
		rb.Subjects = append(rb.Subjects, attest.Subject{Name: a.Path, SHA256: a.SHA256})
	}
	if len(rb.Subjects) == 0 {
		return nil // nothing to vouch for (a build that left no file)
	}
	st, err := rb.Statement()
	if err != nil {
		return err
	}
	env, err := attest.Sign(ctx, st, u.Signer)
	if err != nil {
		return err
	}
	_, err = u.Client.SubmitAttestation(ctx, env)
	return err
}

// differs says how the logged build differs from the exec record der, or
// "" when it is the same build: job, platform, start, script and every
// file with its digest.
func differs(b *event.BuildRecorded, der []byte) string {
	ex, err := builder.Parse(der, builder.Limits{})
	if err != nil {
		return "the kept record does not parse: " + err.Error()
	}
	switch {
	case b.Job != ex.Job.Name:
		return fmt.Sprintf("job %q, not %q", b.Job, ex.Job.Name)
	case ex.Job.Platform != "" && b.Platform != ex.Job.Platform:
		return fmt.Sprintf("platform %q, not %q", b.Platform, ex.Job.Platform)
	case !b.Started.Equal(ex.Started):
		return fmt.Sprintf("started %s, not %s", b.Started, ex.Started)
	case b.Script != digest.Sum([]byte(ex.Job.Script)):
		return "another script"
	case len(b.Artifacts) != len(ex.Output):
		return fmt.Sprintf("%d files, not %d", len(b.Artifacts), len(ex.Output))
	}
	logged := make(map[string]digest.Digest, len(b.Artifacts))
	for _, a := range b.Artifacts {
		logged[a.Path] = a.SHA256
	}
	for _, f := range ex.Output {
		if d, ok := logged[f.Path]; !ok || d != digest.Sum(f.Data) {
			return fmt.Sprintf("file %s differs", f.Path)
		}
	}
	return ""
}
