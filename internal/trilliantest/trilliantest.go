// Package trilliantest starts a real, private Trillian stack for tests and
// benchmarks: a MariaDB server with Trillian's schema, trillian_log_server
// and trillian_log_signer, all on free loopback ports, all stopped by Stop.
//
// It needs mariadbd and mariadb-install-db (Debian's mariadb-server) and
// the Trillian binaries (go install github.com/google/trillian/cmd/...@v1.8.0)
// on PATH or in $BUILDLEDGER_TOOLS. Without them Start returns an error
// wrapping ErrUnavailable, and tests skip, saying so: see Skip.
package trilliantest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ErrUnavailable: the tools to run Trillian are not installed.
var ErrUnavailable = errors.New("trillian test stack unavailable")

// Env is a running Trillian stack.
type Env struct {
	// Addr is the log server's gRPC address (log and admin API).
	Addr  string
	dir   string
	procs []*exec.Cmd
}

func find(name string) (string, error) {
	if d := os.Getenv("BUILDLEDGER_TOOLS"); d != "" {
		if p := filepath.Join(d, name); isExec(p) {
			return p, nil
		}
	}
	for _, d := range []string{filepath.Join(os.Getenv("HOME"), ".cache/buildledger-tools")} {
		if p := filepath.Join(d, name); isExec(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s not found (install mariadb-server and the Trillian binaries, as .ci/run does)", ErrUnavailable, name)
	}
	return p, nil
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&0o111 != 0
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitTCP(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not come up: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Start starts the stack. schemaSQL is the path of Trillian's
// storage/mysql/schema/storage.sql.
func Start(schemaSQL string) (_ *Env, err error) {
	bins := map[string]string{}
	for _, n := range []string{"mariadbd", "mariadb-install-db", "mariadb", "mariadb-admin", "trillian_log_server", "trillian_log_signer"} {
		p, err := find(n)
		if err != nil {
			if n == "mariadbd" {
				if p, err = find("/usr/sbin/mariadbd"); err == nil {
					bins[n] = p
					continue
				}
			}
			return nil, err
		}
		bins[n] = p
	}
	dir, err := os.MkdirTemp("", "trillian")
	if err != nil {
		return nil, err
	}
	e := &Env{dir: dir}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// MariaDB, private, on loopback.
	data := filepath.Join(dir, "db")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, err
	}
	dbUser := "mysql"
	if os.Getuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return nil, err
		}
		dbUser = u.Username
	} else {
		u, err := user.Lookup("mysql")
		if err != nil {
			return nil, fmt.Errorf("%w: no mysql user: %v", ErrUnavailable, err)
		}
		var uid, gid int
		fmt.Sscan(u.Uid, &uid)
		fmt.Sscan(u.Gid, &gid)
		os.Chmod(dir, 0o755)
		if err := os.Chown(data, uid, gid); err != nil {
			return nil, err
		}
	}
	if out, err := exec.CommandContext(ctx, bins["mariadb-install-db"], "--no-defaults", "--user="+dbUser, "--datadir="+data,
		"--auth-root-authentication-method=socket").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
	}
	dbAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	_, dbPort, _ := net.SplitHostPort(dbAddr)
	sock := filepath.Join(data, "mysqld.sock")
	if err := e.start(bins["mariadbd"], filepath.Join(dir, "mariadb.log"), "--no-defaults", "--user="+dbUser, "--datadir="+data,
		"--socket="+sock, "--bind-address=127.0.0.1", "--port="+dbPort, "--skip-name-resolve",
		"--pid-file="+filepath.Join(data, "mysqld.pid")); err != nil {
		return nil, err
	}
	for {
		if exec.CommandContext(ctx, bins["mariadb-admin"], "--no-defaults", "--socket="+sock, "-uroot", "ping").Run() == nil {
			break
		}
		if ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "mariadb.log"))
			return nil, fmt.Errorf("mariadbd did not start:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	schema, err := os.ReadFile(schemaSQL)
	if err != nil {
		return nil, err
	}
	sql := "CREATE DATABASE trillian; CREATE USER 'trillian'@'127.0.0.1' IDENTIFIED BY 'trillian'; GRANT ALL ON trillian.* TO 'trillian'@'127.0.0.1'; USE trillian;\n" + string(schema)
	cmd := exec.CommandContext(ctx, bins["mariadb"], "--no-defaults", "--socket="+sock, "-uroot")
	cmd.Stdin = strings.NewReader(sql)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("loading Trillian's schema: %v\n%s", err, out)
	}

	// Trillian.
	storage := []string{"--storage_system=mysql", "--quota_system=mysql", "--mysql_uri=trillian:trillian@tcp(" + dbAddr + ")/trillian", "--logtostderr"}
	ports := make([]string, 4)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	e.Addr = ports[0]
	if err := e.start(bins["trillian_log_server"], filepath.Join(dir, "log_server.log"),
		append(storage, "--rpc_endpoint="+ports[0], "--http_endpoint="+ports[1])...); err != nil {
		return nil, err
	}
	if err := e.start(bins["trillian_log_signer"], filepath.Join(dir, "log_signer.log"),
		append(storage, "--rpc_endpoint="+ports[2], "--http_endpoint="+ports[3], "--force_master", "--election_system=noop",
			"--sequencer_interval=20ms", "--batch_size=4096")...); err != nil {
		return nil, err
	}
	for _, a := range []string{ports[0], ports[3]} {
		if err := waitTCP(ctx, a); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *Env) start(bin, logFile string, args ...string) error {
	f, err := os.Create(logFile)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", filepath.Base(bin), err)
	}
	f.Close()
	e.procs = append(e.procs, cmd)
	return nil
}

// Logs returns the tail of every process's log, for a failing test.
func (e *Env) Logs() string {
	var b bytes.Buffer
	for _, n := range []string{"mariadb.log", "log_server.log", "log_signer.log"} {
		data, _ := os.ReadFile(filepath.Join(e.dir, n))
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", n, data)
	}
	return b.String()
}

// Stop stops every process (Trillian's are stateless here: killed; MariaDB
// is asked to stop) and removes the data.
func (e *Env) Stop() {
	for i := len(e.procs) - 1; i >= 0; i-- {
		p := e.procs[i]
		sig := syscall.SIGKILL
		if i == 0 {
			sig = syscall.SIGTERM // mariadbd
		}
		_ = syscall.Kill(-p.Process.Pid, sig)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	os.RemoveAll(e.dir)
}

// Skip is what a test does when the stack is unavailable: it fails if
// BUILDLEDGER_REQUIRE_TRILLIAN is set (as .ci/run sets it), and otherwise
// skips, saying so on the terminal too, since `go test ./...` hides the
// messages of skipped tests.
func Skip(t testing.TB, why error) {
	t.Helper()
	if os.Getenv("BUILDLEDGER_REQUIRE_TRILLIAN") != "" {
		t.Fatalf("the Trillian suite must run (BUILDLEDGER_REQUIRE_TRILLIAN is set) but cannot: %v", why)
	}
	msg := fmt.Sprintf("SKIPPED: the Trillian conformance suite did not run: %v", why)
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		fmt.Fprintf(tty, "%s: %s\n", t.Name(), msg)
		tty.Close()
	}
	t.Skip(msg)
}
