package attlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/buildledger/buildledger/attest/rekorv2"
	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/attlog"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

var ctx = context.Background()

func open(t *testing.T, l *ledgertest.Ledger, skey string) *attlog.Log {
	t.Helper()
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := rekorv2.KeyOfNoteSigner(skey)
	a, err := attlog.Open(l.Ledger, l.DB, rekorv2.Log{BaseURL: "https://ledger.example.org", Key: pub, ValidFrom: time.Unix(1.7e9, 0)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestCatchUp: the attestation log holds exactly the attestations, in log
// order, once each however often it catches up or is reopened; each entry
// is the rekorv2 entry of its envelope and proves against the checkpoint.
func TestCatchUp(t *testing.T) {
	l := ledgertest.Open(t)
	skey, _, err := checkpoint.GenerateKey("ledger.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "hello"}); err != nil {
		t.Fatal(err)
	}
	main := "bin/hello.hvt"
	b := &ledger.BuildRecorded{Job: "hello", UUID: uuid.New(), Platform: "debian-12", Started: time.Unix(1.7e9, 0), Finished: time.Unix(1.7e9+60, 0),
		Result: ledger.Result{Kind: ledger.ResultExited}, Script: cas.Sum([]byte("s")), Console: cas.Sum([]byte("c")),
		Artifacts: []ledger.Artifact{{Path: main, SHA256: cas.Sum([]byte("bin")), Size: 3}}, MainBinary: &main}
	r, err := l.Append(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	a := open(t, l, skey)
	var envs []cas.Digest
	for range 3 {
		s := ledgertest.NewSigner(t)
		if _, err := l.Append(ctx, &ledger.KeyAdded{Name: "k" + s.KeyID().String()[:6], PublicKey: s.Verifier().PublicKeyDER()}); err != nil {
			t.Fatal(err)
		}
		ev := ledgertest.Attest(t, l, s, ledgertest.Rebuild(b, r.Index, ledger.VerdictReproduced))
		if _, err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		envs = append(envs, ev.Envelope)
		if err := a.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
	}
	a = open(t, l, skey) // reopened: nothing added twice
	if err := a.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Size() != 3 {
		t.Fatalf("size %d, want 3", a.Size())
	}
	cp, err := a.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	for want, env := range envs {
		idx, err := a.Index(env)
		if err != nil || idx != uint64(want) {
			t.Fatalf("envelope %d at %d %v", want, idx, err)
		}
		raw, err := a.Bundle(ctx, env)
		if err != nil {
			t.Fatalf("bundle: %v", err)
		}
		var bundle protobundle.Bundle
		if err := protojson.Unmarshal(raw, &bundle); err != nil {
			t.Fatal(err)
		}
		tle := bundle.GetVerificationMaterial().GetTlogEntries()[0]
		p := tle.GetInclusionProof()
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(tle.GetLogIndex()), uint64(p.GetTreeSize()),
			rfc6962.DefaultHasher.HashLeaf(tle.GetCanonicalizedBody()), p.GetHashes(), cp.Hash[:]); err != nil {
			t.Fatalf("envelope %d: the entry does not prove against the checkpoint: %v", want, err)
		}
	}
	if _, err := a.Index(cas.Sum([]byte("no such envelope"))); !errors.Is(err, attlog.ErrNotFound) {
		t.Fatalf("unknown envelope: %v", err)
	}
	if cp.Size != 3 {
		t.Fatalf("checkpoint size %d", cp.Size)
	}
}
