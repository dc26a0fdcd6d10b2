package cas

import "github.com/buildledger/buildledger/cas/digest"

// Digest is the SHA-256 of a blob's bytes, the blob's name in the store
// (package digest holds the type, shared by every part of buildledger).
type Digest = digest.Digest

// Sum returns the digest of b.
func Sum(b []byte) Digest { return digest.Sum(b) }

// ParseDigest parses the text form of a digest: exactly 64 lowercase
// hexadecimal characters, with no algorithm prefix.
func ParseDigest(s string) (Digest, error) { return digest.ParseDigest(s) }
