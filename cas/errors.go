package cas

import (
	"errors"
	"fmt"
	"io/fs"
)

// ErrNotFound is returned (wrapped, naming the digest) when the store holds no
// blob under a digest. errors.Is(err, fs.ErrNotExist) is true for it.
var ErrNotFound = fmt.Errorf("not in the content store: %w", fs.ErrNotExist)

// ErrTooLarge is returned (wrapped, with the sizes involved) when a blob is
// larger than a limit: Options.MaxBlobSize for Put, Options.InlineMax for
// PutTxn and GetTxn, the caller's max for Bytes.
var ErrTooLarge = errors.New("blob too large")

func notFound(d Digest) error {
	return fmt.Errorf("cas: blob %s: %w", d, ErrNotFound)
}

// IntegrityError reports stored data that does not match its digest: a chunk
// or page whose bytes hash differently, cannot be decompressed, has the wrong
// size or is missing, a malformed blob record, or a blob whose reassembled
// bytes do not hash to its digest. The store never returns bytes that failed
// verification; a read that hits an IntegrityError returns no further data.
type IntegrityError struct {
	Digest Digest // the blob being read
	Chunk  Digest // the chunk or manifest page at fault; zero if the blob record itself is
	Reason string
}

func (e *IntegrityError) Error() string {
	const fix = "restore the database from a backup (missing chunks and pages, unlike damaged ones, are rewritten by putting the original content again)"
	if e.Chunk.IsZero() {
		return fmt.Sprintf("cas: blob %s is damaged: %s; %s", e.Digest, e.Reason, fix)
	}
	return fmt.Sprintf("cas: blob %s is damaged: chunk %s: %s; %s", e.Digest, e.Chunk, e.Reason, fix)
}
