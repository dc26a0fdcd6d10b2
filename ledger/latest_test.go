package ledger_test

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// TestLatestBuild records builds of two jobs on four platforms (one name a
// prefix of another) in random order, with equal start times, failures and
// successes without a main binary, and checks the latest-build
// projections and the paged, filtered lists against a plain filter of the
// full list: the first build JobBuilds lists is the latest one.
func TestLatestBuild(t *testing.T) {
	l := ledgertest.Open(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	jobs, platforms := []string{"hello", "web"}, []string{"debian-12", "debian-12-arm64", "freebsd-14", "ubuntu-24.04"} // one a prefix of another
	for _, j := range jobs {
		mustAppend(t, l, &ledger.JobDefined{Job: j})
	}
	if _, err := l.LatestBuild("hello", "", false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no builds yet: %v", err)
	}
	for i := range 60 {
		// Only 8 distinct start times: many builds tie.
		b := build(jobs[rnd.IntN(2)], platforms[rnd.IntN(len(platforms))], fmt.Sprint("in", i), fmt.Sprint("out", i), t0.Add(time.Duration(rnd.IntN(8))*time.Hour))
		switch rnd.IntN(4) {
		case 0:
			b.Result = ledger.Result{Kind: ledger.ResultExited, Code: 2}
		case 1:
			b.MainBinary = nil // exited 0, but not builder-web's "successful"
		}
		if i == 59 { // "web" on freebsd-14 only ever failed
			b.Job, b.Platform, b.Result = "web", "freebsd-13", ledger.Result{Kind: ledger.ResultSignalled, Code: 9}
		}
		mustAppend(t, l, b)
	}
	ok := func(b ledger.BuildEntry) bool { return b.Event.Succeeded() && b.Event.MainBinary != nil }
	for _, j := range jobs {
		all, err := l.JobBuilds(j, ledger.BuildFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			if a.Event.Started.Before(b.Event.Started) || a.Event.Started.Equal(b.Event.Started) && a.Index < b.Index {
				t.Fatalf("%s: build %d listed before %d", j, a.Index, b.Index)
			}
		}
		for _, successful := range []bool{false, true} {
			var want []ledger.BuildEntry // newest per platform, by platform
			for _, p := range []string{"debian-12", "debian-12-arm64", "freebsd-13", "freebsd-14", "ubuntu-24.04"} {
				var list []ledger.BuildEntry
				for _, b := range all {
					if b.Event.Platform == p && (!successful || ok(b)) {
						list = append(list, b)
					}
				}
				got, err := l.LatestBuild(j, p, successful)
				if len(list) == 0 {
					if !errors.Is(err, fs.ErrNotExist) {
						t.Fatalf("%s on %s (successful %v): no build, got %v %v", j, p, successful, got.Index, err)
					}
					continue
				}
				if err != nil || got.Index != list[0].Index {
					t.Fatalf("%s on %s (successful %v): latest %d %v, want %d", j, p, successful, got.Index, err, list[0].Index)
				}
				want = append(want, list[0])
			}
			got, err := l.LatestBuilds(j, successful)
			if err != nil || !reflect.DeepEqual(indices(got), indices(want)) {
				t.Fatalf("%s: latest per platform (successful %v): %v %v, want %v", j, successful, indices(got), err, indices(want))
			}
			var any ledger.BuildEntry
			for _, b := range all {
				if !successful || ok(b) {
					any = b
					break
				}
			}
			if got, err := l.LatestBuild(j, "", successful); err != nil || got.Index != any.Index {
				t.Fatalf("%s on any platform (successful %v): %d %v, want %d", j, successful, got.Index, err, any.Index)
			}
		}
		// Pages of a platform's builds are slices of the filtered list.
		for _, p := range platforms {
			var list []ledger.BuildEntry
			for _, b := range all {
				if b.Event.Platform == p {
					list = append(list, b)
				}
			}
			for skip := 0; skip <= len(list)+1; skip++ {
				for _, limit := range []int{0, 1, 3} {
					got, err := l.JobBuilds(j, ledger.BuildFilter{Platform: p, Skip: skip, Limit: limit})
					want := list[min(skip, len(list)):]
					if limit > 0 {
						want = want[:min(limit, len(want))]
					}
					if err != nil || !reflect.DeepEqual(indices(got), indices(want)) {
						t.Fatalf("%s on %s skip %d limit %d: %v %v, want %v", j, p, skip, limit, indices(got), err, indices(want))
					}
				}
			}
		}
	}
	if _, err := l.LatestBuild("web", "freebsd-13", true); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("only a failed build: %v", err)
	}
	if got, _ := l.LatestBuilds("nosuchjob", false); len(got) != 0 {
		t.Fatalf("unknown job: %v", indices(got))
	}
	failed, err := l.FailedBuilds(ledger.BuildFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range platforms {
		var want []ledger.BuildEntry
		for _, b := range failed {
			if b.Event.Platform == p {
				want = append(want, b)
			}
		}
		got, err := l.FailedBuilds(ledger.BuildFilter{Platform: p, Skip: 1, Limit: 2})
		want = want[min(1, len(want)):]
		want = want[:min(2, len(want))]
		if err != nil || !reflect.DeepEqual(indices(got), indices(want)) {
			t.Fatalf("failed on %s: %v %v, want %v", p, indices(got), err, indices(want))
		}
	}
}

// TestLatestBuildTies: of two builds with the same start time, the later
// log entry is the latest, and JobBuilds lists it first.
func TestLatestBuildTies(t *testing.T) {
	l := ledgertest.Open(t)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	first := mustAppend(t, l, build("hello", "debian-12", "a", "x", t0))
	second := mustAppend(t, l, build("hello", "debian-12", "b", "y", t0))
	mustAppend(t, l, build("hello", "debian-12", "c", "z", t0.Add(-time.Hour)))
	got, err := l.LatestBuild("hello", "debian-12", true)
	if err != nil || got.Index != second.Index {
		t.Fatalf("latest: %d %v, want %d", got.Index, err, second.Index)
	}
	all, _ := l.JobBuilds("hello", ledger.BuildFilter{})
	if len(all) != 3 || all[0].Index != second.Index || all[1].Index != first.Index {
		t.Fatalf("order: %v", indices(all))
	}
}

func indices(es []ledger.BuildEntry) []uint64 {
	out := []uint64{}
	for _, e := range es {
		out = append(out, e.Index)
	}
	return out
}

// TestNeighbours checks Neighbours against the full per-platform lists:
// the previous and next builds, and the previous successful build with
// another main binary.
func TestNeighbours(t *testing.T) {
	l := ledgertest.Open(t)
	rnd := rand.New(rand.NewPCG(3, 4))
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	mustAppend(t, l, &ledger.JobDefined{Job: "hello"})
	for i := range 50 {
		b := build("hello", []string{"debian-12", "freebsd-14"}[rnd.IntN(2)], fmt.Sprint("in", i), fmt.Sprint("out", rnd.IntN(3)), t0.Add(time.Duration(rnd.IntN(10))*time.Hour))
		if rnd.IntN(5) == 0 {
			b.Result = ledger.Result{Kind: ledger.ResultExited, Code: 1}
		}
		mustAppend(t, l, b)
	}
	mainOf := func(b *ledger.BuildRecorded) string {
		if b.MainBinary == nil {
			return ""
		}
		a, _ := b.Artifact(*b.MainBinary)
		return a.SHA256.String()
	}
	idx := func(e *ledger.BuildEntry) int64 {
		if e == nil {
			return -1
		}
		return int64(e.Index)
	}
	var others int
	for _, p := range []string{"debian-12", "freebsd-14"} {
		all, err := l.JobBuilds("hello", ledger.BuildFilter{Platform: p})
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range all {
			n, err := l.Neighbours(b)
			if err != nil {
				t.Fatal(err)
			}
			var prev, next, other, okPrev *ledger.BuildEntry
			if i+1 < len(all) {
				prev = &all[i+1]
			}
			for j := i + 1; j < len(all); j++ {
				if all[j].Event.Succeeded() {
					okPrev = &all[j]
					break
				}
			}
			if i > 0 {
				next = &all[i-1]
			}
			for j := i + 1; j < len(all) && mainOf(b.Event) != ""; j++ {
				if all[j].Event.Succeeded() && mainOf(all[j].Event) != "" && mainOf(all[j].Event) != mainOf(b.Event) {
					other = &all[j]
					others++
					break
				}
			}
			if idx(n.PreviousSucceeded) != idx(okPrev) {
				t.Fatalf("%s build %d: previous successful %d, want %d", p, b.Index, idx(n.PreviousSucceeded), idx(okPrev))
			}
			if idx(n.Previous) != idx(prev) || idx(n.Next) != idx(next) || idx(n.PreviousOtherMain) != idx(other) {
				t.Fatalf("%s build %d: got prev %d next %d other %d, want %d %d %d", p, b.Index,
					idx(n.Previous), idx(n.Next), idx(n.PreviousOtherMain), idx(prev), idx(next), idx(other))
			}
		}
	}
	if others < 10 {
		t.Fatalf("only %d builds have an earlier build with another main binary: the test proves little", others)
	}
}
