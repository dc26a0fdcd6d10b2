package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

var ctx = context.Background()

func newServer(t *testing.T) (*ledgertest.Ledger, *httptest.Server) {
	t.Helper()
	l := ledgertest.Open(t)
	s, err := httpapi.New(httpapi.Config{Ledger: l.Ledger, VKey: l.VKey})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return l, srv
}

func record(t *testing.T, l *ledgertest.Ledger, job, out string, start time.Time) *ledger.BuildRecorded {
	t.Helper()
	main := "bin/" + job + ".hvt"
	b := &ledger.BuildRecorded{
		Job: job, UUID: uuid.New(), Platform: "debian-12", Started: start, Finished: start.Add(time.Minute),
		Result:     ledger.Result{Kind: ledger.ResultExited},
		Artifacts:  []ledger.Artifact{{Path: main, SHA256: cas.Sum([]byte(out)), Size: int64(len(out))}},
		MainBinary: &main,
	}
	if _, err := l.Append(ctx, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func get(t *testing.T, u string, accept string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestTilesWithTesseraClient reads checkpoints, tiles and entry bundles
// through transparency-dev/tessera's client and verifies the proofs it
// builds from them.
func TestTilesWithTesseraClient(t *testing.T) {
	l, srv := newServer(t)
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "hello"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for i := range 300 {
		record(t, l, "hello", fmt.Sprint(i), t0)
	}
	root, _ := url.Parse(srv.URL + "/")
	f, err := client.NewHTTPFetcher(root, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(l.VKey)
	if err != nil {
		t.Fatal(err)
	}
	cp1, _, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, v, ledgertest.Origin)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		record(t, l, "hello", fmt.Sprint("more", i), t0)
	}
	cp2, _, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, v, ledgertest.Origin)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := client.NewProofBuilder(ctx, cp2.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for _, idx := range []uint64{0, 1, 255, 256, 300, cp2.Size - 1} {
		p, err := pb.InclusionProof(ctx, idx)
		if err != nil {
			t.Fatalf("tessera inclusion proof %d: %v", idx, err)
		}
		data, err := l.EventBytes(idx)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, cp2.Size, rfc6962.DefaultHasher.HashLeaf(data), p, cp2.Hash); err != nil {
			t.Fatalf("inclusion %d from tiles: %v", idx, err)
		}
		// The server's own proof route agrees.
		resp, body := get(t, fmt.Sprintf("%s/proof/inclusion?index=%d&size=%d", srv.URL, idx, cp2.Size), "")
		var sp httpapi.Proof
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &sp) != nil || len(sp.Hashes) != len(p) {
			t.Fatalf("proof route: %d %s", resp.StatusCode, body)
		}
		for k := range p {
			if string(p[k]) != string(sp.Hashes[k]) {
				t.Fatalf("proof route differs from tiles at %d", k)
			}
		}
	}
	cons, err := pb.ConsistencyProof(ctx, cp1.Size, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp1.Size, cp2.Size, cons, cp1.Hash, cp2.Hash); err != nil {
		t.Fatalf("consistency from tiles: %v", err)
	}
	// Entry bundles: full and partial, every entry is the event at its index.
	for _, idx := range []uint64{3, 300, cp2.Size - 1} {
		bundle, err := client.GetEntryBundle(ctx, f.ReadEntryBundle, idx/256, cp2.Size)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := l.EventBytes(idx)
		if got := bundle.Entries[idx%256]; string(got) != string(data) {
			t.Fatalf("bundle entry %d differs", idx)
		}
		_ = api.EntryBundle{}
	}
}

func TestBadRequests(t *testing.T) {
	l, srv := newServer(t)
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "hello"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := record(t, l, "hello", "image", t0)
	newer := record(t, l, "hello", "image", t0.Add(time.Hour))
	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{"/tile/0/000", 404, "does not exist"},
		{"/tile/0/x1/000", 400, "bad tile path"},
		{"/tile/9/000", 400, "bad tile path"},
		{"/tile/0/000.p/0", 400, "bad tile path"},
		{"/tile/0/000.p/3", 200, ""},
		{"/tile/0/000.p/4", 404, "does not exist"},
		{"/tile/entries/000.p/3", 200, ""},
		{"/tile/entries/000.p/9", 404, "beyond log size"},
		{"/event/2", 200, `"kind":"build_recorded"`},
		{"/event/3", 404, "beyond the log (size 3)"},
		{"/event/99999999999999999999", 400, "bad event index"},
		{"/proof/inclusion?index=5", 400, "not below tree size"},
		{"/proof/inclusion?index=x", 400, "not a non-negative integer"},
		{"/proof/inclusion", 400, "give index"},
		{"/proof/inclusion?leaf_hash=zz", 400, "64 hex"},
		{"/proof/consistency?from=3&to=2", 400, "smaller size"},
		{"/proof/consistency?from=1&to=9", 400, "beyond tree size"},
		{"/hash", 400, "give the digest"},
		{"/hash?sha256=ABC", 400, "sha256="},
		{"/hash?sha256=" + cas.Sum([]byte("nothing")).String(), 404, "no recorded build"},
		{"/nowhere", 404, "no such page"},
	} {
		resp, body := get(t, srv.URL+c.path, "")
		if resp.StatusCode != c.status || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: %d %q, want %d containing %q", c.path, resp.StatusCode, body, c.status, c.want)
		}
	}
	// HTML reverse lookup redirects to the newest build, as builder-web.
	h := cas.Sum([]byte("image")).String()
	resp, _ := get(t, srv.URL+"/hash?sha256="+h, "")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/job/hello/build/"+newer.UUID.String() {
		t.Fatalf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := get(t, srv.URL+"/hash?sha256="+h, "application/json")
	var lk httpapi.HashLookup
	if err := json.Unmarshal([]byte(body), &lk); err != nil || resp.StatusCode != 200 {
		t.Fatalf("json lookup: %d %s", resp.StatusCode, body)
	}
	if len(lk.Builds) != 2 || lk.Builds[0].UUID != old.UUID || !lk.Builds[1].MainBinary || lk.Builds[1].LogIndex != 2 {
		t.Fatalf("lookup: %+v", lk.Builds)
	}
	if _, err := ledger.OpenCheckpoint([]byte(lk.Checkpoint), ledgertest.Origin, l.VKey); err != nil {
		t.Fatal(err)
	}
	resp, body = get(t, srv.URL+"/hash?sha256=zz", "application/json")
	if resp.StatusCode != 400 || !strings.Contains(body, `"error"`) {
		t.Fatalf("json error: %d %s", resp.StatusCode, body)
	}
}
