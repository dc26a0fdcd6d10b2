package replica_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/replica"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
)

// TestReplicaState: a replica's server is not ready before its first
// checkpoint, is ready once caught up, and is not ready while it has seen
// a checkpoint of its primary it is more than MaxReplicaLag entries short
// of (here the primary's entry bundles fail); its lag shows on /metrics.
func TestReplicaState(t *testing.T) {
	p := newPrimary(t)
	p.record(t, "web", map[string]string{"bin/web.hvt": "image 0"})

	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := cas.New(db, cas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(db, store, ledger.Config{ReplicaOf: p.L.VKey})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := &replica.Replica{Client: p.Client, Ledger: l}
	s, err := httpapi.New(httpapi.Config{Ledger: l, VKey: p.L.VKey, Primary: p.URL, Replica: r, MaxReplicaLag: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()

	ready := func(want int, reason string) {
		t.Helper()
		code, body := get(t, srv.URL+"/readyz")
		if code != want || !strings.Contains(body, reason) {
			t.Fatalf("/readyz: %d %s, want %d with %q", code, body, want, reason)
		}
	}
	ready(http.StatusServiceUnavailable, "no checkpoint")
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ready(http.StatusOK, "ready")
	if st := r.State(); st.Lag() != 0 || st.LastSync.IsZero() || st.PrimarySize != p.L.Size() {
		t.Fatalf("state after a sync: %+v", st)
	}

	// Three more entries the replica sees in a checkpoint but cannot fetch.
	for i := 1; i <= 3; i++ {
		p.record(t, "web", map[string]string{"bin/web.hvt": fmt.Sprint("image ", i)})
	}
	primary, err := httpapi.New(httpapi.Config{Ledger: p.L.Ledger, VKey: p.L.VKey})
	if err != nil {
		t.Fatal(err)
	}
	p.Swap(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, "/tile/entries/") {
			http.Error(w, "unavailable", http.StatusInternalServerError)
			return
		}
		primary.ServeHTTP(w, req)
	}))
	if _, err := r.Sync(ctx); err == nil {
		t.Fatal("sync without entry bundles succeeded")
	}
	if st := r.State(); st.PrimarySize != p.L.Size() || st.Lag() < 3 {
		t.Fatalf("state after a failed sync: %+v", st)
	}
	ready(http.StatusServiceUnavailable, "behind its primary")
	_, metrics := get(t, srv.URL+"/metrics")
	if !strings.Contains(metrics, fmt.Sprintf("buildledger_replica_lag_entries %d", r.State().Lag())) {
		t.Fatalf("no lag on /metrics:\n%s", metrics)
	}

	p.Swap(primary)
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ready(http.StatusOK, "ready")
}
