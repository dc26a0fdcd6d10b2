package cas_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/cas/castest"
	"github.com/dgraph-io/badger/v4"
)

func TestPutTxn(t *testing.T) {
	ctx := context.Background()
	s, db := castest.Open(t, cas.Options{})
	event := []byte(`{"kind":"build-finished","job":"unipi","status":"ok","artifacts":["sha256:..."]}`)
	text := castest.Text(1, 5000)

	// Written and read back inside one transaction, visible after commit.
	var d1, d2 cas.Digest
	err := db.Update(func(txn *badger.Txn) error {
		var err error
		if d1, err = s.PutTxn(txn, event); err != nil {
			return err
		}
		if d2, err = s.PutTxn(txn, text); err != nil {
			return err
		}
		for _, c := range []struct {
			d    cas.Digest
			want []byte
		}{{d1, event}, {d2, text}} {
			got, err := s.GetTxn(txn, c.d)
			if err != nil || !bytes.Equal(got, c.want) {
				return fmt.Errorf("GetTxn in the writing transaction: %v", err)
			}
		}
		return txn.Set([]byte("x/leaf"), d1[:]) // the caller's own write
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Bytes(ctx, d2, 1<<20); err != nil || !bytes.Equal(got, text) {
		t.Fatalf("Bytes after commit: %v", err)
	}
	if d1 != cas.Sum(event) {
		t.Fatal("PutTxn returned the wrong digest")
	}

	// A discarded transaction leaves nothing.
	before := usage(t, s)
	lost := []byte("this event is never committed")
	txn := db.NewTransaction(true)
	d, err := s.PutTxn(txn, lost)
	if err != nil {
		t.Fatal(err)
	}
	txn.Discard()
	if ok, _ := s.Has(d); ok {
		t.Fatal("blob of a discarded transaction exists")
	}
	if after := usage(t, s); after != before {
		t.Fatalf("discarded PutTxn changed usage: %+v -> %+v", before, after)
	}

	// Too large for a transaction.
	err = db.Update(func(txn *badger.Txn) error {
		_, err := s.PutTxn(txn, make([]byte, cas.DefaultInlineMax+1))
		return err
	})
	if !errors.Is(err, cas.ErrTooLarge) {
		t.Fatalf("PutTxn above InlineMax: %v", err)
	}

	// GetTxn refuses a blob above InlineMax, Open reads it.
	big := castest.RandBytes(2, 200_000)
	info, err := s.PutBytes(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(txn *badger.Txn) error {
		_, err := s.GetTxn(txn, info.Digest)
		return err
	})
	if !errors.Is(err, cas.ErrTooLarge) {
		t.Fatalf("GetTxn of a large blob: %v", err)
	}
}

// TestPutTxnFull fills transactions until badger says they are full, as a
// ledger batching events would, and checks the error it sees.
func TestPutTxnFull(t *testing.T) {
	s, db := castest.Open(t, cas.Options{})
	txn := db.NewTransaction(true)
	defer txn.Discard()
	var err error
	n := 0
	for ; err == nil && n < 1_000_000; n++ {
		_, err = s.PutTxn(txn, fmt.Appendf(nil, "event %d %s", n, castest.Text(uint64(n), 1000)))
	}
	if !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("after %d events: %v, want badger.ErrTxnTooBig", n, err)
	}
}

// TestConcurrentPuts runs Puts of the same and of different content at once
// (run it with -race).
func TestConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	s, db := castest.Open(t, cas.Options{})
	shared := castest.Text(1, 2<<20)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Go(func() {
			own := castest.RandBytes(uint64(100+i), 300_000+i)
			for _, b := range [][]byte{shared, own, castest.Text(uint64(i%2), 100_000), castest.RandBytes(uint64(i), 1000)} {
				info, err := s.Put(ctx, bytes.NewReader(b))
				if err != nil {
					errs <- err
					return
				}
				got, err := s.Bytes(ctx, info.Digest, 1<<30)
				if err != nil || !bytes.Equal(got, b) {
					errs <- fmt.Errorf("read back: %v", err)
					return
				}
			}
			errs <- db.Update(func(txn *badger.Txn) error {
				_, err := s.PutTxn(txn, fmt.Appendf(nil, "event from %d", i))
				return err
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	u := usage(t, s)
	if want := int64(1 + 8 + 2 + 8 + 8); u.Blobs != want { // shared, own, text, small, events
		t.Errorf("%d blobs, want %d", u.Blobs, want)
	}
}

func TestPutCancel(t *testing.T) {
	s, _ := castest.Open(t, cas.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelAfter{r: castest.RandReader(1, 1<<30), n: 20 << 20, cancel: cancel}
	_, err := s.Put(ctx, r)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled context: %v", err)
	}
	if u := usage(t, s); u.Blobs != 0 {
		t.Fatalf("cancelled Put left %d blob records", u.Blobs)
	}
	if _, err := s.Put(ctx, bytes.NewReader([]byte("x"))); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a done context: %v", err)
	}
}

// cancelAfter cancels a context once n bytes have been read.
type cancelAfter struct {
	r      interface{ Read([]byte) (int, error) }
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestOpenCancel(t *testing.T) {
	s, _ := castest.Open(t, cas.Options{})
	data := castest.RandBytes(1, 8<<20)
	info, err := s.PutBytes(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, err := s.Open(ctx, info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, 1<<20)
	if _, err := r.Read(p); err != nil {
		t.Fatal(err)
	}
	cancel()
	for range 100 {
		if _, err = r.Read(p); err != nil {
			break
		}
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel: %v", err)
	}
}

func TestPutTooLarge(t *testing.T) {
	s, _ := castest.Open(t, cas.Options{MaxBlobSize: 1 << 20})
	_, err := s.Put(context.Background(), castest.RandReader(1, 2<<20))
	if !errors.Is(err, cas.ErrTooLarge) {
		t.Fatalf("Put above MaxBlobSize: %v", err)
	}
	if _, err := s.Put(context.Background(), castest.RandReader(1, 1<<20)); err != nil {
		t.Fatalf("Put of MaxBlobSize bytes: %v", err)
	}
}

func TestReadError(t *testing.T) {
	s, _ := castest.Open(t, cas.Options{})
	boom := errors.New("disk on fire")
	for _, n := range []int64{10, 100_000, 10 << 20} {
		_, err := s.Put(context.Background(), &failAfter{r: castest.RandReader(1, 1<<30), n: n, err: boom})
		if !errors.Is(err, boom) {
			t.Fatalf("Put from a failing reader: %v", err)
		}
	}
	if u := usage(t, s); u.Blobs != 0 {
		t.Fatalf("failed Puts left %d blob records", u.Blobs)
	}
}

type failAfter struct {
	r   interface{ Read([]byte) (int, error) }
	n   int64
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	p = p[:min(int64(len(p)), f.n)]
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

func TestNewOptions(t *testing.T) {
	_, db := castest.Open(t, cas.Options{})
	for _, o := range []cas.Options{
		{MinChunk: 4096, NormalChunk: 4096, MaxChunk: 8192},
		{MinChunk: 1024, NormalChunk: 3000, MaxChunk: 8192},
		{MinChunk: 32, NormalChunk: 64, MaxChunk: 128},
		{MinChunk: 1024, NormalChunk: 4096, MaxChunk: 2 << 20},
		{MinChunk: 1024},
		{InlineMax: 2 << 20},
		{InlineMax: -1},
		{MaxBlobSize: -1},
	} {
		if _, err := cas.New(db, o); err == nil {
			t.Errorf("New accepted %+v", o)
		}
	}
	if _, err := cas.New(nil, cas.Options{}); err == nil {
		t.Error("New accepted a nil database")
	}
}
