package ledger

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

// GenerateLogKey returns a new Ed25519 log key pair in signed-note form
// ("PRIVATE+KEY+<name>+<hash>+<key>" and "<name>+<hash>+<key>"). The name is
// conventionally the log's origin.
func GenerateLogKey(name string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

func signCheckpoint(signer note.Signer, origin string, size uint64, hash [32]byte) (*Checkpoint, error) {
	text := log.Checkpoint{Origin: origin, Size: size, Hash: hash[:]}.Marshal()
	msg, err := note.Sign(&note.Note{Text: string(text)}, signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return &Checkpoint{Origin: origin, Size: size, Hash: hash, Note: msg}, nil
}

// ErrBadCheckpoint is wrapped by every checkpoint verification failure.
var ErrBadCheckpoint = errors.New("checkpoint rejected")

// OpenCheckpoint verifies a signed checkpoint note against the log's
// verifier key (signed-note form) and expected origin, and parses it.
func OpenCheckpoint(signed []byte, origin, vkey string) (*Checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("%w: log key %q: %v", ErrBadCheckpoint, vkey, err)
	}
	cp, _, _, err := log.ParseCheckpoint(signed, origin, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	if len(cp.Hash) != 32 {
		return nil, fmt.Errorf("%w: root hash has %d bytes", ErrBadCheckpoint, len(cp.Hash))
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Hash: [32]byte(cp.Hash), Note: signed}, nil
}
