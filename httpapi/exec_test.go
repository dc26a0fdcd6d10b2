package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/builder"
)

func sampleExec(job string) *builder.Exec {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	return &builder.Exec{
		Job:     builder.Job{Name: job, Script: "#!/bin/sh\norb build " + job + "\n", Platform: "debian-12"},
		UUID:    uuid.New(),
		Console: []builder.Line{{Delta: time.Millisecond, Data: "orb build"}, {Delta: 12 * time.Second, Data: "done"}},
		Started: t0, Finished: t0.Add(13 * time.Second),
		Result: builder.Result{Kind: builder.ResultExited},
		Output: []builder.File{
			{Path: "bin/" + job + ".hvt", Data: append([]byte{0x7f, 'E', 'L', 'F', 0, 0xff}, "unikernel"...)},
			{Path: "build-environment", Data: []byte("OS=linux\nOS_FAMILY=debian\n")},
			{Path: "system-packages", Data: []byte("gcc=12.2\n")},
			{Path: "opam-switch", Data: []byte("opam-version: \"2.0\"\n")},
		},
	}
}

// postDER posts a DER exec record to /upload-style URLs.
func postDER(t *testing.T, url, user, pw string, body []byte, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/octet-stream"}
	for k, v := range hdr {
		h[k] = v
	}
	return post(t, url, user, pw, body, h)
}

func TestExecUploadAndExport(t *testing.T) {
	l, srv := uploadServer(t, 1<<20)
	ex := sampleExec("hello")
	der, err := ex.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	resp, body := postDER(t, srv.URL+"/upload", "alice", "alice-password", der, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	var rc httpapi.UploadReceipt
	if err := json.Unmarshal([]byte(body), &rc); err != nil || rc.UUID != ex.UUID || rc.MainBinary == nil || *rc.MainBinary != "bin/hello.hvt" {
		t.Fatalf("receipt: %s", body)
	}
	b, err := l.Build(ex.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if b.Event.Inputs.OpamSwitch == nil || b.Event.Inputs.BuildEnvironment == nil || b.Event.Inputs.SystemPackages == nil || !b.Event.Succeeded() {
		t.Fatalf("inputs not recorded: %+v", b.Event)
	}
	console, _ := l.Store.Bytes(ctx, b.Event.Console, 1<<20)
	if string(console) != "0.001s:orb build\n12.000s:done\n" {
		t.Fatalf("console %q", console)
	}

	// The same build sent again (a retry) is answered with the recorded
	// entry; another build under the same UUID is a conflict.
	resp, body = postDER(t, srv.URL+"/upload", "farm", "farm-password", der, nil)
	var again httpapi.UploadReceipt
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &again) != nil || !again.Existing || again.LogIndex != rc.LogIndex {
		t.Fatalf("identical build again: %d %s", resp.StatusCode, body)
	}
	other := sampleExec("hello")
	other.UUID = ex.UUID
	other.Console = append(other.Console, builder.Line{Delta: time.Second, Data: "another run"})
	otherDER, err := other.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	size := l.Size()
	if resp, body := postDER(t, srv.URL+"/upload", "farm", "farm-password", otherDER, nil); resp.StatusCode != http.StatusConflict {
		t.Fatalf("another build under a recorded UUID: %d %s", resp.StatusCode, body)
	}
	if l.Size() != size {
		t.Fatalf("a refused duplicate changed the log: %d → %d", size, l.Size())
	}

	// Re-export and compare with what was uploaded.
	resp, body = get(t, srv.URL+"/job/hello/build/"+ex.UUID.String()+"/exec", "")
	if resp.StatusCode != 200 {
		t.Fatalf("exec: %d", resp.StatusCode)
	}
	back, err := builder.Parse([]byte(body), builder.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if back.UUID != ex.UUID || back.Job.Name != ex.Job.Name || back.Job.Script != ex.Job.Script || back.Job.Platform != ex.Job.Platform || len(back.Output) != len(ex.Output) || back.Result != ex.Result ||
		!back.Started.Equal(ex.Started) || len(back.Console) != 2 || back.Console[1] != ex.Console[1] {
		t.Fatalf("re-export differs: %+v", back)
	}
	// And it can be uploaded to another ledger as is.
	l2, srv2 := uploadServer(t, 1<<20)
	if resp, body := postDER(t, srv2.URL+"/upload", "farm", "farm-password", []byte(body), nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("mirror upload: %d %s", resp.StatusCode, body)
	}
	b2, _ := l2.Build(ex.UUID)
	if b2.Event.InputID != b.Event.InputID || b2.Event.Artifacts[0] != b.Event.Artifacts[0] {
		t.Fatal("mirrored build differs")
	}

	// Signals arrive as OCaml numbers and are stored as POSIX ones.
	sig := sampleExec("hello")
	sig.Result = builder.Result{Kind: builder.ResultSignalled, Code: -7}
	d2, _ := sig.Marshal()
	if resp, body := postDER(t, srv.URL+"/upload", "farm", "farm-password", d2, nil); resp.StatusCode != 201 {
		t.Fatalf("signalled: %d %s", resp.StatusCode, body)
	}
	if b, _ := l.Build(sig.UUID); b.Event.Result != (ledger.Result{Kind: ledger.ResultSignalled, Code: 9}) {
		t.Fatalf("signal stored as %v", b.Event.Result)
	}
}

func TestExecUploadRefusals(t *testing.T) {
	l, srv := uploadServer(t, 64<<10)
	good, _ := sampleExec("hello").Marshal()
	traversal := bytes.Replace(good, []byte("bin/hello.hvt"), []byte("../hello.hvtx"), 1)
	other, _ := sampleExec("other").Marshal()
	// Bombs: a record with a 10 MiB file of zeros in a few KiB, which is
	// refused at the record's length, over the limit; and 10 MiB of zeros,
	// which is not a record from its first byte.
	bomb := sampleExec("hello")
	bomb.Output[0].Data = make([]byte, 10<<20)
	bombDER, _ := bomb.Marshal()
	var gz, gzZeros bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bombDER)
	zw.Close()
	zw = gzip.NewWriter(&gzZeros)
	zw.Write(make([]byte, 10<<20))
	zw.Close()
	zenc, _ := zstd.NewWriter(nil)
	zgood := zenc.EncodeAll(good, nil)
	zbomb := zenc.EncodeAll(bombDER, nil)

	for _, c := range []struct {
		name     string
		user, pw string
		body     []byte
		hdr      map[string]string
		status   int
		want     string
	}{
		{"no credentials", "", "", good, nil, 401, "Basic credentials"},
		{"wrong password", "farm", "wrong-password", good, nil, 401, "wrong user name"},
		{"restricted user, other job", "alice", "alice-password", other, nil, 403, `may not upload to job "other"`},
		{"not DER", "farm", "farm-password", []byte("hello"), nil, 400, "exec"},
		{"truncated", "farm", "farm-password", good[:len(good)/2], nil, 400, "exec"},
		{"path traversal", "farm", "farm-password", traversal, nil, 400, ".."},
		// builder-web reads the body whatever the Content-Type says: what
		// refuses garbage is the DER parser, whatever the type.
		{"json content type, not DER", "farm", "farm-password", []byte(`{"job":"x"}`), map[string]string{"Content-Type": "application/json"}, 400, "exec"},
		{"curl's form type, not DER", "farm", "farm-password", []byte("a=b&c=d"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 400, "exec"},
		{"unknown encoding", "farm", "farm-password", good, map[string]string{"Content-Encoding": "br"}, 415, "not supported"},
		{"gzip bomb", "farm", "farm-password", gz.Bytes(), map[string]string{"Content-Encoding": "gzip"}, 413, "larger than the limit of 65536"},
		{"zstd bomb", "farm", "farm-password", zbomb, map[string]string{"Content-Encoding": "zstd"}, 413, "limit"},
		{"gzip zeros", "farm", "farm-password", gzZeros.Bytes(), map[string]string{"Content-Encoding": "gzip"}, 400, "expected [0] (an exec record)"},
		{"not gzip", "farm", "farm-password", good, map[string]string{"Content-Encoding": "gzip"}, 400, "not valid gzip"},
		{"too large", "farm", "farm-password", make([]byte, 100<<10), nil, 413, "limit"},
	} {
		resp, body := postDER(t, srv.URL+"/upload", c.user, c.pw, c.body, c.hdr)
		if resp.StatusCode != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, resp.StatusCode, body, c.status, c.want)
		}
	}
	if l.Size() != 0 {
		t.Fatalf("refused uploads changed the log (size %d)", l.Size())
	}
	if resp, body := postDER(t, srv.URL+"/upload", "farm", "farm-password", zgood, map[string]string{"Content-Encoding": "zstd"}); resp.StatusCode != 201 {
		t.Fatalf("zstd upload: %d %s", resp.StatusCode, body)
	}
	if hits, _ := l.BuildsByArtifact(cas.Sum(append([]byte{0x7f, 'E', 'L', 'F', 0, 0xff}, "unikernel"...))); len(hits) != 1 {
		t.Fatalf("zstd upload not recorded")
	}
}
