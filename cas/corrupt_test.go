package cas

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/buildledger/buildledger/internal/kv"
	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"
)

// openTest opens a Store on a fresh on-disk database (kv.Open) in a
// temporary directory.
func openTest(t testing.TB, o Options) (*Store, *badger.DB) {
	t.Helper()
	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := New(db, o)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func textBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	words := []string{"alpha", "beta", "gamma", "delta", "=1.2.3\n", "-dev", "lib", "=0.9\n"}
	var b []byte
	for len(b) < n {
		b = append(b, words[r.IntN(len(words))]...)
	}
	return b[:n]
}

func getValue(t *testing.T, db *badger.DB, k []byte) []byte {
	t.Helper()
	var v []byte
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func setValue(t *testing.T, db *badger.DB, k, v []byte) {
	t.Helper()
	if err := db.Update(func(txn *badger.Txn) error {
		if v == nil {
			return txn.Delete(k)
		}
		return txn.Set(k, v)
	}); err != nil {
		t.Fatal(err)
	}
}

// chunkRefs returns the chunk references of blob d in order.
func chunkRefs(t *testing.T, s *Store, d Digest) []ref {
	t.Helper()
	var refs []ref
	err := s.db.View(func(txn *badger.Txn) error {
		rec, err := s.loadRecord(txn, d)
		if err != nil {
			return err
		}
		w := newWalker(s, d, rec)
		for {
			r, ok, err := w.next(txn)
			if err != nil || !ok {
				return err
			}
			refs = append(refs, r)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return refs
}

// zstdBomb is a valid zstd frame (without a content size) that expands to
// 1 GiB of zeros.
func zstdBomb(t testing.TB) []byte {
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for range 1024 {
		zw.Write(zero)
	}
	zw.Close()
	return buf.Bytes()
}

// expectIntegrity reads blob d every way there is and checks that each
// fails with an *IntegrityError without handing out bytes that differ from
// want.
func expectIntegrity(t *testing.T, s *Store, d Digest, want []byte) {
	t.Helper()
	expectIntegrityErr(t, s, d, want, true)
}

// expectIntegrityErr checks that every way of reading d fails with an
// IntegrityError before the whole blob is handed out. With prefix, the
// bytes handed out before the error must also be a prefix of want: true
// for damaged chunks (each is verified before use), not for a damaged blob
// record, whose reordered but valid chunks only the whole-blob digest (checked
// before the last bytes go out) can expose.
func expectIntegrityErr(t *testing.T, s *Store, d Digest, want []byte, prefix bool) {
	t.Helper()
	ctx := context.Background()
	var ie *IntegrityError
	if _, err := s.Bytes(ctx, d, 1<<40); !errors.As(err, &ie) {
		t.Errorf("Bytes: %v, want *IntegrityError", err)
	} else if ie.Digest != d {
		t.Errorf("IntegrityError names blob %s, want %s", ie.Digest, d)
	}
	r, err := s.Open(ctx, d)
	if err == nil {
		var got []byte
		buf := make([]byte, 1000)
		for {
			n, rerr := r.Read(buf)
			got = append(got, buf[:n]...)
			if rerr != nil {
				err = rerr
				break
			}
		}
		r.Close()
		if prefix && !bytes.HasPrefix(want, got) {
			t.Errorf("Read handed out %d bytes that are not a prefix of the content", len(got))
		}
	}
	if !errors.As(err, &ie) {
		t.Errorf("Open/Read: %v, want *IntegrityError", err)
	}
	if r, err := s.Open(ctx, d); err == nil {
		_, err = io.Copy(io.Discard, r)
		r.Close()
		if !errors.As(err, &ie) {
			t.Errorf("WriteTo: %v, want *IntegrityError", err)
		}
	}
	// A reader that stops at the blob's size, as http.ServeContent does,
	// must not get all of it without the whole-blob check.
	if r, err := s.Open(ctx, d); err == nil {
		buf := make([]byte, r.Size())
		_, err = io.ReadFull(r, buf)
		r.Close()
		if !errors.As(err, &ie) {
			t.Errorf("ReadFull of Size bytes: %v, want *IntegrityError", err)
		}
	}
	err = s.db.View(func(txn *badger.Txn) error {
		_, err := s.GetTxn(txn, d)
		return err
	})
	if !errors.As(err, &ie) && !errors.Is(err, ErrTooLarge) {
		t.Errorf("GetTxn: %v, want *IntegrityError", err)
	}
}

func TestCorruptChunk(t *testing.T) {
	ctx := context.Background()
	for _, content := range []struct {
		name string
		data []byte
	}{
		{"raw chunks", randBytes(1, 300_000)},
		{"zstd chunks", textBytes(2, 300_000)},
	} {
		for _, damage := range []struct {
			name string
			f    func(t *testing.T, v []byte) []byte
		}{
			{"flip a byte", func(t *testing.T, v []byte) []byte { v[len(v)/2] ^= 0x40; return v }},
			{"flip the header", func(t *testing.T, v []byte) []byte { v[0] ^= 1; return v }},
			{"truncate", func(t *testing.T, v []byte) []byte { return v[:len(v)-7] }},
			{"extend", func(t *testing.T, v []byte) []byte { return append(v, 0) }},
			{"empty", func(t *testing.T, v []byte) []byte { return []byte{} }},
			{"unknown encoding", func(t *testing.T, v []byte) []byte { v[0] = 9; return v }},
			{"zstd bomb", func(t *testing.T, v []byte) []byte { return append([]byte{encZstd}, zstdBomb(t)...) }},
			{"delete", func(t *testing.T, v []byte) []byte { return nil }},
		} {
			t.Run(content.name+"/"+damage.name, func(t *testing.T) {
				s, db := openTest(t, Options{})
				info, err := s.PutBytes(ctx, content.data)
				if err != nil {
					t.Fatal(err)
				}
				refs := chunkRefs(t, s, info.Digest)
				if len(refs) < 3 {
					t.Fatalf("only %d chunks", len(refs))
				}
				k := chunkKey(refs[1].d)
				v := getValue(t, db, k)
				if content.name == "zstd chunks" && v[0] != encZstd || content.name == "raw chunks" && v[0] != encRaw {
					t.Fatalf("chunk stored with encoding %d", v[0])
				}
				setValue(t, db, k, damage.f(t, v))
				expectIntegrity(t, s, info.Digest, content.data)
				var ie *IntegrityError
				r, err := s.Open(ctx, info.Digest)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				if _, err := io.Copy(io.Discard, r); !errors.As(err, &ie) || ie.Chunk != refs[1].d {
					t.Errorf("error %v does not name chunk %s", err, refs[1].d)
				}
				// Reading from an offset past the damage still works.
				p := make([]byte, 1000)
				off := refs[0].size + refs[1].size
				if n, err := r.ReadAt(p, off); err != nil || !bytes.Equal(p[:n], content.data[off:off+1000]) {
					t.Errorf("ReadAt past the damaged chunk: %d, %v", n, err)
				}
				// Putting the content again brings back a missing chunk
				// (a damaged one stays: Put does not read existing chunks).
				if _, err := s.PutBytes(ctx, content.data); err != nil {
					t.Fatal(err)
				}
				got, err := s.Bytes(ctx, info.Digest, 1<<30)
				if damage.name == "delete" && (err != nil || !bytes.Equal(got, content.data)) {
					t.Errorf("after putting the content again: %v", err)
				}
				if damage.name != "delete" && !errors.As(err, &ie) {
					t.Errorf("after putting the content again: %v, want still damaged", err)
				}
			})
		}
	}
}

// TestSwappedChunks replaces a chunk's value with another chunk's valid
// value: every chunk still decodes, but not to its digest.
func TestSwappedChunks(t *testing.T) {
	s, db := openTest(t, Options{})
	data := randBytes(3, 300_000)
	info, err := s.PutBytes(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	refs := chunkRefs(t, s, info.Digest)
	setValue(t, db, chunkKey(refs[0].d), getValue(t, db, chunkKey(refs[1].d)))
	expectIntegrity(t, s, info.Digest, data)
}

// TestSwappedRefs swaps two chunk references in a blob record: every chunk
// verifies, only the whole-blob digest shows the damage.
func TestSwappedRefs(t *testing.T) {
	s, db := openTest(t, Options{})
	data := randBytes(4, 300_000)
	info, err := s.PutBytes(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	rec, reason := parseRecord(getValue(t, db, blobKey(info.Digest)))
	if reason != "" || rec.height != 0 || len(rec.refs) < 2 {
		t.Fatalf("unexpected record shape: %q height %d refs %d", reason, rec.height, len(rec.refs))
	}
	rec.refs[0], rec.refs[1] = rec.refs[1], rec.refs[0]
	setValue(t, db, blobKey(info.Digest), appendChunkedRecord(nil, rec.size, rec.chunks, rec.height, rec.refs))
	expectIntegrityErr(t, s, info.Digest, data, false)
}

func TestCorruptPage(t *testing.T) {
	ctx := context.Background()
	for _, damage := range []struct {
		name string
		f    func(v []byte) []byte
	}{
		{"flip a byte", func(v []byte) []byte { v[len(v)/2] ^= 1; return v }},
		{"truncate", func(v []byte) []byte { return v[:len(v)-1] }},
		{"compressed", func(v []byte) []byte { v[0] = encZstd; return v }},
		{"delete", func(v []byte) []byte { return nil }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			s, db := openTest(t, Options{MinChunk: 64, NormalChunk: 128, MaxChunk: 256, InlineMax: 100})
			data := randBytes(4, 300_000)
			info, err := s.PutBytes(ctx, data)
			if err != nil {
				t.Fatal(err)
			}
			var pages [][]byte
			db.View(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pagePrefix)})
				defer it.Close()
				for it.Rewind(); it.Valid(); it.Next() {
					pages = append(pages, it.Item().KeyCopy(nil))
				}
				return nil
			})
			if len(pages) < 2 {
				t.Fatalf("%d pages", len(pages))
			}
			setValue(t, db, pages[1], damage.f(getValue(t, db, pages[1])))
			expectIntegrity(t, s, info.Digest, data)
		})
	}
}

func TestCorruptRecord(t *testing.T) {
	ctx := context.Background()
	for _, content := range []struct {
		name string
		data []byte
	}{
		{"inline raw", randBytes(5, 1000)},
		{"inline zstd", textBytes(6, 20000)},
		{"chunked", randBytes(7, 300_000)},
	} {
		for _, damage := range []struct {
			name string
			f    func(t *testing.T, v []byte) []byte
		}{
			{"flip last byte", func(t *testing.T, v []byte) []byte { v[len(v)-1] ^= 1; return v }},
			{"flip middle byte", func(t *testing.T, v []byte) []byte { v[len(v)/2] ^= 1; return v }},
			{"truncate", func(t *testing.T, v []byte) []byte { return v[:len(v)-1] }},
			{"empty", func(t *testing.T, v []byte) []byte { return []byte{} }},
			{"bad kind", func(t *testing.T, v []byte) []byte { v[0] = 0x7f; return v }},
			{"zstd bomb", func(t *testing.T, v []byte) []byte {
				return append([]byte{recInlineZstd, 0x80, 0x80, 0x04}, zstdBomb(t)...)
			}},
		} {
			t.Run(content.name+"/"+damage.name, func(t *testing.T) {
				s, db := openTest(t, Options{})
				info, err := s.PutBytes(ctx, content.data)
				if err != nil {
					t.Fatal(err)
				}
				k := blobKey(info.Digest)
				setValue(t, db, k, damage.f(t, getValue(t, db, k)))
				expectIntegrity(t, s, info.Digest, content.data)
			})
		}
	}
}
