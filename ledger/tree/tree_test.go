package tree

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/buildledger/buildledger/internal/kv"
)

func openDB(tb testing.TB) *badger.DB {
	tb.Helper()
	db, err := kv.Open(tb.TempDir(), kv.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func leafData(i int) []byte { return fmt.Appendf(nil, "leaf %d", i) }

// appendLeaves adds leaves [from, to) in batches of random size, one badger
// transaction per batch.
func appendLeaves(tb testing.TB, db *badger.DB, tr *Tree, from, to int, rnd *rand.Rand) {
	tb.Helper()
	for i := from; i < to; {
		n := 1 + rnd.IntN(17)
		if i+n > to {
			n = to - i
		}
		b := tr.Begin()
		err := db.Update(func(txn *badger.Txn) error {
			for j := i; j < i+n; j++ {
				idx, err := b.Add(txn, LeafHash(leafData(j)))
				if err != nil {
					return err
				}
				if idx != uint64(j) {
					return fmt.Errorf("leaf %d got index %d", j, idx)
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		if err := tr.Install(b); err != nil {
			tb.Fatal(err)
		}
		i += n
	}
}

// sumdbHashes is an independent in-memory tree built with x/mod's tlog.
type sumdbHashes []tlog.Hash

func (s sumdbHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x >= int64(len(s)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = s[x]
	}
	return out, nil
}

func buildSumdb(t *testing.T, n int) sumdbHashes {
	var s sumdbHashes
	for i := 0; i < n; i++ {
		hs, err := tlog.StoredHashes(int64(i), leafData(i), s)
		if err != nil {
			t.Fatal(err)
		}
		s = append(s, hs...)
	}
	return s
}

func toTlog(p [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(p))
	for i, h := range p {
		copy(out[i][:], h)
	}
	return out
}

func TestProofsExhaustive(t *testing.T) {
	const max = 300
	db := openDB(t)
	tr, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	appendLeaves(t, db, tr, 0, max, rand.New(rand.NewPCG(1, 2)))
	ref := buildSumdb(t, max)

	roots := make([][HashSize]byte, max+1)
	for n := 0; n <= max; n++ {
		r, err := tr.RootAt(uint64(n))
		if err != nil {
			t.Fatal(err)
		}
		want, err := tlog.TreeHash(int64(n), ref)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 && r != [HashSize]byte(want) {
			t.Fatalf("root at size %d = %x, sumdb says %x", n, r, want)
		}
		roots[n] = r
	}
	if roots[0] != [HashSize]byte(rfc6962.DefaultHasher.EmptyRoot()) {
		t.Fatalf("empty root %x", roots[0])
	}
	h := rfc6962.DefaultHasher
	for n := 1; n <= max; n++ {
		tt := tlog.Tree{N: int64(n), Hash: tlog.Hash(roots[n])}
		for i := 0; i < n; i++ {
			leaf := LeafHash(leafData(i))
			p, err := tr.InclusionProof(uint64(i), uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(h, uint64(i), uint64(n), leaf[:], p, roots[n][:]); err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, n, err)
			}
			if err := tlog.CheckRecord(toTlog(p), int64(n), tt.Hash, int64(i), tlog.Hash(leaf)); err != nil {
				t.Fatalf("sumdb rejects inclusion %d in %d: %v", i, n, err)
			}
			for k := range p {
				for _, bad := range corruptions(p, k) {
					if proof.VerifyInclusion(h, uint64(i), uint64(n), leaf[:], bad, roots[n][:]) == nil {
						t.Fatalf("corrupted inclusion proof %d in %d (element %d) verified", i, n, k)
					}
				}
			}
			if len(p) > 0 && proof.VerifyInclusion(h, uint64(i), uint64(n), leaf[:], append(clone(p), p[0]), roots[n][:]) == nil {
				t.Fatalf("over-long inclusion proof %d in %d verified", i, n)
			}
		}
		for m := 1; m <= n; m++ {
			p, err := tr.ConsistencyProof(uint64(m), uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(h, uint64(m), uint64(n), p, roots[m][:], roots[n][:]); err != nil {
				t.Fatalf("consistency %d→%d: %v", m, n, err)
			}
			if err := tlog.CheckTree(toTlog(p), int64(n), tt.Hash, int64(m), tlog.Hash(roots[m])); err != nil {
				t.Fatalf("sumdb rejects consistency %d→%d: %v", m, n, err)
			}
			for k := range p {
				for _, bad := range corruptions(p, k) {
					if proof.VerifyConsistency(h, uint64(m), uint64(n), bad, roots[m][:], roots[n][:]) == nil {
						t.Fatalf("corrupted consistency proof %d→%d (element %d) verified", m, n, k)
					}
				}
			}
			if m < n {
				wrong := roots[m]
				wrong[0] ^= 1
				if proof.VerifyConsistency(h, uint64(m), uint64(n), p, wrong[:], roots[n][:]) == nil {
					t.Fatalf("consistency %d→%d verified against a wrong old root", m, n)
				}
			}
		}
	}
}

// corruptions returns copies of p with element k flipped, dropped, or
// duplicated.
func corruptions(p [][]byte, k int) [][][]byte {
	flip := clone(p)
	flip[k][k%HashSize] ^= 0x80
	drop := append(clone(p)[:k], clone(p)[k+1:]...)
	return [][][]byte{flip, drop}
}

func clone(p [][]byte) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = bytes.Clone(p[i])
	}
	return out
}

// tileReader serves our tiles to x/mod's verifying tile reader.
type tileReader struct{ tr *Tree }

func (r tileReader) Height() int                     { return TileHeight }
func (r tileReader) SaveTiles([]tlog.Tile, [][]byte) {}
func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		if t.L < 0 {
			return nil, fmt.Errorf("entry tiles are not served by the tree")
		}
		d, err := r.tr.Tile(uint8(t.L), uint64(t.N), t.W)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

func TestTilesMatchSumdb(t *testing.T) {
	db := openDB(t)
	tr, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	const max = 70000 // three tile levels, partial tiles on every level
	ref := buildSumdb(t, max)
	done := 0
	for _, n := range []int{1, 255, 256, 257, 511, 65535, 65536, 65537, max} {
		appendLeaves(t, db, tr, done, n, rnd)
		done = n
		size, root := tr.Head()
		thr := tlog.TileHashReader(tlog.Tree{N: int64(size), Hash: tlog.Hash(root)}, tileReader{tr})
		// Every stored hash of a few records, read through verified tiles.
		for _, i := range []int64{0, int64(n) / 2, int64(n) - 1} {
			var idx []int64
			for l := 0; l < 17; l++ {
				if i>>l<<l == i && (i>>l+1)<<l <= int64(n) {
					idx = append(idx, tlog.StoredHashIndex(l, i>>l))
				}
			}
			got, err := thr.ReadHashes(idx)
			if err != nil {
				t.Fatalf("size %d record %d: %v", n, i, err)
			}
			want, _ := ref.ReadHashes(idx)
			for k := range got {
				if got[k] != want[k] {
					t.Fatalf("size %d: stored hash %d differs", n, idx[k])
				}
			}
			// And x/mod can prove inclusion using only our tiles.
			p, err := tlog.ProveRecord(int64(size), i, thr)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, int64(size), tlog.Hash(root), i, tlog.RecordHash(leafData(int(i)))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := tr.Tile(0, 0, 0); !errors.Is(err, ErrRange) {
		t.Errorf("width 0: %v", err)
	}
	if _, err := tr.Tile(0, max/256+1, 1); !errors.Is(err, ErrRange) {
		t.Errorf("tile beyond tree: %v", err)
	}
	if _, err := tr.Tile(2, 1, 1); !errors.Is(err, ErrRange) {
		t.Errorf("level-2 tile beyond tree: %v", err)
	}
}

func TestReopenAndLookups(t *testing.T) {
	dir := t.TempDir()
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := Open(db)
	appendLeaves(t, db, tr, 0, 1000, rand.New(rand.NewPCG(5, 6)))
	size, root := tr.Head()
	db.Close()

	db, err = kv.Open(dir, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tr2, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if s2, r2 := tr2.Head(); s2 != size || r2 != root {
		t.Fatalf("reopened head %d %x, want %d %x", s2, r2, size, root)
	}
	idx, p, err := tr2.InclusionProofByHash(LeafHash(leafData(777)), size)
	if err != nil || idx != 777 {
		t.Fatalf("by hash: %d %v", idx, err)
	}
	leaf := LeafHash(leafData(777))
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, size, leaf[:], p, root[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := tr2.LeafIndex(LeafHash([]byte("absent"))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("absent leaf: %v", err)
	}
	if _, err := tr2.InclusionProof(1000, 1000); !errors.Is(err, ErrRange) {
		t.Fatalf("index = size: %v", err)
	}
	if _, err := tr2.ConsistencyProof(10, 2000); !errors.Is(err, ErrRange) {
		t.Fatalf("beyond size: %v", err)
	}
	// A batch whose transaction is discarded leaves nothing behind.
	b := tr2.Begin()
	txn := db.NewTransaction(true)
	if _, err := b.Add(txn, LeafHash([]byte("discarded"))); err != nil {
		t.Fatal(err)
	}
	txn.Discard()
	tr3, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if s3, _ := tr3.Head(); s3 != size {
		t.Fatalf("discarded batch changed size to %d", s3)
	}
}

// Two trees under different prefixes in one database do not see each
// other's leaves or nodes.
func TestPrefixedTreesAreSeparate(t *testing.T) {
	db := openDB(t)
	main, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	other, err := OpenPrefix(db, "a/")
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	appendLeaves(t, db, other, 0, 20, rnd)
	appendLeaves(t, db, main, 0, 3, rnd)
	reopened, err := OpenPrefix(db, "a/")
	if err != nil {
		t.Fatal(err)
	}
	if main.Size() != 3 || other.Size() != 20 || reopened.Size() != 20 {
		t.Fatalf("sizes %d %d %d", main.Size(), other.Size(), reopened.Size())
	}
	if _, r1 := other.Head(); r1 == func() [HashSize]byte { _, r := main.Head(); return r }() {
		t.Fatal("the roots are equal")
	}
	if _, err := main.LeafIndex(LeafHash(leafData(10))); err == nil {
		t.Fatal("the ledger's tree finds a leaf of the other tree")
	}
	if i, err := reopened.LeafIndex(LeafHash(leafData(10))); err != nil || i != 10 {
		t.Fatalf("leaf 10: %d %v", i, err)
	}
}
