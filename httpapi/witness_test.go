package httpapi_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/ledgertest"
	"github.com/buildledger/buildledger/ledger/witnessing"
)

// /checkpoint serves the checkpoint with its witnesses' cosignatures once
// they answered for it, saying whether they make a quorum; a newer
// checkpoint not yet cosigned is served as it is, saying so. Clients that
// know only the log key still verify it.
func TestCheckpointWithCosignatures(t *testing.T) {
	l := ledgertest.Open(t)
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "hello"}); err != nil {
		t.Fatal(err)
	}
	var cosigned witnessing.Cosigned
	s, err := httpapi.New(httpapi.Config{Ledger: l.Ledger, VKey: l.VKey, Witnessed: func() witnessing.Cosigned { return cosigned }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	cp := l.Checkpoint()
	sig := []byte("— witness.example/one AAAAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdI\n")
	cosigned = witnessing.Cosigned{Note: append(bytes.Clone(cp.Note), sig...), Size: cp.Size, Quorum: true, Signed: []string{"one"}}
	resp, body := get(t, srv.URL+"/checkpoint", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Witness-Quorum") != "met" || resp.Header.Get("Witness-Cosignatures") != "1" || !bytes.HasSuffix([]byte(body), sig) {
		t.Fatalf("cosigned: %s %v\n%s", resp.Status, resp.Header, body)
	}
	if _, err := checkpoint.Open([]byte(body), ledgertest.Origin, l.VKey); err != nil {
		t.Fatalf("the cosigned checkpoint does not verify with the log key: %v", err)
	}
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "web"}); err != nil {
		t.Fatal(err)
	}
	resp, body = get(t, srv.URL+"/checkpoint", "")
	if resp.Header.Get("Witness-Quorum") != "not yet asked" || body != string(l.Checkpoint().Note) {
		t.Fatalf("a newer checkpoint: %v\n%s", resp.Header, body)
	}
}
