package scheduler_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/farm/scheduler"
	"github.com/buildledger/buildledger/httpapi/httpapitest"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/builder"
)

// TestLedgerUploaderRetryIsIdempotent: an upload retried after the ledger
// recorded it (the answer was lost, or the scheduler died before it
// forgot the build) succeeds without a second record; another build under
// the same UUID is refused for good.
func TestLedgerUploaderRetryIsIdempotent(t *testing.T) {
	srv := httpapitest.New(t)
	u := &scheduler.LedgerUploader{Client: srv.Client, Cred: httpapitest.Farm}
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ex := &builder.Exec{
		Job:     builder.Job{Name: "hello", Script: "echo hi\n", Platform: "debian-12"},
		UUID:    uuid.New(),
		Console: []builder.Line{{Delta: time.Millisecond, Data: "hi"}},
		Started: start, Finished: start.Add(time.Second),
		Result: builder.Result{Kind: builder.ResultExited},
		Output: []builder.File{{Path: "bin/hello", Data: []byte("binary")}},
	}
	der, err := ex.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := u.Upload(ctx, der, ex.UUID); err != nil {
			t.Fatalf("upload %d: %v", i+1, err)
		}
	}
	if bs, _ := srv.L.Ledger.JobBuilds("hello", ledger.BuildFilter{}); len(bs) != 1 {
		t.Fatalf("%d builds recorded", len(bs))
	}
	ex.Output[0].Data = []byte("other bytes")
	other, err := ex.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	err = u.Upload(ctx, other, ex.UUID)
	if !errors.Is(err, scheduler.ErrPermanent) {
		t.Fatalf("another build under a logged UUID: %v", err)
	}
	t.Log(err)
}

// TestLedgerUploaderProvenance: the farm's "built" claim is logged once
// however often the upload is retried, and an unregistered key is a
// refusal, not a retry forever.
func TestLedgerUploaderProvenance(t *testing.T) {
	srv := httpapitest.New(t)
	u := &scheduler.LedgerUploader{Client: srv.Client, Cred: httpapitest.Farm, Signer: srv.Key("farm", true), BuilderID: "https://farm.test/"}
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ex := &builder.Exec{
		Job: builder.Job{Name: "hello", Script: "true\n", Platform: "debian-12"}, UUID: uuid.New(),
		Started: start, Finished: start.Add(time.Second), Result: builder.Result{Kind: builder.ResultExited},
		Output: []builder.File{{Path: "bin/hello", Data: []byte("binary")}},
	}
	der, _ := ex.Marshal()
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := u.Upload(ctx, der, ex.UUID); err != nil {
			t.Fatalf("upload %d: %v", i+1, err)
		}
	}
	atts, err := srv.Client.AttestationsOfBuild(ctx, ex.UUID)
	if err != nil || len(atts) != 1 || atts[0].Verdict != ledger.VerdictBuilt || atts[0].KeyName != "farm" {
		t.Fatalf("provenance: %+v %v", atts, err)
	}
	stranger := &scheduler.LedgerUploader{Client: srv.Client, Cred: httpapitest.Farm, Signer: srv.Key("stranger", false), BuilderID: "https://farm.test/"}
	err = stranger.Upload(ctx, der, ex.UUID)
	if !errors.Is(err, scheduler.ErrPermanent) || !strings.Contains(err.Error(), "refused its provenance") {
		t.Fatalf("unregistered key: %v", err)
	}
}
