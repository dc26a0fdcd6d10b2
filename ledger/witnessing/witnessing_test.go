package witnessing_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/internal/witnesstest"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/ledgertest"
	"github.com/buildledger/buildledger/ledger/witnessing"
)

var ctx = context.Background()

func grow(t *testing.T, l *ledgertest.Ledger, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(ctx, &ledger.JobDefined{Job: fmt.Sprintf("job-%d-%d", l.Size(), i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWitnessingWithLitewitness: real litewitnesses cosign the ledger's
// checkpoints (the first, later ones through consistency proofs, again
// after a restart of the ledger's side through their 409), the cosigned
// checkpoint still verifies with the log key and its cosignatures with
// transparency-dev's verifiers; a quorum of 2 with one witness down is not
// met; a forked ledger under the same key is refused.
func TestWitnessingWithLitewitness(t *testing.T) {
	l := ledgertest.Open(t)
	grow(t, l, 3)
	w1 := witnesstest.Start(t, "witness.example/one", l.VKey)
	w2 := witnesstest.Start(t, "witness.example/two", l.VKey)
	policy := fmt.Sprintf("witness one %s %s\nwitness two %s %s\ngroup both all one two\nquorum both\n", w1.VKey, w1.URL, w2.VKey, w2.URL)
	w, err := witnessing.New(witnessing.Config{Policy: []byte(policy), Prover: l.Tree()})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, want bool) witnessing.Cosigned {
		t.Helper()
		c := w.Cosign(ctx, l.Checkpoint())
		if c.Quorum != want {
			t.Fatalf("%s: quorum %v, signed by %v, missing %v", what, c.Quorum, c.Signed, c.Missing)
		}
		if _, err := checkpoint.Open(c.Note, ledgertest.Origin, l.VKey); err != nil {
			t.Fatalf("%s: the cosigned checkpoint no longer verifies with the log key: %v", what, err)
		}
		return c
	}
	c := check("first checkpoint", true)
	for _, vk := range []string{w1.VKey, w2.VKey} {
		v, err := fnote.NewVerifierForCosignatureV1(vk)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := note.Open(c.Note, note.VerifierList(v)); err != nil {
			t.Fatalf("cosignature of %s: %v", v.Name(), err)
		}
	}
	grow(t, l, 5)
	check("a later checkpoint (consistency proof)", true)
	grow(t, l, 2)
	// A new instance knows no witness's size: each answers 409 with its
	// own, and is asked again with a proof from there.
	w, err = witnessing.New(witnessing.Config{Policy: []byte(policy), Prover: l.Tree()})
	if err != nil {
		t.Fatal(err)
	}
	check("after a restart", true)
	if got := w.Latest(); got.Size != l.Checkpoint().Size || !got.Quorum {
		t.Fatalf("latest: %+v", got)
	}

	// One witness unreachable: "all" of two is not met.
	down := fmt.Sprintf("witness one %s %s\nwitness two %s http://127.0.0.1:1\ngroup both all one two\nquorum both\n", w1.VKey, w1.URL, w2.VKey)
	wd, err := witnessing.New(witnessing.Config{Policy: []byte(down), Prover: l.Tree()})
	if err != nil {
		t.Fatal(err)
	}
	if c := wd.Cosign(ctx, l.Checkpoint()); c.Quorum || len(c.Signed) != 1 || len(c.Missing) != 1 {
		t.Fatalf("one witness down: %+v", c)
	}

	// A fork: another history under the same key, larger than what the
	// witnesses saw. They refuse it.
	forked := ledgertest.Reopen(t, t.TempDir(), l.SKey, l.VKey)
	defer forked.Close()
	grow(t, forked, int(l.Size())+4)
	wf, err := witnessing.New(witnessing.Config{Policy: []byte(policy), Prover: forked.Tree()})
	if err != nil {
		t.Fatal(err)
	}
	c = wf.Cosign(ctx, forked.Checkpoint())
	if c.Quorum || len(c.Signed) != 0 || !strings.Contains(strings.Join(c.Missing, "\n"), "SECURITY") {
		t.Fatalf("a forked log: %+v", c)
	}
}
