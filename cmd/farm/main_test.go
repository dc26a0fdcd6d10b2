package main

import (
	"github.com/buildledger/buildledger/farm/client"
	"github.com/buildledger/buildledger/farm/proto"
	"github.com/buildledger/buildledger/internal/trilliantest"

	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// farm runs the command line with args and returns its output.
func farm(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// server runs `farm server` with args until the test ends and waits until
// `farm info` with clientArgs answers.
func server(t *testing.T, addr string, args, clientArgs []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := farm(ctx, append([]string{"server", "--dir", t.TempDir(), "--listen", addr}, args...)...)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := farm(context.Background(), append([]string{"info", "-r", addr}, clientArgs...)...); err == nil {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("server stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the server never answered")
		}
	}
}

func TestClientCommands(t *testing.T) {
	addr := freeAddr(t)
	server(t, addr, nil, nil)
	script := filepath.Join(t.TempDir(), "job.sh")
	if err := os.WriteFile(script, []byte("true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The period defaults to daily for schedule, as in builder-client.
	if out, err := farm(ctx, "schedule", "a", "p", script, "-r", addr); err != nil {
		t.Fatalf("schedule: %v\n%s", err, out)
	}
	if out, err := farm(ctx, "orb-build", "o", "hello", "--period", "weekly", "-r", addr); err != nil {
		t.Fatalf("orb-build: %v\n%s", err, out)
	}
	if out, err := farm(ctx, "reschedule", "a", "2030-01-01T00:00:00Z", "-r", addr); err != nil {
		t.Fatalf("reschedule: %v\n%s", err, out)
	}
	out, err := farm(ctx, "info", "-r", addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a on p, daily, next 2030-01-02T00:00:00Z", "o (orb build of hello), weekly", "p: a on p"} {
		if !strings.Contains(out, want) {
			t.Errorf("info lacks %q:\n%s", want, out)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"schedule", "a", "p", script}, "job name already used"},
		{[]string{"schedule", "b", "p", script, "--period", "monthly"}, `unknown period "monthly"`},
		{[]string{"unschedule", "x"}, "unknown job x"},
		{[]string{"execute", "a", "--platform", "q"}, "job is for a different platform: p"},
		{[]string{"reschedule", "a", "tomorrow"}, "TIME: "},
		{[]string{"observe", "not-a-uuid"}, "error parsing uuid"},
		{[]string{"observe-latest"}, "no running jobs"},
		{[]string{"drop-platform", "q"}, "unknown platform q"},
	} {
		_, err := farm(ctx, append(c.args, "-r", addr)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.args, err, c.want)
		}
	}
}

func TestPlainTCPOnlyOnLoopback(t *testing.T) {
	_, err := farm(context.Background(), "server", "--dir", t.TempDir(), "--listen", "0.0.0.0:0")
	if err == nil || !strings.Contains(err.Error(), "--tls-cert, --tls-key, --client-ca and --worker-ca") {
		t.Fatalf("plain TCP on every address: %v", err)
	}
}

func TestTLSClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir, "ca")
	other := mustCA(t, dir, "other-ca")
	schedCert, schedKey := mustIssue(t, ca, "scheduler", false)
	cert, key := mustIssue(t, ca, "client", true)
	strangerCert, strangerKey := mustIssue(t, other, "stranger", true)

	addr := freeAddr(t)
	withCert := []string{"--tls-ca", ca.File, "--tls-cert", cert, "--tls-key", key}
	server(t, addr, []string{"--tls-cert", schedCert, "--tls-key", schedKey, "--client-ca", ca.File}, withCert)
	ctx := context.Background()
	if out, err := farm(ctx, append([]string{"info", "-r", addr}, withCert...)...); err != nil || !strings.Contains(out, "schedule:") {
		t.Fatalf("info with a certificate: %v\n%s", err, out)
	}
	// Roles: a worker's certificate is no client's, and the reverse.
	wca := mustCA(t, dir, "worker-ca")
	wCert, wKey := mustIssue(t, wca, "worker", true)
	addr2 := freeAddr(t)
	server(t, addr2, []string{"--tls-cert", schedCert, "--tls-key", schedKey, "--client-ca", ca.File, "--worker-ca", wca.File}, withCert)
	dial := func(cert, key string, role proto.Role) error {
		tf := tlsFlags{ca: ca.File, cert: cert, key: key}
		tc, err := tf.client(addr2)
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dialer{Addr: addr2, TLS: tc, Timeout: 5 * time.Second}.Dial(ctx, role)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(wCert, wKey, proto.RoleWorker); err != nil {
		t.Errorf("a worker with a worker certificate: %v", err)
	}
	if err := dial(wCert, wKey, proto.RoleClient); err == nil {
		t.Error("a worker certificate acted as a client")
	}
	if err := dial(cert, key, proto.RoleWorker); err == nil {
		t.Error("a client certificate acted as a worker")
	}

	for name, args := range map[string][]string{
		"plain TCP":            nil,
		"no certificate":       {"--tls-ca", ca.File},
		"another CA's":         {"--tls-ca", ca.File, "--tls-cert", strangerCert, "--tls-key", strangerKey},
		"scheduler not pinned": {"--tls-ca", other.File, "--tls-cert", cert, "--tls-key", key},
	} {
		if _, err := farm(ctx, append([]string{"info", "-r", addr}, args...)...); err == nil {
			t.Errorf("%s: info answered", name)
		}
	}
}

func mustCA(t *testing.T, dir, name string) *trilliantest.CA {
	t.Helper()
	ca, err := trilliantest.NewCA(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustIssue(t *testing.T, ca *trilliantest.CA, name string, client bool) (cert, key string) {
	t.Helper()
	cert, key, err := ca.Issue(name, client)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
