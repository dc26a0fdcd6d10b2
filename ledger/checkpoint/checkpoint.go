// Package checkpoint holds the log's signed commitments: C2SP
// tlog-checkpoint bodies (origin, size, root hash) in C2SP signed notes
// with an Ed25519 log key (golang.org/x/mod/sumdb/note), parsed with
// transparency-dev/formats. It has no storage dependencies: the VMM gate,
// the rebuilder and clients verify checkpoints without linking the store.
package checkpoint

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed commitment to the log at one size: a C2SP
// tlog-checkpoint (origin line, decimal size, base64 root hash) in a signed
// note (C2SP signed-note, Ed25519).
type Checkpoint struct {
	Origin string
	Size   uint64
	Hash   [32]byte
	// Note is the signed note as served: the exact bytes a client stores.
	Note []byte
}

// GenerateKey returns a new Ed25519 log key pair in signed-note form
// ("PRIVATE+KEY+<name>+<hash>+<key>" and "<name>+<hash>+<key>"). The name is
// conventionally the log's origin.
func GenerateKey(name string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// Sign signs the checkpoint of a log of size entries with root hash.
func Sign(signer note.Signer, origin string, size uint64, hash [32]byte) (*Checkpoint, error) {
	text := log.Checkpoint{Origin: origin, Size: size, Hash: hash[:]}.Marshal()
	msg, err := note.Sign(&note.Note{Text: string(text)}, signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return &Checkpoint{Origin: origin, Size: size, Hash: hash, Note: msg}, nil
}

// ErrBad is wrapped by every checkpoint verification failure.
var ErrBad = errors.New("checkpoint rejected")

// Open verifies a signed checkpoint note against the log's
// verifier key (signed-note form) and expected origin, and parses it.
func Open(signed []byte, origin, vkey string) (*Checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("%w: log key %q: %v", ErrBad, vkey, err)
	}
	cp, _, _, err := log.ParseCheckpoint(signed, origin, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBad, err)
	}
	if len(cp.Hash) != 32 {
		return nil, fmt.Errorf("%w: root hash has %d bytes", ErrBad, len(cp.Hash))
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Hash: [32]byte(cp.Hash), Note: signed}, nil
}
