// Package benchmarks holds the bodies of the project's benchmarks, each next
// to the baseline it is judged against, so that `go test -bench` (through thin
// wrappers in the packages' tests) and the summary printed by
// `go run ./cmd/ledgerbench` measure exactly the same code.
package benchmarks

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger/tree"
)

// TreeFixture is a Merkle tree with many leaves in a temporary badger store.
type TreeFixture struct {
	Dir  string
	DB   *badger.DB
	Tree *tree.Tree
	Size uint64
	Root [32]byte
}

// Close removes the fixture.
func (f *TreeFixture) Close() {
	f.DB.Close()
	os.RemoveAll(f.Dir)
}

// NewTreeFixture builds a tree of n leaves (leaf i = 8-byte BE i) in batches
// of 10,000 leaves per transaction.
func NewTreeFixture(n uint64) (*TreeFixture, error) {
	dir, err := os.MkdirTemp("", "treebench")
	if err != nil {
		return nil, err
	}
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		return nil, err
	}
	tr, err := tree.Open(db)
	if err != nil {
		return nil, err
	}
	for i := uint64(0); i < n; {
		b := tr.Begin()
		txn := db.NewTransaction(true)
		for j := 0; j < 10000 && i < n; j++ {
			if _, err := b.Add(txn, tree.LeafHash(binary.BigEndian.AppendUint64(nil, i))); err != nil {
				txn.Discard()
				return nil, err
			}
			i++
		}
		if err := txn.Commit(); err != nil {
			return nil, err
		}
		if err := tr.Install(b); err != nil {
			return nil, err
		}
	}
	size, root := tr.Head()
	return &TreeFixture{Dir: dir, DB: db, Tree: tr, Size: size, Root: root}, nil
}

// InclusionProof measures building an inclusion proof for a random leaf.
func InclusionProof(b *testing.B, f *TreeFixture) {
	rnd := rand.New(rand.NewPCG(1, 1))
	for b.Loop() {
		if _, err := f.Tree.InclusionProof(rnd.Uint64N(f.Size), f.Size); err != nil {
			b.Fatal(err)
		}
	}
}

// ConsistencyProof measures building a consistency proof from a random
// earlier size to the full tree.
func ConsistencyProof(b *testing.B, f *TreeFixture) {
	rnd := rand.New(rand.NewPCG(2, 2))
	for b.Loop() {
		if _, err := f.Tree.ConsistencyProof(1+rnd.Uint64N(f.Size-1), f.Size); err != nil {
			b.Fatal(err)
		}
	}
}

// VerifyInclusion is the client-side baseline: verifying (not building) an
// inclusion proof of the same size.
func VerifyInclusion(b *testing.B, f *TreeFixture) {
	idx := f.Size / 3
	p, err := f.Tree.InclusionProof(idx, f.Size)
	if err != nil {
		b.Fatal(err)
	}
	leaf := tree.LeafHash(binary.BigEndian.AppendUint64(nil, idx))
	for b.Loop() {
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, f.Size, leaf[:], p, f.Root[:]); err != nil {
			b.Fatal(fmt.Errorf("verify: %w", err))
		}
	}
}

// FileWriteSync is the disk's own ceiling for durable writes: data written
// to a new file in 4 MiB writes, then fsync. No store can acknowledge new
// bytes durably faster than this.
func FileWriteSync(b *testing.B, data []byte) {
	b.SetBytes(int64(len(data)))
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		f, err := os.Create(fmt.Sprintf("%s/%d", dir, i))
		if err != nil {
			b.Fatal(err)
		}
		for p := data; len(p) > 0; {
			n := min(len(p), 4<<20)
			if _, err := f.Write(p[:n]); err != nil {
				b.Fatal(err)
			}
			p = p[n:]
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		b.StopTimer()
		os.Remove(f.Name())
		b.StartTimer()
	}
}
