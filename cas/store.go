package cas

import (
	"errors"
	"fmt"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc" // registers "fastcdc"
	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"
)

// Store is a content-addressed blob store inside a badger database shared
// with other packages. All its keys start with Prefix. A Store is safe for
// concurrent use; it holds no state besides the database, so several Stores
// (even with different Options) may use one database.
type Store struct {
	db   *badger.DB
	o    Options
	enc  *zstd.Encoder
	dec  *zstd.Decoder
	algo string
	cut  chunking
	// fanout is the number of references per manifest page Put writes;
	// always pageFanout outside tests.
	fanout int
	// rebuilt keeps blobs rebuilt from patches (delta.go).
	rebuilt *rebuiltCache
}

// New returns a Store on db, which must have been opened with
// internal/kv.Open (or with SyncWrites for the durability Put promises).
func New(db *badger.DB, o Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("cas: New needs an open database")
	}
	o, cut, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	enc, dec, err := codecs()
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, o: o, enc: enc, dec: dec, cut: cut, fanout: pageFanout, rebuilt: newRebuiltCache(rebuiltBytes)}
	// "fastcdc" uses fixed masks tuned for an 8 KiB average and ignores
	// NormalChunk except as the point where it switches masks;
	// "fastcdc-v1.0.0" derives its masks from NormalChunk and is identical
	// to "fastcdc" at the default sizes.
	s.algo = "fastcdc-v1.0.0"
	for _, c := range []chunkSizes{cut.small, cut.large} {
		if _, err := chunkers.NewChunker(s.algo, nil, c.opts()); err != nil {
			return nil, fmt.Errorf("cas: chunker with sizes %d/%d/%d: %w", c.min, c.normal, c.max, err)
		}
	}
	return s, nil
}

// Options returns the options in effect, defaults filled in.
func (s *Store) Options() Options { return s.o }

// Has reports whether the store holds a record for d. It does not verify the
// blob's chunks; Open and Bytes do.
func (s *Store) Has(d Digest) (bool, error) {
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(blobKey(d))
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("cas: look up blob %s: %w", d, err)
	}
}
