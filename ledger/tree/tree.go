// Package tree keeps an append-only RFC 6962 Merkle tree in badger: the
// embedded transparency log behind the ledger.
//
// All hashing and proof construction come from
// github.com/transparency-dev/merkle (compact ranges to append, package proof
// to choose proof nodes); this package only stores and loads node hashes.
//
// Storage layout (all keys under "t/"):
//
//	t/n/<level:1><index:8 BE>  32-byte hash of every perfect subtree node
//	t/l/<leaf hash:32>         8-byte BE index of the first leaf with that hash
//	t/size                     8-byte BE number of leaves
//
// Because nodes of one level are stored contiguously, a C2SP tlog-tiles hash
// tile (the hashes of level 8·L, 256 per tile) is one range scan; see Tile.
//
// New leaves are written in a caller's badger transaction (Batch.Add), so the
// tree grows atomically with whatever else the caller commits, and become
// visible to readers only after Install. TestProofsExhaustive proves every
// inclusion and consistency proof up to size 300 against the transparency-dev
// verifier and golang.org/x/mod/sumdb/tlog, and that any corrupted proof
// element fails; TestTilesMatchSumdb checks tiles against x/mod's tile reader.
package tree

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// HashSize is the size of every node hash (SHA-256).
const HashSize = 32

// TileHeight is the C2SP tlog-tiles tile height: a tile holds 2^8 hashes.
const TileHeight = 8

// TileWidth is the number of hashes in a full tile.
const TileWidth = 1 << TileHeight

var (
	hasher  = rfc6962.DefaultHasher
	factory = &compact.RangeFactory{Hash: hasher.HashChildren}
)

// DefaultPrefix starts the keys of the ledger's own tree.
const DefaultPrefix = "t/"

// layout names a tree's keys: prefix+"size", prefix+"n/…", prefix+"l/…".
type layout struct {
	keySize, nodePrefix, leafPrefix []byte
}

func newLayout(prefix string) layout {
	return layout{keySize: []byte(prefix + "size"), nodePrefix: []byte(prefix + "n/"), leafPrefix: []byte(prefix + "l/")}
}

// ErrNotFound is returned for a leaf hash that is not in the tree.
var ErrNotFound = fmt.Errorf("tree: %w", fs.ErrNotExist)

// ErrRange is wrapped by errors about indices or sizes beyond the tree.
var ErrRange = errors.New("tree: out of range")

// LeafHash returns the RFC 6962 leaf hash of data: SHA-256(0x00 || data).
func LeafHash(data []byte) [HashSize]byte {
	var h [HashSize]byte
	copy(h[:], hasher.HashLeaf(data))
	return h
}

// EmptyRoot is the RFC 6962 root of the empty tree: SHA-256 of nothing.
func EmptyRoot() [HashSize]byte {
	var h [HashSize]byte
	copy(h[:], hasher.EmptyRoot())
	return h
}

// Tree is the Merkle tree of one ledger. Its methods are safe for concurrent
// use; Batch is not (one appender at a time, as the ledger's committer is).
type Tree struct {
	db *badger.DB
	layout

	mu   sync.RWMutex
	rng  *compact.Range // frontier of the installed tree
	root [HashSize]byte

	// cache holds node hashes of levels ≥ cacheLevel as proofs read them.
	// Those nodes are few (one per 2^cacheLevel leaves) and shared by many
	// proofs; nodes never change once written, so entries never go stale.
	cacheMu sync.RWMutex
	cache   map[compact.NodeID][]byte
}

const (
	cacheLevel = 8
	cacheMax   = 1 << 20 // entries; 1M nodes of level ≥ 8 cover 2^28 leaves
)

// Open loads the tree stored in db (an empty tree if none is stored yet).
func Open(db *badger.DB) (*Tree, error) { return OpenPrefix(db, DefaultPrefix) }

// OpenPrefix loads the tree whose keys start with prefix, so that one
// database can hold several trees (the ledger's and derived logs').
func OpenPrefix(db *badger.DB, prefix string) (*Tree, error) {
	t := &Tree{db: db, layout: newLayout(prefix), cache: make(map[compact.NodeID][]byte)}
	err := db.View(func(txn *badger.Txn) error {
		size, err := t.readSize(txn)
		if err != nil {
			return err
		}
		ids := compact.RangeNodes(0, size, nil)
		hashes := make([][]byte, len(ids))
		for i, id := range ids {
			h, err := t.getNode(txn, id)
			if err != nil {
				return fmt.Errorf("tree of size %d: %w", size, err)
			}
			hashes[i] = h
		}
		rng, err := factory.NewRange(0, size, hashes)
		if err != nil {
			return fmt.Errorf("tree of size %d: %w", size, err)
		}
		t.rng = rng
		return nil
	})
	if err != nil {
		return nil, err
	}
	t.root, err = rootOf(t.rng)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Size returns the number of installed leaves.
func (t *Tree) Size() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.rng.End()
}

// Head returns the installed size and root hash together.
func (t *Tree) Head() (uint64, [HashSize]byte) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.rng.End(), t.root
}

// Batch stages new leaves on top of the installed tree. Its writes go into
// the caller's transaction; after that transaction commits, Install makes
// them visible. A Batch whose transaction is discarded is simply dropped.
type Batch struct {
	t     *Tree
	start uint64
	rng   *compact.Range
	err   error
}

// Begin starts a batch at the installed size.
func (t *Tree) Begin() *Batch {
	t.mu.RLock()
	defer t.mu.RUnlock()
	rng, err := factory.NewRange(0, t.rng.End(), append([][]byte(nil), t.rng.Hashes()...))
	return &Batch{t: t, start: t.rng.End(), rng: rng, err: err}
}

// Frontier is a copy of the installed tree's right edge that grows by leaf
// hashes alone, storing nothing: what checking a run of entries against a
// signed root needs before any of them is stored.
type Frontier struct{ rng *compact.Range }

// Frontier copies the installed tree's edge.
func (t *Tree) Frontier() (*Frontier, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	rng, err := factory.NewRange(0, t.rng.End(), append([][]byte(nil), t.rng.Hashes()...))
	return &Frontier{rng}, err
}

// Add appends a leaf hash.
func (f *Frontier) Add(leafHash [HashSize]byte) error { return f.rng.Append(leafHash[:], nil) }

// Size is the number of leaves so far.
func (f *Frontier) Size() uint64 { return f.rng.End() }

// Root is the root hash of the tree so far.
func (f *Frontier) Root() ([HashSize]byte, error) { return rootOf(f.rng) }

// Size is the tree size the batch would install.
func (b *Batch) Size() uint64 { return b.rng.End() }

// Add appends a leaf hash, writing every completed node (and the leaf-hash
// index, unless an earlier leaf has the same hash) into txn. It returns the
// leaf's index. An error (e.g. badger.ErrTxnTooBig) leaves the batch unusable:
// its transaction must be discarded.
func (b *Batch) Add(txn *badger.Txn, leafHash [HashSize]byte) (uint64, error) {
	if b.err != nil {
		return 0, b.err
	}
	index := b.rng.End()
	var werr error
	visit := func(id compact.NodeID, h []byte) {
		if werr == nil {
			werr = txn.Set(b.t.nodeKey(id), h)
		}
	}
	if err := b.rng.Append(leafHash[:], visit); err != nil {
		b.err = err
		return 0, err
	}
	if werr == nil {
		lk := b.t.leafKey(leafHash)
		_, err := txn.Get(lk)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			werr = txn.Set(lk, be64(index))
		case err != nil:
			werr = err
		}
	}
	if werr == nil {
		werr = txn.Set(b.t.keySize, be64(index+1))
	}
	if werr != nil {
		b.err = werr
		return 0, werr
	}
	return index, nil
}

// Root returns the root hash the batch would install.
func (b *Batch) Root() ([HashSize]byte, error) {
	if b.err != nil {
		return [HashSize]byte{}, b.err
	}
	return rootOf(b.rng)
}

// Install makes a committed batch visible to readers. The batch must have
// been begun at the current installed size.
func (t *Tree) Install(b *Batch) error {
	if b.err != nil {
		return b.err
	}
	root, err := rootOf(b.rng)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if b.start != t.rng.End() {
		return fmt.Errorf("tree: batch begun at size %d installed at size %d", b.start, t.rng.End())
	}
	t.rng, t.root = b.rng, root
	b.err = errors.New("tree: batch already installed")
	return nil
}

// RootAt returns the root hash of the tree when it had size leaves.
func (t *Tree) RootAt(size uint64) ([HashSize]byte, error) {
	if cur := t.Size(); size > cur {
		return [HashSize]byte{}, fmt.Errorf("%w: size %d beyond tree size %d", ErrRange, size, cur)
	}
	var root [HashSize]byte
	err := t.db.View(func(txn *badger.Txn) error {
		ids := compact.RangeNodes(0, size, nil)
		hashes, err := t.getNodes(txn, ids)
		if err != nil {
			return err
		}
		rng, err := factory.NewRange(0, size, hashes)
		if err != nil {
			return err
		}
		root, err = rootOf(rng)
		return err
	})
	return root, err
}

// InclusionProof returns the RFC 6962 audit path for leaf index in the tree
// of the given size.
func (t *Tree) InclusionProof(index, size uint64) ([][]byte, error) {
	if cur := t.Size(); size > cur {
		return nil, fmt.Errorf("%w: size %d beyond tree size %d", ErrRange, size, cur)
	}
	if index >= size {
		return nil, fmt.Errorf("%w: leaf index %d not below tree size %d", ErrRange, index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return t.fetch(nodes)
}

// InclusionProofByHash finds the first leaf with the given hash and returns
// its index and audit path in the tree of the given size.
func (t *Tree) InclusionProofByHash(leafHash [HashSize]byte, size uint64) (uint64, [][]byte, error) {
	index, err := t.LeafIndex(leafHash)
	if err != nil {
		return 0, nil, err
	}
	if index >= size {
		return 0, nil, fmt.Errorf("%w: leaf %x has index %d, not in tree of size %d", ErrRange, leafHash, index, size)
	}
	p, err := t.InclusionProof(index, size)
	return index, p, err
}

// LeafIndex returns the index of the first installed leaf with this hash.
func (t *Tree) LeafIndex(leafHash [HashSize]byte) (uint64, error) {
	size := t.Size()
	var index uint64
	err := t.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(t.leafKey(leafHash))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("leaf hash %x: %w", leafHash, ErrNotFound)
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("tree: corrupt leaf index for %x", leafHash)
			}
			index = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	if err == nil && index >= size {
		// Written by a batch that is committed but not yet installed.
		return 0, fmt.Errorf("leaf hash %x: %w", leafHash, ErrNotFound)
	}
	return index, err
}

// ConsistencyProof returns the RFC 6962 proof that the tree of size1 is a
// prefix of the tree of size2.
func (t *Tree) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	if cur := t.Size(); size2 > cur {
		return nil, fmt.Errorf("%w: size %d beyond tree size %d", ErrRange, size2, cur)
	}
	if size1 > size2 {
		return nil, fmt.Errorf("%w: consistency from size %d to smaller size %d", ErrRange, size1, size2)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	return t.fetch(nodes)
}

func (t *Tree) fetch(nodes proof.Nodes) ([][]byte, error) {
	hashes := make([][]byte, len(nodes.IDs))
	var missing []int
	t.cacheMu.RLock()
	for i, id := range nodes.IDs {
		if h, ok := t.cache[id]; ok {
			hashes[i] = h
		} else {
			missing = append(missing, i)
		}
	}
	t.cacheMu.RUnlock()
	if len(missing) > 0 {
		err := t.db.View(func(txn *badger.Txn) error {
			for _, i := range missing {
				h, err := t.getNode(txn, nodes.IDs[i])
				if err != nil {
					return err
				}
				hashes[i] = h
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		t.cacheMu.Lock()
		for _, i := range missing {
			if id := nodes.IDs[i]; id.Level >= cacheLevel && len(t.cache) < cacheMax {
				t.cache[id] = hashes[i]
			}
		}
		t.cacheMu.Unlock()
	}
	// Rehash may combine hashes in place: hand it copies, never the cache's.
	buf := make([]byte, len(hashes)*HashSize)
	out := make([][]byte, len(hashes))
	for i, h := range hashes {
		out[i] = buf[i*HashSize : (i+1)*HashSize : (i+1)*HashSize]
		copy(out[i], h)
	}
	return nodes.Rehash(out, hasher.HashChildren)
}

// Tile returns the C2SP tlog-tiles hash tile at level L and index N: the
// hashes of the nodes at tree level 8·L with indices N·256 … N·256+width-1,
// concatenated. width must be 1…256 and all those nodes must exist in the
// installed tree.
func (t *Tree) Tile(level uint8, index uint64, width int) ([]byte, error) {
	if width < 1 || width > TileWidth {
		return nil, fmt.Errorf("%w: tile width %d not in 1..%d", ErrRange, width, TileWidth)
	}
	nodeLevel := uint(level) * TileHeight
	if nodeLevel >= 64 {
		return nil, fmt.Errorf("%w: tile level %d", ErrRange, level)
	}
	first := index * TileWidth
	if first/TileWidth != index {
		return nil, fmt.Errorf("%w: tile index %d", ErrRange, index)
	}
	// Nodes that exist at this level: size >> nodeLevel.
	if avail := t.Size() >> nodeLevel; first+uint64(width) > avail || first+uint64(width) < first {
		return nil, fmt.Errorf("%w: tile %d/%d of width %d needs %d nodes at level %d, tree has %d",
			ErrRange, level, index, width, first+uint64(width), nodeLevel, avail)
	}
	out := make([]byte, 0, width*HashSize)
	err := t.db.View(func(txn *badger.Txn) error {
		prefix := append(append([]byte(nil), t.nodePrefix...), byte(nodeLevel))
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: width, Prefix: prefix})
		defer it.Close()
		want := first
		for it.Seek(t.nodeKey(compact.NewNodeID(nodeLevel, first))); it.Valid() && want < first+uint64(width); it.Next() {
			k := it.Item().Key()
			if got := binary.BigEndian.Uint64(k[len(prefix):]); got != want {
				return fmt.Errorf("tree: node %d/%d missing (found %d)", nodeLevel, want, got)
			}
			err := it.Item().Value(func(v []byte) error {
				if len(v) != HashSize {
					return fmt.Errorf("tree: node %d/%d has %d bytes, want %d", nodeLevel, want, len(v), HashSize)
				}
				out = append(out, v...)
				return nil
			})
			if err != nil {
				return err
			}
			want++
		}
		if want != first+uint64(width) {
			return fmt.Errorf("tree: node %d/%d missing from store", nodeLevel, want)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func rootOf(rng *compact.Range) ([HashSize]byte, error) {
	if rng.End() == 0 {
		return EmptyRoot(), nil
	}
	h, err := rng.GetRootHash(nil)
	if err != nil {
		return [HashSize]byte{}, err
	}
	var r [HashSize]byte
	copy(r[:], h)
	return r, nil
}

func (k layout) readSize(txn *badger.Txn) (uint64, error) {
	item, err := txn.Get(k.keySize)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var size uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return errors.New("tree: corrupt size record")
		}
		size = binary.BigEndian.Uint64(v)
		return nil
	})
	return size, err
}

func (k layout) getNode(txn *badger.Txn, id compact.NodeID) ([]byte, error) {
	item, err := txn.Get(k.nodeKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("tree: node %d/%d missing from store", id.Level, id.Index)
	}
	if err != nil {
		return nil, err
	}
	h, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	if len(h) != HashSize {
		return nil, fmt.Errorf("tree: node %d/%d has %d bytes, want %d", id.Level, id.Index, len(h), HashSize)
	}
	return h, nil
}

func (k layout) getNodes(txn *badger.Txn, ids []compact.NodeID) ([][]byte, error) {
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := k.getNode(txn, id)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return hashes, nil
}

func (k layout) nodeKey(id compact.NodeID) []byte {
	b := make([]byte, 0, len(k.nodePrefix)+9)
	b = append(b, k.nodePrefix...)
	b = append(b, byte(id.Level))
	return binary.BigEndian.AppendUint64(b, id.Index)
}

func (k layout) leafKey(h [HashSize]byte) []byte {
	return append(append(make([]byte, 0, len(k.leafPrefix)+HashSize), k.leafPrefix...), h[:]...)
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
