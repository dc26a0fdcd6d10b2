package monitor_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/httpapitest"
	"github.com/buildledger/buildledger/httpapi/monitor"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

var ctx = context.Background()

// world is a served ledger with builds, keys and attestations.
type world struct {
	*httpapitest.Server
	builds []uuid.UUID
	envs   []digest.Digest
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{Server: httpapitest.New(t)}
	k := w.Key("a", true)
	for i := range 3 {
		start := time.Date(2026, 12, 1, 12, i, 0, 0, time.UTC)
		ex := &builder.Exec{Job: builder.Job{Name: "hello", Script: "true\n", Platform: "debian-12"}, UUID: uuid.New(),
			Started: start, Finished: start.Add(time.Second), Result: builder.Result{Kind: builder.ResultExited},
			Output: []builder.File{{Path: "bin/hello.hvt", Data: []byte("image " + string(rune('a'+i)))}}}
		der, _ := ex.Marshal()
		rc, b, err := w.Client.Upload(ctx, der, ex.UUID, httpapitest.Farm)
		if err != nil {
			t.Fatal(err)
		}
		r := &attest.Rebuild{Job: b.Job, Build: b.UUID, Platform: b.Platform, LogIndex: int64(rc.LogIndex), Verdict: attest.Reproduced,
			BuilderID: "https://r.example", Subjects: []attest.Subject{{Name: b.Artifacts[0].Path, SHA256: b.Artifacts[0].SHA256}}}
		st, _ := r.Statement()
		env, _ := attest.Sign(ctx, st, k)
		arc, err := w.Client.SubmitAttestation(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		w.builds, w.envs = append(w.builds, ex.UUID), append(w.envs, arc.Envelope)
	}
	return w
}

// lie serves the world's ledger through change.
func (w *world) lie(t *testing.T, change func(path string, body []byte) []byte) {
	t.Helper()
	h, err := httpapi.New(httpapi.Config{Ledger: w.L.Ledger, VKey: w.L.VKey})
	if err != nil {
		t.Fatal(err)
	}
	w.Swap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			rw.Header()[k] = v
		}
		rw.Header().Del("Content-Length")
		rw.WriteHeader(rec.Code)
		rw.Write(change(r.URL.Path, rec.Body.Bytes()))
	}))
}

func run(t *testing.T, w *world, dir string, blobs monitor.Blobs, watch monitor.Watch) ([]monitor.Finding, []monitor.Seen, error) {
	t.Helper()
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := httpapi.NewClient(w.URL, w.L.VKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := monitor.New(monitor.Config{Client: c, DB: db, Blobs: blobs, Watch: watch, Chunk: 4})
	var fs []monitor.Finding
	var seen []monitor.Seen
	for {
		res, err := m.Step(ctx)
		if err != nil {
			return fs, seen, err
		}
		fs, seen = append(fs, res.Findings...), append(seen, res.Seen...)
		if res.To == res.Checkpoint.Size {
			return fs, seen, nil
		}
	}
}

// An honest ledger: every entry verified in chunks, no violation, watched
// events reported, and a second run starts where the first stopped.
func TestMonitorHonest(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	fs, seen, err := run(t, w, dir, monitor.BlobsAll, monitor.Watch{Jobs: []string{"hello"}, Keys: []digest.Digest{w.Keys["a"].KeyID()}})
	if err != nil || len(fs) != 0 {
		t.Fatalf("%v %v", err, fs)
	}
	if len(seen) != 1+3+1+3 { // the job, 3 builds, the key, 3 attestations
		t.Fatalf("watched: %v", seen)
	}
	fs, seen, err = run(t, w, dir, monitor.BlobsAll, monitor.Watch{Jobs: []string{"hello"}})
	if err != nil || len(fs) != 0 || len(seen) != 0 {
		t.Fatalf("second run: %v %v %v", err, fs, seen)
	}
}

// Servers that lie, each caught and said precisely.
func TestMonitorCatchesLies(t *testing.T) {
	w := newWorld(t)
	b0, _ := w.L.Build(w.builds[0])
	art := b0.Event.Artifacts[0].SHA256
	for _, c := range []struct {
		name   string
		change func(path string, body []byte) []byte
		want   string
	}{
		{"a blob with other bytes", func(path string, body []byte) []byte {
			if path == "/blob/"+art.String() {
				return []byte("other bytes")
			}
			return body
		}, "blob " + art.String()},
		{"an altered envelope", func(path string, body []byte) []byte {
			if path == "/attestations/"+w.envs[1].String() {
				return []byte(strings.Replace(string(body), `"payloadType"`, `"payloadType" `, 1))
			}
			return body
		}, "envelope " + w.envs[1].String() + " is not served as logged"},
		{"an envelope that is not there", func(path string, body []byte) []byte {
			if path == "/attestations/"+w.envs[2].String() {
				return nil
			}
			return body
		}, "envelope " + w.envs[2].String()},
	} {
		w.lie(t, c.change)
		fs, _, err := run(t, w, t.TempDir(), monitor.BlobsAll, monitor.Watch{})
		found := false
		for _, f := range fs {
			found = found || strings.Contains(f.String(), c.want)
		}
		if err != nil || !found {
			t.Errorf("%s: %v, findings %v", c.name, err, fs)
		}
	}

	// A rewritten history under the same key: a SECURITY error.
	w.lie(t, func(_ string, b []byte) []byte { return b })
	dir := t.TempDir()
	if fs, _, err := run(t, w, dir, monitor.BlobsNone, monitor.Watch{}); err != nil || len(fs) != 0 {
		t.Fatalf("honest: %v %v", err, fs)
	}
	forked := ledgertest.Reopen(t, t.TempDir(), w.L.SKey, w.L.VKey)
	defer forked.Close()
	for range int(w.L.Size()) + 2 {
		if _, err := forked.DefineJob(ctx, "fork-"+uuid.NewString()[:8]); err != nil {
			t.Fatal(err)
		}
	}
	w.Serve(forked)
	if _, _, err := run(t, w, dir, monitor.BlobsNone, monitor.Watch{}); err == nil || !strings.Contains(err.Error(), "SECURITY") {
		t.Fatalf("a forked log: %v", err)
	}
}

// Findings are JSON with the index, the kind and what is wrong.
func TestFindingJSON(t *testing.T) {
	b, _ := json.Marshal(monitor.Finding{Index: 7, Kind: "build_recorded", What: "x"})
	if string(b) != `{"index":7,"kind":"build_recorded","what":"x"}` {
		t.Fatal(string(b))
	}
}
