package adminsock

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/internal/kv"
)

// serve starts a Server on a socket in a fresh directory, over a real
// account store, and returns the socket's path, the store and the audit
// file's path.
func serve(t *testing.T, mod func(*Server)) (string, *auth.Store, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := kv.Open(filepath.Join(dir, "db"), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	users := auth.New(db)
	auditPath := filepath.Join(dir, "accounts.log")
	audit, err := OpenAudit(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { audit.Close() })
	path := filepath.Join(dir, "admin.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Admin: &Admin{Accounts: users, Audit: audit}, OwnerUID: os.Geteuid()}
	if mod != nil {
		mod(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the socket outlived its listener: %v", err)
		}
	})
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %04o, want 0600", fi.Mode().Perm())
	}
	return path, users, auditPath
}

func readAudit(t *testing.T, path string) []Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// TestPeerRefused: a peer whose uid (as the peer check reports it) is neither the server's nor root is
// answered with ErrPermission, and nothing is changed or audited.
func TestPeerRefused(t *testing.T) {
	path, users, auditPath := serve(t, func(s *Server) {
		s.peer = func(*net.UnixConn) (Peer, error) { return Peer{UID: 4242, PID: 1, Via: "socket"}, nil }
		s.OwnerUID = 1000
	})
	ctx := context.Background()
	for _, req := range []Request{
		{Op: OpUserAdd, User: "mallory", Password: "correct horse", Admin: true},
		{Op: OpUserList},
	} {
		r, err := Do(ctx, path, req)
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "uid 4242") {
			t.Fatalf("%s from uid 4242: %v", req.Op, err)
		}
		if r.Accounts != nil {
			t.Fatalf("refused peer got accounts: %+v", r.Accounts)
		}
	}
	if _, err := users.Get("mallory"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("refused peer's user exists: %v", err)
	}
	if es := readAudit(t, auditPath); len(es) != 0 {
		t.Fatalf("refused requests audited as changes: %+v", es)
	}
}

// TestOtherUIDRefused: another uid is kept out twice, by the real
// kernel checks. Run as root (whom the socket always lets in), the test
// binary is run again as uid 65534: first the socket's 0600 mode (and its
// directory's) refuse the connection; then, with the socket opened to
// everyone, SO_PEERCRED names uid 65534 and the server refuses it. Run as
// another user, the server is told it belongs to another uid.
func TestOtherUIDRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		path, _, _ := serve(t, func(s *Server) { s.OwnerUID = os.Geteuid() + 1 })
		if _, err := Do(context.Background(), path, Request{Op: OpUserList}); !errors.Is(err, ErrPermission) {
			t.Fatalf("another uid's server answered: %v", err)
		}
		return
	}
	path, users, _ := serve(t, nil)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(path), "adminsock.test")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	asNobody := func() string {
		cmd := exec.Command(bin, "-test.run=^TestHelperDial$")
		cmd.Env = append(os.Environ(), "ADMINSOCK_DIAL="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("running the test binary as uid 65534: %v\n%s", err, out)
		}
		return string(out)
	}
	// The directories down to the socket must be enterable by uid 65534
	// for it to reach the binary and, later, the socket.
	for d := filepath.Dir(path); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out := asNobody(); !strings.Contains(out, "dial: permission denied") {
		t.Fatalf("uid 65534 reached a 0600 socket: %s", out)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if out := asNobody(); !strings.Contains(out, "dial: refused: adminsock: permission denied: uid 65534 may not manage accounts") {
		t.Fatalf("the server answered uid 65534: %s", out)
	}
	if _, err := users.Get("mallory"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("uid 65534 added a user: %v", err)
	}
}

// TestHelperDial is TestOtherUIDRefused's other process: with
// ADMINSOCK_DIAL set, it asks the socket there to add a user and prints
// what happened.
func TestHelperDial(t *testing.T) {
	path := os.Getenv("ADMINSOCK_DIAL")
	if path == "" {
		return
	}
	_, err := Do(context.Background(), path, Request{Op: OpUserAdd, User: "mallory", Password: "correct horse", Admin: true})
	switch {
	case errors.Is(err, ErrPermission):
		fmt.Println("dial: refused:", err)
	case errors.Is(err, syscall.EACCES):
		fmt.Println("dial: permission denied:", err)
	default:
		fmt.Println("dial: other:", err)
	}
}

// TestOwnerAllowed: through the real SO_PEERCRED check, this process
// (the server's uid) adds a user, which can log in at once.
func TestOwnerAllowed(t *testing.T) {
	path, users, _ := serve(t, nil)
	if _, err := Do(context.Background(), path, Request{Op: OpUserAdd, User: "farm", Password: "farm-password", Unrestricted: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := users.Authenticate("farm", "farm-password"); err != nil {
		t.Fatal(err)
	}
}

// TestListHasNoHashes: a listing over the socket names users, scopes and
// jobs, and its bytes hold no salt or hash in any encoding JSON uses.
func TestListHasNoHashes(t *testing.T) {
	path, users, _ := serve(t, nil)
	ctx := context.Background()
	for _, req := range []Request{
		{Op: OpUserAdd, User: "admin", Password: "admin-password", Admin: true},
		{Op: OpUserAdd, User: "bob", Password: "bob-password"},
		{Op: OpAccessAdd, User: "bob", Job: "hello"},
	} {
		if _, err := Do(ctx, path, req); err != nil {
			t.Fatalf("%s: %v", req.Op, err)
		}
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := writeLine(c, Request{Op: OpUserList}); err != nil {
		t.Fatal(err)
	}
	raw, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var r Response
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	want := []auth.Account{{Name: "admin", Unrestricted: true, Admin: true, Jobs: []string{}}, {Name: "bob", Jobs: []string{"hello"}}}
	if got, _ := json.Marshal(r.Accounts); string(got) != string(must(json.Marshal(want))) {
		t.Fatalf("list: %s", raw)
	}
	for _, name := range []string{"admin", "bob"} {
		u, err := users.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range [][]byte{u.Hash, u.Salt} {
			for _, enc := range []string{base64.StdEncoding.EncodeToString(secret), base64.RawStdEncoding.EncodeToString(secret), string(secret)} {
				if strings.Contains(string(raw), enc) {
					t.Fatalf("the listing holds %s's hash or salt: %s", name, raw)
				}
			}
		}
	}
	for _, field := range []string{`"hash"`, `"salt"`, "password"} {
		if strings.Contains(string(raw), field) {
			t.Fatalf("the listing has a %s member: %s", field, raw)
		}
	}
}

// TestAuditRecordsChanges: every change through the socket is in the
// audit twice (requested, then its outcome) with the peer's uid and pid,
// a failed change says why, a listing is not a change, and no password
// appears in the file, which is mode 0600.
func TestAuditRecordsChanges(t *testing.T) {
	path, _, auditPath := serve(t, nil)
	ctx := context.Background()
	reqs := []Request{
		{Op: OpUserAdd, User: "admin", Password: "secret-admin-pw", Admin: true},
		{Op: OpUserAdd, User: "bob", Password: "secret-bob-pw"},
		{Op: OpAccessAdd, User: "bob", Job: "hello"},
		{Op: OpUserList},
		{Op: OpAccessRemove, User: "bob", Job: "hello"},
		{Op: OpUserRemove, User: "bob"},
		{Op: OpUserRemove, User: "bob"}, // fails: gone
	}
	for i, req := range reqs {
		_, err := Do(ctx, path, req)
		if (err != nil) != (i == len(reqs)-1) {
			t.Fatalf("%s: %v", req.Op, err)
		}
		if i == len(reqs)-1 && !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("removing a removed user: %v", err)
		}
	}
	es := readAudit(t, auditPath)
	var changes []Request
	for _, r := range reqs {
		if r.Op != OpUserList {
			changes = append(changes, r)
		}
	}
	if len(es) != 2*len(changes) {
		t.Fatalf("%d audit lines for %d changes: %+v", len(es), len(changes), es)
	}
	for i, want := range changes {
		req, out := es[2*i], es[2*i+1]
		if req.Op != want.Op || req.User != want.User || req.Job != want.Job || req.Result != "requested" {
			t.Fatalf("audit line %d: %+v, want the request %+v", 2*i, req, want)
		}
		if out.ID != req.ID || out.Op != want.Op {
			t.Fatalf("audit line %d: %+v does not follow %+v", 2*i+1, out, req)
		}
		wantResult := "ok"
		if i == len(changes)-1 {
			wantResult = "failed: "
		}
		if !strings.HasPrefix(out.Result, wantResult) {
			t.Fatalf("audit line %d: result %q, want %q", 2*i+1, out.Result, wantResult)
		}
		if req.Peer != (Peer{UID: os.Getuid(), PID: os.Getpid(), Via: "socket"}) || req.Time.IsZero() {
			t.Fatalf("audit line %d: who/when %+v %v", 2*i, req.Peer, req.Time)
		}
	}
	if !es[0].Admin || !es[0].Unrestricted || es[2].Admin || es[2].Unrestricted {
		t.Fatalf("user-add scopes not recorded: %+v %+v", es[0], es[2])
	}
	b, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "secret-") || strings.Contains(string(b), "password") {
		t.Fatalf("the audit holds a password:\n%s", b)
	}
	if fi, _ := os.Stat(auditPath); fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit mode %04o", fi.Mode().Perm())
	}
}

// TestStaleSocket: a socket file nobody answers on is reported as
// ErrNoServer (so the caller may fall back), and Listen replaces it.
func TestStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.sock")
	if _, err := Do(context.Background(), path, Request{Op: OpUserList}); !errors.Is(err, ErrNoServer) {
		t.Fatalf("no socket: %v", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Do(context.Background(), path, Request{Op: OpUserList}); !errors.Is(err, ErrNoServer) {
		t.Fatalf("stale socket: %v", err)
	}
	ln2, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln2.Close()
}

// TestRequestLogValue: a request in a log line has no password.
func TestRequestLogValue(t *testing.T) {
	v := Request{Op: OpUserAdd, User: "bob", Password: "hunter2-hunter2"}.LogValue()
	if strings.Contains(v.String(), "hunter2") || !strings.Contains(v.String(), "bob") {
		t.Fatalf("log value %s", v)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestClientRefusesForeignServer: a socket bound by another user (who
// replaced the server's in a directory others can write to) gets nothing
// from the client, not even the request with its password.
func TestClientRefusesForeignServer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a listener as another uid (CI runs as root)")
	}
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "adminsock.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin.sock")
	cmd := exec.Command(bin, "-test.run=^TestHelperListen$")
	cmd.Env = append(os.Environ(), "ADMINSOCK_LISTEN="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "listening" {
		t.Fatalf("the foreign listener did not start: %q", lines.Text())
	}
	_, err = Do(context.Background(), path, Request{Op: OpUserAdd, User: "victim", Password: "the secret"})
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "nothing was sent") {
		t.Fatalf("client to a foreign server: %v", err)
	}
	if !lines.Scan() || lines.Text() != "got 0 bytes" {
		t.Fatalf("the foreign listener received: %q", lines.Text())
	}
}

// TestHelperListen is TestClientRefusesForeignServer's foreign listener:
// with ADMINSOCK_LISTEN set, it accepts one connection and says how many
// bytes it was sent.
func TestHelperListen(t *testing.T) {
	path := os.Getenv("ADMINSOCK_LISTEN")
	if path == "" {
		return
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Println("listen:", err)
		return
	}
	os.Chmod(path, 0o777)
	fmt.Println("listening")
	c, err := ln.Accept()
	if err != nil {
		fmt.Println("accept:", err)
		return
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := io.Copy(io.Discard, c)
	fmt.Printf("got %d bytes\n", n)
}
