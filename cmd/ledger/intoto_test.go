package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/httpapi/httpapitest"
	"github.com/buildledger/buildledger/ledger/builder"
)

// TestIntotoLayout: the layout names the proven keys and the build's
// output files, the recorded link states their digests; a build of another
// job, a failed build, an unknown key or no recorder key are refused.
func TestIntotoLayout(t *testing.T) {
	srv := httpapitest.New(t)
	srv.Key("a", true)
	srv.Key("b", true)
	ctx := context.Background()
	upload := func(code int) uuid.UUID {
		t.Helper()
		start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
		ex := &builder.Exec{Job: builder.Job{Name: "hello", Script: "true\n", Platform: "debian-12"}, UUID: uuid.New(),
			Started: start, Finished: start.Add(time.Second), Result: builder.Result{Kind: builder.ResultExited, Code: code},
			Output: []builder.File{{Path: "bin/hello.hvt", Data: []byte("image")}, {Path: "build-environment", Data: []byte("A=1\n")}}}
		der, err := ex.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := srv.Client.Upload(ctx, der, ex.UUID, httpapitest.Farm); err != nil {
			t.Fatal(err)
		}
		return ex.UUID
	}
	good := upload(0)
	failed := upload(1)
	dir := t.TempDir()
	p, _ := attest.GenerateKey(attest.RSA3072)
	s, _ := attest.LoadSigner(p, nil)
	recorder := filepath.Join(dir, "layout.pub")
	os.WriteFile(recorder, s.PublicKeyPEM(), 0o644)
	base := []string{"intoto", "layout", "--server", srv.URL, "--log-key", srv.L.VKey, "--state", filepath.Join(dir, "state.json")}
	layout := filepath.Join(dir, "root.layout")
	links := filepath.Join(dir, "links")
	out, err := runErr(append(base, "--job", "hello", "--threshold", "2", "--recorder-key", recorder, "--out", layout, "--link-dir", links)...)
	if err != nil || !strings.Contains(out, "layout for build "+good.String()) {
		t.Fatalf("layout: %v\n%s", err, out)
	}
	var l struct {
		Signed struct {
			Keys  map[string]any `json:"keys"`
			Steps []struct {
				Name             string     `json:"name"`
				Threshold        int        `json:"threshold"`
				ExpectedProducts [][]string `json:"expected_products"`
			} `json:"steps"`
		} `json:"signed"`
	}
	b, _ := os.ReadFile(layout)
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Signed.Keys) != 3 || len(l.Signed.Steps) != 2 || l.Signed.Steps[1].Threshold != 2 ||
		!strings.Contains(string(b), `"MATCH",`) || strings.Contains(string(b), "build-environment") {
		t.Fatalf("layout:\n%s", b)
	}
	m, _ := filepath.Glob(filepath.Join(links, "recorded.*.link"))
	if len(m) != 1 {
		t.Fatalf("recorded link: %v", m)
	}
	rec, _ := os.ReadFile(m[0])
	if !strings.Contains(string(rec), attest.Sum([]byte("image")).String()) {
		t.Fatalf("recorded link:\n%s", rec)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--build", failed.String(), "--recorder-key", recorder}, "a failed build is not one to reproduce"},
		{[]string{"--build", good.String(), "--job", "other", "--recorder-key", recorder}, "is of job hello, not other"},
		{[]string{"--job", "hello"}, "--recorder-key is required"},
		{[]string{"--job", "hello", "--recorder-key", recorder, "--key", "nobody"}, "--key nobody: no registered key"},
		{[]string{"--job", "hello", "--recorder-key", recorder, "--threshold", "3"}, "can never be met"},
	} {
		_, err := runErr(append(append(base, "--link-dir", links), c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
