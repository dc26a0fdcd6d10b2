package httpapi_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/httpapi/client"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

func TestClientLookupVerifies(t *testing.T) {
	l, srv := newServer(t)
	t0 := time.Now()
	for i := range 20 {
		storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/hello.hvt": fmt.Sprint("image ", i%3)}, t0.Add(time.Duration(i)*time.Minute), ledger.Result{Kind: ledger.ResultExited})
	}
	c, err := client.New(srv.URL, l.VKey, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Lookup(ctx, cas.Sum([]byte("image 1")))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Builds) != 7 {
		t.Fatalf("%d builds", len(res.Builds))
	}
	if _, err := c.Lookup(ctx, cas.Sum([]byte("never"))); !errors.Is(err, client.ErrNotInLedger) {
		t.Fatalf("unknown digest: %v", err)
	}

	// A server that alters an event is caught by the inclusion proof.
	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasPrefix(resp.Request.URL.Path, "/event/") {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		b = bytes.Replace(b, []byte("debian-12"), []byte("debian-13"), 1)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", fmt.Sprint(len(b)))
		return nil
	}
	tamper := httptest.NewServer(proxy)
	defer tamper.Close()
	tc, _ := client.New(tamper.URL, l.VKey, tamper.Client())
	if _, err := tc.Lookup(ctx, cas.Sum([]byte("image 1"))); err == nil || !strings.Contains(err.Error(), "SECURITY") {
		t.Fatalf("tampered event accepted: %v", err)
	}
	// A checkpoint signed by another key is refused.
	_, otherV, _ := ledger.GenerateLogKey(ledgertest.Origin)
	oc, _ := client.New(srv.URL, otherV, srv.Client())
	if _, err := oc.Checkpoint(ctx); !errors.Is(err, ledger.ErrBadCheckpoint) {
		t.Fatalf("foreign key: %v", err)
	}
}

// TestClientCatchesRewrittenHistory shows a client two logs signed with the
// same key that disagree: the consistency check must fail loudly.
func TestClientCatchesRewrittenHistory(t *testing.T) {
	l, srv := newServer(t)
	t0 := time.Now()
	for i := range 10 {
		storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/x": fmt.Sprint(i)}, t0, ledger.Result{Kind: ledger.ResultExited})
	}
	c, _ := client.New(srv.URL, l.VKey, srv.Client())
	old, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		storedBuild(t, l, "hello", "debian-12", map[string]string{"bin/x": fmt.Sprint("more", i)}, t0, ledger.Result{Kind: ledger.ResultExited})
	}
	newer, _ := c.Checkpoint(ctx)
	if err := c.CheckConsistency(ctx, old, newer); err != nil {
		t.Fatalf("honest growth: %v", err)
	}

	// The same key, another history.
	forked := ledgertest.Reopen(t, t.TempDir(), l.SKey, l.VKey)
	defer forked.Close()
	for i := range 15 {
		storedBuild(t, forked, "hello", "debian-12", map[string]string{"bin/x": fmt.Sprint("forged", i)}, t0, ledger.Result{Kind: ledger.ResultExited})
	}
	fs, _ := httpapi.New(httpapi.Config{Ledger: forked.Ledger, VKey: forked.VKey})
	fsrv := httptest.NewServer(fs)
	defer fsrv.Close()
	fc, _ := client.New(fsrv.URL, l.VKey, fsrv.Client())
	forkedCP, err := fc.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ie *client.InconsistencyError
	err = fc.CheckConsistency(ctx, old, forkedCP)
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "SECURITY") {
		t.Fatalf("forked log accepted: %v", err)
	}
	if !strings.Contains(err.Error(), string(old.Note)) {
		t.Fatal("error does not show the earlier checkpoint")
	}
	if err := fc.CheckConsistency(ctx, newer, forkedCP); !errors.As(err, &ie) {
		t.Fatalf("same-size fork accepted: %v", err)
	}
}
