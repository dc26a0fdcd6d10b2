package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/httpapitest"
	"github.com/buildledger/buildledger/internal/witnesstest"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/ledgertest"
	"github.com/buildledger/buildledger/ledger/witnessing"
	"github.com/google/uuid"
)

// /checkpoint serves the checkpoint with its witnesses' cosignatures once
// they answered for it, saying whether they make a quorum; a newer
// checkpoint not yet cosigned is served as it is, saying so. Clients that
// know only the log key still verify it.
func TestCheckpointWithCosignatures(t *testing.T) {
	l := ledgertest.Open(t)
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "hello"}); err != nil {
		t.Fatal(err)
	}
	var cosigned witnessing.Cosigned
	s, err := httpapi.New(httpapi.Config{Ledger: l.Ledger, VKey: l.VKey, Witnessed: func() witnessing.Cosigned { return cosigned }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	cp := l.Checkpoint()
	sig := []byte("— witness.example/one AAAAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdI\n")
	cosigned = witnessing.Cosigned{Note: append(bytes.Clone(cp.Note), sig...), Size: cp.Size, Quorum: true, Signed: []string{"one"}}
	resp, body := get(t, srv.URL+"/checkpoint", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Witness-Quorum") != "met" || resp.Header.Get("Witness-Cosignatures") != "1" || !bytes.HasSuffix([]byte(body), sig) {
		t.Fatalf("cosigned: %s %v\n%s", resp.Status, resp.Header, body)
	}
	if _, err := checkpoint.Open([]byte(body), ledgertest.Origin, l.VKey); err != nil {
		t.Fatalf("the cosigned checkpoint does not verify with the log key: %v", err)
	}
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "web"}); err != nil {
		t.Fatal(err)
	}
	resp, body = get(t, srv.URL+"/checkpoint", "")
	if resp.Header.Get("Witness-Quorum") != "not yet asked" || body != string(l.Checkpoint().Note) {
		t.Fatalf("a newer checkpoint: %v\n%s", resp.Header, body)
	}
}

// A client that requires witnesses writes as any other (its receipt is
// proven against the latest checkpoint), reads within witnessed
// checkpoints, and says when a build is not witnessed yet.
func TestClientRequiringWitnesses(t *testing.T) {
	s := httpapitest.New(t)
	s.Key("a", true)
	lw := witnesstest.Start(t, "witness.example/one", s.L.VKey)
	policy := []byte(fmt.Sprintf("witness one %s %s\nquorum one\n", lw.VKey, lw.URL))
	wit, err := witnessing.New(witnessing.Config{Policy: policy, Prover: s.L.Tree()})
	if err != nil {
		t.Fatal(err)
	}
	if c := wit.Cosign(ctx, s.L.Checkpoint()); !c.Quorum {
		t.Fatalf("%+v", c)
	}
	s.Witness(wit)
	c, err := httpapi.NewClient(s.URL, s.L.VKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RequireWitnesses(policy); err != nil {
		t.Fatal(err)
	}
	// A write: not witnessed yet, acknowledged and proven all the same.
	k, _ := attest.GenerateKey(attest.Ed25519)
	ks, _ := attest.LoadSigner(k, nil)
	if _, err := c.AddKey(ctx, "b", string(ks.PublicKeyPEM()), httpapitest.Admin); err != nil {
		t.Fatalf("a write by a client requiring witnesses: %v", err)
	}
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ex := &builder.Exec{Job: builder.Job{Name: "hello", Script: "true\n", Platform: "debian-12"}, UUID: uuid.New(),
		Started: start, Finished: start.Add(time.Second), Result: builder.Result{Kind: builder.ResultExited},
		Output: []builder.File{{Path: "bin/hello.hvt", Data: []byte("image")}}}
	der, _ := ex.Marshal()
	if _, _, err := c.Upload(ctx, der, ex.UUID, httpapitest.Farm); err != nil {
		t.Fatalf("an upload by a client requiring witnesses: %v", err)
	}
	if _, _, _, err := c.Build(ctx, ex.UUID); err == nil || !strings.Contains(err.Error(), "not witnessed yet") {
		t.Fatalf("a build newer than the witnessed checkpoint: %v", err)
	}
	if c2 := wit.Cosign(ctx, s.L.Checkpoint()); !c2.Quorum {
		t.Fatalf("%+v", c2)
	}
	if _, _, cp, err := c.Build(ctx, ex.UUID); err != nil || cp.Size != s.L.Checkpoint().Size {
		t.Fatalf("the build once witnessed: %v", err)
	}
}
