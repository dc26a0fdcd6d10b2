package cas

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// FuzzStoredValues stores arbitrary bytes as a blob record, and as the
// chunk and manifest page its first reference names, then reads the blob
// every way there is. Reading must not panic or allocate without bound, must
// fail only with an *IntegrityError or ErrTooLarge, and must never return
// content that does not hash to the blob's digest.
func FuzzStoredValues(f *testing.F) {
	s, db := openTest(f, Options{MinChunk: 64, NormalChunk: 128, MaxChunk: 256, InlineMax: 200})
	text := textBytes(1, 150)
	chunk := textBytes(2, 256)
	chunkVal, _ := s.compressValue(nil, chunk)
	rawVal := append([]byte{encRaw}, chunk...)
	cd := Sum(chunk)
	f.Add(true, s.inlineRecord(text), []byte(nil))
	f.Add(true, append([]byte{recInlineRaw}, text...), []byte(nil))
	f.Add(false, appendChunkedRecord(nil, 256, 1, 0, []ref{{cd, 256}}), chunkVal)
	f.Add(false, appendChunkedRecord(nil, 256, 1, 0, []ref{{cd, 256}}), rawVal)
	f.Add(false, appendChunkedRecord(nil, 512, 2, 1, []ref{{cd, 512}}), appendRef(appendRef([]byte{encRaw}, ref{cd, 256}), ref{cd, 256}))
	f.Add(false, append([]byte{recInlineZstd, 100}, chunkVal[1:]...), []byte(nil))
	f.Fuzz(func(t *testing.T, inlineDigest bool, recVal, val []byte) {
		d := Sum(recVal)
		if inlineDigest && len(recVal) > 0 {
			d = Sum(recVal[1:]) // what a valid raw inline record is stored under
		}
		err := db.Update(func(txn *badger.Txn) error {
			if err := txn.Set(blobKey(d), recVal); err != nil {
				return err
			}
			if rec, reason := parseRecord(recVal); reason == "" && rec.kind == recChunked && len(val) > 0 {
				if err := txn.Set(chunkKey(rec.refs[0].d), val); err != nil {
					return err
				}
				return txn.Set(pageKey(rec.refs[0].d), val)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		check := func(how string, got []byte, err error) {
			var ie *IntegrityError
			switch {
			case err == nil && Sum(got) != d:
				t.Fatalf("%s returned %d bytes that do not match the digest", how, len(got))
			case err != nil && !errors.As(err, &ie) && !errors.Is(err, ErrTooLarge):
				t.Fatalf("%s: unexpected error %v", how, err)
			}
		}
		ctx := context.Background()
		got, err := s.Bytes(ctx, d, 1<<20)
		check("Bytes", got, err)
		if r, err := s.Open(ctx, d); err == nil {
			var buf bytes.Buffer
			_, err = io.Copy(&buf, r)
			r.Close()
			check("Open", buf.Bytes(), err)
		} else {
			check("Open", nil, err)
		}
		err = db.View(func(txn *badger.Txn) error {
			got, err := s.GetTxn(txn, d)
			check("GetTxn", got, err)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(d); err != nil {
			check("Stat", nil, err)
		}
		if _, err := s.Usage(); err != nil {
			check("Usage", nil, err)
		}
		db.Update(func(txn *badger.Txn) error { return txn.Delete(blobKey(d)) })
	})
}
