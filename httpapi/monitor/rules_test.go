package monitor_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/monitor"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/event"
)

func stepOnce(t *testing.T, m *monitor.Monitor) (*monitor.Result, error) {
	t.Helper()
	return m.Step(ctx)
}

func monitorOf(t *testing.T, c *craftedLog, dbdir string) (*monitor.Monitor, func()) {
	t.Helper()
	cl, err := httpapi.NewClient(c.URL, c.vkey, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := kv.Open(dbdir, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return monitor.New(monitor.Config{Client: cl, DB: db, Chunk: 4, Blobs: monitor.BlobsAll}), func() { db.Close() }
}

func jobs(c *craftedLog, prefix string, n int) {
	for i := range n {
		c.add(&event.JobDefined{Job: prefix + string(rune('a'+i))})
	}
}

// A monitor stopped mid-way is shown a forked checkpoint of size exactly
// where its range stopped: refused.
func TestMonitorRefusesForkAtRangeEnd(t *testing.T) {
	skey, vkey, _ := ledger.GenerateLogKey(craftedOrigin)
	a := newCraftedLogKey(t, skey, vkey)
	b := newCraftedLogKey(t, skey, vkey)
	jobs(a, "p", 4)
	jobs(b, "p", 4)
	dir := t.TempDir()
	m, done := monitorOf(t, a, dir)
	if res, err := stepOnce(t, m); err != nil || res.To != 4 {
		t.Fatal(res, err)
	}
	jobs(a, "q", 8) // honest log now 12
	if res, err := stepOnce(t, m); err != nil || res.To != 8 || res.Checkpoint.Size != 12 {
		t.Fatal(res, err)
	}
	done()             // the monitor stops (Ctrl-C, crash, a network error in the next step)
	jobs(b, "fork", 4) // fork of size 8, sharing the first 4 entries
	m, done = monitorOf(t, b, dir)
	defer done()
	res, err := stepOnce(t, m)
	if err == nil {
		t.Errorf("forked checkpoint of size 8 accepted: %+v (root %x), the verified entries 0..7 hash to another root", res, res.Checkpoint.Hash)
	}
}

// Same with no checkpoint kept yet (first run stopped after one chunk).
func TestMonitorRefusesForkAtRangeEndFirstRun(t *testing.T) {
	skey, vkey, _ := ledger.GenerateLogKey(craftedOrigin)
	a := newCraftedLogKey(t, skey, vkey)
	b := newCraftedLogKey(t, skey, vkey)
	jobs(a, "p", 10)
	jobs(b, "fork", 4)
	dir := t.TempDir()
	m, done := monitorOf(t, a, dir)
	if res, err := stepOnce(t, m); err != nil || res.To != 4 {
		t.Fatal(res, err)
	}
	done()
	m, done = monitorOf(t, b, dir)
	defer done()
	if res, err := stepOnce(t, m); err == nil {
		t.Errorf("a completely different log of size 4 accepted: %+v", res)
	}
}

// An honest replica behind what was verified cannot prove its checkpoint
// (it has no tiles that far): an error saying so, not a SECURITY alarm.
func TestMonitorLaggingReplica(t *testing.T) {
	skey, vkey, _ := ledger.GenerateLogKey(craftedOrigin)
	a := newCraftedLogKey(t, skey, vkey)
	r := newCraftedLogKey(t, skey, vkey)
	jobs(a, "p", 4)
	dir := t.TempDir()
	m, done := monitorOf(t, a, dir)
	if _, err := stepOnce(t, m); err != nil {
		t.Fatal(err)
	}
	jobs(a, "q", 8)
	if res, err := stepOnce(t, m); err != nil || res.To != 8 {
		t.Fatal(res, err)
	}
	done()
	for _, l := range a.leaves[:6] { // an honest replica at size 6
		r.addRaw(l)
	}
	m, done = monitorOf(t, r, dir)
	defer done()
	// It cannot prove its checkpoint (no tiles up to what was verified):
	// an error that says so, not a SECURITY alarm.
	if _, err := stepOnce(t, m); err == nil || strings.Contains(err.Error(), "SECURITY") || !strings.Contains(err.Error(), "behind this monitor") {
		t.Errorf("an honest replica at size 6 (a prefix of what was verified): %v", err)
	}
}

// Attestations the ledger itself would refuse: the monitor finds each.
func TestMonitorAttestationClaims(t *testing.T) {
	c := newCraftedLog(t)
	c.add(&event.JobDefined{Job: "hello"})
	id := uuid.New()
	hb := c.build("hello", id)
	bIdx := c.add(hb)
	k, _ := attest.GenerateKey(attest.ECDSAP256)
	ks, _ := attest.LoadSigner(k, nil)
	der := ks.Verifier().PublicKeyDER()
	c.add(&event.KeyAdded{Name: "a", KeyID: event.KeyID(der), Algorithm: "ecdsa-p256", PublicKey: der})
	good := []attest.Subject{{Name: hb.Artifacts[0].Path, SHA256: hb.Artifacts[0].SHA256}}
	sign := func(r attest.Rebuild) *event.AttestationRecorded {
		st, _ := r.Statement()
		env, _ := attest.Sign(ctx, st, ks)
		v, err := attest.Verify(env, ks.Verifier())
		if err != nil {
			t.Fatal(err)
		}
		var subj []event.Subject
		for _, s := range r.Subjects {
			subj = append(subj, event.Subject{Name: s.Name, SHA256: s.SHA256})
		}
		b := id
		return &event.AttestationRecorded{Envelope: c.blob(v.Canonical()), KeyID: ks.KeyID(), PredicateType: attest.PredicateType, Build: &b,
			Subjects: subj, Verdict: event.Verdict(r.Verdict)}
	}
	base := attest.Rebuild{Job: "hello", Build: id, Platform: "debian-12", LogIndex: int64(bIdx), Verdict: attest.Reproduced,
		BuilderID: "https://r.example", Subjects: good}
	want := map[uint64]string{}
	// 1. the event's subjects are not the signed ones
	e1 := sign(base)
	e1.Subjects = []event.Subject{{Name: "bin/evil", SHA256: c.blob([]byte("evil"))}}
	want[c.add(e1)] = "event subjects differ from the signed statement's"
	// 2. predicate log index / platform / job are not the build's
	r2 := base
	r2.LogIndex, r2.Platform, r2.Job = 99, "windows", "other"
	r2.BuilderID = "https://r2.example"
	want[c.add(sign(r2))] = "predicate does not describe the recorded build"
	// 3. reproduced, subject not an artifact of the build (signed and logged alike)
	r3 := base
	r3.BuilderID = "https://r3.example"
	r3.Subjects = []attest.Subject{{Name: "bin/not-built", SHA256: c.blob([]byte("x"))}}
	want[c.add(sign(r3))] = "subject not an artifact of the build"
	// 4. event names no build, the statement attests one
	r4 := base
	r4.BuilderID = "https://r4.example"
	e4 := sign(r4)
	e4.Build = nil
	want[c.add(e4)] = "event names no build"
	// 5. two active keys under one name
	k2, _ := attest.GenerateKey(attest.ECDSAP256)
	ks2, _ := attest.LoadSigner(k2, nil)
	der2 := ks2.Verifier().PublicKeyDER()
	want[c.add(&event.KeyAdded{Name: "a", KeyID: event.KeyID(der2), Algorithm: "ecdsa-p256", PublicKey: der2})] = "name of an active key"
	// 6. job README not served
	rd := c.blob([]byte("readme"))
	delete(c.blobs, rd)
	want[c.add(&event.JobDefined{Job: "withreadme", Readme: &rd})] = "README blob not served"

	dir := t.TempDir()
	m, done := monitorOf(t, c, dir)
	defer done()
	_ = strings.Contains
	got := map[uint64]string{}
	for {
		res, err := m.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range res.Findings {
			got[f.Index] += f.What + "; "
		}
		if res.To == res.Checkpoint.Size {
			break
		}
	}
	for i, w := range want {
		if got[i] == "" {
			t.Errorf("log index %d: no finding (%s)", i, w)
		} else {
			t.Logf("log index %d: %s", i, got[i])
		}
	}
}
