package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
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
	if err == nil || !strings.Contains(err.Error(), "--tls-cert, --tls-key and --client-ca") {
		t.Fatalf("plain TCP on every address: %v", err)
	}
}

// pki writes a CA and certificates it signed: the scheduler's for
// 127.0.0.1 and a worker's, and one signed by another CA.
type pki struct{ dir string }

func (p pki) path(name string) string { return filepath.Join(p.dir, name) }

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newCA(t *testing.T, p pki, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.path(name+".pem"), "CERTIFICATE", der)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func issue(t *testing.T, p pki, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, server bool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.path(name+".pem"), "CERTIFICATE", der)
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.path(name+".key"), "PRIVATE KEY", kd)
}

func TestTLSClientCertificates(t *testing.T) {
	p := pki{dir: t.TempDir()}
	ca, caKey := newCA(t, p, "ca")
	issue(t, p, ca, caKey, "scheduler", true)
	issue(t, p, ca, caKey, "client", false)
	other, otherKey := newCA(t, p, "other-ca")
	issue(t, p, other, otherKey, "stranger", false)

	addr := freeAddr(t)
	withCert := []string{"--tls-ca", p.path("ca.pem"), "--tls-cert", p.path("client.pem"), "--tls-key", p.path("client.key")}
	server(t, addr, []string{"--tls-cert", p.path("scheduler.pem"), "--tls-key", p.path("scheduler.key"), "--client-ca", p.path("ca.pem")}, withCert)
	ctx := context.Background()
	if out, err := farm(ctx, append([]string{"info", "-r", addr}, withCert...)...); err != nil || !strings.Contains(out, "schedule:") {
		t.Fatalf("info with a certificate: %v\n%s", err, out)
	}
	for name, args := range map[string][]string{
		"plain TCP":            nil,
		"no certificate":       {"--tls-ca", p.path("ca.pem")},
		"another CA's":         {"--tls-ca", p.path("ca.pem"), "--tls-cert", p.path("stranger.pem"), "--tls-key", p.path("stranger.key")},
		"scheduler not pinned": {"--tls-ca", p.path("other-ca.pem"), "--tls-cert", p.path("client.pem"), "--tls-key", p.path("client.key")},
	} {
		if _, err := farm(ctx, append([]string{"info", "-r", addr}, args...)...); err == nil {
			t.Errorf("%s: info answered", name)
		}
	}
}
