package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	intoto "github.com/in-toto/in-toto-golang/in_toto"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/httpapi/httpapitest"
	"github.com/buildledger/buildledger/internal/tooltest"
	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/buildledger/buildledger/ledger/event"
	"github.com/buildledger/buildledger/rebuilder"
)

// uploadHello uploads a build of job hello that exits with code, with an
// image and a build-environment, and returns its UUID.
func uploadHello(t *testing.T, srv *httpapitest.Server, code int) uuid.UUID {
	t.Helper()
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ex := &builder.Exec{Job: builder.Job{Name: "hello", Script: "true\n", Platform: "debian-12"}, UUID: uuid.New(),
		Started: start, Finished: start.Add(time.Second), Result: builder.Result{Kind: builder.ResultExited, Code: code},
		Output: []builder.File{{Path: "bin/hello.hvt", Data: []byte("image")}, {Path: "build-environment", Data: []byte("A=1\n")}}}
	der, err := ex.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.Client.Upload(context.Background(), der, ex.UUID, httpapitest.Farm); err != nil {
		t.Fatal(err)
	}
	return ex.UUID
}

// TestIntotoLayout: the layout names the proven keys and the build's
// output files, the recorded link states their digests; a build of another
// job, a failed build, an unknown key or no recorder key are refused.
func TestIntotoLayout(t *testing.T) {
	srv := httpapitest.New(t)
	srv.Key("a", true)
	srv.Key("b", true)
	good := uploadHello(t, srv, 0)
	failed := uploadHello(t, srv, 1)
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

// TestIntotoExportVerifies: links submitted to the ledger come back out of
// it (ledger intoto export), proven, and with the layout of ledger intoto
// layout both independent in-toto verifiers (Debian's Python
// in-toto-verify and the in-toto-golang command) accept 2 agreeing
// rebuilds of the recorded bytes, and refuse a tampered or missing link.
func TestIntotoExportVerifies(t *testing.T) {
	pyVerify, goVerify := tooltest.InTotoVerify(t), tooltest.InTotoGolang(t)
	srv := httpapitest.New(t)
	ctx := context.Background()
	id := uploadHello(t, srv, 0)
	b, _, _, err := srv.Client.Build(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	main, _ := b.Artifact("bin/hello.hvt")
	for _, name := range []string{"a", "b"} {
		srv.Key(name, true)
		ik, err := attest.LoadInTotoKey(srv.KeyPEMs[name])
		if err != nil {
			t.Fatal(err)
		}
		o := &rebuilder.Outcome{Build: b, Result: &rebuilder.Result{}, Verdict: attest.Reproduced,
			Comparison: rebuilder.Compare(b.Artifacts, []event.Artifact{main})}
		mb, err := rebuilder.Link(o, ik)
		if err != nil {
			t.Fatal(err)
		}
		if name == "b" {
			// A signer's key id hint need not be in-toto-golang's, nor its
			// hex lower-case: the client still proves its receipt.
			mb.Signatures[0].KeyID, mb.Signatures[0].Sig = strings.Repeat("0", 64), strings.ToUpper(mb.Signatures[0].Sig)
		}
		data, _ := json.Marshal(mb)
		if _, err := srv.Client.SubmitAttestation(ctx, data); err != nil {
			t.Fatalf("submitting %s's link: %v", name, err)
		}
	}
	dir := t.TempDir()
	links := filepath.Join(dir, "links")
	base := []string{"--server", srv.URL, "--log-key", srv.L.VKey, "--state", filepath.Join(dir, "state.json")}
	out, err := runErr(append([]string{"intoto", "export", "--build", id.String(), "--dir", links}, base...)...)
	if err != nil || strings.Count(out, "verdict reproduced") != 2 {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if _, err := runErr(append([]string{"intoto", "export", "--build", uuid.NewString(), "--dir", links}, base...)...); err == nil {
		t.Fatal("export of an unknown build succeeded")
	}

	layoutPEM, _ := attest.GenerateKey(attest.RSA3072)
	ls, _ := attest.LoadSigner(layoutPEM, nil)
	layoutPub := filepath.Join(dir, "layout.pub")
	os.WriteFile(layoutPub, ls.PublicKeyPEM(), 0o644)
	layout := filepath.Join(dir, "root.layout")
	if out, err := runErr(append([]string{"intoto", "layout", "--build", id.String(), "--threshold", "2", "--recorder-key", layoutPub,
		"--out", layout, "--link-dir", links}, base...)...); err != nil {
		t.Fatalf("layout: %v\n%s", err, out)
	}
	// The operator signs the layout and the recorded link.
	lk, err := attest.LoadInTotoKey(layoutPEM)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := filepath.Glob(filepath.Join(links, "recorded.*.link"))
	for _, p := range append(rec, layout) {
		md, err := intoto.LoadMetadata(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := md.Sign(lk); err != nil {
			t.Fatal(err)
		}
		if err := md.Dump(p); err != nil {
			t.Fatal(err)
		}
	}
	verify := func() []error {
		var errs []error
		for _, c := range [][]string{
			{pyVerify, "--layout", layout, "--layout-keys", layoutPub, "--link-dir", links},
			{goVerify, "verify", "--layout", layout, "--layout-keys", layoutPub, "--link-dir", links},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %v\n%s", filepath.Base(c[0]), err, out))
			} else {
				errs = append(errs, nil)
			}
		}
		return errs
	}
	for _, err := range verify() {
		if err != nil {
			t.Fatalf("the exported links do not verify: %v", err)
		}
	}
	exported, _ := filepath.Glob(filepath.Join(links, "rebuild.*.link"))
	if len(exported) != 2 {
		t.Fatalf("exported %v", exported)
	}
	raw, _ := os.ReadFile(exported[0])
	os.WriteFile(exported[0], []byte(strings.Replace(string(raw), main.SHA256.String(), attest.Sum([]byte("other")).String(), 1)), 0o644)
	for i, err := range verify() {
		if err == nil {
			t.Errorf("verifier %d accepted a tampered product", i)
		}
	}
	os.Remove(exported[0])
	for i, err := range verify() {
		if err == nil {
			t.Errorf("verifier %d accepted a missing link", i)
		}
	}
}
