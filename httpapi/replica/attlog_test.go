package replica_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/attest/rekorv2"
	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/httpapi/replica"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/attlog"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// TestReplicaAttestationLog: a replica derives the primary's attestation
// log from the replicated events and serves it with the primary's
// checkpoints: the same trusted root, checkpoint and bundles, byte for
// byte; a primary checkpoint that does not match the derived tree stops
// it.
func TestReplicaAttestationLog(t *testing.T) {
	pl := ledgertest.Open(t)
	users := auth.New(pl.DB)
	users.AddAdmin("root", "root-password")
	skey, vkey, err := checkpoint.GenerateKey("ledger.example.org")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	pub, _ := rekorv2.KeyOfNoteVerifier(vkey)
	desc := rekorv2.Log{BaseURL: "https://ledger.example.org/", Key: pub, ValidFrom: time.Unix(1.7e9, 0)}
	pal, err := attlog.Open(pl.Ledger, pl.DB, desc, signer)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := httpapi.New(httpapi.Config{Ledger: pl.Ledger, VKey: pl.VKey, Users: users, AttestationLog: pal})
	if err != nil {
		t.Fatal(err)
	}
	primary := httptest.NewServer(ps)
	defer primary.Close()
	pc, err := httpapi.NewClient(primary.URL, pl.VKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &primaryWorld{led: pl}
	k, _ := attest.GenerateKey(attest.Ed25519)
	ks, _ := attest.LoadSigner(k, nil)
	if _, err := pc.AddKey(ctx, "a", string(ks.PublicKeyPEM()), httpapi.Credentials{User: "root", Password: "root-password"}); err != nil {
		t.Fatal(err)
	}
	var envelopes []cas.Digest
	for i := range 3 {
		b := p.record(t, "web", map[string]string{"bin/web.hvt": "image " + string(rune('a'+i)), "build-environment": "A=1\n"})
		be, _ := pl.Build(b.UUID)
		r := &attest.Rebuild{Job: b.Job, Build: b.UUID, Platform: b.Platform, LogIndex: int64(be.Index), Verdict: attest.Reproduced, BuilderID: "https://r.example"}
		for _, a := range be.Event.Artifacts {
			r.Subjects = append(r.Subjects, attest.Subject{Name: a.Path, SHA256: a.SHA256})
		}
		st, _ := r.Statement()
		env, _ := attest.Sign(ctx, st, ks)
		rc, err := pc.SubmitAttestation(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		envelopes = append(envelopes, rc.Envelope)
	}
	if err := pal.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	_, root := get(t, primary.URL+"/trusted_root.json")
	mirrorDesc, err := rekorv2.ParseTrustedRoot([]byte(root))
	if err != nil {
		t.Fatal(err)
	}

	// The replica.
	dir := t.TempDir()
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, _ := cas.New(db, cas.Options{})
	rl, err := ledger.Open(db, store, ledger.Config{ReplicaOf: pl.VKey})
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	ral, err := attlog.OpenMirror(rl, db, mirrorDesc)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := httpapi.New(httpapi.Config{Ledger: rl, VKey: pl.VKey, Primary: primary.URL, AttestationLog: ral})
	if err != nil {
		t.Fatal(err)
	}
	rep := httptest.NewServer(rs)
	defer rep.Close()
	if _, err := (&replica.Replica{Client: pc, Ledger: rl}).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, rep.URL+"/attestation-log/checkpoint"); code != http.StatusServiceUnavailable {
		t.Fatalf("a replica's attestation-log checkpoint before it accepted one: %d", code)
	}
	_, cp := get(t, primary.URL+"/attestation-log/checkpoint")
	if err := ral.Accept(ctx, []byte(cp)); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/trusted_root.json", "/attestation-log/checkpoint", "/attestation-log/tile/0/000.p/3",
		"/attestations/" + envelopes[1].String() + "?format=bundle"} {
		c1, b1 := get(t, primary.URL+path)
		c2, b2 := get(t, rep.URL+path)
		if c1 != http.StatusOK || c1 != c2 || b1 != b2 {
			t.Fatalf("%s: primary %d, replica %d\n%s\n%s", path, c1, c2, b1, b2)
		}
	}
	if !strings.Contains(cp, "ledger.example.org\n3\n") {
		t.Fatalf("checkpoint %q", cp)
	}

	// A checkpoint signed with the log's key over another tree.
	forged, err := checkpoint.Sign(signer, "ledger.example.org", 2, [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if err := ral.Accept(ctx, forged.Note); !errors.Is(err, attlog.ErrForeignTree) {
		t.Fatalf("a forged checkpoint: %v", err)
	}
	for _, path := range []string{"/attestations/" + envelopes[0].String() + "?format=bundle", "/attestation-log/checkpoint"} {
		if code, body := get(t, rep.URL+path); code != http.StatusBadGateway || !bytes.Contains([]byte(body), []byte("SECURITY")) {
			t.Fatalf("%s after the forged checkpoint: %d %s", path, code, body)
		}
	}
}
