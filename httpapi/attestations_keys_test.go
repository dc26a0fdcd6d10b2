package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
)

// TestAttestationActiveKeyWins: an envelope signed by a revoked key and by
// an active one (a rebuilder rotating its key) is judged by the active
// key's signature, whatever the order of the signatures and their hints.
func TestAttestationActiveKeyWins(t *testing.T) {
	l, srv := attestServer(t)
	b := storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": "unikernel"}, time.Now().UTC(), ledger.Result{Kind: ledger.ResultExited})
	bi, err := l.Build(b.UUID)
	if err != nil {
		t.Fatal(err)
	}
	old, cur := newSigner(t, attest.ECDSAP256), newSigner(t, attest.ECDSAP256)
	for name, s := range map[string]*attest.Signer{"old": old, "new": cur} {
		if resp, body := post(t, srv.URL+"/keys/"+name, "root", "root-password", jsonBody(httpapi.KeyRequest{PublicKey: string(s.PublicKeyPEM())}), jsonCT); resp.StatusCode != http.StatusCreated {
			t.Fatalf("add key %s: %s %s", name, resp.Status, body)
		}
	}
	if resp, body := post(t, srv.URL+"/keys/old/revoke", "root", "root-password", jsonBody(httpapi.KeyRequest{Reason: "rotated"}), jsonCT); resp.StatusCode != http.StatusCreated {
		t.Fatalf("revoke: %s %s", resp.Status, body)
	}
	r := rebuildOf(bi.Event, bi.Index, nil)
	type sig struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	}
	type envelope struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []sig  `json:"signatures"`
	}
	var eo, ec envelope
	if err := json.Unmarshal(sign(t, r, old), &eo); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(sign(t, r, cur), &ec); err != nil {
		t.Fatal(err)
	}
	// The revoked key's signature first, and hinted; the active one not.
	both := eo
	both.Signatures = []sig{{KeyID: old.KeyID().String(), Sig: eo.Signatures[0].Sig}, {Sig: ec.Signatures[0].Sig}}
	resp, body := post(t, srv.URL+"/attestations", "", "", jsonBody(both), jsonCT)
	if resp.StatusCode != http.StatusCreated || !strings.Contains(body, cur.KeyID().String()) {
		t.Fatalf("envelope signed by a revoked and an active key: %s %s", resp.Status, body)
	}
	// Signed by the revoked key alone: refused, saying so.
	resp, body = post(t, srv.URL+"/attestations", "", "", sign(t, rebuildOf(bi.Event, bi.Index, nil), old), jsonCT)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "revoked") {
		t.Fatalf("revoked key alone: %s %s", resp.Status, body)
	}
}
