package httpapi

import (
	"context"
	"net/http"

	"github.com/buildledger/buildledger/httpapi/api"
	"github.com/buildledger/buildledger/httpapi/client"
)

// The API's bodies are defined in package api, shared with the client.
type (
	AttestationInfo    = api.AttestationInfo
	SubjectDiff        = api.SubjectDiff
	AttestationReceipt = api.AttestationReceipt
	AttestationList    = api.AttestationList
	ProvenAttestation  = api.ProvenAttestation
	KeyInfo            = api.KeyInfo
	KeyRequest         = api.KeyRequest
	HashHit            = api.HashHit
	HashLookup         = api.HashLookup
	ArtifactView       = api.ArtifactView
	BuildSummary       = api.BuildSummary
	BuildView          = api.BuildView
	JobView            = api.JobView
	Page               = api.Page
	UploadReceipt      = api.UploadReceipt
)

// The verifying client lives in package httpapi/client, which links no
// server or storage code (the VMM gate and the rebuilder use it); these
// names keep it at hand for code that also runs a server.
type (
	Client             = client.Client
	Credentials        = client.Credentials
	InconsistencyError = client.InconsistencyError
	KeyReceipt         = client.KeyReceipt
	LookupResult       = client.LookupResult
	VerifiedBuild      = client.VerifiedBuild
	VerifiedEvent      = client.VerifiedEvent
)

// ErrNotInLedger: no recorded build produced the digest looked up.
var ErrNotInLedger = client.ErrNotInLedger

// NewClient returns a client for the server at base (see client.New).
func NewClient(base string, vkey string, hc *http.Client) (*Client, error) {
	return client.New(base, vkey, hc)
}

// FetchLogKey asks a server for its log key (see client.FetchLogKey).
func FetchLogKey(ctx context.Context, base string, hc *http.Client) (string, error) {
	return client.FetchLogKey(ctx, base, hc)
}
