package replica_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/httpapitest"
	"github.com/buildledger/buildledger/httpapi/replica"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

var ctx = context.Background()

type node struct {
	l   *ledger.Ledger
	srv *httptest.Server
}

// openReplica opens (or reopens) a replica of the ledger with key vkey in
// dir, served with primary named as its primary.
func openReplica(t *testing.T, dir, vkey, primary string) (*node, func()) {
	t.Helper()
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := cas.New(db, cas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(db, store, ledger.Config{ReplicaOf: vkey})
	if err != nil {
		t.Fatal(err)
	}
	s, err := httpapi.New(httpapi.Config{Ledger: l, VKey: vkey, Primary: primary})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	return &node{l, srv}, func() { srv.Close(); l.Close(); db.Close() }
}

// primaryWorld is a primary (httpapitest) with builds, keys and
// attestations.
type primaryWorld struct {
	*httpapitest.Server
	led    *ledgertest.Ledger // where record records: the served ledger, or a fork of it
	builds []*ledger.BuildRecorded
}

func newPrimary(t *testing.T) *primaryWorld {
	s := httpapitest.New(t)
	return &primaryWorld{Server: s, led: s.L}
}

// record stores a build's files and records it.
func (p *primaryWorld) record(t *testing.T, job string, files map[string]string) *ledger.BuildRecorded {
	t.Helper()
	put := func(s string) cas.Digest {
		info, err := p.led.Store.PutBytes(ctx, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return info.Digest
	}
	t0 := time.Date(2026, 11, 1, 12, 0, len(p.builds), 0, time.UTC)
	b := &ledger.BuildRecorded{Job: job, UUID: uuid.New(), Platform: "debian-12", Started: t0, Finished: t0.Add(time.Minute),
		Result: ledger.Result{Kind: ledger.ResultExited}, Script: put("make " + job), Console: put("built " + job)}
	for path, content := range files {
		d := put(content)
		b.Artifacts = append(b.Artifacts, ledger.Artifact{Path: path, SHA256: d, Size: int64(len(content))})
		if path == "build-environment" {
			b.Inputs.BuildEnvironment = &d
		}
	}
	b.MainBinary = httpapi.MainBinary(job, func() []string {
		var ps []string
		for p := range files {
			ps = append(ps, p)
		}
		return ps
	}())
	if _, err := p.led.DefineJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if _, err := p.led.Append(ctx, b); err != nil {
		t.Fatal(err)
	}
	p.builds = append(p.builds, b)
	return b
}

func (p *primaryWorld) attest(t *testing.T, s *attest.Signer, b *ledger.BuildRecorded) {
	t.Helper()
	be, err := p.L.Build(b.UUID)
	if err != nil {
		t.Fatal(err)
	}
	r := &attest.Rebuild{Job: b.Job, Build: b.UUID, Platform: b.Platform, LogIndex: int64(be.Index), Verdict: attest.Reproduced, BuilderID: "https://r.example"}
	for _, a := range be.Event.Artifacts {
		r.Subjects = append(r.Subjects, attest.Subject{Name: a.Path, SHA256: a.SHA256})
	}
	st, err := r.Statement()
	if err != nil {
		t.Fatal(err)
	}
	env, err := attest.Sign(ctx, st, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Client.SubmitAttestation(ctx, env); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReplica: after uploads, keys and attestations on the primary, the
// replica answers every read route exactly as the primary does; it
// refuses writes naming the primary; it resumes after a restart; and it
// stops with a security error when the primary rewrites its history.
func TestReplica(t *testing.T) {
	p := newPrimary(t)
	ps, _ := attest.GenerateKey(attest.ECDSAP256)
	signer, _ := attest.LoadSigner(ps, nil)
	if _, err := p.Client.AddKey(ctx, "rebuilder-a", string(signer.PublicKeyPEM()), httpapitest.Admin); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		b := p.record(t, "web", map[string]string{"bin/web.hvt": fmt.Sprint("image ", i), "build-environment": "A=1\n"})
		p.attest(t, signer, b)
	}
	p.record(t, "dns", map[string]string{"bin/dns.hvt": "dns image", "build-environment": "A=2\n"})

	dir := t.TempDir()
	rep, closeRep := openReplica(t, dir, p.L.VKey, p.URL)
	if code, _ := get(t, rep.srv.URL+"/checkpoint"); code != http.StatusServiceUnavailable {
		t.Fatalf("checkpoint before the first sync: %d", code)
	}
	r := &replica.Replica{Client: p.Client, Ledger: rep.l, Chunk: 7}
	n, err := r.Sync(ctx)
	if err != nil || uint64(n) != p.L.Size() {
		t.Fatalf("sync: %d %v (primary has %d)", n, err, p.L.Size())
	}
	same := func(path string) {
		t.Helper()
		c1, b1 := get(t, p.URL+path)
		c2, b2 := get(t, rep.srv.URL+path)
		if c1 != c2 || b1 != b2 {
			t.Fatalf("%s differs:\nprimary %d %s\nreplica %d %s", path, c1, b1, c2, b2)
		}
		if c1 != http.StatusOK {
			t.Fatalf("%s: %d %s", path, c1, b1)
		}
	}
	check := func() {
		t.Helper()
		for _, path := range []string{"/", "/job/web", "/job/dns", "/failed-builds", "/keys", "/checkpoint",
			fmt.Sprintf("/compare/%s/%s", p.builds[0].UUID, p.builds[1].UUID)} {
			same(path)
		}
		for _, pb := range p.builds {
			be, err := p.L.Build(pb.UUID)
			if err != nil {
				t.Fatal(err)
			}
			b := be.Event
			main, _ := b.Artifact(*b.MainBinary)
			for _, path := range []string{"/job/" + b.Job + "/build/" + b.UUID.String(), "/hash?sha256=" + main.SHA256.String(),
				"/attestations?sha256=" + main.SHA256.String(), "/job/" + b.Job + "/build/" + b.UUID.String() + "/f/" + main.Path,
				"/job/" + b.Job + "/build/" + b.UUID.String() + "/script", "/job/" + b.Job + "/build/" + b.UUID.String() + "/exec"} {
				same(path)
			}
		}
		size := p.L.Size()
		same(fmt.Sprintf("/proof/consistency?from=3&to=%d", size))
		same("/tile/entries/000.p/" + fmt.Sprint(size))
	}
	check()

	// Writes are refused, naming the primary.
	resp, err := http.Post(rep.srv.URL+"/attestations", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), p.URL) {
		t.Fatalf("write to the replica: %s %s", resp.Status, body)
	}

	// More on the primary; the replica restarts and catches up.
	closeRep()
	more := p.record(t, "web", map[string]string{"bin/web.hvt": "image 9", "build-environment": "A=1\n"})
	p.attest(t, signer, more)
	rep, closeRep = openReplica(t, dir, p.L.VKey, p.URL)
	defer closeRep()
	r.Ledger = rep.l
	if n, err := r.Sync(ctx); err != nil || n != 2 {
		t.Fatalf("sync after restart: %d %v", n, err)
	}
	check()

	// The primary rewrites its history: the replica stops, showing both
	// checkpoints.
	forked := ledgertest.Reopen(t, t.TempDir(), p.L.SKey, p.L.VKey)
	defer forked.Close()
	fp := &primaryWorld{Server: p.Server, led: forked}
	for i := range 20 {
		fp.record(t, "web", map[string]string{"bin/web.hvt": fmt.Sprint("forged ", i)})
	}
	p.Serve(forked)
	before := rep.l.Checkpoint()
	err = r.Run(ctx)
	var ie *httpapi.InconsistencyError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "SECURITY") || !strings.Contains(err.Error(), string(before.Note)) {
		t.Fatalf("rewritten primary: %v", err)
	}
	if got := rep.l.Checkpoint(); !bytes.Equal(got.Note, before.Note) {
		t.Fatal("the replica took the forged checkpoint")
	}
}

// TestReplicaVerifiesBeforeFetching: entries that do not rebuild the
// primary's tree are refused before any blob they name is fetched.
func TestReplicaVerifiesBeforeFetching(t *testing.T) {
	p := newPrimary(t)
	b := p.record(t, "web", map[string]string{"bin/web.hvt": "an image only the tampered entry names"})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(p.URL + r.URL.RequestURI())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if strings.HasPrefix(r.URL.Path, "/tile/entries/") {
			body = bytes.Replace(body, []byte(`"platform":"debian-12"`), []byte(`"platform":"debian-13"`), 1)
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	defer proxy.Close()
	c, _ := httpapi.NewClient(proxy.URL, p.L.VKey, nil)
	rep, closeRep := openReplica(t, t.TempDir(), p.L.VKey, proxy.URL)
	defer closeRep()
	_, err := (&replica.Replica{Client: c, Ledger: rep.l}).Sync(ctx)
	if err == nil || !strings.Contains(err.Error(), "SECURITY") {
		t.Fatalf("tampered entries: %v", err)
	}
	be, _ := p.L.Build(b.UUID)
	main, _ := be.Event.Artifact("bin/web.hvt")
	if ok, _ := rep.l.Store().Has(main.SHA256); ok {
		t.Fatal("a blob named by unverified entries was fetched")
	}
	if rep.l.Size() != 0 {
		t.Fatalf("the replica took %d entries", rep.l.Size())
	}
}

// TestReplicaBoundsAnswers: a primary that answers a tile request without
// end is cut off with an error, not read into memory.
func TestReplicaBoundsAnswers(t *testing.T) {
	p := newPrimary(t)
	p.record(t, "web", map[string]string{"bin/web.hvt": "image"})
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/tile/") {
			chunk := bytes.Repeat([]byte{0}, 1<<20)
			for range 64 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			return
		}
		resp, err := http.Get(p.URL + r.URL.RequestURI())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer huge.Close()
	c, _ := httpapi.NewClient(huge.URL, p.L.VKey, replica.HTTPClient())
	rep, closeRep := openReplica(t, t.TempDir(), p.L.VKey, huge.URL)
	defer closeRep()
	_, err := (&replica.Replica{Client: c, Ledger: rep.l}).Sync(ctx)
	if err == nil || !strings.Contains(err.Error(), "larger than a replica reads") {
		t.Fatalf("endless tile: %v", err)
	}
}
