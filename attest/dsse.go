package attest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	v1 "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
)

// PayloadType is the DSSE payload type of an in-toto statement.
const PayloadType = "application/vnd.in-toto+json"

// MaxEnvelopeSize is the largest envelope ParseEnvelope and Verify accept.
const MaxEnvelopeSize = 1 << 20

// MaxSignatures is the most signatures an envelope may carry. Verification
// tries every signature against every candidate key, so an unbounded list
// would let anyone make a verifier spend seconds on one envelope.
const MaxSignatures = 8

// Conditions a VerifyError refines; test with errors.Is.
var (
	ErrMalformed        = errors.New("malformed envelope")        // not a DSSE envelope of an in-toto statement
	ErrWrongPayloadType = errors.New("wrong payload type")        // a DSSE envelope, but not of an in-toto statement
	ErrBadSignature     = errors.New("signature does not verify") // no signature verifies with the given key
)

// VerifyError says why an envelope was rejected. Err is one of
// ErrMalformed, ErrWrongPayloadType or ErrBadSignature; Reason is the
// detail, safe to show to whoever submitted the envelope.
type VerifyError struct {
	Err    error
	Reason string
}

func (e *VerifyError) Error() string { return "attest: " + e.Err.Error() + ": " + e.Reason }

// Unwrap returns the sentinel the error refines.
func (e *VerifyError) Unwrap() error { return e.Err }

func malformed(format string, args ...any) error {
	return &VerifyError{Err: ErrMalformed, Reason: fmt.Sprintf(format, args...)}
}

// Envelope is a decoded DSSE envelope
// (https://github.com/secure-systems-lab/dsse/blob/v1.0.0/envelope.md).
type Envelope struct {
	PayloadType string
	Payload     []byte // decoded from base64
	Signatures  []Signature
}

// Signature is one DSSE signature. KeyID is an unauthenticated hint;
// Verify ignores it and tries the signature against its key.
type Signature struct {
	KeyID string
	Sig   []byte // decoded from base64
}

// ParseEnvelope parses a DSSE envelope in its JSON form, strictly: at most
// MaxEnvelopeSize bytes of UTF-8; one object with exactly the members
// "payloadType", "payload" and "signatures" (each once, no others); each
// signature an object with "sig" and optionally "keyid"; standard or
// URL-safe padded base64 without line breaks; at least one signature; no
// trailing data. Every error is a *VerifyError refining ErrMalformed.
func ParseEnvelope(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, malformed("envelope of %d bytes exceeds %d", len(b), MaxEnvelopeSize)
	}
	if !utf8.Valid(b) {
		return nil, malformed("envelope is not UTF-8")
	}
	p := envParser{dec: json.NewDecoder(strings.NewReader(string(b)))}
	env, err := p.envelope()
	if err != nil {
		return nil, malformed("%v", err)
	}
	return env, nil
}

type envParser struct{ dec *json.Decoder }

func (p *envParser) delim(want json.Delim) error {
	t, err := p.dec.Token()
	if err != nil {
		return syntaxErr(err)
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, found %s", want, describe(t))
	}
	return nil
}

func (p *envParser) str(what string) (string, error) {
	t, err := p.dec.Token()
	if err != nil {
		return "", syntaxErr(err)
	}
	s, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("%s: want a string, found %s", what, describe(t))
	}
	return s, nil
}

// members reads an object's members, calling f for each key; duplicate
// keys are rejected.
func (p *envParser) members(what string, f func(key string) error) error {
	if err := p.delim('{'); err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	seen := map[string]bool{}
	for p.dec.More() {
		k, err := p.str(what + " member name")
		if err != nil {
			return err
		}
		if seen[k] {
			return fmt.Errorf("%s: member %q appears twice", what, k)
		}
		seen[k] = true
		if err := f(k); err != nil {
			return err
		}
	}
	return p.delim('}')
}

func (p *envParser) envelope() (*Envelope, error) {
	env := &Envelope{}
	var payload string
	var havePT, havePayload, haveSigs bool
	err := p.members("envelope", func(k string) error {
		var err error
		switch k {
		case "payloadType":
			env.PayloadType, err = p.str(k)
			havePT = true
		case "payload":
			payload, err = p.str(k)
			havePayload = true
		case "signatures":
			haveSigs = true
			if err := p.delim('['); err != nil {
				return fmt.Errorf("signatures: %v", err)
			}
			for p.dec.More() {
				if len(env.Signatures) == MaxSignatures {
					return fmt.Errorf("more than %d signatures", MaxSignatures)
				}
				s, err := p.signature(len(env.Signatures))
				if err != nil {
					return err
				}
				env.Signatures = append(env.Signatures, s)
			}
			return p.delim(']')
		default:
			return fmt.Errorf("envelope has unknown member %q", k)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if _, err := p.dec.Token(); err != io.EOF {
		return nil, errors.New("data after the envelope")
	}
	switch {
	case !havePT:
		return nil, errors.New("payloadType is missing")
	case !havePayload:
		return nil, errors.New("payload is missing")
	case !haveSigs:
		return nil, errors.New("signatures is missing")
	case len(env.Signatures) == 0:
		return nil, errors.New("no signatures")
	}
	if env.Payload, err = decodeB64(payload); err != nil {
		return nil, fmt.Errorf("payload: %v", err)
	}
	if len(env.Payload) == 0 {
		return nil, errors.New("payload is empty")
	}
	return env, nil
}

func (p *envParser) signature(i int) (Signature, error) {
	what := fmt.Sprintf("signatures[%d]", i)
	var s Signature
	var sig string
	var haveSig bool
	err := p.members(what, func(k string) error {
		var err error
		switch k {
		case "keyid":
			s.KeyID, err = p.str(what + ".keyid")
		case "sig":
			sig, err = p.str(what + ".sig")
			haveSig = true
		default:
			return fmt.Errorf("%s has unknown member %q", what, k)
		}
		return err
	})
	if err != nil {
		return Signature{}, err
	}
	if !haveSig {
		return Signature{}, fmt.Errorf("%s.sig is missing", what)
	}
	if s.Sig, err = decodeB64(sig); err != nil {
		return Signature{}, fmt.Errorf("%s.sig: %v", what, err)
	}
	if len(s.Sig) == 0 {
		return Signature{}, fmt.Errorf("%s.sig is empty", what)
	}
	return s, nil
}

// decodeB64 accepts standard or URL-safe base64 with padding, as DSSE
// allows, and nothing else (no line breaks, no stray padding bits).
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("base64 contains a line break")
	}
	if b, err := base64.StdEncoding.Strict().DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.URLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64")
	}
	return b, nil
}

func syntaxErr(err error) error {
	if err == io.EOF {
		return errors.New("unexpected end of JSON")
	}
	return fmt.Errorf("invalid JSON: %v", err)
}

func describe(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", v)
	case string:
		return "a string"
	case nil:
		return "null"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}

// Sign serializes st (see MarshalStatement) and wraps it in a DSSE
// envelope of PayloadType signed by s, returning the envelope's JSON:
//
//	{"payloadType":"application/vnd.in-toto+json","payload":"<base64>","signatures":[{"keyid":"","sig":"<base64>"}]}
//
// The keyid is left empty, as cosign writes it; verifiers identify the key
// by trying it.
func Sign(ctx context.Context, st *v1.Statement, s *Signer) ([]byte, error) {
	payload, err := MarshalStatement(st)
	if err != nil {
		return nil, err
	}
	es, err := dsse.NewEnvelopeSigner(&sigdsse.SignerAdapter{SignatureSigner: s.sv, Pub: s.pub})
	if err != nil {
		return nil, fmt.Errorf("attest: sign: %w", err)
	}
	env, err := es.SignPayload(ctx, PayloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("attest: sign: %w", err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("attest: sign: %w", err)
	}
	return b, nil
}

// Verified is an envelope whose signature verified and whose payload is a
// valid in-toto statement.
type Verified struct {
	Signature     Signature     // the signature that verified
	KeyID         KeyID         // id of the key whose signature verified
	StatementType string        // StatementType or StatementTypeV01
	PredicateType string        // the statement's predicateType
	Statement     *v1.Statement // the parsed statement
	Subjects      []Subject     // its subjects, each with its sha256 digest
	Payload       []byte        // the signed payload bytes

	payloadType string
}

// Canonical returns the envelope in the one form the ledger stores: the
// payload type, the payload and only the signature that verified, with an
// empty keyid, encoded exactly as Sign writes it. Two envelopes carrying
// the same signed statement and signature have the same canonical bytes
// however they were re-encoded or what other signatures or hints they
// had, so the ledger can recognise a resubmission.
func (v *Verified) Canonical() []byte {
	b, _ := json.Marshal(dsse.Envelope{PayloadType: v.payloadType, Payload: base64.StdEncoding.EncodeToString(v.Payload),
		Signatures: []dsse.Signature{{Sig: base64.StdEncoding.EncodeToString(v.Signature.Sig)}}})
	return b
}

// CanonicalForms returns the canonical form (see Verified.Canonical) the
// envelope would have for each of its signatures, without verifying any:
// a submitter uses it to recognise the envelope the ledger logged. For an
// in-toto link (IsLink) they are VerifiedLink.Canonical's forms, each
// under the key id its signature names.
func CanonicalForms(envelope []byte) ([][]byte, error) {
	if IsLink(envelope) {
		return linkCanonicalForms(envelope)
	}
	env, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, s := range env.Signatures {
		v := &Verified{Signature: s, Payload: env.Payload, payloadType: env.PayloadType}
		out = append(out, v.Canonical())
	}
	return out, nil
}

// Rebuild parses the statement as a rebuild attestation (see
// ParseStatement).
func (v *Verified) Rebuild() (*Rebuild, error) {
	r, _, err := ParseStatement(v.Payload)
	return r, err
}

// Attestation summarises a verified rebuild attestation for policy
// evaluation, given the log index at which it was logged.
func (v *Verified) Attestation(logIndex int64) (Attestation, error) {
	r, err := v.Rebuild()
	if err != nil {
		return Attestation{}, err
	}
	return Attestation{
		KeyID:         v.KeyID,
		PredicateType: v.PredicateType,
		Build:         r.Build,
		Subjects:      v.Subjects,
		Verdict:       r.Verdict,
		LogIndex:      logIndex,
	}, nil
}

// Verify parses a DSSE envelope strictly (see ParseEnvelope), checks that
// its payload type is PayloadType, that one of its signatures verifies
// with key over the DSSE pre-authentication encoding, and that the payload
// is an in-toto statement (v1 or v0.1) whose subjects carry sha256
// digests. Every error is a *VerifyError.
func Verify(envelope []byte, key *Verifier) (*Verified, error) {
	return VerifyAny(envelope, []*Verifier{key})
}

// VerifyAny is Verify with several candidate keys, parsing the envelope
// once: the result names a key that verifies a signature — those a
// signature's keyid hint names are tried first, then the others, each in
// the order given. Callers that prefer some keys (active over revoked)
// call it with those first and with the others only if it fails. With no
// key verifying, the error refines ErrBadSignature.
func VerifyAny(envelope []byte, keys []*Verifier) (*Verified, error) {
	env, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	if env.PayloadType != PayloadType {
		return nil, &VerifyError{Err: ErrWrongPayloadType, Reason: fmt.Sprintf("payloadType %.100q, want %q", env.PayloadType, PayloadType)}
	}
	// The pre-authentication encoding is what every signature signs:
	// compute it once. The envelope's keyids are hints that nobody signed:
	// the keys a signature's hint names (by KeyID or by the SHA256:… id
	// go-securesystemslib derives) are tried first, then every other key
	// whatever id scheme the signer used, one signature at a time so that
	// the one that verified is known. A hinted envelope, the usual case,
	// costs one verification.
	pae := dsse.PAE(env.PayloadType, env.Payload)
	var key *Verifier
	var sig Signature
	verify := func(k *Verifier, s Signature) bool {
		return k.v.VerifySignature(bytes.NewReader(s.Sig), bytes.NewReader(pae)) == nil
	}
search:
	for _, hinted := range []bool{true, false} {
		for _, s := range env.Signatures {
			for _, k := range keys {
				// Each (signature, key) pair is tried once: in the first
				// pass if the signature's hint names the key.
				if hinted == k.hintedBy(s.KeyID) && verify(k, s) {
					key, sig = k, s
					break search
				}
			}
		}
	}
	if key == nil {
		reason := fmt.Sprintf("none of %d signatures verifies with any of %d keys", len(env.Signatures), len(keys))
		if len(keys) == 1 {
			reason = fmt.Sprintf("none of %d signatures verifies with key %s", len(env.Signatures), keys[0].id)
		}
		return nil, &VerifyError{Err: ErrBadSignature, Reason: reason}
	}
	st, subjects, err := UnmarshalStatement(env.Payload)
	if err != nil {
		return nil, malformed("payload: %v", strings.TrimPrefix(err.Error(), "attest: "))
	}
	return &Verified{
		Signature:     sig,
		KeyID:         key.id,
		StatementType: st.GetType(),
		PredicateType: st.GetPredicateType(),
		Statement:     st,
		Subjects:      subjects,
		Payload:       env.Payload,
		payloadType:   env.PayloadType,
	}, nil
}
