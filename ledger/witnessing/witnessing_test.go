package witnessing_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

// A policy met without any cosignature requires nothing: refused.
func TestParsePolicyRefusesThresholdZero(t *testing.T) {
	vk := "witness.example/one+3b8c5e2a+BHVDuQ2w6n7cEkhl9RqGtdwPmWIdyjt4gSi5U0Zu0DmT"
	if _, err := witnessing.ParsePolicy([]byte("witness one " + vk + " http://127.0.0.1:1\ngroup g 0 one\nquorum g\n")); err == nil {
		t.Fatal("a threshold of 0 was accepted")
	}
	if _, err := witnessing.ParsePolicy([]byte("witness one " + vk + " http://127.0.0.1:1\nquorum one\n")); err != nil {
		t.Fatal(err)
	}
}

// fakeWitness answers add-checkpoint with answer(old size).
func fakeWitness(t *testing.T, answer func(old uint64) (int, string)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var old uint64
		fmt.Sscanf(string(b), "old %d", &old)
		code, body := answer(old)
		w.Header().Set("Content-Type", "text/x.tlog.size")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A witness that holds another checkpoint of the same size (409 when
// asked with that size) is a split view: a SECURITY refusal. A witness
// ahead of the checkpoint because it saw a newer one of this log is not;
// ahead of the whole ledger, it is.
func TestWitnessSameSizeForkAndAhead(t *testing.T) {
	l := ledgertest.Open(t)
	grow(t, l, 3)
	size := l.Checkpoint().Size
	vk := "witness.example/one+3b8c5e2a+BHVDuQ2w6n7cEkhl9RqGtdwPmWIdyjt4gSi5U0Zu0DmT"
	cosign := func(url string) witnessing.Cosigned {
		w, err := witnessing.New(witnessing.Config{Policy: []byte("witness one " + vk + " " + url + "\nquorum one\n"), Prover: l.Tree()})
		if err != nil {
			t.Fatal(err)
		}
		return w.Cosign(ctx, l.Checkpoint())
	}
	fork := fakeWitness(t, func(old uint64) (int, string) { return http.StatusConflict, fmt.Sprint(size) })
	if c := cosign(fork); c.Quorum || !strings.Contains(strings.Join(c.Missing, ""), "SECURITY: the witness holds another checkpoint of size") {
		t.Fatalf("same-size fork: %+v", c)
	}
	cp := l.Checkpoint()
	grow(t, l, 2) // the ledger moved on; the witness saw the newer checkpoint
	ahead := fakeWitness(t, func(old uint64) (int, string) { return http.StatusConflict, fmt.Sprint(l.Size()) })
	w, _ := witnessing.New(witnessing.Config{Policy: []byte("witness one " + vk + " " + ahead + "\nquorum one\n"), Prover: l.Tree()})
	if c := w.Cosign(ctx, cp); c.Quorum || strings.Contains(strings.Join(c.Missing, ""), "SECURITY") || !strings.Contains(strings.Join(c.Missing, ""), "already has this log") {
		t.Fatalf("a witness ahead of a stale checkpoint: %+v", c)
	}
	rewound := fakeWitness(t, func(old uint64) (int, string) { return http.StatusConflict, fmt.Sprint(l.Size() + 10) })
	if c := cosign(rewound); !strings.Contains(strings.Join(c.Missing, ""), "SECURITY") {
		t.Fatalf("a witness ahead of the ledger: %+v", c)
	}
}

// A slow witness does not hold back a checkpoint whose quorum the others
// made: it is waited for only Grace more, and named as not answering.
func TestSlowWitnessDoesNotHoldBackQuorum(t *testing.T) {
	l := ledgertest.Open(t)
	grow(t, l, 3)
	fast := witnesstest.Start(t, "witness.example/fast", l.VKey)
	release := make(chan struct{})
	defer close(release)
	slow := fakeWitness(t, func(uint64) (int, string) {
		<-release // answers only when the test ends
		return http.StatusServiceUnavailable, ""
	})
	vk := "witness.example/slow+3b8c5e2a+BHVDuQ2w6n7cEkhl9RqGtdwPmWIdyjt4gSi5U0Zu0DmT"
	policy := fmt.Sprintf("witness fast %s %s\nwitness slow %s %s\ngroup g any fast slow\nquorum g\n", fast.VKey, fast.URL, vk, slow)
	w, err := witnessing.New(witnessing.Config{Policy: []byte(policy), Prover: l.Tree(), Grace: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := w.Cosign(ctx, l.Checkpoint())
	if !c.Quorum || len(c.Signed) != 1 || len(c.Missing) != 1 || !strings.Contains(c.Missing[0], "no answer within 100ms of the quorum") {
		t.Fatalf("%+v", c)
	}
}
