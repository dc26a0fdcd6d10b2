// Package api holds the bodies of buildledger's HTTP API: the JSON the
// server (package httpapi) answers and the client (package
// httpapi/client) reads. It depends on the log's vocabulary only
// (ledger/event, cas/digest), so a client links no storage.
package api

import (
	"encoding/json"
	"path"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/event"
)

// The largest pages the server answers: hits of a reverse hash lookup
// (GET /hash?limit=) and builds of a list (count=).
const (
	MaxHashPage = 10000
	MaxPage     = 1000
)

// AttestationInfo summarises one logged attestation.
type AttestationInfo struct {
	LogIndex      uint64          `json:"log_index"`
	Envelope      digest.Digest   `json:"envelope"`
	KeyID         digest.Digest   `json:"key_id"`
	KeyName       string          `json:"key_name"`
	KeyStatus     event.KeyStatus `json:"key_status"` // now, not when it was logged
	PredicateType string          `json:"predicate_type"`
	Build         *uuid.UUID      `json:"build"`
	Verdict       event.Verdict   `json:"verdict"`
	Subjects      []event.Subject `json:"subjects"`
	// Differs lists the artifacts of the attested build for which the
	// rebuilder got other bytes than recorded (a "differs" verdict).
	Differs []SubjectDiff `json:"differs,omitempty"`
}

// SubjectDiff is one artifact a rebuilder could not reproduce.
type SubjectDiff struct {
	Name     string        `json:"name"`
	Recorded digest.Digest `json:"recorded"`
	Got      digest.Digest `json:"got"`
}

// AttestationReceipt is the answer to POST /attestations: where the
// attestation is in the log and the proof that it is there.
type AttestationReceipt struct {
	AttestationInfo
	Existing   bool     `json:"existing"` // the same envelope was logged before
	LeafHash   []byte   `json:"leaf_hash"`
	Checkpoint string   `json:"checkpoint"`
	Inclusion  [][]byte `json:"inclusion_proof"`
}

// AttestationList is the answer to GET /attestations: every attestation of
// a digest (or of a build), each with its inclusion proof in Checkpoint.
type AttestationList struct {
	SHA256     *digest.Digest `json:"sha256,omitempty"`
	Build      *uuid.UUID     `json:"build,omitempty"`
	Checkpoint string         `json:"checkpoint"`
	// Attestations name the digest as a subject (or attest the build).
	Attestations []ProvenAttestation `json:"attestations"`
	// Disputes are "differs" attestations of builds that recorded the
	// digest: the rebuilder got other bytes.
	Disputes []ProvenAttestation `json:"disputes"`
}

// ProvenAttestation is an attestation with its inclusion proof.
type ProvenAttestation struct {
	AttestationInfo
	LeafHash  []byte   `json:"leaf_hash"`
	Inclusion [][]byte `json:"inclusion_proof"`
	// URL serves the envelope's exact bytes.
	URL string `json:"envelope_url"`
}

// KeyInfo describes a registered rebuilder key (GET /keys).
type KeyInfo struct {
	Name      string          `json:"name"`
	KeyID     digest.Digest   `json:"key_id"`
	Algorithm string          `json:"algorithm"`
	Status    event.KeyStatus `json:"status"`
	AddedAt   uint64          `json:"added_at"`
	RevokedAt *uint64         `json:"revoked_at,omitempty"`
	PublicKey string          `json:"public_key"` // PEM
}

// KeyRequest is the body of POST /keys and POST /keys/{name}/revoke.
type KeyRequest struct {
	PublicKey string `json:"public_key,omitempty"` // PEM "PUBLIC KEY" (add)
	Reason    string `json:"reason,omitempty"`     // (revoke)
}

// HashHit is one build artifact carrying a looked-up digest.
type HashHit struct {
	Job        string    `json:"job"`
	UUID       uuid.UUID `json:"uuid"`
	Platform   string    `json:"platform"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	LogIndex   uint64    `json:"log_index"`
	Path       string    `json:"path"`
	Size       int64     `json:"size"`
	MainBinary bool      `json:"main_binary"`
}

// HashLookup is the JSON answer of GET /hash: one page of the entries
// for a digest, in log order.
type HashLookup struct {
	SHA256       digest.Digest     `json:"sha256"`
	Builds       []HashHit         `json:"builds"`
	Attestations []AttestationInfo `json:"attestations"`
	// Disputes are "differs" attestations of builds that recorded this
	// digest: rebuilders that got other bytes.
	Disputes []AttestationInfo `json:"disputes"`
	// Checkpoint is the signed checkpoint the log indices refer to.
	Checkpoint string `json:"checkpoint"`
	// Next, when more entries follow (up to the checkpoint), is the after=
	// of the next page.
	Next *uint64 `json:"next,omitempty"`
}

// ArtifactView is one output file of a build.
type ArtifactView struct {
	Path   string        `json:"path"`
	SHA256 digest.Digest `json:"sha256"`
	Size   int64         `json:"size"`
}

// MainBinaryView is a build's main binary as builder-web lists it on a
// job page: {"filename": its base name, "sha256", "size"}, with its path
// in the build added.
type MainBinaryView struct {
	Filename string `json:"filename"`
	ArtifactView
}

// NewMainBinaryView returns the view of the main binary a.
func NewMainBinaryView(a ArtifactView) *MainBinaryView {
	return &MainBinaryView{Filename: path.Base(a.Path), ArtifactView: a}
}

// BuildSummary is a build as listed on job pages. Its members are a
// superset of builder-web's build list items ({"uuid", "main_binary":
// null | {"filename", "sha256", "size"}}).
type BuildSummary struct {
	Job        string          `json:"job"`
	UUID       uuid.UUID       `json:"uuid"`
	Platform   string          `json:"platform"`
	Started    time.Time       `json:"start_time"`
	Finished   time.Time       `json:"finish_time"`
	Result     string          `json:"result"`
	Succeeded  bool            `json:"succeeded"`
	MainBinary *MainBinaryView `json:"main_binary"`
	LogIndex   uint64          `json:"log_index"`
}

// BuildView is the build page. Its members are a superset of builder-web's
// ({"job", "uuid", "platform", "start_time", "finish_time", "main_binary":
// bool}), where "main_binary" only says whether there is one: the main
// binary itself is MainArtifact. The embedded BuildSummary's MainBinary is
// hidden by that member and left nil.
type BuildView struct {
	BuildSummary
	// MainBinary is builder-web's "main_binary": whether the build has one.
	MainBinary bool `json:"main_binary"`
	// MainArtifact is the main binary, null if there is none.
	MainArtifact *MainBinaryView `json:"main_binary_artifact"`
	// Solo5Manifest and Solo5ABI are the solo5 notes of a unikernel's
	// main binary, as builder-web sends them; absent for other binaries.
	Solo5Manifest json.RawMessage `json:"solo5_manifest,omitempty"`
	Solo5ABI      json.RawMessage `json:"solo5_abi,omitempty"`

	Script       digest.Digest     `json:"script"`
	Console      digest.Digest     `json:"console"`
	Inputs       event.Inputs      `json:"inputs"`
	InputID      digest.Digest     `json:"input_id"`
	Artifacts    []ArtifactView    `json:"artifacts"`
	ReproducedBy []BuildSummary    `json:"reproduced_by"`
	Differs      []BuildSummary    `json:"same_input_different_output"`
	Attestations []AttestationInfo `json:"attestations"`
	// AttestedBy names the distinct keys that attested a reproduction of
	// this build; DisputedBy those that got other bytes (a key in both
	// contradicted itself).
	AttestedBy []string `json:"attested_by"`
	DisputedBy []string `json:"disputed_by"`
	// BuiltBy names the keys (build farms) that attested they built this
	// build themselves; that is provenance, not a reproduction.
	BuiltBy       []string      `json:"built_by"`
	Checkpoint    string        `json:"checkpoint"`
	EventSHA256   digest.Digest `json:"event_sha256"`
	EventLeafHash []byte        `json:"leaf_hash"`
}

// JobView is a job with one page of its builds (see pageParams).
type JobView struct {
	Job      string         `json:"job"`
	Synopsis string         `json:"synopsis"`
	Section  string         `json:"section"`
	Builds   []BuildSummary `json:"builds"`
	Page
}

// Page places a page in a list of builds: Start and Count are the page's
// start= and count=; Next and Prev are the URLs of the neighbouring pages,
// empty where there is none.
type Page struct {
	Start int    `json:"start"`
	Count int    `json:"count"`
	Next  string `json:"next,omitempty"`
	Prev  string `json:"prev,omitempty"`
}

// UploadReceipt is the JSON answer to an upload: where the build is in the
// log and the proof that it is there.
type UploadReceipt struct {
	Job        string    `json:"job"`
	UUID       uuid.UUID `json:"uuid"`
	LogIndex   uint64    `json:"log_index"`
	Event      string    `json:"event_sha256"`
	LeafHash   []byte    `json:"leaf_hash"`
	Checkpoint string    `json:"checkpoint"`
	Inclusion  [][]byte  `json:"inclusion_proof"`
	MainBinary *string   `json:"main_binary"`
	URL        string    `json:"url"`
	// Existing is true when the identical build was recorded before (a
	// retry after a lost answer): the receipt is the recorded entry's.
	Existing bool `json:"existing"`
}
