package event

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas/digest"
)

// Kind names an event kind. It is the value of the "kind" member that opens
// every encoded event.
type Kind string

// The event kinds. Each has a JSON Schema in schemas/event/<kind>.json.
const (
	KindJobDefined          Kind = "job_defined"
	KindBuildRecorded       Kind = "build_recorded"
	KindKeyAdded            Kind = "key_added"
	KindKeyRevoked          Kind = "key_revoked"
	KindAttestationRecorded Kind = "attestation_recorded"
)

// Kinds lists every event kind.
var Kinds = []Kind{KindJobDefined, KindBuildRecorded, KindKeyAdded, KindKeyRevoked, KindAttestationRecorded}

// EncodingVersion is the value of the "v" member of every event this package
// writes. A change to any event's byte encoding gets a new version.
const EncodingVersion = 1

// MaxEventSize bounds an encoded event: a C2SP tlog-tiles entry bundle
// prefixes each entry with a 16-bit length. A build record takes about 150
// bytes per artifact, so this allows over 400 artifacts per build.
const MaxEventSize = 1<<16 - 1

// Event is one entry of the log. The concrete types are *JobDefined,
// *BuildRecorded, *KeyAdded, *KeyRevoked and *AttestationRecorded.
type Event interface {
	Kind() Kind
	// normalize puts the event in canonical form (times in UTC, sorted
	// lists, derived fields filled in).
	normalize()
	// validate reports the first reason the event is not well-formed.
	validate() error
}

// InvalidEventError says why bytes or a value are not a valid event. Its
// message is meant for the person who submitted the event.
type InvalidEventError struct {
	Kind   Kind // may be empty when the kind could not be read
	Reason string
}

func (e *InvalidEventError) Error() string {
	if e.Kind == "" {
		return "invalid event: " + e.Reason
	}
	return fmt.Sprintf("invalid %s event: %s", e.Kind, e.Reason)
}

func invalid(k Kind, format string, args ...any) error {
	return &InvalidEventError{Kind: k, Reason: fmt.Sprintf(format, args...)}
}

// Encode returns the canonical bytes of e: a JSON object whose first members
// are "kind" and "v", followed by the kind's fields in the order its schema
// lists them; no insignificant whitespace, no HTML escaping, every optional
// field present (null when absent), times as RFC 3339 in UTC ("Z") with
// trailing zeros of the fraction dropped, digests as lowercase hex, lists in
// the sorted order the schema states. Encode normalizes a copy of e first
// and fails if the result is not valid.
func Encode(e Event) ([]byte, error) {
	e = clone(e)
	e.normalize()
	if err := e.validate(); err != nil {
		return nil, err
	}
	return marshal(e)
}

// Canonical returns e in canonical form — a normalized copy, checked
// valid — and its canonical bytes (Encode's).
func Canonical(e Event) (Event, []byte, error) {
	e = clone(e)
	e.normalize()
	if err := e.validate(); err != nil {
		return nil, nil, err
	}
	b, err := marshal(e)
	if err != nil {
		return nil, nil, err
	}
	return e, b, nil
}

func marshal(e Event) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(wrap(e)); err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxEventSize {
		return nil, invalid(e.Kind(), "encoded size %d exceeds the limit of %d bytes", len(b), MaxEventSize)
	}
	return b, nil
}

// Decode parses canonical event bytes. Anything that is not exactly the
// encoding Encode would produce for the decoded value (unknown or missing
// members, other member order, whitespace, a non-UTC time, unsorted lists,
// a wrong derived field) is rejected, so every event has one byte encoding.
func Decode(b []byte) (Event, error) {
	if len(b) > MaxEventSize {
		return nil, invalid("", "size %d exceeds the limit of %d bytes", len(b), MaxEventSize)
	}
	var head struct {
		Kind Kind `json:"kind"`
		V    int  `json:"v"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, invalid("", "not a JSON object with a string \"kind\": %v", err)
	}
	e := newEvent(head.Kind)
	if e == nil {
		return nil, invalid("", "unknown kind %q (known: %v)", head.Kind, Kinds)
	}
	if head.V != EncodingVersion {
		return nil, invalid(head.Kind, "encoding version %d, this ledger reads version %d", head.V, EncodingVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(wrap(e)); err != nil {
		return nil, invalid(head.Kind, "%v", err)
	}
	if dec.More() {
		return nil, invalid(head.Kind, "trailing data after the event object")
	}
	if err := e.validate(); err != nil {
		return nil, err
	}
	canon, err := marshal(e)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, b) {
		return nil, invalid(head.Kind, "not in canonical form (expected %d bytes: %.200s)", len(canon), canon)
	}
	return e, nil
}

// DecodeStored decodes an event read back from this ledger's own store.
// Those bytes were checked by Decode when appended and the CAS verifies
// their digest on every read, so only the JSON is parsed here: no canonical
// re-encoding, no validation. Replay uses Decode, re-checking everything.
func DecodeStored(b []byte) (Event, error) {
	const prefix = `{"kind":"`
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return Decode(b)
	}
	k, _, ok := bytes.Cut(b[len(prefix):], []byte(`"`))
	e := newEvent(Kind(k))
	if !ok || e == nil {
		return Decode(b)
	}
	if err := json.Unmarshal(b, wrap(e)); err != nil {
		return nil, invalid(e.Kind(), "%v", err)
	}
	return e, nil
}

func newEvent(k Kind) Event {
	switch k {
	case KindJobDefined:
		return &JobDefined{}
	case KindBuildRecorded:
		return &BuildRecorded{}
	case KindKeyAdded:
		return &KeyAdded{}
	case KindKeyRevoked:
		return &KeyRevoked{}
	case KindAttestationRecorded:
		return &AttestationRecorded{}
	}
	return nil
}

// wrap returns a value whose JSON encoding is the event preceded by its
// "kind" and "v" members (the embedded pointer's fields are promoted).
func wrap(e Event) any {
	switch e := e.(type) {
	case *JobDefined:
		return &struct {
			header
			*JobDefined
		}{header{KindJobDefined, EncodingVersion}, e}
	case *BuildRecorded:
		return &struct {
			header
			*BuildRecorded
		}{header{KindBuildRecorded, EncodingVersion}, e}
	case *KeyAdded:
		return &struct {
			header
			*KeyAdded
		}{header{KindKeyAdded, EncodingVersion}, e}
	case *KeyRevoked:
		return &struct {
			header
			*KeyRevoked
		}{header{KindKeyRevoked, EncodingVersion}, e}
	case *AttestationRecorded:
		return &struct {
			header
			*AttestationRecorded
		}{header{KindAttestationRecorded, EncodingVersion}, e}
	}
	panic(fmt.Sprintf("event: unknown event type %T", e))
}

type header struct {
	Kind Kind `json:"kind"`
	V    int  `json:"v"`
}

// clone returns a deep copy, so Encode never changes its argument.
func clone(e Event) Event {
	switch e := e.(type) {
	case *JobDefined:
		c := *e
		return &c
	case *BuildRecorded:
		c := *e
		c.Artifacts = slices.Clone(e.Artifacts)
		return &c
	case *KeyAdded:
		c := *e
		c.PublicKey = slices.Clone(e.PublicKey)
		return &c
	case *KeyRevoked:
		c := *e
		return &c
	case *AttestationRecorded:
		c := *e
		c.Subjects = slices.Clone(e.Subjects)
		return &c
	}
	panic(fmt.Sprintf("event: unknown event type %T", e))
}

// JobDefined names a job and carries its descriptive metadata. A job must be
// defined before builds are recorded for it; defining it again replaces the
// metadata.
type JobDefined struct {
	Job      string         `json:"job"`
	Synopsis string         `json:"synopsis"`
	Section  string         `json:"section"`
	Readme   *digest.Digest `json:"readme"`
}

func (*JobDefined) Kind() Kind { return KindJobDefined }
func (*JobDefined) normalize() {}
func (e *JobDefined) validate() error {
	if err := checkName("job", e.Job); err != nil {
		return invalid(KindJobDefined, "%v", err)
	}
	if err := checkText("synopsis", e.Synopsis, 256); err != nil {
		return invalid(KindJobDefined, "%v", err)
	}
	if err := checkText("section", e.Section, 128); err != nil {
		return invalid(KindJobDefined, "%v", err)
	}
	return nil
}

// BuildRecorded is one build of a job on a platform: what went in, what
// came out, and how it ended.
type BuildRecorded struct {
	Job        string        `json:"job"`
	UUID       uuid.UUID     `json:"uuid"`
	Platform   string        `json:"platform"`
	Started    time.Time     `json:"started"`
	Finished   time.Time     `json:"finished"`
	Result     Result        `json:"result"`
	Script     digest.Digest `json:"script"`
	Console    digest.Digest `json:"console"`
	Inputs     Inputs        `json:"inputs"`
	InputID    digest.Digest `json:"input_id"`
	Artifacts  []Artifact    `json:"artifacts"`
	MainBinary *string       `json:"main_binary"`
}

// Inputs are the digests of the files orb records about a build's
// environment; nil when the build did not produce that file.
type Inputs struct {
	OpamSwitch       *digest.Digest `json:"opam_switch"`
	BuildEnvironment *digest.Digest `json:"build_environment"`
	SystemPackages   *digest.Digest `json:"system_packages"`
}

// Known reports whether at least one input file is recorded.
func (in Inputs) Known() bool {
	return in.OpamSwitch != nil || in.BuildEnvironment != nil || in.SystemPackages != nil
}

// ID derives the input id: SHA-256 over the three raw 32-byte digests of
// opam-switch, build-environment and system-packages, in that order, a
// missing file contributing 32 zero bytes. When all three exist this equals
// builder-web's input_id; unlike builder-web, a build missing one of them
// still gets an id, so its reproductions can be found.
func (in Inputs) ID() digest.Digest {
	h := sha256.New()
	for _, d := range []*digest.Digest{in.OpamSwitch, in.BuildEnvironment, in.SystemPackages} {
		var z digest.Digest
		if d != nil {
			z = *d
		}
		h.Write(z[:])
	}
	var id digest.Digest
	h.Sum(id[:0])
	return id
}

// Artifact is one output file of a build.
type Artifact struct {
	Path   string        `json:"path"`
	SHA256 digest.Digest `json:"sha256"`
	Size   int64         `json:"size"`
}

func (*BuildRecorded) Kind() Kind { return KindBuildRecorded }

func (e *BuildRecorded) normalize() {
	e.Started = e.Started.UTC().Round(0)
	e.Finished = e.Finished.UTC().Round(0)
	e.InputID = e.Inputs.ID()
	slices.SortFunc(e.Artifacts, func(a, b Artifact) int { return strings.Compare(a.Path, b.Path) })
	if e.Artifacts == nil {
		e.Artifacts = []Artifact{}
	}
}

func (e *BuildRecorded) validate() error {
	bad := func(format string, args ...any) error { return invalid(KindBuildRecorded, format, args...) }
	if err := checkName("job", e.Job); err != nil {
		return bad("%v", err)
	}
	if e.UUID == uuid.Nil {
		return bad("uuid is the nil UUID")
	}
	if err := checkName("platform", e.Platform); err != nil {
		return bad("%v", err)
	}
	if err := checkTime("started", e.Started); err != nil {
		return bad("%v", err)
	}
	if err := checkTime("finished", e.Finished); err != nil {
		return bad("%v", err)
	}
	if e.Finished.Before(e.Started) {
		return bad("finished %s is before started %s", e.Finished.Format(time.RFC3339Nano), e.Started.Format(time.RFC3339Nano))
	}
	if err := e.Result.validate(); err != nil {
		return bad("result: %v", err)
	}
	if e.InputID != e.Inputs.ID() {
		return bad("input_id %s is not derived from the inputs (want %s)", e.InputID, e.Inputs.ID())
	}
	if e.Artifacts == nil {
		return bad("artifacts must be a list (empty for none)")
	}
	for i, a := range e.Artifacts {
		if err := checkPath(a.Path); err != nil {
			return bad("artifact %d: %v", i, err)
		}
		if a.Size < 0 {
			return bad("artifact %q: negative size %d", a.Path, a.Size)
		}
		if i > 0 && e.Artifacts[i-1].Path >= a.Path {
			if e.Artifacts[i-1].Path == a.Path {
				return bad("artifact path %q listed twice", a.Path)
			}
			return bad("artifacts not sorted by path (%q before %q)", e.Artifacts[i-1].Path, a.Path)
		}
	}
	if e.MainBinary != nil {
		if _, ok := e.Artifact(*e.MainBinary); !ok {
			return bad("main_binary %q is not one of the artifacts", *e.MainBinary)
		}
	}
	return nil
}

// Artifact returns the artifact with the given path.
func (e *BuildRecorded) Artifact(p string) (Artifact, bool) {
	i, ok := slices.BinarySearchFunc(e.Artifacts, p, func(a Artifact, p string) int { return strings.Compare(a.Path, p) })
	if !ok {
		return Artifact{}, false
	}
	return e.Artifacts[i], true
}

// Succeeded reports whether the build exited with status 0.
func (e *BuildRecorded) Succeeded() bool {
	return e.Result.Kind == ResultExited && e.Result.Code == 0
}

// ResultKind is how a build ended.
type ResultKind string

// The ways a build ends (builder's exec result).
const (
	ResultExited    ResultKind = "exited"    // the script exited with Code
	ResultSignalled ResultKind = "signalled" // the script was killed by signal Code
	ResultStopped   ResultKind = "stopped"   // the script was stopped by signal Code
	ResultMessage   ResultKind = "message"   // the build farm gave up, Message says why
)

// Result is a build's outcome. It encodes as a JSON object with exactly one
// member named after its kind: {"exited":0}, {"signalled":9}, {"stopped":19}
// or {"message":"timeout"} — unlike builder-web's integer encoding, no two
// results share a representation.
type Result struct {
	Kind    ResultKind
	Code    int    // for exited, signalled, stopped: 0…255
	Message string // for message
}

// MarshalJSON implements json.Marshaler.
func (r Result) MarshalJSON() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	if r.Kind == ResultMessage {
		m, err := json.Marshal(r.Message)
		if err != nil {
			return nil, err
		}
		return fmt.Appendf(nil, `{"message":%s}`, m), nil
	}
	return fmt.Appendf(nil, `{%q:%d}`, r.Kind, r.Code), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (r *Result) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("result must be an object: %w", err)
	}
	if len(m) != 1 {
		return fmt.Errorf("result must have exactly one of exited, signalled, stopped, message; got %d members", len(m))
	}
	var out Result
	for k, v := range m {
		out.Kind = ResultKind(k)
		switch out.Kind {
		case ResultExited, ResultSignalled, ResultStopped:
			if err := json.Unmarshal(v, &out.Code); err != nil {
				return fmt.Errorf("result %s: %w", k, err)
			}
		case ResultMessage:
			if err := json.Unmarshal(v, &out.Message); err != nil {
				return fmt.Errorf("result message: %w", err)
			}
		default:
			return fmt.Errorf("unknown result kind %q (want exited, signalled, stopped or message)", k)
		}
	}
	if err := out.validate(); err != nil {
		return err
	}
	*r = out
	return nil
}

func (r Result) validate() error {
	switch r.Kind {
	case ResultExited, ResultSignalled, ResultStopped:
		if r.Code < 0 || r.Code > 255 {
			return fmt.Errorf("%s code %d not in 0…255", r.Kind, r.Code)
		}
		if r.Message != "" {
			return fmt.Errorf("%s result carries a message", r.Kind)
		}
	case ResultMessage:
		if r.Code != 0 {
			return errors.New("message result carries a code")
		}
		return checkText("result message", r.Message, 4096)
	default:
		return fmt.Errorf("unknown result kind %q", r.Kind)
	}
	return nil
}

// String formats a result the way builder-web shows it.
func (r Result) String() string {
	switch r.Kind {
	case ResultExited:
		return fmt.Sprintf("exited %d", r.Code)
	case ResultSignalled:
		return fmt.Sprintf("signalled %d", r.Code)
	case ResultStopped:
		return fmt.Sprintf("stopped %d", r.Code)
	case ResultMessage:
		return "message: " + r.Message
	}
	return "unknown result"
}

// KeyAdded registers a rebuilder's public key. Attestations signed with it
// count from this event's log index on.
type KeyAdded struct {
	Name      string        `json:"name"`
	KeyID     digest.Digest `json:"key_id"`
	Algorithm string        `json:"algorithm"`
	PublicKey []byte        `json:"public_key"`
}

// KeyID returns the id of a DER-encoded SubjectPublicKeyInfo: its SHA-256.
func KeyID(spkiDER []byte) digest.Digest { return digest.Sum(spkiDER) }

func (*KeyAdded) Kind() Kind { return KindKeyAdded }
func (e *KeyAdded) normalize() {
	e.KeyID = KeyID(e.PublicKey)
	if alg, err := KeyAlgorithm(e.PublicKey); err == nil {
		e.Algorithm = alg
	}
}

func (e *KeyAdded) validate() error {
	bad := func(format string, args ...any) error { return invalid(KindKeyAdded, format, args...) }
	if err := checkName("name", e.Name); err != nil {
		return bad("%v", err)
	}
	alg, err := KeyAlgorithm(e.PublicKey)
	if err != nil {
		return bad("%v", err)
	}
	if e.Algorithm != alg {
		return bad("algorithm %q does not match the key (%s)", e.Algorithm, alg)
	}
	if e.KeyID != KeyID(e.PublicKey) {
		return bad("key_id %s is not the SHA-256 of the public key (%s)", e.KeyID, KeyID(e.PublicKey))
	}
	return nil
}

// KeyAlgorithm names the algorithm of a DER SubjectPublicKeyInfo:
// "ecdsa-p256", "ecdsa-p384", "ed25519" or "rsa-<bits>" (2048 bits or more).
func KeyAlgorithm(spkiDER []byte) (string, error) {
	if len(spkiDER) == 0 {
		return "", errors.New("public_key is empty")
	}
	pub, err := x509.ParsePKIXPublicKey(spkiDER)
	if err != nil {
		return "", fmt.Errorf("public_key is not a DER SubjectPublicKeyInfo: %v", err)
	}
	return keyAlgorithm(pub)
}

// KeyRevoked withdraws a key. Attestations logged after this event's index
// no longer count; a revoked key cannot be added again.
type KeyRevoked struct {
	KeyID  digest.Digest `json:"key_id"`
	Reason string        `json:"reason"`
}

func (*KeyRevoked) Kind() Kind { return KindKeyRevoked }
func (*KeyRevoked) normalize() {}
func (e *KeyRevoked) validate() error {
	if e.KeyID.IsZero() {
		return invalid(KindKeyRevoked, "key_id is missing")
	}
	if err := checkText("reason", e.Reason, 1024); err != nil {
		return invalid(KindKeyRevoked, "%v", err)
	}
	return nil
}

// KeyStatus is a key's standing at one point of the log: unknown before
// its key_added event, active after it, revoked after its key_revoked.
type KeyStatus string

// Key statuses.
const (
	KeyStatusUnknown KeyStatus = "unknown"
	KeyStatusActive  KeyStatus = "active"
	KeyStatusRevoked KeyStatus = "revoked"
)

// Verdict is what a rebuilder concluded.
type Verdict string

// Verdicts.
const (
	VerdictReproduced Verdict = "reproduced" // every output matched the recorded build
	VerdictDiffers    Verdict = "differs"    // at least one output differed
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
	case VerdictReproduced, VerdictDiffers:
	default:
		return bad("verdict %q is neither %q nor %q", e.Verdict, VerdictReproduced, VerdictDiffers)
	}
	return nil
}

// CheckArtifactPath reports why p cannot name a new artifact: it must be a
// clean, relative, slash-separated path without "." or ".." elements,
// control characters or backslashes, at most 1024 bytes of UTF-8, and
// without invisible characters that make a name display as another (bidi
// overrides such as U+202E, zero-width characters such as U+200B, line
// separators; Unicode categories Cc, Cf, Zl and Zp). Append applies all of
// it; events already in a log are checked by the earlier rule only (see
// checkPath), so a log written before the stricter rule still replays.
func CheckArtifactPath(p string) error {
	if err := checkPath(p); err != nil {
		return err
	}
	if i := strings.IndexFunc(p, invisible); i >= 0 {
		r, _ := utf8.DecodeRuneInString(p[i:])
		return fmt.Errorf("path %+q contains the invisible or direction-changing character %U at byte %d; rename the file", p, r, i)
	}
	return nil
}

// invisible reports characters that change how a name is displayed
// without being seen.
func invisible(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
}

// checkPath is the path rule events in the log satisfy.
func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > 1024:
		return fmt.Errorf("path of %d bytes exceeds 1024", len(p))
	case !utf8.ValidString(p):
		return fmt.Errorf("path %q is not UTF-8", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is absolute", p)
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
		return fmt.Errorf("path %q contains a control character or backslash", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." || el == "." {
			return fmt.Errorf("path %q contains %q", p, el)
		}
	}
	if path.Clean(p) != p {
		return fmt.Errorf("path %q is not clean (want %q)", p, path.Clean(p))
	}
	return nil
}

// checkName accepts job and platform names: 1–128 bytes of ASCII letters,
// digits and ._+- starting with a letter or digit.
func checkName(field, s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("%s %q must be 1 to 128 characters", field, s)
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '.' || r == '_' || r == '+' || r == '-')
		if !ok {
			return fmt.Errorf("%s %q: character %q not allowed (letters, digits and ._+- after the first)", field, s, r)
		}
	}
	return nil
}

// CheckName reports why s cannot be a job or platform name.
func CheckName(s string) error { return checkName("name", s) }

func checkText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s of %d bytes exceeds %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	if strings.ContainsRune(s, 0) {
		return fmt.Errorf("%s contains NUL", field)
	}
	return nil
}

// maxTime is the last time Unix nanoseconds can represent; the projections
// order builds by it.
var maxTime = time.Unix(0, math.MaxInt64).UTC()

func checkTime(field string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("%s time is missing", field)
	}
	if t.Location() != time.UTC {
		return fmt.Errorf("%s time %s is not in UTC", field, t)
	}
	if t.Year() < 1970 || t.After(maxTime) {
		return fmt.Errorf("%s time %s out of range (1970 to 2262)", field, t.Format(time.RFC3339))
	}
	return nil
}
