package scheduler

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/httpapi/client"
)

// LedgerUploader records builds in a buildledger through its verifying
// client: an upload counts only when the receipt proves the build is in
// the log under a checkpoint signed by the pinned log key. The ledger's
// 4xx answers are permanent refusals, except 401, 403 (credentials an
// operator can fix), 408 and 429 (a busy ledger), which are retried.
type LedgerUploader struct {
	Client *client.Client
	Cred   client.Credentials
}

// Upload implements Uploader.
func (u *LedgerUploader) Upload(ctx context.Context, der []byte, id uuid.UUID) error {
	_, _, err := u.Client.Upload(ctx, der, id, u.Cred)
	var he *client.Error
	if errors.As(err, &he) && he.Status >= 400 && he.Status < 500 {
		switch he.Status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooManyRequests:
		default:
			return fmt.Errorf("%w: %v", ErrPermanent, err)
		}
	}
	return err
}
