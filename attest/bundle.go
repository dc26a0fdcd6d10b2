package attest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"google.golang.org/protobuf/encoding/protojson"
)

// BundleMediaTypePrefix starts the mediaType of every Sigstore bundle
// (application/vnd.dev.sigstore.bundle.v0.3+json and its predecessors).
const BundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"

// IsBundle reports whether b is a JSON object whose mediaType names a
// Sigstore bundle, as cosign attest-blob --bundle writes one.
func IsBundle(b []byte) bool {
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&probe); err != nil {
		return false
	}
	return strings.HasPrefix(probe.MediaType, BundleMediaTypePrefix)
}

// EnvelopeOfBundle returns the DSSE envelope a Sigstore bundle carries,
// in the DSSE JSON form ParseEnvelope and Verify read. The bundle's
// verification material and transparency-log entries are not used: the
// envelope is what gets verified (with a registered key) and logged.
func EnvelopeOfBundle(b []byte) ([]byte, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, malformed("bundle of %d bytes exceeds %d", len(b), MaxEnvelopeSize)
	}
	var pb protobundle.Bundle
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &pb); err != nil {
		return nil, malformed("Sigstore bundle: %v", err)
	}
	if !strings.HasPrefix(pb.GetMediaType(), BundleMediaTypePrefix) {
		return nil, malformed("Sigstore bundle: mediaType %q is not a bundle's", pb.GetMediaType())
	}
	env := pb.GetDsseEnvelope()
	if env == nil {
		return nil, malformed("Sigstore bundle: it holds no DSSE envelope (a bare message signature is not an attestation)")
	}
	type sig struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	}
	out := struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []sig  `json:"signatures"`
	}{PayloadType: env.GetPayloadType(), Payload: base64.StdEncoding.EncodeToString(env.GetPayload()), Signatures: []sig{}}
	for _, s := range env.GetSignatures() {
		out.Signatures = append(out.Signatures, sig{KeyID: s.GetKeyid(), Sig: base64.StdEncoding.EncodeToString(s.GetSig())})
	}
	var j bytes.Buffer
	enc := json.NewEncoder(&j)
	enc.SetEscapeHTML(false) // a keyid hint stays the size it was
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	return bytes.TrimSuffix(j.Bytes(), []byte("\n")), nil
}

// BundleMediaType is the media type of the bundles Bundle writes.
const BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// Bundle wraps a DSSE envelope signed by the key key in a Sigstore bundle
// v0.3 (protobuf-specs bundle/v1 in its JSON form), for `cosign
// verify-blob-attestation --key K.pub --bundle B`. The public-key hint is
// the key id (SHA-256 of the key's DER SubjectPublicKeyInfo, base64), as
// cosign writes it. The bundle carries no transparency-log entry.
func Bundle(envelope []byte, key KeyID) ([]byte, error) {
	env, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	pe := &protodsse.Envelope{Payload: env.Payload, PayloadType: env.PayloadType}
	for _, s := range env.Signatures {
		pe.Signatures = append(pe.Signatures, &protodsse.Signature{Sig: s.Sig, Keyid: s.KeyID})
	}
	b := &protobundle.Bundle{
		MediaType: BundleMediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{
				Hint: base64.StdEncoding.EncodeToString(key[:])}}},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: pe},
	}
	out, err := protojson.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("attest: bundle: %w", err)
	}
	// protojson varies its white space on purpose; serve a fixed form.
	var c bytes.Buffer
	if err := json.Compact(&c, out); err != nil {
		return nil, fmt.Errorf("attest: bundle: %w", err)
	}
	return c.Bytes(), nil
}
