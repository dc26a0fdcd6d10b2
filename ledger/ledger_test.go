package ledger_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

var ctx = context.Background()

func d(s string) cas.Digest { return cas.Sum([]byte(s)) }
func pd(s string) *cas.Digest {
	x := d(s)
	return &x
}

// build returns a successful build of job whose inputs are named by in and
// whose main binary has content out.
func build(job, platform, in, out string, start time.Time) *ledger.BuildRecorded {
	main := "bin/" + job + ".hvt"
	return &ledger.BuildRecorded{
		Job: job, UUID: uuid.New(), Platform: platform,
		Started: start, Finished: start.Add(90 * time.Second),
		Result: ledger.Result{Kind: ledger.ResultExited},
		Script: d("script " + job), Console: d("console " + in + out),
		Inputs: ledger.Inputs{OpamSwitch: pd("switch " + in), BuildEnvironment: pd("env " + in), SystemPackages: pd("pkgs " + in)},
		Artifacts: []ledger.Artifact{
			{Path: main, SHA256: d(out), Size: int64(len(out))},
			{Path: "opam-switch", SHA256: d("switch " + in), Size: 100},
		},
		MainBinary: &main,
	}
}

func mustAppend(t testing.TB, l *ledgertest.Ledger, e ledger.Event) ledger.Receipt {
	t.Helper()
	r, err := l.Append(ctx, e)
	if err != nil {
		t.Fatalf("append %s: %v", e.Kind(), err)
	}
	return r
}

func TestBuildsAndReverseLookup(t *testing.T) {
	l := ledgertest.Open(t)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

	if _, err := l.Append(ctx, build("early", "debian-12", "a", "x", t0)); !errors.Is(err, ledger.ErrRejected) {
		t.Fatalf("build of undefined job: %v", err)
	}
	def := &ledger.JobDefined{Job: "hello", Synopsis: "hello world", Section: "Unikernels"}
	r0 := mustAppend(t, l, def)
	if again := mustAppend(t, l, def); !again.Existing || again.Index != r0.Index {
		t.Fatalf("identical job definition appended again: %+v", again)
	}
	mustAppend(t, l, &ledger.JobDefined{Job: "other"})

	b1 := build("hello", "debian-12", "in1", "bin-A", t0)
	b2 := build("hello", "debian-12", "in1", "bin-A", t0.Add(24*time.Hour))    // reproduces b1
	b3 := build("hello", "debian-12", "in1", "bin-B", t0.Add(48*time.Hour))    // same input, different output
	b4 := build("hello", "ubuntu-24.04", "in2", "bin-A", t0.Add(12*time.Hour)) // other input, same output
	failed := build("hello", "debian-12", "in3", "", t0.Add(72*time.Hour))
	failed.Result = ledger.Result{Kind: ledger.ResultSignalled, Code: 9}
	failed.Artifacts, failed.MainBinary = nil, nil
	other := build("other", "debian-12", "in9", "bin-A", t0.Add(time.Hour))
	rec := map[uuid.UUID]ledger.Receipt{}
	for _, b := range []*ledger.BuildRecorded{b1, b2, b3, b4, failed, other} {
		rec[b.UUID] = mustAppend(t, l, b)
	}
	// The identical build sent again (a retry) is answered with the
	// recorded one; another build under the same UUID is a conflict.
	if r, err := l.Append(ctx, b2); err != nil || !r.Existing || r.Index != rec[b2.UUID].Index {
		t.Fatalf("identical build again: %+v %v", r, err)
	}
	dup := *b2
	dup.Platform = "debian-13"
	if _, err := l.Append(ctx, &dup); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("duplicate UUID: %v", err)
	}

	got, err := l.Build(b3.UUID)
	if err != nil || got.Index != rec[b3.UUID].Index || got.Event.Inputs.ID() != b3.Inputs.ID() {
		t.Fatalf("Build: %+v %v", got, err)
	}
	if _, err := l.Build(uuid.New()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unknown build: %v", err)
	}

	list, err := l.JobBuilds("hello", ledger.BuildFilter{})
	if err != nil {
		t.Fatal(err)
	}
	wantOrder := []uuid.UUID{failed.UUID, b3.UUID, b2.UUID, b4.UUID, b1.UUID}
	if ids := uuids(list); !reflect.DeepEqual(ids, wantOrder) {
		t.Fatalf("job builds newest first: got %v want %v", ids, wantOrder)
	}
	deb, _ := l.JobBuilds("hello", ledger.BuildFilter{Platform: "debian-12", Skip: 1, Limit: 2})
	if ids := uuids(deb); !reflect.DeepEqual(ids, []uuid.UUID{b3.UUID, b2.UUID}) {
		t.Fatalf("filtered page: %v", ids)
	}
	fl, _ := l.FailedBuilds(ledger.BuildFilter{})
	if ids := uuids(fl); !reflect.DeepEqual(ids, []uuid.UUID{failed.UUID}) {
		t.Fatalf("failed builds: %v", ids)
	}

	hits, err := l.BuildsByArtifact(d("bin-A"))
	if err != nil {
		t.Fatal(err)
	}
	var hitIDs []uuid.UUID
	for _, h := range hits {
		hitIDs = append(hitIDs, h.UUID)
		if h.Path != "bin/"+h.Job+".hvt" || !h.MainBinary || !h.Succeeded || h.Platform == "" || h.Size != int64(len("bin-A")) {
			t.Errorf("hit %+v", h)
		}
	}
	if want := []uuid.UUID{b1.UUID, b2.UUID, b4.UUID, other.UUID}; !reflect.DeepEqual(hitIDs, want) {
		t.Fatalf("reverse lookup: got %v want %v", hitIDs, want)
	}
	if hits, _ := l.BuildsByArtifact(d("never built")); len(hits) != 0 {
		t.Fatalf("unknown hash has hits: %v", hits)
	}

	rp, err := l.ReproductionsOf(ledger.BuildEntry{Index: rec[b1.UUID].Index, Event: b1})
	if err != nil {
		t.Fatal(err)
	}
	if s, df := uuids(rp.Same), uuids(rp.Different); !reflect.DeepEqual(s, []uuid.UUID{b2.UUID}) || !reflect.DeepEqual(df, []uuid.UUID{b3.UUID}) {
		t.Fatalf("reproductions: same %v different %v", s, df)
	}
	jobs, _ := l.Jobs()
	if len(jobs) != 2 || jobs[0].Event.Job != "hello" || jobs[0].Event.Synopsis != "hello world" {
		t.Fatalf("jobs: %+v", jobs)
	}
}

func uuids(es []ledger.BuildEntry) []uuid.UUID {
	var out []uuid.UUID
	for _, e := range es {
		out = append(out, e.Event.UUID)
	}
	return out
}

func newKey(t testing.TB) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestKeysAndAttestations(t *testing.T) {
	l := ledgertest.Open(t)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	b := build("hello", "debian-12", "in", "bin", time.Now())
	bIdx := mustAppend(t, l, b).Index

	s1, s2 := ledgertest.NewSigner(t), ledgertest.NewSigner(t)
	k1, k2 := s1.Verifier().PublicKeyDER(), s2.Verifier().PublicKeyDER()
	id1 := ledger.KeyID(k1)
	mainBin := ledger.Subject{Name: *b.MainBinary, SHA256: d("bin")}
	att := func(s *attest.Signer) *ledger.AttestationRecorded {
		return ledgertest.Attest(t, l, s, ledgertest.Rebuild(b, bIdx, ledger.VerdictReproduced, mainBin))
	}
	e1 := att(s1)
	if _, err := l.Append(ctx, e1); !errors.Is(err, ledger.ErrRejected) {
		t.Fatalf("attestation by unregistered key: %v", err)
	}
	added := mustAppend(t, l, &ledger.KeyAdded{Name: "rebuilder-a", PublicKey: k1})
	if _, err := l.Append(ctx, &ledger.KeyAdded{Name: "rebuilder-a", PublicKey: k2}); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("second active key under one name: %v", err)
	}
	if _, err := l.Append(ctx, &ledger.KeyAdded{Name: "rebuilder-x", PublicKey: k1}); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("same key twice: %v", err)
	}
	missing := *e1
	missing.Envelope = d("not stored")
	if _, err := l.Append(ctx, &missing); !errors.Is(err, ledger.ErrRejected) {
		t.Fatalf("envelope missing from the store: %v", err)
	}
	a1 := mustAppend(t, l, e1)
	if again := mustAppend(t, l, e1); !again.Existing || again.Index != a1.Index {
		t.Fatalf("same envelope twice: %+v", again)
	}
	revoked := mustAppend(t, l, &ledger.KeyRevoked{KeyID: id1, Reason: "lost"})
	if _, err := l.Append(ctx, att(s1)); !errors.Is(err, ledger.ErrRejected) {
		t.Fatalf("attestation by revoked key: %v", err)
	}
	if _, err := l.Append(ctx, &ledger.KeyAdded{Name: "rebuilder-a", PublicKey: k1}); !errors.Is(err, ledger.ErrRejected) {
		t.Fatalf("re-adding a revoked key: %v", err)
	}
	if _, err := l.Append(ctx, &ledger.KeyRevoked{KeyID: id1}); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("revoking twice: %v", err)
	}
	if _, err := l.Append(ctx, &ledger.KeyRevoked{KeyID: ledger.KeyID(k2)}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("revoking an unknown key: %v", err)
	}
	mustAppend(t, l, &ledger.KeyAdded{Name: "rebuilder-a", PublicKey: k2}) // the name is free again

	for _, c := range []struct {
		at   uint64
		want ledger.KeyStatus
	}{{added.Index, ledger.KeyStatusUnknown}, {added.Index + 1, ledger.KeyStatusActive}, {a1.Index, ledger.KeyStatusActive}, {revoked.Index, ledger.KeyStatusActive}, {revoked.Index + 1, ledger.KeyStatusRevoked}, {l.Size(), ledger.KeyStatusRevoked}} {
		st, err := l.KeyState(id1, c.at)
		if err != nil || st.Status != c.want {
			t.Errorf("key state before index %d: %+v %v, want %s", c.at, st, err, c.want)
		}
	}
	st, _ := l.KeyState(id1, l.Size())
	if st.Name != "rebuilder-a" || st.AddedAt != added.Index || st.RevokedAt != revoked.Index {
		t.Errorf("key state: %+v", st)
	}
	byName, err := l.KeyByName("rebuilder-a")
	if err != nil || byName.KeyID != ledger.KeyID(k2) || byName.Status != ledger.KeyStatusActive {
		t.Errorf("key by name: %+v %v", byName, err)
	}
	atts, err := l.AttestationsFor(d("bin"))
	if err != nil || len(atts) != 1 || atts[0].Index != a1.Index || atts[0].Event.Envelope != e1.Envelope {
		t.Fatalf("attestations: %+v %v", atts, err)
	}

	// Subjects must be what the log holds, and the event what the signed
	// envelope says.
	s3 := ledgertest.NewSigner(t)
	k3 := s3.Verifier().PublicKeyDER()
	mustAppend(t, l, &ledger.KeyAdded{Name: "rebuilder-c", PublicKey: k3})
	for _, c := range []struct {
		name   string
		edit   func(rb *attest.Rebuild)
		editEv func(a *ledger.AttestationRecorded)
	}{
		{name: "subject not an artifact of the build", edit: func(rb *attest.Rebuild) { rb.Subjects[0].Name = "bin/other.hvt" }},
		{name: "reproduced with another digest", edit: func(rb *attest.Rebuild) { rb.Subjects[0].SHA256 = attest.Digest(d("elsewhere")) }},
		{name: "unknown build", edit: func(rb *attest.Rebuild) { rb.Build = uuid.New() }},
		{name: "no build, digest never built", edit: func(rb *attest.Rebuild) { rb.Subjects[0].SHA256 = attest.Digest(d("elsewhere")) },
			editEv: func(a *ledger.AttestationRecorded) { a.Build = nil }},
		{name: "no build named, though the statement attests one", editEv: func(a *ledger.AttestationRecorded) { a.Build = nil }},
		{name: "verdict not the statement's", editEv: func(a *ledger.AttestationRecorded) { a.Verdict = ledger.VerdictDiffers }},
		{name: "predicate type not the statement's", editEv: func(a *ledger.AttestationRecorded) { a.PredicateType = "https://example.com/other" }},
		{name: "signed by another registered key", editEv: func(a *ledger.AttestationRecorded) { a.KeyID = ledger.KeyID(k2) }},
		{name: "subject digest not the statement's", editEv: func(a *ledger.AttestationRecorded) {
			a.Subjects = []ledger.Subject{{Name: *b.MainBinary, SHA256: d("bin")}, {Name: "opam-switch", SHA256: d("switch in")}}
		}},
		{name: "predicate names another log index", edit: func(rb *attest.Rebuild) { rb.LogIndex++ }},
		{name: "predicate names another platform", edit: func(rb *attest.Rebuild) { rb.Platform = "arch" }},
		{name: "predicate names another script", edit: func(rb *attest.Rebuild) { rb.Inputs[0].SHA256 = attest.Digest(d("other script")) }},
	} {
		rb := ledgertest.Rebuild(b, bIdx, ledger.VerdictReproduced, mainBin)
		if c.edit != nil {
			c.edit(rb)
		}
		a := ledgertest.Attest(t, l, s3, rb)
		if c.editEv != nil {
			c.editEv(a)
		}
		if _, err := l.Append(ctx, a); !errors.Is(err, ledger.ErrRejected) {
			t.Errorf("%s: %v, want ErrRejected", c.name, err)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
	// An envelope stored as submitted (a keyid hint, not canonical) is
	// refused: the log names one canonical form.
	good := ledgertest.Attest(t, l, s3, ledgertest.Rebuild(b, bIdx, ledger.VerdictReproduced, mainBin))
	canon, err := l.Store.Bytes(ctx, good.Envelope, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	hinted, err := l.Store.PutBytes(ctx, []byte(strings.Replace(string(canon), `"keyid":""`, `"keyid":"hint"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	nonCanon := *good
	nonCanon.Envelope = hinted.Digest
	if _, err := l.Append(ctx, &nonCanon); !errors.Is(err, ledger.ErrRejected) || !strings.Contains(err.Error(), "canonical") {
		t.Errorf("non-canonical envelope: %v", err)
	}
	differs := ledgertest.Attest(t, l, s3, ledgertest.Rebuild(b, bIdx, ledger.VerdictDiffers, ledger.Subject{Name: *b.MainBinary, SHA256: d("what k3 got")}))
	dr := mustAppend(t, l, differs)
	of, err := l.AttestationsOf(b.UUID)
	if err != nil || len(of) != 2 || of[0].Index != a1.Index || of[1].Index != dr.Index {
		t.Fatalf("attestations of the build: %+v %v", of, err)
	}
	if h, err := l.Hash(d("what k3 got")); err != nil || len(h.Builds) != 0 || len(h.Attestations) != 1 {
		t.Fatalf("a disagreeing digest is findable by its hash: %+v %v", h, err)
	}
	if h, err := l.Hash(d("bin")); err != nil || len(h.Disputes) != 1 || h.Disputes[0].Index != dr.Index || len(h.Attestations) != 1 {
		t.Fatalf("the recorded digest shows the dispute: %+v %v", h, err)
	}

	keys, err := l.Keys()
	if err != nil || len(keys) != 3 {
		t.Fatalf("keys: %+v %v", keys, err)
	}
	states := map[cas.Digest]ledger.KeyStatus{}
	for _, k := range keys {
		states[k.KeyID] = k.Status
		if ledger.KeyID(k.PublicKey) != k.KeyID || k.Algorithm != "ecdsa-p256" {
			t.Errorf("key %s: public key or algorithm wrong: %+v", k.KeyID, k)
		}
	}
	if states[id1] != ledger.KeyStatusRevoked || states[ledger.KeyID(k2)] != ledger.KeyStatusActive || states[ledger.KeyID(k3)] != ledger.KeyStatusActive {
		t.Errorf("key states: %v", states)
	}
}

func TestReceiptsProve(t *testing.T) {
	l := ledgertest.Open(t)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	var cps []*ledger.Checkpoint
	for i := range 20 {
		r := mustAppend(t, l, build("hello", "debian-12", fmt.Sprint(i), "out", time.Now()))
		cp, err := ledger.OpenCheckpoint(r.Checkpoint.Note, ledgertest.Origin, l.VKey)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size <= r.Index {
			t.Fatalf("checkpoint of size %d does not cover index %d", cp.Size, r.Index)
		}
		p, err := l.Tree().InclusionProof(r.Index, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		data, err := l.EventBytes(r.Index)
		if err != nil {
			t.Fatal(err)
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(data)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.Index, cp.Size, leaf, p, cp.Hash[:]); err != nil {
			t.Fatalf("receipt %d: %v", r.Index, err)
		}
		cps = append(cps, cp)
	}
	last := cps[len(cps)-1]
	for _, cp := range cps {
		p, err := l.Tree().ConsistencyProof(cp.Size, last.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, last.Size, p, cp.Hash[:], last.Hash[:]); err != nil {
			t.Fatalf("consistency %d→%d: %v", cp.Size, last.Size, err)
		}
	}
	// A checkpoint signed by another key, or for another origin, is refused.
	_, otherV, _ := ledger.GenerateLogKey(ledgertest.Origin)
	if _, err := ledger.OpenCheckpoint(last.Note, ledgertest.Origin, otherV); !errors.Is(err, ledger.ErrBadCheckpoint) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := ledger.OpenCheckpoint(last.Note, "elsewhere", l.VKey); !errors.Is(err, ledger.ErrBadCheckpoint) {
		t.Fatalf("wrong origin: %v", err)
	}
	tampered := append([]byte(nil), last.Note...)
	tampered[len(ledgertest.Origin)+1] ^= 1 // a digit of the size
	if _, err := ledger.OpenCheckpoint(tampered, ledgertest.Origin, l.VKey); !errors.Is(err, ledger.ErrBadCheckpoint) {
		t.Fatalf("tampered: %v", err)
	}
}

// TestGroupCommit appends from 64 goroutines and checks that indices are
// unique and contiguous and that appends shared commits (fewer distinct
// checkpoints than appends).
func TestGroupCommit(t *testing.T) {
	l := ledgertest.Open(t)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	const workers, each = 64, 20
	var mu sync.Mutex
	seen := map[uint64]bool{}
	sizes := map[uint64]bool{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r, err := l.Append(ctx, build("hello", "debian-12", fmt.Sprint(w, i), "o", time.Now()))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[r.Index] {
					t.Errorf("index %d handed out twice", r.Index)
				}
				seen[r.Index] = true
				sizes[r.Checkpoint.Size] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Fatalf("%d receipts", len(seen))
	}
	for i := uint64(1); i <= workers*each; i++ {
		if !seen[i] {
			t.Fatalf("index %d missing", i)
		}
	}
	if len(sizes) >= workers*each {
		t.Fatalf("every append had its own commit (%d commits)", len(sizes))
	}
	t.Logf("%d appends in %d commits", workers*each, len(sizes))
}

func TestReopenAndReplay(t *testing.T) {
	skey, vkey, err := ledger.GenerateLogKey(ledgertest.Origin)
	if err != nil {
		t.Fatal(err)
	}
	l := ledgertest.Reopen(t, t.TempDir(), skey, vkey)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	b := build("hello", "debian-12", "in", "out", time.Now())
	mustAppend(t, l, b)
	size, cp := l.Size(), l.Checkpoint()
	dir := l.Dir
	l.Close()

	l2 := ledgertest.Reopen(t, dir, skey, vkey)
	defer l2.Close()
	if l2.Size() != size || l2.Checkpoint().Hash != cp.Hash {
		t.Fatalf("reopened at %d", l2.Size())
	}
	if _, err := l2.Build(b.UUID); err != nil {
		t.Fatal(err)
	}
	before := l2.Projections(t)
	if err := l2.Replay(ctx); err != nil {
		t.Fatal(err)
	}
	if after := l2.Projections(t); !reflect.DeepEqual(before, after) {
		t.Fatal("replay changed projections")
	}
	mustAppend(t, l2, build("hello", "debian-12", "in", "out", time.Now()))
	ledgertest.Check(t, l2)
}

// TestEntryBundles checks C2SP entry bundles against the level-0 hash tiles:
// the leaf hash of every bundled entry is the tile's hash at that position.
func TestEntryBundles(t *testing.T) {
	l := ledgertest.Open(t)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	for i := range 299 {
		mustAppend(t, l, build("hello", "debian-12", fmt.Sprint(i), "o", time.Now()))
	}
	for _, c := range []struct {
		n     uint64
		width int
	}{{0, 256}, {1, 44}, {1, 1}, {0, 7}} {
		bundle, err := l.EntryBundle(c.n, c.width)
		if err != nil {
			t.Fatal(err)
		}
		tile, err := l.Tree().Tile(0, c.n, c.width)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < c.width; i++ {
			if len(bundle) < 2 {
				t.Fatalf("bundle %d/%d truncated at entry %d", c.n, c.width, i)
			}
			n := int(bundle[0])<<8 | int(bundle[1])
			entry := bundle[2 : 2+n]
			bundle = bundle[2+n:]
			if got := rfc6962.DefaultHasher.HashLeaf(entry); string(got) != string(tile[i*32:(i+1)*32]) {
				t.Fatalf("bundle %d entry %d does not hash to the tile", c.n, i)
			}
			if _, err := ledger.Decode(entry); err != nil {
				t.Fatal(err)
			}
		}
		if len(bundle) != 0 {
			t.Fatalf("%d bytes after the last entry", len(bundle))
		}
	}
	if _, err := l.EntryBundle(1, 45); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("bundle beyond the log: %v", err)
	}
}

// TestCloseWhileAppending closes the ledger under load: every Append must
// return, either with a receipt for a durable event or with ErrClosed.
func TestCloseWhileAppending(t *testing.T) {
	skey, vkey, _ := ledger.GenerateLogKey(ledgertest.Origin)
	dir := t.TempDir()
	l := ledgertest.Reopen(t, dir, skey, vkey)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []uint64
	for w := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				r, err := l.Append(ctx, build("hello", "debian-12", fmt.Sprint(w, i), "o", time.Now()))
				if errors.Is(err, ledger.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, r.Index)
				mu.Unlock()
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	l.Ledger.Close()
	wg.Wait()
	l.DB.Close()
	l2 := ledgertest.Reopen(t, dir, skey, vkey)
	defer l2.Close()
	for _, idx := range acked {
		if _, err := l2.Event(idx); err != nil {
			t.Fatalf("acknowledged %d: %v", idx, err)
		}
	}
	ledgertest.Check(t, l2)
}

func TestDefineJob(t *testing.T) {
	l := ledgertest.Open(t)
	r, err := l.DefineJob(ctx, "fresh")
	if err != nil || r.Existing {
		t.Fatalf("first: %+v %v", r, err)
	}
	mustAppend(t, l, &ledger.JobDefined{Job: "fresh", Synopsis: "described"})
	again, err := l.DefineJob(ctx, "fresh")
	if err != nil || !again.Existing {
		t.Fatalf("second: %+v %v", again, err)
	}
	if j, _ := l.Job("fresh"); j.Event.Synopsis != "described" {
		t.Fatalf("DefineJob replaced the definition: %+v", j.Event)
	}
	// A build with several binaries and exit 0 is not failed.
	b := build("fresh", "debian-12", "x", "y", time.Now())
	b.Artifacts = append(b.Artifacts, ledger.Artifact{Path: "bin/second", SHA256: d("2"), Size: 1})
	b.MainBinary = nil
	mustAppend(t, l, b)
	if fl, _ := l.FailedBuilds(ledger.BuildFilter{}); len(fl) != 0 {
		t.Fatalf("multi-binary build listed as failed")
	}
}

// TestOpenReplaysStaleProjections fakes projections of an older layout (and
// drops one projection key): Open must notice and rebuild them.
func TestOpenReplaysStaleProjections(t *testing.T) {
	skey, vkey, _ := ledger.GenerateLogKey(ledgertest.Origin)
	dir := t.TempDir()
	l := ledgertest.Reopen(t, dir, skey, vkey)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	b := build("hello", "debian-12", "in", "out", time.Now())
	mustAppend(t, l, b)
	want := l.Projections(t)
	err := l.DB.Update(func(txn *badger.Txn) error {
		meta := make([]byte, 16)
		binary.BigEndian.PutUint64(meta, 1) // layout version 1
		binary.BigEndian.PutUint64(meta[8:], l.Size())
		if err := txn.Set([]byte("p/meta"), meta); err != nil {
			return err
		}
		return txn.Delete(append([]byte("p/b/"), b.UUID[:]...))
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l2 := ledgertest.Reopen(t, dir, skey, vkey)
	defer l2.Close()
	if got := l2.Projections(t); !reflect.DeepEqual(got, want) {
		t.Fatal("projections not rebuilt on open")
	}
	if _, err := l2.Build(b.UUID); err != nil {
		t.Fatal(err)
	}
}

// TestReplayLargeProjections replays a log whose projections do not fit in
// one badger transaction (many artifacts per build).
func TestReplayLargeProjections(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 400 large events")
	}
	l := ledgertest.Open(t)
	mustAppend(t, l, &ledger.JobDefined{Job: "big"})
	for i := range 400 {
		b := build("big", "debian-12", fmt.Sprint(i), "main", time.Now())
		for j := range 300 {
			b.Artifacts = append(b.Artifacts, ledger.Artifact{Path: fmt.Sprintf("share/doc/file-%04d", j), SHA256: d(fmt.Sprint(i, j)), Size: 1})
		}
		mustAppend(t, l, b)
	}
	// ledgertest's cleanup replays and compares every projection key.
}

// TestFailedReplayStopsAppends interrupts a replay: the ledger must refuse
// appends instead of marking half-built projections complete, and reopening
// must rebuild them.
func TestFailedReplayStopsAppends(t *testing.T) {
	skey, vkey, _ := ledger.GenerateLogKey(ledgertest.Origin)
	dir := t.TempDir()
	l := ledgertest.Reopen(t, dir, skey, vkey)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	b := build("hello", "debian-12", "in", "out", time.Now())
	mustAppend(t, l, b)
	want := l.Projections(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Replay(cctx); err == nil {
		t.Fatal("cancelled replay succeeded")
	}
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "more"}); !errors.Is(err, ledger.ErrUnavailable) {
		t.Fatalf("append after failed replay: %v", err)
	}
	l.Close()
	l2 := ledgertest.Reopen(t, dir, skey, vkey)
	defer l2.Close()
	if got := l2.Projections(t); !reflect.DeepEqual(got, want) {
		t.Fatal("reopen did not rebuild the projections")
	}
	mustAppend(t, l2, &ledger.JobDefined{Job: "more"})
}

// TestConformance runs the log backend conformance suite on the embedded
// log (ledger/trillianlog runs it on Trillian).
func TestConformance(t *testing.T) {
	ledgertest.Conformance(t, func(testing.TB) ledger.Backend { return nil })
}

// TestHashCacheInvalidation: a cached reverse lookup shows a new build of
// the same artifact, and a new attestation, as soon as they are appended.
func TestHashCacheInvalidation(t *testing.T) {
	l := ledgertest.Open(t)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	b1 := build("hello", "debian-12", "in1", "same binary", time.Now())
	b1Idx := mustAppend(t, l, b1).Index
	digest := d("same binary")
	for range 2 { // the second read comes from the cache
		if h, err := l.Hash(digest); err != nil || len(h.Builds) != 1 {
			t.Fatalf("one build: %+v %v", h, err)
		}
	}
	mustAppend(t, l, build("hello", "debian-12", "in2", "same binary", time.Now()))
	if h, err := l.Hash(digest); err != nil || len(h.Builds) != 2 {
		t.Fatalf("after a second build: %+v %v", h, err)
	}
	s := ledgertest.NewSigner(t)
	mustAppend(t, l, &ledger.KeyAdded{Name: "r", PublicKey: s.Verifier().PublicKeyDER()})
	mustAppend(t, l, ledgertest.Attest(t, l, s, ledgertest.Rebuild(b1, b1Idx, ledger.VerdictReproduced, ledger.Subject{Name: *b1.MainBinary, SHA256: digest})))
	if h, err := l.Hash(digest); err != nil || len(h.Attestations) != 1 {
		t.Fatalf("after an attestation: %+v %v", h, err)
	}
	if err := l.Replay(ctx); err != nil {
		t.Fatal(err)
	}
	if h, err := l.Hash(digest); err != nil || len(h.Builds) != 2 || len(h.Attestations) != 1 {
		t.Fatalf("after replay: %+v %v", h, err)
	}
}

// TestReplayInterrupted cancels a replay of several batches while events
// are being decoded ahead: it returns (an error, or success if it was
// done) instead of hanging, and reopening rebuilds the same projections.
func TestReplayInterrupted(t *testing.T) {
	skey, vkey, _ := ledger.GenerateLogKey(ledgertest.Origin)
	dir := t.TempDir()
	l := ledgertest.Reopen(t, dir, skey, vkey)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 200 {
				if _, err := l.Append(ctx, build("hello", "debian-12", fmt.Sprint("in", w, i), fmt.Sprint("out", w, i), time.Now())); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := l.Projections(t)
	for _, after := range []time.Duration{0, time.Millisecond, 20 * time.Millisecond} {
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(after, cancel)
		done := make(chan error, 1)
		go func() { done <- l.Replay(cctx) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatalf("a replay cancelled after %s did not return", after)
		}
		cancel()
		l.Close()
		l = ledgertest.Reopen(t, dir, skey, vkey)
		if got := l.Projections(t); !reflect.DeepEqual(got, want) {
			t.Fatalf("after a replay cancelled after %s, reopening did not rebuild the projections", after)
		}
	}
	l.Close()
}
