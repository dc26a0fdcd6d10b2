package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

func uploadServer(t *testing.T, maxBody int64) (*ledgertest.Ledger, *httptest.Server) {
	t.Helper()
	return uploadServerWith(t, httpapi.Config{MaxBody: maxBody}, nil)
}

// uploadServerWith is uploadServer with a configuration (Ledger, VKey and
// Users are filled in) and a middleware wrapped around the server (nil for
// none).
func uploadServerWith(t *testing.T, cfg httpapi.Config, wrap func(http.Handler) http.Handler) (*ledgertest.Ledger, *httptest.Server) {
	t.Helper()
	l := ledgertest.Open(t)
	users := auth.New(l.DB)
	if err := users.Add("farm", "farm-password", true); err != nil {
		t.Fatal(err)
	}
	if err := users.Add("alice", "alice-password", false); err != nil {
		t.Fatal(err)
	}
	if err := users.Grant("alice", "hello"); err != nil {
		t.Fatal(err)
	}
	cfg.Ledger, cfg.VKey, cfg.Users = l.Ledger, l.VKey, users
	s, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = s
	if wrap != nil {
		h = wrap(s)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return l, srv
}

// post sends body with Basic credentials (if user is set) and the given
// headers, and returns the response with its body read.
func post(t *testing.T, u, user, pw string, body []byte, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestManualUpload(t *testing.T) {
	l, srv := uploadServer(t, 1<<20)
	image := bytes.Repeat([]byte("unikernel "), 1000)
	u := srv.URL + "/job/hello/platform/debian-12/upload?binary_name=hello.hvt"

	for _, c := range []struct {
		name, url, user, pw string
		body                []byte
		status              int
		want                string
	}{
		{"no credentials", u, "", "", image, 401, "Basic credentials"},
		{"wrong password", u, "alice", "nope-nope", image, 401, "wrong user name or password"},
		{"unknown user", u, "mallory", "whatever1", image, 401, "wrong user name or password"},
		{"restricted, other job", srv.URL + "/job/other/platform/debian-12/upload", "alice", "alice-password", image, 403, `may not upload to job "other"`},
		{"path in binary name", u + "/../../x", "farm", "farm-password", image, 400, "plain file name"},
		{"slash in binary name", srv.URL + "/job/hello/platform/debian-12/upload?binary_name=a/b", "farm", "farm-password", image, 400, "plain file name"},
		{"bad job name", srv.URL + "/job/.hidden/platform/debian-12/upload", "farm", "farm-password", image, 400, "not allowed"},
		{"too large", u, "farm", "farm-password", make([]byte, 2<<20), 413, "limit of 1048576 bytes"},
	} {
		resp, body := post(t, c.url, c.user, c.pw, c.body, nil)
		if resp.StatusCode != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, resp.StatusCode, body, c.status, c.want)
		}
		if c.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", c.name)
		}
	}
	if l.Size() != 0 {
		t.Fatalf("refused uploads changed the log (size %d)", l.Size())
	}

	resp, body := post(t, u, "alice", "alice-password", image, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	var rc httpapi.UploadReceipt
	if err := json.Unmarshal([]byte(body), &rc); err != nil {
		t.Fatal(err)
	}
	if rc.MainBinary == nil || *rc.MainBinary != "bin/hello.hvt" || resp.Header.Get("Location") != rc.URL {
		t.Fatalf("receipt: %+v", rc)
	}
	cp, err := ledger.OpenCheckpoint([]byte(rc.Checkpoint), ledgertest.Origin, l.VKey)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := l.EventBytes(rc.LogIndex)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, rc.LogIndex, cp.Size, rfc6962.DefaultHasher.HashLeaf(ev), rc.Inclusion, cp.Hash[:]); err != nil {
		t.Fatalf("receipt proof: %v", err)
	}
	b, err := l.Build(rc.UUID)
	if err != nil || b.Event.Artifacts[0].SHA256 != cas.Sum(image) {
		t.Fatalf("recorded build: %+v %v", b, err)
	}
	got, _ := l.Store.Bytes(ctx, cas.Sum(image), 1<<20)
	if !bytes.Equal(got, image) {
		t.Fatal("stored image differs")
	}
	resp, _ = get(t, srv.URL+"/hash?sha256="+cas.Sum(image).String(), "")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != rc.URL {
		t.Fatalf("lookup after upload: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestMainBinaryRule(t *testing.T) {
	for _, c := range []struct {
		paths []string
		want  string
	}{
		{[]string{"bin/a.hvt", "opam-switch"}, "bin/a.hvt"},
		{[]string{"bin/hello.hvt", "bin/hello-debug"}, "bin/hello.hvt"},
		{[]string{"bin/x", "bin/y"}, ""},
		{[]string{"bin/sub/hello.hvt"}, ""},
		{nil, ""},
	} {
		got := httpapi.MainBinary("hello", c.paths)
		if (got == nil) != (c.want == "") || got != nil && *got != c.want {
			t.Errorf("%v: got %v want %q", c.paths, got, c.want)
		}
	}
}

// TestUploadsStoredAsPatches: a new build of a job whose binary differs a
// little from the previous build's is stored as a patch against it, a
// fraction of its size, and is served byte for byte.
func TestUploadsStoredAsPatches(t *testing.T) {
	l, srv := uploadServer(t, 8<<20)
	u := srv.URL + "/job/hello/platform/debian-12/upload?binary_name=hello.hvt"
	rnd := rand.New(rand.NewPCG(1, 2))
	vocab := make([][]byte, 4096)
	for i := range vocab {
		vocab[i] = make([]byte, 2+rnd.IntN(14))
		for j := range vocab[i] {
			vocab[i][j] = byte(rnd.Uint32())
		}
	}
	var first []byte
	for len(first) < 2<<20 {
		first = append(first, vocab[rnd.IntN(len(vocab))]...)
	}
	second := bytes.Clone(first)
	for range 20 { // about 1% changed
		at := rnd.IntN(len(second) - 1000)
		for j := range 1000 {
			second[at+j] = byte(rnd.Uint32())
		}
	}
	var rcs []httpapi.UploadReceipt
	for _, image := range [][]byte{first, second} {
		resp, body := post(t, u, "farm", "farm-password", image, nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload: %d %s", resp.StatusCode, body)
		}
		var rc httpapi.UploadReceipt
		if err := json.Unmarshal([]byte(body), &rc); err != nil {
			t.Fatal(err)
		}
		rcs = append(rcs, rc)
	}
	st, err := l.Ledger.Store().Stat(cas.Sum(second))
	if err != nil || st.StoredBytes > int64(len(second))/20 {
		t.Fatalf("second build's binary of %d bytes takes %d: %v", len(second), st.StoredBytes, err)
	}
	for i, image := range [][]byte{first, second} {
		resp, err := http.Get(srv.URL + "/job/hello/build/" + rcs[i].UUID.String() + "/f/bin/hello.hvt")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, image) {
			t.Fatalf("build %d: %d, %d bytes served, want %d", i, resp.StatusCode, len(got), len(image))
		}
	}
	// HEAD and ranges of the patched one.
	u2 := srv.URL + "/job/hello/build/" + rcs[1].UUID.String() + "/f/bin/hello.hvt"
	resp, err := http.Head(u2)
	if err != nil || resp.StatusCode != 200 || resp.ContentLength != int64(len(second)) {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	req, _ := http.NewRequest(http.MethodGet, u2, nil)
	req.Header.Set("Range", "bytes=1000000-1000099")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, second[1000000:1000100]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(got))
	}
}
