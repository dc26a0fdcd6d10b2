package attest

import (
	"github.com/buildledger/buildledger/cas/digest"
)

// Digest is a SHA-256 digest: of an artifact, an input file or a key.
// Its text form is 64 lowercase hexadecimal characters, the form the
// in-toto "sha256" digest field and the ledger use. It is the one digest
// type of buildledger (package digest).
type Digest = digest.Digest

// Sum returns the SHA-256 digest of b.
func Sum(b []byte) Digest { return digest.Sum(b) }

// ParseDigest parses exactly 64 lowercase hexadecimal characters.
func ParseDigest(s string) (Digest, error) { return digest.ParseDigest(s) }

// KeyID names a public key: the SHA-256 of its DER-encoded
// SubjectPublicKeyInfo, written as 64 lowercase hexadecimal characters.
// The ledger registers keys under exactly this id, of the same type.
type KeyID = digest.Digest

// KeyIDOf returns the id of a DER-encoded SubjectPublicKeyInfo.
func KeyIDOf(spkiDER []byte) KeyID { return digest.Sum(spkiDER) }

// ParseKeyID parses exactly 64 lowercase hexadecimal characters.
func ParseKeyID(s string) (KeyID, error) { return digest.ParseDigest(s) }
