package event

import (
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/buildledger/buildledger/cas/digest"
)

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
