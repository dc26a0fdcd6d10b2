package ledger_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
)

// Record a build, then check its receipt the way an auditor does: verify
// the checkpoint with the log's public key and the event's inclusion proof.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := kv.Open(dir, kv.Options{})
	defer db.Close()
	store, _ := cas.New(db, cas.Options{})
	skey, vkey, _ := ledger.GenerateLogKey("example.org/log")
	signer, _ := note.NewSigner(skey)
	l, err := ledger.Open(db, store, ledger.Config{Origin: "example.org/log", Signer: signer})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	ctx := context.Background()

	l.Append(ctx, &ledger.JobDefined{Job: "hello"})
	bin := cas.Sum([]byte("unikernel image"))
	main := "bin/hello.hvt"
	r, err := l.Append(ctx, &ledger.BuildRecorded{
		Job: "hello", UUID: uuid.New(), Platform: "debian-12",
		Started: time.Now(), Finished: time.Now(),
		Result:     ledger.Result{Kind: ledger.ResultExited, Code: 0},
		Artifacts:  []ledger.Artifact{{Path: main, SHA256: bin, Size: 15}},
		MainBinary: &main,
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	cp, err := ledger.OpenCheckpoint(r.Checkpoint.Note, "example.org/log", vkey)
	if err != nil {
		fmt.Println(err)
		return
	}
	event, _ := l.EventBytes(r.Index)
	path, _ := l.Tree().InclusionProof(r.Index, cp.Size)
	err = proof.VerifyInclusion(rfc6962.DefaultHasher, r.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(event), path, cp.Hash[:])
	fmt.Println("index", r.Index, "in checkpoint of size", cp.Size, "verified:", err == nil)

	hits, _ := l.BuildsByArtifact(bin)
	fmt.Println("builds producing the image:", len(hits), hits[0].Path)
	// Output:
	// index 1 in checkpoint of size 2 verified: true
	// builds producing the image: 1 bin/hello.hvt
}
