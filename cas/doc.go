// Package cas is the ledger's content-addressed store: blobs (events,
// build logs, package lists, artifacts) named by the SHA-256 of their bytes,
// kept in the badger database that internal/kv opens and that the Merkle tree
// and indices share. A Store holds no state of its own besides that database.
//
// # Keys
//
// Every key starts with Prefix ("c/"); see keys.go:
//
//	c/b/<digest>  blob record: the content itself (inline), or size and manifest
//	c/k/<digest>  chunk: one header byte (0 raw, 1 zstd), then the bytes
//	c/p/<digest>  manifest page: up to 1024 references, stored raw
//
// # Writing
//
// A blob of at most Options.InlineMax bytes (64 KiB) is one record. PutTxn
// writes such a record inside the caller's transaction, so an event commits
// atomically with the log entry naming it, and writes exactly one key
// without looking for an existing copy (BenchmarkPutTxn: the lookup costs more
// than the rare rewrite).
//
// Larger blobs are cut by FastCDC (github.com/PlakarKorp/go-cdc-chunkers) into
// content-defined chunks, each stored once under its SHA-256. The chunk sizes
// come from TestDedupChunkSizes, which stores 30 days of a ~300 KB
// system-packages list and a ~600 KB opam switch export with a few packages
// changed per day: blobs under 4 MiB use 2/4/32 KiB (min/normal/max) chunks,
// where a day costs ~32 KB against ~46 KB with 8 KiB chunks and ~248 KB when
// each file is stored zstd-compressed on its own; larger blobs use 4/16/64
// KiB chunks, which halve the per-chunk work (BenchmarkPutChunkSizes). A
// blob's record lists its chunks through a tree of manifest pages of at most
// 1024 references (record.go), so reading or writing any blob holds one page
// per tree level (TestTree checks every shape up to six levels).
//
// Put streams through a pipeline (put.go) with bounded memory: the caller's
// goroutine reads and cuts chunks, one goroutine hashes the whole blob, workers
// hash each chunk, look it up and zstd-compress it (SpeedFastest, shared
// encoder; kept only when it saves at least 3%), and a writer builds the
// manifest and commits 8 MiB transactions, handling badger.ErrTxnTooBig, with
// the blob record in the last one: a crash or error mid-Put leaves at most
// unreferenced chunks, never a record with missing chunks. Chunks already
// stored are not written again, and storing an existing blob writes nothing
// (TestPutTwice); near-identical blobs share most chunks (TestNearIdentical).
// Put and Open of 1 GiB stay within 64 MiB of heap (TestLargeBlobMemory).
//
// PutWithBase stores a blob as a zstd patch against a base blob (zstd with
// the base as raw dictionary, as `zstd --patch-from`) when that writes less
// than storing it whole would; successive builds of one artifact then cost
// about their differences (delta.go). Reading such a blob rebuilds it in
// memory from the whole blob at the root of its chain, verifying every
// step's SHA-256; chains are at most MaxDeltaDepth patches and restart with
// a whole copy when their patches outweigh 1.5 whole copies.
//
// # Reading
//
// Open returns a Reader that fetches, decompresses and verifies chunks ahead
// of the caller in parallel, with bounded read-ahead. Every chunk and page is
// checked against its digest before any of its bytes are handed out, zstd
// output is capped at the size the manifest records (a stored zstd bomb is an
// error, not an allocation), and the whole blob's SHA-256 is checked before
// its last bytes are handed out: a reader never receives a complete blob
// that does not match its digest, even one that stops at Size() bytes
// (http.ServeContent) instead of reading to io.EOF. Chunk order comes from
// the blob record, which is not itself content-addressed: a damaged record
// can make a reader see valid chunks in the wrong order before the final
// check fails (TestSwappedRefs), so streaming consumers must treat an error
// as voiding what they received.
// TestCorruptChunk, TestCorruptPage, TestCorruptRecord and TestSwappedChunks
// damage stored values directly in badger (flipped bytes, truncation, zstd
// bombs, deletion, swapped chunks) and check that every read path fails with
// an *IntegrityError without returning wrong bytes; FuzzStoredValues does the
// same for arbitrary record, chunk and page values. A blob that was never
// stored is ErrNotFound, which wraps fs.ErrNotExist (TestNotFound).
//
// A Store is safe for concurrent use (TestConcurrentPuts, run with -race);
// cancelling the context stops Put and Open (TestPutCancel, TestOpenCancel).
//
// # Speed
//
// Measured on the reference machine (2 cores, bare SHA-256 at 1.9-2.0 GB/s
// on one core) with 256 MiB of incompressible data, each against
// BenchmarkSHA256 in the same run: BenchmarkGet reads at 1.2-1.4 GB/s
// (0.65-0.73x SHA-256) and BenchmarkPutExisting, a Put of content already
// stored, runs at 1.1-1.2 GB/s (0.57-0.62x); both hash every chunk and the
// whole blob. Put of new content runs at 0.29-0.42 GB/s (0.15-0.22x): it is
// bounded by badger's synced value-log writes, which alone store the same
// bytes at 0.58-0.66 GB/s there (BenchmarkBadgerWrite), while the pipeline's
// own work takes about as much CPU again on the same two cores. On text-like
// data zstd dominates: Put 0.21-0.23 GB/s (stored in half the space), Get
// 0.34-0.59 GB/s. PutTxn costs 7-9 µs per ~700-byte event in transactions of
// 1000, commit included (BenchmarkPutTxn).
//
// Unreferenced chunks (from failed Puts) are not collected; there is no
// deletion yet.
package cas
