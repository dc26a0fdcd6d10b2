package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/httpapitest"
)

// TestBatchBlobs: GET /blobs serves small blobs in one answer, in the
// order asked, names large ones for a fetch of their own and refuses
// malformed or oversized requests; the client verifies every blob and
// refuses a server that sends other bytes or another digest.
func TestBatchBlobs(t *testing.T) {
	s := httpapitest.New(t)
	ctx := context.Background()
	small1, small2 := []byte("a small blob"), bytes.Repeat([]byte("b"), 1000)
	large := bytes.Repeat([]byte("large blob "), 10_000) // 110 KB
	var ds []cas.Digest
	for _, b := range [][]byte{small1, large, small2} {
		info, err := s.L.Store.PutBytes(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, info.Digest)
	}
	got := map[cas.Digest][]byte{}
	var order []cas.Digest
	tooLarge, err := s.Client.StoredBlobs(ctx, ds, func(d cas.Digest, b []byte) error {
		got[d] = bytes.Clone(b)
		order = append(order, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tooLarge) != 1 || tooLarge[0] != ds[1] || len(order) != 2 || order[0] != ds[0] || order[1] != ds[2] ||
		!bytes.Equal(got[ds[0]], small1) || !bytes.Equal(got[ds[2]], small2) {
		t.Fatalf("large %v, got %d blobs in order %v", tooLarge, len(got), order)
	}
	if _, err := s.Client.StoredBlobs(ctx, []cas.Digest{cas.Sum([]byte("absent"))}, func(cas.Digest, []byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "does not have it") {
		t.Fatalf("an absent blob: %v", err)
	}
	for q, want := range map[string]int{
		"":               400,
		"?sha256=nothex": 400,
		"?sha256=" + strings.Repeat(ds[0].String()+",", 128) + ds[0].String(): 400,
	} {
		res, err := http.Get(s.URL + "/blobs" + q)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("/blobs%.40s: %d, want %d", q, res.StatusCode, want)
		}
	}

	// A server that alters a byte, or answers with another digest.
	for name, lie := range map[string]func([]byte) []byte{
		"other bytes":  func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"other digest": func(b []byte) []byte { b[0] ^= 1; return b },
	} {
		liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			res, err := http.Get(s.URL + r.URL.RequestURI())
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			w.Write(lie(b))
		}))
		c, err := httpapi.NewClient(liar.URL, s.L.VKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.StoredBlobs(ctx, ds[:1], func(cas.Digest, []byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "SECURITY") {
			t.Errorf("%s: %v", name, err)
		}
		liar.Close()
	}
}
