package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
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
	// Canonical events start {"kind":"K","v":N, (read without parsing the
	// whole object; whatever else the bytes hold, the canonical check
	// below compares them all). Others are parsed, for a precise error.
	if k, v, ok := canonicalHead(b); ok {
		head.Kind, head.V = k, v
	} else if err := json.Unmarshal(b, &head); err != nil {
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

// canonicalHead reads the kind and version of an event in canonical form
// from its first bytes.
func canonicalHead(b []byte) (Kind, int, bool) {
	const prefix = `{"kind":"`
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return "", 0, false
	}
	k, rest, ok := bytes.Cut(b[len(prefix):], []byte(`","v":`))
	if !ok || bytes.ContainsAny(k, "\\\"") {
		return "", 0, false
	}
	v, n := 0, 0
	for ; n < len(rest) && n < 6 && rest[n] >= '0' && rest[n] <= '9'; n++ {
		v = v*10 + int(rest[n]-'0')
	}
	if n == 0 || n == len(rest) || rest[n] != ',' && rest[n] != '}' {
		return "", 0, false
	}
	return Kind(k), v, true
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
