package cas_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"strings"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/dgraph-io/badger/v4"
)

func Example() {
	dir, err := os.MkdirTemp("", "cas-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	s, err := cas.New(db, cas.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	info, err := s.Put(ctx, strings.NewReader("hello, ledger\n"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.Digest, info.Size)

	r, err := s.Open(ctx, info.Digest)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	io.Copy(os.Stdout, r) // verified against the digest as it streams

	_, err = s.Open(ctx, cas.Sum([]byte("never stored")))
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	// Output:
	// ef00affcdca5ad07841b2e6cb7dd71be842ddba9027fa3a5132d5a9fc9b54683 14
	// hello, ledger
	// true
}

// A ledger stores an event's bytes in the same transaction as the log entry
// that names them, so both commit or neither does.
func ExampleStore_PutTxn() {
	dir, err := os.MkdirTemp("", "cas-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	s, err := cas.New(db, cas.Options{})
	if err != nil {
		log.Fatal(err)
	}

	event := []byte(`{"kind":"build-finished","job":"unipi"}`)
	err = db.Update(func(txn *badger.Txn) error {
		d, err := s.PutTxn(txn, event)
		if err != nil {
			return err
		}
		return txn.Set([]byte("example/leaf/0"), d[:])
	})
	if err != nil {
		log.Fatal(err)
	}
	b, err := s.Bytes(context.Background(), cas.Sum(event), 1<<20)
	fmt.Println(string(b), err)
	// Output: {"kind":"build-finished","job":"unipi"} <nil>
}
