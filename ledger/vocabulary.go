package ledger

import (
	"fmt"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/event"
)

// The log's vocabulary lives in packages without storage dependencies
// (ledger/event, ledger/checkpoint); these names keep it at hand for the
// ledger's callers.
type (
	Event               = event.Event
	Kind                = event.Kind
	InvalidEventError   = event.InvalidEventError
	JobDefined          = event.JobDefined
	BuildRecorded       = event.BuildRecorded
	Inputs              = event.Inputs
	Artifact            = event.Artifact
	Result              = event.Result
	ResultKind          = event.ResultKind
	KeyAdded            = event.KeyAdded
	KeyRevoked          = event.KeyRevoked
	Verdict             = event.Verdict
	Subject             = event.Subject
	AttestationRecorded = event.AttestationRecorded
	KeyStatus           = event.KeyStatus
	Checkpoint          = checkpoint.Checkpoint
)

// Event kinds, results and verdicts (see package event).
const (
	KindJobDefined          = event.KindJobDefined
	KindBuildRecorded       = event.KindBuildRecorded
	KindKeyAdded            = event.KindKeyAdded
	KindKeyRevoked          = event.KindKeyRevoked
	KindAttestationRecorded = event.KindAttestationRecorded
	EncodingVersion         = event.EncodingVersion
	MaxEventSize            = event.MaxEventSize
	ResultExited            = event.ResultExited
	ResultSignalled         = event.ResultSignalled
	ResultStopped           = event.ResultStopped
	ResultMessage           = event.ResultMessage
	VerdictReproduced       = event.VerdictReproduced
	VerdictDiffers          = event.VerdictDiffers
	VerdictBuilt            = event.VerdictBuilt
	KeyStatusUnknown        = event.KeyStatusUnknown
	KeyStatusActive         = event.KeyStatusActive
	KeyStatusRevoked        = event.KeyStatusRevoked
)

var (
	// Kinds lists every event kind.
	Kinds = event.Kinds
	// ErrBadCheckpoint is wrapped by every checkpoint verification failure.
	ErrBadCheckpoint = checkpoint.ErrBad
)

// Encode returns the canonical bytes of e (see event.Encode).
func Encode(e Event) ([]byte, error) { return event.Encode(e) }

// Decode parses canonical event bytes strictly (see event.Decode).
func Decode(b []byte) (Event, error) { return event.Decode(b) }

// KeyID returns the id of a DER SubjectPublicKeyInfo: its SHA-256.
func KeyID(spkiDER []byte) cas.Digest { return event.KeyID(spkiDER) }

// KeyAlgorithm names the algorithm of a DER SubjectPublicKeyInfo, or says
// why it is not accepted.
func KeyAlgorithm(spkiDER []byte) (string, error) { return event.KeyAlgorithm(spkiDER) }

// CheckArtifactPath reports why p cannot name a new artifact (see
// event.CheckArtifactPath).
func CheckArtifactPath(p string) error { return event.CheckArtifactPath(p) }

// CheckName reports why s cannot be a job or platform name.
func CheckName(s string) error { return event.CheckName(s) }

// GenerateLogKey returns a new Ed25519 log key pair in signed-note form.
func GenerateLogKey(name string) (skey, vkey string, err error) { return checkpoint.GenerateKey(name) }

// OpenCheckpoint verifies a signed checkpoint note against the log's
// verifier key and expected origin, and parses it.
func OpenCheckpoint(signed []byte, origin, vkey string) (*Checkpoint, error) {
	return checkpoint.Open(signed, origin, vkey)
}

func invalid(k Kind, format string, args ...any) error {
	return &InvalidEventError{Kind: k, Reason: fmt.Sprintf(format, args...)}
}

var (
	decodeStored    = event.DecodeStored
	compareSubjects = event.CompareSubjects
	signCheckpoint  = checkpoint.Sign
)
