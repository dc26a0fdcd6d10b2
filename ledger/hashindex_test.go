package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// sharedBuild is a build whose main binary has content out, and which
// also ships that binary under a second path when twice is set.
func sharedBuild(job, in, out string, start time.Time, twice bool) *ledger.BuildRecorded {
	b := build(job, "debian-12", in, out, start)
	if twice {
		b.Artifacts = append(b.Artifacts, ledger.Artifact{Path: "copy/" + job + ".hvt", SHA256: d(out), Size: int64(len(out))})
	}
	return b
}

// TestHashPage: the pages of a digest, each at most limit hits except
// that one build's paths are never split, add up to Hash's answer, for a
// digest with more hits than the cache keeps (read from the store) and for
// one with few (served from the cache).
func TestHashPage(t *testing.T) {
	l := ledgertest.Open(t)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	for i := range 90 {
		mustAppend(t, l, sharedBuild("hello", fmt.Sprint("big", i), "popular", t0.Add(time.Duration(i)*time.Hour), i%7 == 0))
		if i%15 == 0 {
			mustAppend(t, l, sharedBuild("hello", fmt.Sprint("small", i), "rare", t0.Add(time.Duration(i)*time.Hour), i%2 == 0))
		}
	}
	for _, c := range []struct {
		digest string
		hits   int
	}{{"popular", 90 + 13}, {"rare", 6 + 3}} {
		full, err := l.Hash(d(c.digest))
		if err != nil || len(full.Builds) != c.hits {
			t.Fatalf("%s: %d hits, %v; want %d", c.digest, len(full.Builds), err, c.hits)
		}
		for _, limit := range []int{1, 2, 5, 64, 1000} {
			var got []ledger.ArtifactHit
			from, pages := uint64(0), 0
			for {
				p, next, err := l.HashPage(d(c.digest), from, limit)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				n := len(p.Builds)
				// Over the limit only by the second path of the last build.
				if n == 0 || n > limit+1 || n == limit+1 && p.Builds[n-1].Index != p.Builds[n-2].Index {
					t.Fatalf("%s limit %d: page from %d has %d hits", c.digest, limit, from, n)
				}
				got = append(got, p.Builds...)
				if next == 0 {
					break
				}
				if next <= p.Builds[n-1].Index {
					t.Fatalf("%s limit %d: next %d does not advance past %d", c.digest, limit, next, p.Builds[n-1].Index)
				}
				from = next
			}
			if !reflect.DeepEqual(got, full.Builds) {
				t.Fatalf("%s limit %d: %d pages add up to %d hits, want %d", c.digest, limit, pages, len(got), len(full.Builds))
			}
		}
	}
	if p, next, err := l.HashPage(d("popular"), l.Size(), 10); err != nil || p.Hits() != 0 || next != 0 {
		t.Fatalf("page beyond the log: %+v %d %v", p, next, err)
	}
	if _, _, err := l.HashPage(d("popular"), 0, 0); err == nil {
		t.Fatal("limit 0 accepted")
	}
}

// BenchmarkHashIndexAppend appends builds that all ship the same file
// (as identical system-packages files do) after a history of h such
// builds: the time per append must not grow with h. When a digest's index
// was one value rewritten on every append it grew linearly.
func BenchmarkHashIndexAppend(b *testing.B) {
	for _, history := range []int{0, 2000, 8000} {
		b.Run(fmt.Sprintf("history=%d", history), func(b *testing.B) {
			l := ledgertest.Open(b)
			mustAppend(b, l, &ledger.JobDefined{Job: "daily"})
			shared := cas.Sum([]byte("system-packages"))
			mk := func() *ledger.BuildRecorded {
				id := uuid.New()
				bd := build("daily", "debian-12", id.String(), id.String(), time.Now())
				bd.Artifacts = append(bd.Artifacts, ledger.Artifact{Path: "system-packages", SHA256: shared, Size: 4096})
				return bd
			}
			appendN(b, l, history, mk)
			b.ResetTimer()
			appendN(b, l, b.N, mk)
			b.StopTimer()
			if h, _, err := l.HashPage(shared, 0, 1); err != nil || len(h.Builds) != 1 {
				b.Fatalf("lookup: %+v %v", h, err)
			}
		})
	}
}

// appendN appends n builds made by mk from 64 goroutines, so they share
// group commits as a busy farm's uploads do.
func appendN(tb testing.TB, l *ledgertest.Ledger, n int, mk func() *ledger.BuildRecorded) {
	var wg sync.WaitGroup
	work := make(chan struct{})
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if _, err := l.Append(ctx, mk()); err != nil {
					tb.Error(err)
				}
			}
		}()
	}
	for range n {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
}

// BenchmarkHashLookup looks up the main binary digests of 100,000 recorded
// builds in random order, more than the lookup cache holds, so part of the
// lookups read the hash index from the store (a seek and a short scan).
func BenchmarkHashLookup(b *testing.B) {
	l := ledgertest.Open(b)
	mustAppend(b, l, &ledger.JobDefined{Job: "bench"})
	const n = 100_000
	var digests []cas.Digest
	var mu sync.Mutex
	appendN(b, l, n, func() *ledger.BuildRecorded {
		id := uuid.New()
		bd := build("bench", "debian-12", id.String(), id.String(), time.Now())
		mu.Lock()
		digests = append(digests, bd.Artifacts[0].SHA256)
		mu.Unlock()
		return bd
	})
	rnd := rand.New(rand.NewPCG(1, 1))
	b.ResetTimer()
	for range b.N {
		h, err := l.Hash(digests[rnd.IntN(n)])
		if err != nil || len(h.Builds) != 1 {
			b.Fatalf("%+v %v", h, err)
		}
	}
}

// TestDigestHead: the one-read answers (Hash, the first page, the newest
// build) agree with a scan of the hash index (HashPage from index 1) for
// digests with 1 to 40 entries — across the head's limit of 16 — of
// builds (some with the digest under two paths, filed out of path order),
// attestations naming it and disputes of it, before and after a replay.
func TestDigestHead(t *testing.T) {
	l := ledgertest.Open(t)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	s := ledgertest.NewSigner(t)
	mustAppend(t, l, &ledger.KeyAdded{Name: "rebuilder", PublicKey: s.Verifier().PublicKeyDER()})
	rnd := rand.New(rand.NewPCG(3, 4))
	counts := []int{1, 2, 15, 16, 17, 40}
	for i := range 40 {
		for _, n := range counts {
			if i >= n {
				continue
			}
			out := fmt.Sprint("out-", n)
			// Starts out of log order, so the newest is not the last.
			b := sharedBuild("hello", fmt.Sprint("in-", n, "-", i), out, t0.Add(time.Duration(rnd.IntN(30))*time.Hour), i%5 == 3)
			if i%5 == 3 {
				// The second path sorts before the first.
				b.Artifacts[len(b.Artifacts)-1].Path = "a-copy.hvt"
			}
			idx := mustAppend(t, l, b).Index
			switch i % 4 {
			case 1:
				mustAppend(t, l, ledgertest.Attest(t, l, s, ledgertest.Rebuild(b, idx, ledger.VerdictReproduced, ledger.Subject{Name: *b.MainBinary, SHA256: d(out)})))
			case 2:
				mustAppend(t, l, ledgertest.Attest(t, l, s, ledgertest.Rebuild(b, idx, ledger.VerdictDiffers, ledger.Subject{Name: *b.MainBinary, SHA256: d(fmt.Sprint("other-", n, "-", i))})))
			}
		}
	}
	check := func(when string) {
		for _, n := range counts {
			dg := d(fmt.Sprint("out-", n))
			// Every read below comes from the store, not from the cache.
			fresh := func() *ledgertest.Ledger { l.PurgeHashCache(); return l }
			scan, next, err := fresh().HashPage(dg, 1, 100000)
			if err != nil || next != 0 || len(scan.Builds) < n {
				t.Fatalf("%s: scan of %d builds: %d builds, next %d, %v", when, n, len(scan.Builds), next, err)
			}
			full, err := fresh().Hash(dg)
			if err != nil || !reflect.DeepEqual(full, scan) {
				t.Fatalf("%s: %d builds: Hash differs from the scan:\n%+v\n%+v (%v)", when, n, full, scan, err)
			}
			for _, limit := range []int{1, 3, 1000} {
				first, _, err := fresh().HashPage(dg, 0, limit)
				want, _, _ := fresh().HashPage(dg, 1, limit)
				if err != nil || !reflect.DeepEqual(first, want) {
					t.Fatalf("%s: %d builds: first page of %d differs:\n%+v\n%+v (%v)", when, n, limit, first, want, err)
				}
			}
			newest := scan.Builds[0]
			for _, h := range scan.Builds {
				if h.Started.After(newest.Started) || h.Started.Equal(newest.Started) && h.Index > newest.Index {
					newest = h
				}
			}
			got, err := fresh().NewestBuildWith(dg)
			if err != nil || got.Index != newest.Index || got.UUID != newest.UUID {
				t.Fatalf("%s: %d builds: newest %+v %v, want %+v", when, n, got, err, newest)
			}
		}
		if _, err := l.NewestBuildWith(d("never built")); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("%s: unknown digest: %v", when, err)
		}
	}
	check("appended")
	if err := l.Replay(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("replayed")
}
