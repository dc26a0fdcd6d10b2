package ledger

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/buildledger/buildledger/cas"
	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
)

// TestHashInfoPage: cutting a cached answer with builds, attestations and
// disputes into pages keeps log order across the three lists, never splits
// one log entry's hits, and the pages add up to the whole.
func TestHashInfoPage(t *testing.T) {
	att := func(i uint64) Entry[*AttestationRecorded] { return Entry[*AttestationRecorded]{Index: i} }
	full := HashInfo{
		Builds:       []ArtifactHit{{Index: 2, Path: "a"}, {Index: 2, Path: "b"}, {Index: 5}, {Index: 9}},
		Attestations: []Entry[*AttestationRecorded]{att(3), att(7), att(12)},
		Disputes:     []Entry[*AttestationRecorded]{att(7), att(11)},
	}
	wantOrder := []uint64{2, 2, 3, 5, 7, 7, 9, 11, 12}
	for limit := 1; limit <= 10; limit++ {
		var all HashInfo
		var order []uint64
		from := uint64(0)
		for {
			p, next := full.page(from, limit)
			var idx []uint64
			for _, b := range p.Builds {
				idx = append(idx, b.Index)
			}
			for _, a := range append(append([]Entry[*AttestationRecorded]{}, p.Attestations...), p.Disputes...) {
				idx = append(idx, a.Index)
			}
			for _, i := range idx {
				if i < from || next != 0 && i >= next {
					t.Fatalf("limit %d: page from %d (next %d) holds index %d", limit, from, next, i)
				}
			}
			// Past the limit only with the hits of the page's last entry.
			last, before := slices.Max(idx), 0
			for _, i := range idx {
				if i < last {
					before++
				}
			}
			if p.Hits() == 0 || p.Hits() > limit && before >= limit {
				t.Fatalf("limit %d: page from %d has %d hits", limit, from, p.Hits())
			}
			all.Builds = append(all.Builds, p.Builds...)
			all.Attestations = append(all.Attestations, p.Attestations...)
			all.Disputes = append(all.Disputes, p.Disputes...)
			slices.Sort(idx)
			order = append(order, idx...)
			if next == 0 {
				break
			}
			from = next
		}
		if !reflect.DeepEqual(all, full) || !reflect.DeepEqual(order, wantOrder) {
			t.Fatalf("limit %d: pages give %+v in order %v", limit, all, order)
		}
	}
	if p, next := full.page(13, 5); p.Hits() != 0 || next != 0 {
		t.Fatalf("past the end: %+v %d", p, next)
	}
}

// FuzzDigestHead: any stored value either parses or is refused as corrupt,
// never panics, and what parses writes back to a value that parses to the
// same head.
func FuzzDigestHead(f *testing.F) {
	h := digestHead{flags: headNewest, newest: make([]byte, orderLen), last: 7,
		entries: []headEntry{{index: 3, kind: hashArtifact, path: "bin/x", value: []byte("v")}, {index: 7, kind: hashSubject}}}
	f.Add(h.encode())
	h.flags |= headOverflow
	f.Add(h.encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		h, err := parseHead(v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		again, err := parseHead(h.encode())
		if err != nil || !reflect.DeepEqual(again, h) {
			t.Fatalf("%+v written back parses as %+v, %v", h, again, err)
		}
	})
}

// TestReplayRebuildsHeads: the digest heads a replay writes (skipping the
// reads of digests it has not filed yet) are byte for byte those the
// appends wrote, for digests with 1 to 30 entries.
func TestReplayRebuildsHeads(t *testing.T) {
	l := openInternal(t)
	ctx := context.Background()
	if _, err := l.Append(ctx, &JobDefined{Job: "hello"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range 30 {
		for _, n := range []int{1, 2, 16, 17, 30} {
			if i >= n {
				continue
			}
			main := "bin/hello.hvt"
			out := cas.Sum(fmt.Appendf(nil, "out %d", n))
			b := &BuildRecorded{Job: "hello", UUID: uuid.New(), Platform: "debian-12",
				Started: t0.Add(time.Duration((i*7)%11) * time.Hour), Finished: t0.Add(time.Duration((i*7)%11)*time.Hour + time.Minute),
				Result:     Result{Kind: ResultExited},
				Artifacts:  []Artifact{{Path: main, SHA256: out, Size: 5}, {Path: "opam-switch", SHA256: cas.Sum(fmt.Appendf(nil, "switch %d %d", n, i)), Size: 9}},
				MainBinary: &main}
			if _, err := l.Append(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	heads := func() map[string]string {
		m := map[string]string{}
		err := l.db.View(func(txn *badger.Txn) error {
			return scan(txn, pHashHd, func(k, v []byte) (bool, error) {
				m[string(k)] = string(v)
				return true, nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	before := heads()
	if err := l.Replay(ctx); err != nil {
		t.Fatal(err)
	}
	if after := heads(); !reflect.DeepEqual(before, after) || len(before) != 5+66 {
		t.Fatalf("%d heads appended, %d replayed (equal: %v)", len(before), len(after), reflect.DeepEqual(before, after))
	}
}

// TestDigestFilter: a digest added is always held; of digests never added
// few are.
func TestDigestFilter(t *testing.T) {
	f := newDigestFilter()
	for i := range 100_000 {
		f.add(cas.Sum(fmt.Appendf(nil, "in %d", i)))
	}
	wrong := 0
	for i := range 100_000 {
		if !f.has(cas.Sum(fmt.Appendf(nil, "in %d", i))) {
			t.Fatalf("digest %d added but not held", i)
		}
		if f.has(cas.Sum(fmt.Appendf(nil, "out %d", i))) {
			wrong++
		}
	}
	if wrong > 10 {
		t.Fatalf("%d of 100,000 digests never added are held", wrong)
	}
}
