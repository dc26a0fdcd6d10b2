package castest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"testing"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/internal/kv"
)

// BenchSHA256 measures bare crypto/sha256 over data, fed in 1 MiB writes:
// the baseline for BenchPut and BenchGet.
func BenchSHA256(b *testing.B, data []byte) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.New()
		for p := data; len(p) > 0; {
			n := min(len(p), 1<<20)
			h.Write(p[:n])
			p = p[n:]
		}
		h.Sum(nil)
	}
}

// BenchPut measures Put of data (streamed from a bytes.Reader) into a fresh
// on-disk store each iteration, including the final durable commit.
// Opening and removing the database are not timed.
func BenchPut(b *testing.B, data []byte) { BenchPutWith(b, data, cas.Options{}) }

// BenchPutWith is BenchPut on a store with options o.
func BenchPutWith(b *testing.B, data []byte, o cas.Options) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var written int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir, err := os.MkdirTemp("", "casbench")
		if err != nil {
			b.Fatal(err)
		}
		db, err := kv.Open(dir, kv.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s, err := cas.New(db, o)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		info, err := s.Put(context.Background(), bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		written = info.Written
		db.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(written)/float64(len(data)), "stored/logical")
}

// BenchGet measures reading data back (Open and io.Copy to io.Discard, all
// verification included) from an on-disk store it fills once, untimed.
func BenchGet(b *testing.B, data []byte) {
	s, _ := Open(b, cas.Options{})
	info, err := s.PutBytes(context.Background(), data)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := s.Open(context.Background(), info.Digest)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r)
		r.Close()
		if err != nil || n != int64(len(data)) {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
}

// BenchPutExisting measures Put of data that the store already holds: the
// chunking, hashing and lookups of a Put without its writes (a daily
// rebuild uploading an unchanged artifact).
func BenchPutExisting(b *testing.B, data []byte) { BenchPutExistingWith(b, data, cas.Options{}) }

// BenchPutExistingWith is BenchPutExisting on a store with options o.
func BenchPutExistingWith(b *testing.B, data []byte, o cas.Options) {
	s, _ := Open(b, o)
	if _, err := s.PutBytes(context.Background(), data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		info, err := s.Put(context.Background(), bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if info.Written != 0 {
			b.Fatalf("Put of existing content wrote %d bytes", info.Written)
		}
	}
}

// BenchBadgerWrite measures the storage ceiling under Put: badger (opened by
// kv.Open, so with synced commits) writing data as 16 KiB values under
// precomputed keys, in transactions of 8 MiB with up to two commits in
// flight, the way Put batches its chunks; no hashing, chunking or
// compression. Opening and removing the database are not timed.
func BenchBadgerWrite(b *testing.B, data []byte) {
	const valueSize, batch = 16 << 10, 8 << 20
	var keys [][]byte
	for off := 0; off < len(data); off += valueSize {
		d := sha256.Sum256(data[off:min(off+valueSize, len(data))])
		keys = append(keys, append([]byte("bench/"), d[:]...))
	}
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir, err := os.MkdirTemp("", "casbench")
		if err != nil {
			b.Fatal(err)
		}
		db, err := kv.Open(dir, kv.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		inflight := make(chan error, 2)
		inflight <- nil
		inflight <- nil
		txn := db.NewTransaction(true)
		n := 0
		for k, off := 0, 0; off < len(data); k, off = k+1, off+valueSize {
			if err := txn.Set(keys[k], data[off:min(off+valueSize, len(data))]); err != nil {
				b.Fatal(err)
			}
			if n += valueSize; n >= batch {
				if err := <-inflight; err != nil {
					b.Fatal(err)
				}
				txn.CommitWith(func(err error) { inflight <- err })
				txn = db.NewTransaction(true)
				n = 0
			}
		}
		for range cap(inflight) {
			if err := <-inflight; err != nil {
				b.Fatal(err)
			}
		}
		if err := txn.Commit(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}
