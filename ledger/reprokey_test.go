package ledger_test

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// hostBuild is a successful build of job on one host: the host's
// build-environment and system-packages, no opam-switch (as for jobs that
// do not use opam), the job's own script, and a main binary with content
// out.
func hostBuild(job, out string, start time.Time) *ledger.BuildRecorded {
	b := build(job, "debian-12", "host", out, start)
	b.Inputs = ledger.Inputs{BuildEnvironment: pd("env of host"), SystemPackages: pd("pkgs of host")}
	b.Script = d("script of " + job)
	return b
}

// twoJobs records the scenario: builds of "web" and "hello-txt" on
// the same host, without opam-switch, whose input_id (builder-web's, over
// the three input digests) is the same.
func twoJobs(t *testing.T, l *ledgertest.Ledger) (web, hello ledger.BuildEntry) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, j := range []string{"web", "hello-txt"} {
		mustAppend(t, l, &ledger.JobDefined{Job: j})
	}
	w, h := hostBuild("web", "web binary", t0), hostBuild("hello-txt", "hello binary", t0.Add(time.Hour))
	if w.Inputs.ID() != h.Inputs.ID() {
		t.Fatal("the scenario needs equal input ids")
	}
	rw, rh := mustAppend(t, l, w), mustAppend(t, l, h)
	return ledger.BuildEntry{Index: rw.Index, Event: w}, ledger.BuildEntry{Index: rh.Index, Event: h}
}

// TestReproductionsDifferentScripts: builds of two jobs with different
// scripts are never "same inputs, different output", though builder-web's
// input_id of both is the same (and stays visible in the events).
func TestReproductionsDifferentScripts(t *testing.T) {
	l := ledgertest.Open(t)
	web, hello := twoJobs(t, l)
	for _, b := range []ledger.BuildEntry{web, hello} {
		rp, err := l.ReproductionsOf(b)
		if err != nil || len(rp.Same)+len(rp.Different) != 0 {
			t.Fatalf("%s: same %v different %v %v", b.Event.Job, uuids(rp.Same), uuids(rp.Different), err)
		}
		got, err := l.Build(b.Event.UUID)
		if err != nil || got.Event.InputID != b.Event.Inputs.ID() {
			t.Fatalf("input_id of %s: %v %v", b.Event.Job, got.Event.InputID, err)
		}
	}
}

// TestReproductions: what is compared and what is not.
func TestReproductions(t *testing.T) {
	l := ledgertest.Open(t)
	web, _ := twoJobs(t, l)
	t0 := web.Event.Started
	rec := func(b *ledger.BuildRecorded) ledger.BuildEntry {
		return ledger.BuildEntry{Index: mustAppend(t, l, b).Index, Event: b}
	}
	// A genuine same-input pair, and one that reproduced web's binary.
	differs := rec(hostBuild("web", "other web binary", t0.Add(24*time.Hour)))
	same := rec(hostBuild("web", "web binary", t0.Add(48*time.Hour)))
	// Another job running the same script in the same environment is the
	// same build (the job name is a label, not an input).
	mustAppend(t, l, &ledger.JobDefined{Job: "web-mirror"})
	mb := hostBuild("web-mirror", "web binary", t0.Add(72*time.Hour))
	mb.Script = web.Event.Script
	mirror := rec(mb)
	// Not compared: a recorded opam-switch, even one whose digest is 32
	// zero bytes (what input_id counts a missing file as); a failed build;
	// a build recording no input file.
	zs := hostBuild("web", "zero switch binary", t0.Add(96*time.Hour))
	zs.Inputs.OpamSwitch = &cas.Digest{}
	zero := rec(zs)
	fb := hostBuild("web", "", t0.Add(120*time.Hour))
	fb.Result, fb.Artifacts, fb.MainBinary = ledger.Result{Kind: ledger.ResultExited, Code: 1}, nil, nil
	failed := rec(fb)
	nb := hostBuild("web", "no inputs binary", t0.Add(144*time.Hour))
	nb.Inputs = ledger.Inputs{}
	none := rec(nb)

	if k1, _ := ledger.ReproKey(web.Event); k1 == web.Event.Inputs.ID() {
		t.Fatal("the reproducibility key is builder-web's input_id")
	}
	for _, c := range []struct {
		name       string
		b          ledger.BuildEntry
		same, diff []uuid.UUID
	}{
		{"web", web, []uuid.UUID{same.Event.UUID, mirror.Event.UUID}, []uuid.UUID{differs.Event.UUID}},
		{"differs", differs, nil, []uuid.UUID{web.Event.UUID, same.Event.UUID, mirror.Event.UUID}},
		{"mirror", mirror, []uuid.UUID{web.Event.UUID, same.Event.UUID}, []uuid.UUID{differs.Event.UUID}},
		{"zero switch", zero, nil, nil},
		{"failed", failed, nil, nil},
		{"no inputs", none, nil, nil},
	} {
		rp, err := l.ReproductionsOf(c.b)
		if err != nil {
			t.Fatal(err)
		}
		if s, df := uuids(rp.Same), uuids(rp.Different); !equalIDs(s, c.same) || !equalIDs(df, c.diff) {
			t.Errorf("%s: same %v different %v, want %v and %v", c.name, s, df, c.same, c.diff)
		}
	}
}

func equalIDs(a, b []uuid.UUID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestReproKeyOldLogReplays: a store whose projections were written by the
// previous layout (input id → builds, version 8) replays on open and then
// answers with the corrected comparison.
func TestReproKeyOldLogReplays(t *testing.T) {
	skey, vkey, _ := ledger.GenerateLogKey(ledgertest.Origin)
	dir := t.TempDir()
	l := ledgertest.Reopen(t, dir, skey, vkey)
	web, hello := twoJobs(t, l)
	err := l.DB.Update(func(txn *badger.Txn) error {
		meta := make([]byte, 16)
		binary.BigEndian.PutUint64(meta, 8)
		binary.BigEndian.PutUint64(meta[8:], l.Size())
		if err := txn.Set([]byte("p/meta"), meta); err != nil {
			return err
		}
		for _, b := range []ledger.BuildEntry{web, hello} { // what version 8 wrote
			id := b.Event.Inputs.ID()
			if err := txn.Set(binary.BigEndian.AppendUint64(append([]byte("p/i/"), id[:]...), b.Index), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l2 := ledgertest.Reopen(t, dir, skey, vkey)
	defer l2.Close()
	rp, err := l2.ReproductionsOf(web)
	if err != nil || len(rp.Different) != 0 {
		t.Fatalf("after replay: different %v %v", uuids(rp.Different), err)
	}
	ledgertest.Check(t, l2)
}

// TestReproductionsBounded: a build whose inputs 300 builds share is
// compared with the newest 256 of them, and More says there are older ones.
func TestReproductionsBounded(t *testing.T) {
	l := ledgertest.Open(t)
	mustAppend(t, l, &ledger.JobDefined{Job: "web"})
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var n atomic.Int64
	appendN(t, l, 300, func() *ledger.BuildRecorded {
		i := n.Add(1)
		return hostBuild("web", fmt.Sprint("binary ", i%2), t0.Add(time.Duration(i)*time.Minute))
	})
	all, err := l.JobBuilds("web", ledger.BuildFilter{})
	if err != nil || len(all) != 300 {
		t.Fatalf("%d builds, %v", len(all), err)
	}
	newest := all[0] // the highest log index (builds are at 1…300)
	for _, b := range all {
		if b.Index > newest.Index {
			newest = b
		}
	}
	rp, err := l.ReproductionsOf(newest)
	if err != nil {
		t.Fatal(err)
	}
	got := append(append([]ledger.BuildEntry{}, rp.Same...), rp.Different...)
	if len(got) != 255 || !rp.More {
		t.Fatalf("compared with %d builds (more: %v), want the newest 255 others", len(got), rp.More)
	}
	oldestCompared := newest.Index - 255
	for _, b := range got {
		if b.Index < oldestCompared {
			t.Fatalf("build at %d compared, older than the newest 256 (from %d)", b.Index, oldestCompared)
		}
	}
	for _, list := range [][]ledger.BuildEntry{rp.Same, rp.Different} {
		for i := 1; i < len(list); i++ {
			if list[i-1].Index >= list[i].Index {
				t.Fatal("not oldest first")
			}
		}
	}
}
