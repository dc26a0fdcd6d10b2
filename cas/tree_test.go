package cas

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	"github.com/dgraph-io/badger/v4"
)

// TestTree builds blobs of every chunk count from 1 to 70 with manifest
// pages of 2, 3 and 4 references (trees up to 6 levels high), and for each
// reads the whole blob, seeks to and ReadAts every chunk boundary and a
// point inside every chunk, and checks Stat.
func TestTree(t *testing.T) {
	ctx := context.Background()
	s, db := openTest(t, Options{MinChunk: 64, NormalChunk: 128, MaxChunk: 256, InlineMax: 64})
	for _, fanout := range []int{2, 3, 4} {
		s.fanout = fanout
		for n := 1; n <= 70; n++ {
			// n chunks of 256 bytes: incompressible data cut at MaxChunk
			// needs ~n*128 bytes; build it chunk by chunk to get exactly n.
			data := buildChunks(t, s, uint64(1000*fanout+n), n)
			info, err := s.PutBytes(ctx, data)
			if err != nil {
				t.Fatal(err)
			}
			if info.Chunks != int64(n) {
				t.Fatalf("fanout %d: %d chunks, want %d", fanout, info.Chunks, n)
			}
			var height int
			db.View(func(txn *badger.Txn) error {
				rec, err := s.loadRecord(txn, info.Digest)
				if err != nil {
					t.Fatal(err)
				}
				height = rec.height
				if len(rec.refs) > fanout {
					t.Fatalf("record with %d refs, fanout %d", len(rec.refs), fanout)
				}
				return nil
			})
			want := 0
			for c := fanout; c < n; c *= fanout {
				want++
			}
			if height != want {
				t.Fatalf("fanout %d, %d chunks: height %d, want %d", fanout, n, height, want)
			}
			checkReads(t, s, info.Digest, data)
			st, err := s.Stat(info.Digest)
			if err != nil || st.Chunks != int64(n) || st.Size != int64(len(data)) {
				t.Fatalf("Stat: %+v, %v", st, err)
			}
		}
	}
}

// buildChunks returns content that the store's chunker cuts into exactly n
// chunks: the first n chunks of a longer random stream.
func buildChunks(t *testing.T, s *Store, seed uint64, n int) []byte {
	data := randBytes(seed, n*s.cut.large.max)
	c, err := chunkers.NewChunker(s.algo, bytes.NewReader(data), s.cut.large.opts())
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for range n {
		chunk, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		size += len(chunk)
	}
	return data[:size]
}

func checkReads(t *testing.T, s *Store, d Digest, data []byte) {
	t.Helper()
	ctx := context.Background()
	r, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAll: %d bytes, %v", len(got), err)
	}
	offs := []int64{0, 1, int64(len(data)) - 1, int64(len(data))}
	var pos int64
	for _, c := range chunkRefs(t, s, d) {
		offs = append(offs, pos, pos+c.size/2)
		pos += c.size
	}
	p := make([]byte, 300)
	for _, off := range offs {
		if off > int64(len(data)) {
			continue
		}
		if _, err := r.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		n, err := io.ReadFull(r, p)
		if want := min(int64(len(p)), int64(len(data))-off); int64(n) != want || !bytes.Equal(p[:n], data[off:off+want]) {
			t.Fatalf("Seek(%d)+Read: %d bytes, %v", off, n, err)
		}
		n, err = r.ReadAt(p, off)
		if want := min(int64(len(p)), int64(len(data))-off); int64(n) != want || !bytes.Equal(p[:n], data[off:off+want]) || (n < len(p) && err != io.EOF) {
			t.Fatalf("ReadAt(%d): %d bytes, %v", off, n, err)
		}
	}
	// Seek back to 0 restores whole-blob verification: read to the end.
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAll after Seek(0): %d bytes, %v", len(got), err)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("Seek to -1 succeeded")
	}
	if n, err := r.Seek(0, io.SeekEnd); n != int64(len(data)) || err != nil {
		t.Fatalf("Seek(0, End) = %d, %v", n, err)
	}
	if n, err := r.Read(p); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("Read at end: %d, %v", n, err)
	}
}
