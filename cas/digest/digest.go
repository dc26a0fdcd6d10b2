// Package digest is the one SHA-256 digest type of buildledger: the name
// of a blob in the content-addressed store (package cas), the digest of an
// artifact, input file or envelope in ledger events, an in-toto subject
// digest and a key id (the SHA-256 of a DER SubjectPublicKeyInfo) in
// package attest. It has no dependencies beyond the standard library, so
// every part — the VMM and the rebuilder too — can speak of digests
// without linking storage. Its text form is exactly 64 lowercase
// hexadecimal characters (see TestParse).
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Digest is the SHA-256 of a blob's bytes, the blob's name in the store.
type Digest [32]byte

// Sum returns the digest of b.
func Sum(b []byte) Digest { return sha256.Sum256(b) }

// digestHexLen is the length of a digest's text form.
const digestHexLen = 2 * len(Digest{})

// ParseDigest parses the text form of a digest: exactly 64 lowercase
// hexadecimal characters, with no algorithm prefix.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if err := d.parse(s); err != nil {
		return Digest{}, err
	}
	return d, nil
}

// parse decodes s into d; d is only written once s is known to be valid.
func (d *Digest) parse(s string) error {
	if len(s) != digestHexLen {
		if len(s) > 7 && (s[:7] == "sha256:" || s[:7] == "SHA256:") {
			return fmt.Errorf("digest %.80q has an algorithm prefix: give only the 64 hex characters", s)
		}
		return fmt.Errorf("digest %.80q has %d characters, want 64 lowercase hex characters", s, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			return fmt.Errorf("digest %q has uppercase hex at offset %d: write digests in lowercase", s, i)
		default:
			return fmt.Errorf("digest %q has non-hex character %q at offset %d", s, c, i)
		}
	}
	var tmp Digest
	if _, err := hex.Decode(tmp[:], []byte(s)); err != nil {
		return fmt.Errorf("digest %q: %v", s, err)
	}
	*d = tmp
	return nil
}

// String returns the digest as 64 lowercase hexadecimal characters.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText implements encoding.TextMarshaler (JSON uses it too).
func (d Digest) MarshalText() ([]byte, error) {
	b := make([]byte, digestHexLen)
	hex.Encode(b, d[:])
	return b, nil
}

// UnmarshalText implements encoding.TextUnmarshaler. It accepts only what
// ParseDigest accepts and leaves d unchanged on error.
func (d *Digest) UnmarshalText(b []byte) error { return d.parse(string(b)) }

// IsZero reports whether d is the all-zero value, which names no blob.
func (d Digest) IsZero() bool { return d == Digest{} }
