package monitor_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/monitor"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger/event"
)

// Ctrl-C (or a transient error) while a chunk fetches envelopes is an
// error that leaves the state as it was: the next run checks the chunk,
// with no false findings.
func TestMonitorCancelMidChunk(t *testing.T) {
	c := newCraftedLog(t)
	c.add(&event.JobDefined{Job: "hello"})
	id := uuid.New()
	hb := c.build("hello", id)
	c.add(hb)
	k, _ := attest.GenerateKey(attest.ECDSAP256)
	ks, _ := attest.LoadSigner(k, nil)
	der := ks.Verifier().PublicKeyDER()
	c.add(&event.KeyAdded{Name: "a", KeyID: event.KeyID(der), Algorithm: "ecdsa-p256", PublicKey: der})
	r := &attest.Rebuild{Job: "hello", Build: id, Platform: "debian-12", LogIndex: 1, Verdict: attest.Reproduced, BuilderID: "https://r.example",
		Subjects: []attest.Subject{{Name: hb.Artifacts[0].Path, SHA256: hb.Artifacts[0].SHA256}}}
	st, _ := r.Statement()
	env, _ := attest.Sign(ctx, st, ks)
	v, _ := attest.Verify(env, ks.Verifier())
	c.add(&event.AttestationRecorded{Envelope: c.blob(v.Canonical()), KeyID: ks.KeyID(), PredicateType: attest.PredicateType, Build: &id,
		Subjects: []event.Subject{{Name: hb.Artifacts[0].Path, SHA256: hb.Artifacts[0].SHA256}}, Verdict: event.VerdictReproduced})

	cctx, cancel := context.WithCancel(ctx)
	target, _ := url.Parse(c.URL)
	p := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/attestations/") {
			cancel() // the user presses Ctrl-C
		}
		p.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cl, _ := httpapi.NewClient(srv.URL, c.vkey, nil)
	dir := t.TempDir()
	db, _ := kv.Open(dir, kv.Options{})
	m := monitor.New(monitor.Config{Client: cl, DB: db, Chunk: 1024})
	res, err := m.Step(cctx)
	// Run again with a live context: the chunk is verified now.
	m2 := monitor.New(monitor.Config{Client: cl, DB: db, Chunk: 1024})
	res2, err2 := m2.Step(ctx)
	db.Close()
	if err == nil || res != nil {
		t.Errorf("a cancelled step: %v %+v", err, res)
	}
	if err2 != nil || res2.From != 0 || res2.To != 4 || len(res2.Findings) != 0 {
		t.Errorf("the next step: %v %+v", err2, res2)
	}
}
