package scheduler

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/httpapi/client"
	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/buildledger/buildledger/ledger/event"
)

// LedgerUploader records builds in a buildledger through its verifying
// client: an upload counts only when the receipt proves the build is in
// the log under a checkpoint signed by the pinned log key. The ledger's
// 4xx answers are permanent refusals, except 401, 403 (credentials an
// operator can fix), 408 and 429 (a busy ledger), which are retried, and
// 409 for a UUID the log holds already: when the logged build (proven in
// the log) is this one, an earlier attempt recorded it and the upload is
// done; another build under the same UUID is a refusal.
type LedgerUploader struct {
	Client *client.Client
	Cred   client.Credentials
}

// Upload implements Uploader.
func (u *LedgerUploader) Upload(ctx context.Context, der []byte, id uuid.UUID) error {
	_, _, err := u.Client.Upload(ctx, der, id, u.Cred)
	var he *client.Error
	if !errors.As(err, &he) || he.Status < 400 || he.Status >= 500 {
		return err
	}
	switch he.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return err
	case http.StatusConflict:
		logged, _, _, lerr := u.Client.Build(ctx, id)
		if lerr != nil {
			return fmt.Errorf("%v; and the logged build %s cannot be read: %w", err, id, lerr)
		}
		if why := differs(logged, der); why != "" {
			return fmt.Errorf("%w: %v; the log holds another build under this UUID: %s", ErrPermanent, err, why)
		}
		return nil
	}
	return fmt.Errorf("%w: %v", ErrPermanent, err)
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
