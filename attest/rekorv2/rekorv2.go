// Package rekorv2 describes a transparency log of attestation envelopes
// the way Sigstore clients (cosign v2.6 and v3, sigstore-go) verify a
// Rekor v2 log, so that a Sigstore bundle can prove an attestation's
// inclusion offline:
//
//   - each envelope is logged as a hashedrekord 0.0.2 entry (Entry): the
//     digest of the DSSE pre-authentication encoding, the signature and
//     the signer's public key, in RFC 8785 canonical JSON; the leaf is its
//     RFC 6962 leaf hash (sigstore-go rebuilds this entry from the envelope
//     and the verifier's key, so the bytes must be exactly these);
//   - checkpoints are C2SP signed notes whose origin is the host name of
//     the log's base URL, signed with an Ed25519 key in the standard note
//     format (Log.Origin, Log.LogID);
//   - the trusted root (Log.TrustedRoot) names the log (trustedroot
//     media type 0.1, hashAlgorithm SHA2_256, the key, its log id);
//   - a bundle v0.3 (Log.Bundle) carries the envelope and one tlog entry
//     with its inclusion proof and checkpoint.
//
// The formats follow sigstore/protobuf-specs v0.5 (bundle, rekor,
// trustroot), rekor-tiles (hashedrekord v0.0.2, note key ids) and
// sigstore-go's verifier (pkg/verify/tlog.go). The package builds and
// checks bytes; the log itself (its tiles and checkpoints) is kept by the
// caller.
package rekorv2

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/buildledger/buildledger/attest"
)

// Media types written.
const (
	TrustedRootMediaType = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
	BundleMediaType      = attest.BundleMediaType
)

// Entry kind and version of the log's entries.
const (
	Kind       = "hashedrekord"
	APIVersion = "0.0.2"
)

// Log is a Rekor v2 style log as its clients see it.
type Log struct {
	// BaseURL is where the log is served, e.g. https://ledger.example.org/;
	// the checkpoints' origin is its host name.
	BaseURL string
	// Key verifies the log's checkpoints (a note signer's Ed25519 key).
	Key ed25519.PublicKey
	// ValidFrom is when the key took office (the trusted root requires a
	// start; clients do not compare it with anything for these entries).
	ValidFrom time.Time
}

// Origin is the checkpoint origin clients expect: the host name of BaseURL.
func (l Log) Origin() (string, error) {
	u, err := url.Parse(l.BaseURL)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("rekorv2: base URL %q has no host name", l.BaseURL)
	}
	return u.Hostname(), nil
}

// LogID is the log's id in trusted roots and bundles: the C2SP signed-note
// key hash of its Ed25519 key under its origin,
// SHA-256(origin || "\n" || 0x01 || key), as rekor-tiles computes it.
func (l Log) LogID() ([]byte, error) {
	origin, err := l.Origin()
	if err != nil {
		return nil, err
	}
	if len(l.Key) != ed25519.PublicKeySize {
		return nil, errors.New("rekorv2: the log key is not an Ed25519 public key")
	}
	h := sha256.New()
	h.Write([]byte(origin + "\n"))
	h.Write([]byte{0x01})
	h.Write(l.Key)
	return h.Sum(nil), nil
}

// TrustedRoot returns the Sigstore trusted root (media type 0.1) that
// names this log and nothing else: enough to verify bundles of envelopes
// signed with a key given on the command line (cosign --key), which need
// no certificate or timestamp authority.
func (l Log) TrustedRoot() ([]byte, error) {
	id, err := l.LogID()
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(l.Key)
	if err != nil {
		return nil, err
	}
	tr := &prototrust.TrustedRoot{
		MediaType: TrustedRootMediaType,
		Tlogs: []*prototrust.TransparencyLogInstance{{
			BaseUrl:       l.BaseURL,
			HashAlgorithm: protocommon.HashAlgorithm_SHA2_256,
			PublicKey: &protocommon.PublicKey{RawBytes: spki, KeyDetails: protocommon.PublicKeyDetails_PKIX_ED25519,
				ValidFor: &protocommon.TimeRange{Start: timestamppb.New(l.ValidFrom)}},
			LogId: &protocommon.LogId{KeyId: id},
		}},
	}
	return stableJSON(tr, "  ")
}

// stableJSON marshals m with protojson and re-encodes it with
// encoding/json's fixed layout: protojson varies its white space from
// build to build on purpose, and served files should not change.
func stableJSON(m proto.Message, indent string) ([]byte, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if indent == "" {
		err = json.Compact(&out, b)
	} else {
		err = json.Indent(&out, b, "", indent)
	}
	return out.Bytes(), err
}

// ErrUnsupportedKey: the signer's key has no Sigstore algorithm (e.g. RSA
// beyond 4096 bits), so its envelopes have no hashedrekord entry.
var ErrUnsupportedKey = errors.New("the key has no Sigstore signing algorithm")

// PAE is DSSE's pre-authentication encoding of an envelope's payload.
func PAE(payloadType string, payload []byte) []byte {
	return fmt.Appendf(nil, "DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(payload), payload)
}

// Entry returns the log entry of a DSSE envelope with exactly one
// signature, made by pub: hashedrekord 0.0.2 over the digest of the
// envelope's PAE, in RFC 8785 canonical JSON. The digest and key details
// are the key's default algorithm in sigstore (e.g. SHA-256 and
// PKIX_ECDSA_P256_SHA_256 for P-256, PKIX_RSA_PKCS1V15_2048_SHA256 for RSA
// 2048), Ed25519 pre-hashed (SHA-512, PKIX_ED25519_PH), as sigstore-go
// rebuilds the entry.
func Entry(envelope []byte, pub crypto.PublicKey) ([]byte, error) {
	env, err := attest.ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	if len(env.Signatures) != 1 {
		return nil, fmt.Errorf("rekorv2: the envelope has %d signatures; a logged envelope has exactly one", len(env.Signatures))
	}
	pae := PAE(env.PayloadType, env.Payload)
	// The digest and key details as sigstore-go rebuilds the entry: the
	// key's default algorithm, Ed25519 in its pre-hashed form.
	ad, err := signature.GetDefaultAlgorithmDetails(pub, options.WithED25519ph())
	if err != nil {
		return nil, fmt.Errorf("rekorv2: %w: %v", ErrUnsupportedKey, err)
	}
	h := ad.GetHashType().New()
	h.Write(pae)
	digest := h.Sum(nil)
	alg, details := ad.GetProtoHashType().String(), ad.GetSignatureAlgorithm().String()
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	b64 := base64.StdEncoding.EncodeToString
	// RFC 8785: members sorted by name, no white space; every value here
	// is ASCII without characters JSON escapes (names, enum names and
	// standard base64), so it is written as is.
	return fmt.Appendf(nil, `{"apiVersion":%q,"kind":%q,"spec":{"hashedRekordV002":{"data":{"algorithm":%q,"digest":%q},"signature":{"content":%q,"verifier":{"keyDetails":%q,"publicKey":{"rawBytes":%q}}}}}}`,
		APIVersion, Kind, alg, b64(digest), b64(env.Signatures[0].Sig), details, b64(spki)), nil
}

// Proof is the inclusion of one entry in the log.
type Proof struct {
	Index      uint64   // the entry's index
	Size       uint64   // the tree size of Checkpoint
	Root       []byte   // the root hash of Checkpoint
	Hashes     [][]byte // RFC 6962 audit path, leaf to root
	Checkpoint []byte   // the signed note (origin, size, root, signature)
}

// Bundle returns a Sigstore bundle v0.3 of envelope (signed by the key
// whose id is key) with its entry in this log and the entry's inclusion
// proof and checkpoint.
func (l Log) Bundle(envelope []byte, key attest.KeyID, entry []byte, p Proof) ([]byte, error) {
	env, err := attest.ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	id, err := l.LogID()
	if err != nil {
		return nil, err
	}
	pe := &protodsse.Envelope{Payload: env.Payload, PayloadType: env.PayloadType}
	for _, s := range env.Signatures {
		pe.Signatures = append(pe.Signatures, &protodsse.Signature{Sig: s.Sig, Keyid: s.KeyID})
	}
	tle := &protorekor.TransparencyLogEntry{
		LogIndex:    int64(p.Index),
		LogId:       &protocommon.LogId{KeyId: id},
		KindVersion: &protorekor.KindVersion{Kind: Kind, Version: APIVersion},
		InclusionProof: &protorekor.InclusionProof{
			LogIndex: int64(p.Index), RootHash: p.Root, TreeSize: int64(p.Size), Hashes: p.Hashes,
			Checkpoint: &protorekor.Checkpoint{Envelope: string(p.Checkpoint)},
		},
		CanonicalizedBody: entry,
	}
	b := &protobundle.Bundle{
		MediaType: BundleMediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{
				Hint: base64.StdEncoding.EncodeToString(key[:])}},
			TlogEntries: []*protorekor.TransparencyLogEntry{tle},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: pe},
	}
	return stableJSON(b, "")
}

// KeyOfNoteVerifier returns the Ed25519 key of a signed-note verifier key
// ("<name>+<hash>+<base64 of 0x01 and the key>", as checkpoints use).
func KeyOfNoteVerifier(vkey string) (ed25519.PublicKey, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("rekorv2: %q is not a note verifier key (name+hash+key)", vkey)
	}
	b, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(b) != 1+ed25519.PublicKeySize || b[0] != 0x01 {
		return nil, fmt.Errorf("rekorv2: %q does not hold an Ed25519 key", vkey)
	}
	return ed25519.PublicKey(b[1:]), nil
}

// KeyOfNoteSigner returns the Ed25519 public key of a signed-note signer
// key ("PRIVATE+KEY+<name>+<hash>+<base64 of 0x01 and the seed>").
func KeyOfNoteSigner(skey string) (ed25519.PublicKey, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return nil, errors.New("rekorv2: not a note signer key (PRIVATE+KEY+name+hash+key)")
	}
	b, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(b) != 1+ed25519.SeedSize || b[0] != 0x01 {
		return nil, errors.New("rekorv2: the note signer key does not hold an Ed25519 seed")
	}
	return ed25519.NewKeyFromSeed(b[1:]).Public().(ed25519.PublicKey), nil
}

// ParseTrustedRoot reads a trusted root written by TrustedRoot (one
// transparency log with an Ed25519 key) back into the Log it describes,
// as a read replica learns its primary's attestation log.
func ParseTrustedRoot(b []byte) (Log, error) {
	var tr prototrust.TrustedRoot
	if err := protojson.Unmarshal(b, &tr); err != nil {
		return Log{}, fmt.Errorf("rekorv2: trusted root: %w", err)
	}
	if len(tr.Tlogs) != 1 {
		return Log{}, fmt.Errorf("rekorv2: trusted root names %d transparency logs, want 1", len(tr.Tlogs))
	}
	t := tr.Tlogs[0]
	pk := t.GetPublicKey()
	if pk == nil || pk.KeyDetails != protocommon.PublicKeyDetails_PKIX_ED25519 || pk.GetValidFor().GetStart() == nil {
		return Log{}, errors.New("rekorv2: trusted root: the log's key is not an Ed25519 key with a start of validity")
	}
	pub, err := x509.ParsePKIXPublicKey(pk.RawBytes)
	if err != nil {
		return Log{}, fmt.Errorf("rekorv2: trusted root: %w", err)
	}
	key, ok := pub.(ed25519.PublicKey)
	if !ok {
		return Log{}, errors.New("rekorv2: trusted root: the log's key is not Ed25519")
	}
	l := Log{BaseURL: t.BaseUrl, Key: key, ValidFrom: pk.ValidFor.Start.AsTime()}
	id, err := l.LogID()
	if err != nil {
		return Log{}, err
	}
	if !bytes.Equal(id, t.GetLogId().GetKeyId()) {
		return Log{}, errors.New("rekorv2: trusted root: the log id is not that of its key and base URL")
	}
	return l, nil
}

// NoteVerifierKey is the signed-note verifier key of the log's
// checkpoints: its origin and Ed25519 key.
func (l Log) NoteVerifierKey() (string, error) {
	origin, err := l.Origin()
	if err != nil {
		return "", err
	}
	return note.NewEd25519VerifierKey(origin, l.Key)
}
