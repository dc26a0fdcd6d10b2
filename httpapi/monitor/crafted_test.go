package monitor_test

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/monitor"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/event"
	"github.com/buildledger/buildledger/ledger/tree"
)

// craftedLog is a log server that signs whatever entries it is given, as
// a ledger that broke its own rules would: the entries, C2SP tiles and
// entry bundles, signed checkpoints, blobs and envelopes.
type craftedLog struct {
	t      *testing.T
	mu     sync.Mutex
	tr     *tree.Tree
	db     *badger.DB
	leaves [][]byte
	signer note.Signer
	vkey   string
	blobs  map[digest.Digest][]byte
	URL    string
}

const craftedOrigin = "crafted.example/log"

func newCraftedLog(t *testing.T) *craftedLog {
	t.Helper()
	skey, vkey, err := ledger.GenerateLogKey(craftedOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return newCraftedLogKey(t, skey, vkey)
}

func newCraftedLogKey(t *testing.T, skey, vkey string) *craftedLog {
	t.Helper()
	const origin = craftedOrigin
	signer, _ := note.NewSigner(skey)
	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tr, err := tree.OpenPrefix(db, "crafted/")
	if err != nil {
		t.Fatal(err)
	}
	c := &craftedLog{t: t, tr: tr, db: db, signer: signer, vkey: vkey, blobs: map[digest.Digest][]byte{}}
	r := mux.NewRouter()
	r.HandleFunc("/checkpoint", func(w http.ResponseWriter, _ *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		size, root := c.tr.Head()
		cp, err := checkpoint.Sign(c.signer, origin, size, root)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(cp.Note)
	})
	r.HandleFunc("/log/key", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, vkey) })
	r.HandleFunc("/tile/entries/{n:.+}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		index, p, err := layout.ParseTileIndexPartial(mux.Vars(r)["n"])
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		width := uint64(p)
		if p == 0 {
			width = 256
		}
		var out []byte
		for i := index * 256; i < index*256+width && i < uint64(len(c.leaves)); i++ {
			out = binary.BigEndian.AppendUint16(out, uint16(len(c.leaves[i])))
			out = append(out, c.leaves[i]...)
		}
		w.Write(out)
	})
	r.HandleFunc("/tile/{level:[0-9]+}/{n:.+}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		level, index, p, err := layout.ParseTileLevelIndexPartial(mux.Vars(r)["level"], mux.Vars(r)["n"])
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		width := int(p)
		if p == 0 {
			width = tree.TileWidth
		}
		b, err := c.tr.Tile(uint8(level), index, width)
		if err != nil {
			http.Error(w, err.Error(), 404)
			return
		}
		w.Write(b)
	})
	serveBlob := func(w http.ResponseWriter, r *http.Request) {
		d, err := digest.ParseDigest(mux.Vars(r)["sha256"])
		b, ok := c.blobs[d]
		if err != nil || !ok {
			http.Error(w, "not found", 404)
			return
		}
		w.Write(b)
	}
	r.HandleFunc("/blob/{sha256}", serveBlob)
	r.HandleFunc("/attestations/{sha256}", serveBlob)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

// add logs an event as it is, with no rule checked.
func (c *craftedLog) add(ev event.Event) uint64 {
	c.t.Helper()
	b, err := event.Encode(ev)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.addRaw(b)
}

func (c *craftedLog) addRaw(b []byte) uint64 {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	batch := c.tr.Begin()
	err := c.db.Update(func(txn *badger.Txn) error {
		_, err := batch.Add(txn, tree.LeafHash(b))
		return err
	})
	if err == nil {
		err = c.tr.Install(batch)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.leaves = append(c.leaves, b)
	return uint64(len(c.leaves) - 1)
}

func (c *craftedLog) blob(b []byte) digest.Digest {
	d := digest.Sum(b)
	c.blobs[d] = b
	return d
}

// build is a build of job with one stored artifact.
func (c *craftedLog) build(job string, id uuid.UUID) *event.BuildRecorded {
	main := "bin/" + job + ".hvt"
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	return &event.BuildRecorded{Job: job, UUID: id, Platform: "debian-12", Started: t0, Finished: t0.Add(time.Minute),
		Result: event.Result{Kind: event.ResultExited}, Script: c.blob([]byte("make")), Console: c.blob([]byte("ok")),
		Artifacts: []event.Artifact{{Path: main, SHA256: c.blob([]byte("image of " + id.String())), Size: 40}}, MainBinary: &main}
}

// TestMonitorCatchesBrokenRules: a log that breaks each rule a third
// party can check, each caught at its index with what is wrong.
func TestMonitorCatchesBrokenRules(t *testing.T) {
	c := newCraftedLog(t)
	c.add(&event.JobDefined{Job: "hello"})
	id := uuid.New()
	c.add(c.build("hello", id))
	dup := c.add(c.build("hello", id))
	undefined := c.add(c.build("nojob", uuid.New()))
	k, _ := attest.GenerateKey(attest.ECDSAP256)
	ks, _ := attest.LoadSigner(k, nil)
	der := ks.Verifier().PublicKeyDER()
	c.add(&event.KeyAdded{Name: "a", KeyID: event.KeyID(der), Algorithm: "ecdsa-p256", PublicKey: der})
	twice := c.add(&event.KeyAdded{Name: "a-again", KeyID: event.KeyID(der), Algorithm: "ecdsa-p256", PublicKey: der})
	// An attestation signed with a key, logged after its revocation.
	hb := c.build("hello", id)
	r := &attest.Rebuild{Job: "hello", Build: id, Platform: "debian-12", LogIndex: 1, Verdict: attest.Reproduced, BuilderID: "https://r.example",
		Subjects: []attest.Subject{{Name: hb.Artifacts[0].Path, SHA256: hb.Artifacts[0].SHA256}}}
	st, _ := r.Statement()
	env, _ := attest.Sign(ctx, st, ks)
	v, _ := attest.Verify(env, ks.Verifier())
	envD := c.blob(v.Canonical())
	att := &event.AttestationRecorded{Envelope: envD, KeyID: ks.KeyID(), PredicateType: attest.PredicateType, Build: &id,
		Subjects: []event.Subject{{Name: hb.Artifacts[0].Path, SHA256: hb.Artifacts[0].SHA256}}, Verdict: event.VerdictReproduced}
	good := c.add(att)
	again := c.add(att)
	c.add(&event.KeyRevoked{KeyID: ks.KeyID(), Reason: "compromised"})
	other := *att
	other.Verdict = event.VerdictDiffers
	afterRevocation := c.add(&other)
	unknownKey := c.add(&event.KeyRevoked{KeyID: digest.Sum([]byte("nobody")), Reason: "?"})
	notCanonical := c.addRaw([]byte(`{"kind":"job_defined","v":1, "job":"x","synopsis":"","section":"","readme":null}`))

	cl, err := httpapi.NewClient(c.URL, c.vkey, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m := monitor.New(monitor.Config{Client: cl, DB: db, Blobs: monitor.BlobsAll})
	var fs []monitor.Finding
	for {
		res, err := m.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, res.Findings...)
		if res.To == res.Checkpoint.Size {
			break
		}
	}
	if kept, err := m.Findings(); err != nil || len(kept) != len(fs) {
		t.Fatalf("kept findings: %d of %d (%v)", len(kept), len(fs), err)
	}
	want := map[uint64]string{
		dup:             "is logged a second time",
		undefined:       "which no earlier event defines",
		twice:           "is registered a second time",
		again:           "is logged a second time",
		afterRevocation: "revoked at log index",
		unknownKey:      "no earlier event registers it",
		notCanonical:    "not in canonical form",
	}
	got := map[uint64]string{}
	for _, f := range fs {
		got[f.Index] += f.What + "; "
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("log index %d: findings %q, want %q", i, got[i], w)
		}
	}
	if got[good] != "" {
		t.Errorf("the good attestation at %d: %s", good, got[good])
	}
	if len(got) != len(want) {
		t.Errorf("findings at %d indices, want %d: %v", len(got), len(want), fs)
	}
}
