package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/internal/adminsock"
	"github.com/buildledger/buildledger/internal/kv"
)

// runIn runs the ledger command with stdin and returns its output.
func runIn(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newRoot()
	cmd.SetIn(strings.NewReader(stdin))
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func mustRunIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := runIn(t, stdin, args...)
	if err != nil {
		t.Fatalf("ledger %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func auditLines(t *testing.T, data string) []adminsock.Entry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, auditFile))
	if err != nil {
		t.Fatal(err)
	}
	var es []adminsock.Entry
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e adminsock.Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		es = append(es, e)
	}
	return es
}

// TestAccountsWhileServing runs `ledger serve` on a fresh data directory
// and manages its accounts without stopping it: the first administrator
// is added through the administration socket and uploads at once; a
// restricted user is refused a job (403) until `access add` grants it and
// after `access remove` withdraws it; a removed user gets 401 at once
// (though its login was cached); `user list` shows no hash; the audit in
// DATA/accounts.log records each change with this process's uid and pid.
func TestAccountsWhileServing(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	state := filepath.Join(t.TempDir(), "state.json")
	url, stop := startServe(t, data)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	fi, err := os.Lstat(filepath.Join(data, adminSocket))
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("administration socket: %v %v", fi, err)
	}

	out := mustRunIn(t, "admin-password\n", "user", "add", "admin", "--admin", "--data", data)
	if !strings.Contains(out, "added user admin (unrestricted: true, admin: true)") {
		t.Fatalf("user add: %s", out)
	}
	if _, err := runIn(t, "other-password\n", "user", "add", "admin", "--data", data); err == nil || !strings.Contains(err.Error(), "user exists") {
		t.Fatalf("adding admin twice: %v", err)
	}
	upload := func(user, pw, job string) (string, error) {
		t.Setenv("BUILDLEDGER_PASSWORD", pw)
		return runErr("upload", "demo", "--job", job, "--server", url, "--user", user, "--state", state)
	}
	if out, err := upload("admin", "admin-password", "hello"); err != nil || !strings.Contains(out, "inclusion verified") {
		t.Fatalf("upload by the new administrator: %v\n%s", err, out)
	}

	mustRunIn(t, "bob-password\n", "user", "add", "bob", "--data", data)
	if _, err := upload("bob", "bob-password", "bobs"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("upload to a job not granted: %v", err)
	}
	mustRunIn(t, "", "access", "add", "bob", "bobs", "--data", data)
	if out, err := upload("bob", "bob-password", "bobs"); err != nil {
		t.Fatalf("upload after access add: %v\n%s", err, out)
	}
	mustRunIn(t, "", "access", "remove", "bob", "bobs", "--data", data)
	if _, err := upload("bob", "bob-password", "bobs"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("upload after access remove: %v", err)
	}
	mustRunIn(t, "", "access", "add", "bob", "bobs", "--data", data)

	list := mustRunIn(t, "", "user", "list", "--data", data)
	if list != "admin\tall jobs\tadmin\nbob\tbobs\n" {
		t.Fatalf("user list:\n%s", list)
	}
	raw, err := adminsock.Do(context.Background(), filepath.Join(data, adminSocket), adminsock.Request{Op: adminsock.OpUserList})
	if err != nil {
		t.Fatal(err)
	}
	rawJSON, _ := json.Marshal(raw)

	mustRunIn(t, "", "user", "remove", "bob", "--data", data)
	if _, err := upload("bob", "bob-password", "bobs"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("upload by a removed user: %v", err)
	}
	if _, err := runIn(t, "", "user", "remove", "bob", "--data", data); err == nil || !strings.Contains(err.Error(), `no such user "bob"`) {
		t.Fatalf("removing a removed user: %v", err)
	}
	if out, err := upload("admin", "admin-password", "hello"); err != nil {
		t.Fatalf("the administrator after bob's removal: %v\n%s", err, out)
	}

	stop()
	stopped = true
	if _, err := os.Lstat(filepath.Join(data, adminSocket)); err == nil {
		t.Fatal("the administration socket outlived the server")
	}
	db, err := kv.Open(filepath.Join(data, "db"), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := auth.New(db).Get("admin")
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range [][]byte{u.Hash, u.Salt} {
		enc := base64.StdEncoding.EncodeToString(secret)
		if strings.Contains(list, enc) || strings.Contains(string(rawJSON), enc) {
			t.Fatalf("a listing shows the administrator's hash or salt:\n%s\n%s", list, rawJSON)
		}
	}

	type change struct{ op, user, job, result string }
	var got []change
	es := auditLines(t, data)
	for _, e := range es {
		if e.Peer != (adminsock.Peer{UID: os.Getuid(), PID: os.Getpid(), Via: "socket"}) || e.Time.IsZero() {
			t.Fatalf("audit entry without who or when: %+v", e)
		}
		if e.Result != "requested" {
			got = append(got, change{e.Op, e.User, e.Job, strings.SplitN(e.Result, ":", 2)[0]})
		}
	}
	want := []change{
		{"user-add", "admin", "", "ok"},
		{"user-add", "admin", "", "failed"},
		{"user-add", "bob", "", "ok"},
		{"access-add", "bob", "bobs", "ok"},
		{"access-remove", "bob", "bobs", "ok"},
		{"access-add", "bob", "bobs", "ok"},
		{"user-remove", "bob", "", "ok"},
		{"user-remove", "bob", "", "failed"},
	}
	if len(es) != 2*len(want) || len(got) != len(want) {
		t.Fatalf("audit has %d lines, %d outcomes; want %d changes:\n%+v", len(es), len(got), len(want), es)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("audit change %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	b, _ := os.ReadFile(filepath.Join(data, auditFile))
	if strings.Contains(string(b), "password") {
		t.Fatalf("the audit holds a password:\n%s", b)
	}
}

// TestAccountsStaleSocket: with no server running and a socket file left
// behind by one that died, `user add` makes the change on the store
// itself (audited as direct), and `serve` then replaces the stale socket
// and lets the new user upload.
func TestAccountsStaleSocket(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(data, adminSocket), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	if list := mustRunIn(t, "", "user", "list", "--data", data); list != "" {
		t.Fatalf("user list of a fresh ledger: %q", list)
	}
	if _, err := os.Stat(filepath.Join(data, auditFile)); err == nil {
		t.Fatal("a listing made an audit entry")
	}
	mustRunIn(t, "farm-password\n", "user", "add", "farm", "--unrestricted", "--data", data)
	if list := mustRunIn(t, "", "user", "list", "--data", data); list != "farm\tall jobs\n" {
		t.Fatalf("user list: %q", list)
	}
	es := auditLines(t, data)
	if len(es) != 2 || es[1].Result != "ok" || es[1].Peer != (adminsock.Peer{UID: os.Getuid(), PID: os.Getpid(), Via: "direct"}) {
		t.Fatalf("audit of a direct change: %+v", es)
	}

	url, stop := startServe(t, data)
	defer stop()
	t.Setenv("BUILDLEDGER_PASSWORD", "farm-password")
	if out, err := runErr("upload", "demo", "--job", "hello", "--server", url, "--user", "farm", "--state", filepath.Join(t.TempDir(), "state.json")); err != nil {
		t.Fatalf("upload: %v\n%s", err, out)
	}
	c, err := net.Dial("unix", filepath.Join(data, adminSocket))
	if err != nil {
		t.Fatalf("serve did not replace the stale socket: %v", err)
	}
	c.Close()
}

// TestAccountBeforeFirstServe: an account added to a fresh directory
// before any server ran does not fix the log's key or origin; the first
// serve with --public-url still names the log after it.
func TestAccountBeforeFirstServe(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	mustRunIn(t, "admin-password\n", "user", "add", "admin", "--admin", "--data", data)
	if _, err := os.Stat(filepath.Join(data, "log.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("user add made a log key (%v)", err)
	}
	url, stop := startServe(t, data, "--public-url", "https://builds.example.org/")
	defer stop()
	resp, err := http.Get(url + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first, _ := bufio.NewReader(resp.Body).ReadString('\n')
	if first != "builds.example.org/log\n" {
		t.Fatalf("origin %q, want builds.example.org/log", first)
	}
}

// TestTokensCommand: `ledger token add` through the running server prints
// a secret once; `ledger upload` authenticates with it from
// $BUILDLEDGER_TOKEN without --user, within its job; `token list` and the
// audit name it by ID, never by secret; after `token revoke` it is 401.
func TestTokensCommand(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	state := filepath.Join(t.TempDir(), "state.json")
	url, stop := startServe(t, data)
	defer stop()
	mustRunIn(t, "farm-password\n", "user", "add", "farm", "--unrestricted", "--data", data)
	out := mustRunIn(t, "", "token", "add", "farm", "--job", "hello", "--name", "ci", "--data", data)
	secret, note, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(secret, "blt_") || !strings.Contains(note, "cannot be shown again") {
		t.Fatalf("token add:\n%s", out)
	}
	id := strings.Fields(strings.TrimPrefix(note, "token "))[0]
	t.Setenv("BUILDLEDGER_PASSWORD", "")
	t.Setenv("BUILDLEDGER_TOKEN", secret)
	upload := func(job string) (string, error) {
		return runErr("upload", "demo", "--job", job, "--server", url, "--state", state)
	}
	if out, err := upload("hello"); err != nil || !strings.Contains(out, "inclusion verified") {
		t.Fatalf("upload with the token: %v\n%s", err, out)
	}
	if _, err := upload("other"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("upload to another job: %v", err)
	}
	list := mustRunIn(t, "", "token", "list", "--data", data)
	if !strings.HasPrefix(list, id+"\tfarm\t") || !strings.Contains(list, "\tci\thello") || strings.Contains(list, secret) {
		t.Fatalf("token list:\n%s", list)
	}
	mustRunIn(t, "", "token", "revoke", id, "--data", data)
	if _, err := upload("hello"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("upload with a revoked token: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(data, auditFile))
	if strings.Contains(string(b), secret[len("blt_"):]) || !strings.Contains(string(b), `"token":"`+id+`"`) {
		t.Fatalf("the audit:\n%s", b)
	}
}
