package cas_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"testing"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/cas/castest"
	"github.com/dgraph-io/badger/v4"
)

// smallChunks makes multi-page blobs cheap to build in tests: 64..256-byte
// chunks, so 1025 chunks need a second manifest level at ~150 KiB.
var smallChunks = cas.Options{MinChunk: 64, NormalChunk: 128, MaxChunk: 256, InlineMax: 100}

func readAll(t *testing.T, s *cas.Store, d cas.Digest) []byte {
	t.Helper()
	r, err := s.Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	if int64(len(b)) != r.Size() {
		t.Fatalf("read %d bytes, Size says %d", len(b), r.Size())
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		o    cas.Options
		data []byte
	}{
		{"empty", cas.Options{}, nil},
		{"one byte", cas.Options{}, []byte{7}},
		{"inline max-1", cas.Options{}, castest.RandBytes(1, cas.DefaultInlineMax-1)},
		{"inline max", cas.Options{}, castest.RandBytes(2, cas.DefaultInlineMax)},
		{"inline max+1", cas.Options{}, castest.RandBytes(3, cas.DefaultInlineMax+1)},
		{"inline text", cas.Options{}, castest.Text(4, 30000)},
		{"several chunks", cas.Options{}, castest.RandBytes(5, 700_000)},
		{"several text chunks", cas.Options{}, castest.Text(6, 700_000)},
		{"1024 small chunks or fewer", smallChunks, castest.RandBytes(7, 100_000)},
		{"two levels", smallChunks, castest.RandBytes(8, 400_000)},
		{"three levels", smallChunks, castest.Text(9, 300<<10)},
		{"zeros", cas.Options{}, make([]byte, 5<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := castest.Open(t, tc.o)
			want := cas.Sum(tc.data)
			for i, put := range []func() (cas.Info, error){
				func() (cas.Info, error) { return s.Put(ctx, bytes.NewReader(tc.data)) },
				func() (cas.Info, error) { return s.PutBytes(ctx, tc.data) },
			} {
				info, err := put()
				if err != nil {
					t.Fatal(err)
				}
				if info.Digest != want || info.Size != int64(len(tc.data)) {
					t.Fatalf("put: digest %s size %d, want %s %d", info.Digest, info.Size, want, len(tc.data))
				}
				if i == 1 && info.Written != 0 {
					t.Errorf("second put of the same content wrote %d bytes", info.Written)
				}
			}
			if got := readAll(t, s, want); !bytes.Equal(got, tc.data) {
				t.Fatalf("read back %d bytes differing from the %d put", len(got), len(tc.data))
			}
			got, err := s.Bytes(ctx, want, int64(len(tc.data)))
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("Bytes: %v (%d bytes)", err, len(got))
			}
			if len(tc.data) > 0 {
				if _, err := s.Bytes(ctx, want, int64(len(tc.data)-1)); !errors.Is(err, cas.ErrTooLarge) {
					t.Fatalf("Bytes with max below size: %v, want ErrTooLarge", err)
				}
			}
			st, err := s.Stat(want)
			if err != nil || st.Size != int64(len(tc.data)) || st.StoredBytes <= 0 {
				t.Fatalf("Stat: %+v, %v", st, err)
			}
			if ok, err := s.Has(want); !ok || err != nil {
				t.Fatalf("Has: %v, %v", ok, err)
			}
			t.Logf("size %d chunks %d stored %d", st.Size, st.Chunks, st.StoredBytes)
		})
	}
}

func TestNotFound(t *testing.T) {
	s, db := castest.Open(t, cas.Options{})
	d := cas.Sum([]byte("absent"))
	_, err := s.Open(context.Background(), d)
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("Open: %v, want fs.ErrNotExist", err)
	}
	if !bytes.Contains([]byte(err.Error()), []byte(d.String())) {
		t.Errorf("error %q does not name the digest", err)
	}
	if _, err := s.Stat(d); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat: %v", err)
	}
	if _, err := s.Bytes(context.Background(), d, 1<<20); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Bytes: %v", err)
	}
	if ok, err := s.Has(d); ok || err != nil {
		t.Fatalf("Has: %v, %v", ok, err)
	}
	err = db.View(func(txn *badger.Txn) error {
		_, err := s.GetTxn(txn, d)
		return err
	})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("GetTxn: %v", err)
	}
}

// TestPutTxnTooBig stores enough tiny chunks that badger refuses to take a
// commit's worth in one transaction, so Put must split its transactions.
func TestPutTxnTooBig(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 24 MiB in 128-byte chunks")
	}
	ctx := context.Background()
	s, _ := castest.Open(t, smallChunks)
	data := castest.RandBytes(9, 24<<20)
	info, err := s.Put(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, info.Digest); !bytes.Equal(got, data) {
		t.Fatal("read back different content")
	}
	t.Logf("%d chunks", info.Chunks)
}

// TestPutSmall stores many small blobs in few transactions, more than one
// transaction holds, and refuses a large one.
func TestPutSmall(t *testing.T) {
	ctx := context.Background()
	s, _ := castest.Open(t, cas.Options{})
	var blobs [][]byte
	for i := range 3000 {
		blobs = append(blobs, castest.RandBytes(uint64(i), 8<<10))
	}
	if err := s.PutSmall(ctx, blobs); err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if got := readAll(t, s, cas.Sum(b)); !bytes.Equal(got, b) {
			t.Fatal("read back different content")
		}
	}
	if err := s.PutSmall(ctx, [][]byte{make([]byte, cas.DefaultInlineMax+1)}); !errors.Is(err, cas.ErrTooLarge) {
		t.Fatalf("large blob: %v", err)
	}
}
