package cas

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

var errNoSpace = errors.New("test: no space")

// TestCheckSpace: once Options.CheckSpace fails, Put (streamed, part-way
// through a blob), PutBytes and PutSmall stop with its error (callers map
// it to 507), and what is stored afterwards is only what was committed
// before: a blob refused part-way is not there.
func TestCheckSpace(t *testing.T) {
	var calls, failFrom atomic.Int64
	failFrom.Store(1 << 62)
	s, _ := openTest(t, Options{CheckSpace: func() error {
		if calls.Add(1) >= failFrom.Load() {
			return errNoSpace
		}
		return nil
	}})
	ctx := context.Background()
	ok, err := s.PutBytes(ctx, randBytes(1, 100<<10))
	if err != nil {
		t.Fatal(err)
	}
	first := calls.Load()
	if first == 0 {
		t.Fatal("Put did not ask CheckSpace")
	}

	failFrom.Store(calls.Load() + 2) // a few segments in
	big := randBytes(2, 32<<20)
	_, err = s.Put(ctx, bytes.NewReader(big))
	if !errors.Is(err, errNoSpace) {
		t.Fatalf("Put of a blob with the space running out part-way: %v", err)
	}
	if has, _ := s.Has(Sum(big)); has {
		t.Fatal("a blob refused part-way is stored")
	}
	if _, err := s.PutBytes(ctx, randBytes(3, 10)); !errors.Is(err, errNoSpace) {
		t.Fatalf("PutBytes (inline): %v", err)
	}
	if err := s.PutSmall(ctx, [][]byte{randBytes(4, 10)}); !errors.Is(err, errNoSpace) {
		t.Fatalf("PutSmall: %v", err)
	}
	if has, err := s.Has(ok.Digest); !has || err != nil {
		t.Fatalf("the blob stored before: %v %v", has, err)
	}
}
