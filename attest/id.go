package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Digest is a SHA-256 digest: of an artifact, an input file or a key.
// Its text form is 64 lowercase hexadecimal characters, the form the
// in-toto "sha256" digest field and the ledger use.
type Digest [32]byte

// Sum returns the SHA-256 digest of b.
func Sum(b []byte) Digest { return sha256.Sum256(b) }

// ParseDigest parses exactly 64 lowercase hexadecimal characters.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if err := parseHex32(d[:], s, "digest"); err != nil {
		return Digest{}, err
	}
	return d, nil
}

// String returns the digest as 64 lowercase hexadecimal characters.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; d is unchanged on error.
func (d *Digest) UnmarshalText(b []byte) error {
	var tmp Digest
	if err := parseHex32(tmp[:], string(b), "digest"); err != nil {
		return err
	}
	*d = tmp
	return nil
}

// IsZero reports whether d is all zeros.
func (d Digest) IsZero() bool { return d == Digest{} }

// KeyID names a public key: the SHA-256 of its DER-encoded
// SubjectPublicKeyInfo, written as 64 lowercase hexadecimal characters.
// The ledger registers keys under exactly this id.
type KeyID [32]byte

// KeyIDOf returns the id of a DER-encoded SubjectPublicKeyInfo.
func KeyIDOf(spkiDER []byte) KeyID { return sha256.Sum256(spkiDER) }

// ParseKeyID parses exactly 64 lowercase hexadecimal characters.
func ParseKeyID(s string) (KeyID, error) {
	var k KeyID
	if err := parseHex32(k[:], s, "key id"); err != nil {
		return KeyID{}, err
	}
	return k, nil
}

// String returns the key id as 64 lowercase hexadecimal characters.
func (k KeyID) String() string { return hex.EncodeToString(k[:]) }

// MarshalText implements encoding.TextMarshaler.
func (k KeyID) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; k is unchanged on error.
func (k *KeyID) UnmarshalText(b []byte) error {
	var tmp KeyID
	if err := parseHex32(tmp[:], string(b), "key id"); err != nil {
		return err
	}
	*k = tmp
	return nil
}

// IsZero reports whether k is all zeros.
func (k KeyID) IsZero() bool { return k == KeyID{} }

func parseHex32(dst []byte, s, what string) error {
	if len(s) != 64 {
		return fmt.Errorf("attest: %s %.80q has %d characters, want 64 lowercase hex characters", what, s, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("attest: %s %q has character %q at offset %d, want lowercase hex", what, s, c, i)
		}
	}
	_, err := hex.Decode(dst, []byte(s))
	return err
}
