package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/internal/tooltest"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	tapi "github.com/transparency-dev/tessera/api"
	tclient "github.com/transparency-dev/tessera/client"

	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/attest/rekorv2"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/attlog"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// TestAttestationLogBundles: with an attestation log, a logged envelope is
// served as a bundle whose entry's inclusion cosign verifies, offline,
// against the served trusted root, with the log check on.
func TestAttestationLogBundles(t *testing.T) {
	cosign := tooltest.Cosign(t)
	l := ledgertest.Open(t)
	users := auth.New(l.DB)
	users.AddAdmin("root", "root-password")
	skey, vkey, err := checkpoint.GenerateKey("ledger.example.org")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	pub, _ := rekorv2.KeyOfNoteVerifier(vkey)
	al, err := attlog.Open(l.Ledger, l.DB, rekorv2.Log{BaseURL: "https://ledger.example.org/", Key: pub, ValidFrom: time.Unix(1.7e9, 0)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	s, err := httpapi.New(httpapi.Config{Ledger: l.Ledger, VKey: l.VKey, Users: users, AttestationLog: al})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()

	content := "a unikernel"
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"hello.hvt": content}, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), ledger.Result{Kind: ledger.ResultExited})
	bi, _ := l.Build(b.UUID)
	dir := t.TempDir()
	var bundles []string
	var keys []string
	for i, alg := range []attest.KeyAlgorithm{attest.ECDSAP256, attest.Ed25519} {
		k := newSigner(t, alg)
		name := []string{"a", "b"}[i]
		if resp, body := post(t, srv.URL+"/keys/"+name, "root", "root-password", jsonBody(httpapi.KeyRequest{PublicKey: string(k.PublicKeyPEM())}), jsonCT); resp.StatusCode != http.StatusCreated {
			t.Fatalf("key: %s %s", resp.Status, body)
		}
		env := sign(t, rebuildOf(b, bi.Index, nil), k)
		resp, body := post(t, srv.URL+"/attestations", "", "", env, jsonCT)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("attestation: %s %s", resp.Status, body)
		}
		resp, bundle := get(t, srv.URL+"/attestations/"+attest.Sum(env).String()+"?format=bundle", "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(bundle, `"tlogEntries"`) {
			t.Fatalf("bundle: %s %s", resp.Status, bundle)
		}
		p := filepath.Join(dir, name+".sigstore.json")
		os.WriteFile(p, []byte(bundle), 0o644)
		kp := filepath.Join(dir, name+".pub")
		os.WriteFile(kp, k.PublicKeyPEM(), 0o644)
		bundles, keys = append(bundles, p), append(keys, kp)
	}
	// An in-toto link is logged in the event log but is no DSSE envelope:
	// the attestation log passes over it, and it has no bundle.
	ks, ik := linkKey(t, attest.ECDSAP256)
	if resp, body := post(t, srv.URL+"/keys/c", "root", "root-password", jsonBody(httpapi.KeyRequest{PublicKey: string(ks.PublicKeyPEM())}), jsonCT); resp.StatusCode != http.StatusCreated {
		t.Fatalf("key: %s %s", resp.Status, body)
	}
	resp, body := post(t, srv.URL+"/attestations", "", "", signLink(t, rebuildLink(b, nil), ik), jsonCT)
	var lrc httpapi.AttestationReceipt
	json.Unmarshal([]byte(body), &lrc)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("link: %s %s", resp.Status, body)
	}
	if resp, body := get(t, srv.URL+"/attestations/"+lrc.Envelope.String()+"?format=bundle", ""); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bundle of a link: %s %s", resp.Status, body)
	}
	if err := al.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if al.Size() != 2 {
		t.Fatalf("attestation log size %d", al.Size())
	}
	resp, root := get(t, srv.URL+"/trusted_root.json", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("trusted root: %s", resp.Status)
	}
	rootFile := filepath.Join(dir, "trusted_root.json")
	os.WriteFile(rootFile, []byte(root), 0o644)
	if resp, cp := get(t, srv.URL+"/attestation-log/checkpoint", ""); resp.StatusCode != http.StatusOK || !strings.HasPrefix(cp, "ledger.example.org\n2\n") {
		t.Fatalf("checkpoint: %s %q", resp.Status, cp)
	}
	// The attestation log read as any C2SP tlog-tiles log, by tessera's
	// client: the checkpoint verifies with the log key, every entry of
	// the entry bundle proves against it from the hash tiles, and each is
	// the canonicalized body the bundles carry.
	base, _ := neturl.Parse(srv.URL + "/attestation-log/")
	f, err := tclient.NewHTTPFetcher(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	cpRaw, err := f.ReadCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := checkpoint.Open(cpRaw, "ledger.example.org", vkey)
	if err != nil || cp.Size != 2 {
		t.Fatalf("checkpoint %v %v", cp, err)
	}
	raw, err := f.ReadEntryBundle(context.Background(), 0, uint8(cp.Size))
	if err != nil {
		t.Fatal(err)
	}
	var eb tapi.EntryBundle
	if err := eb.UnmarshalText(raw); err != nil || len(eb.Entries) != 2 {
		t.Fatalf("entry bundle: %v %d", err, len(eb.Entries))
	}
	pb, err := tclient.NewProofBuilder(context.Background(), cp.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range eb.Entries {
		p, err := pb.InclusionProof(context.Background(), uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), cp.Size, rfc6962.DefaultHasher.HashLeaf(e), p, cp.Hash[:]); err != nil {
			t.Fatalf("entry %d does not prove against the checkpoint from tiles: %v", i, err)
		}
		b, _ := os.ReadFile(bundles[i])
		if !strings.Contains(string(b), base64.StdEncoding.EncodeToString(e)) {
			t.Fatalf("entry %d is not the canonicalized body of its bundle", i)
		}
	}

	blob := filepath.Join(dir, "hello.hvt")
	os.WriteFile(blob, []byte(content), 0o644)
	for name, find := range map[string]func(*testing.T) string{"v2": func(*testing.T) string { return cosign }, "v3": func(t *testing.T) string { return tooltest.CosignV3(t) }} {
		t.Run("cosign "+name, func(t *testing.T) {
			cosign := find(t)
			version, _ := exec.Command(cosign, "version").CombinedOutput()
			for i := range bundles {
				args := []string{"verify-blob-attestation", "--key", keys[i], "--bundle", bundles[i], "--trusted-root", rootFile, "--type", "slsaprovenance1"}
				if strings.Contains(string(version), "v2.") {
					args = append(args, "--new-bundle-format")
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				cmd := exec.CommandContext(ctx, cosign, append(args, blob)...)
				cmd.Env = []string{"HOME=" + t.TempDir(), "TUF_ROOT=" + t.TempDir(), "PATH=/usr/bin:/bin"}
				out, err := cmd.CombinedOutput()
				cancel()
				if err != nil || !strings.Contains(string(out), "Verified OK") {
					t.Fatalf("cosign %s rejects the served bundle %d: %v\n%s", name, i, err, out)
				}
			}
		})
	}
}
