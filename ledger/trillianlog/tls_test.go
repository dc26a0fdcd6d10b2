package trillianlog_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/buildledger/buildledger/internal/trilliantest"
	"github.com/buildledger/buildledger/ledger/trillianlog"
)

func newCA(t *testing.T, dir, name string) *trilliantest.CA {
	t.Helper()
	ca, err := trilliantest.NewCA(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *trilliantest.CA, name string, client bool) (string, string) {
	t.Helper()
	cert, key, err := ca.Issue(name, client)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// tlsServer serves the gRPC health service on loopback over TLS with a
// certificate from ca, requiring client certificates from clientCA if set.
func tlsServer(t *testing.T, ca, clientCA *trilliantest.CA) string {
	t.Helper()
	certFile, keyFile := issue(t, ca, "server", false)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA.Cert)
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// check dials addr with the credentials of c and asks for its health.
func check(t *testing.T, addr string, c trillianlog.TLS) error {
	t.Helper()
	opt, err := c.Credentials(addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// TestTLSCredentials dials real gRPC servers over TLS with certificates of
// a CA made for the test: the server's CA verifies, another CA fails; a
// server requiring mutual TLS takes the client certificate and refuses a
// connection without one or with one of another CA. (TestTrillianTLS in
// cmd/ledger does the same against a real Trillian log server.)
func TestTLSCredentials(t *testing.T) {
	dir := t.TempDir()
	ca, other := newCA(t, dir, "trillian-ca"), newCA(t, dir, "another-ca")

	addr := tlsServer(t, ca, nil)
	if err := check(t, addr, trillianlog.TLS{CA: ca.File}); err != nil {
		t.Fatalf("TLS with the server's CA: %v", err)
	}
	if err := check(t, addr, trillianlog.TLS{CA: other.File}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("TLS with another CA: %v, want a certificate error", err)
	}
	if err := check(t, addr, trillianlog.TLS{Insecure: true}); err == nil {
		t.Fatal("plaintext to a TLS server succeeded")
	}

	clientCA := newCA(t, dir, "client-ca")
	mtls := tlsServer(t, ca, clientCA)
	cert, key := issue(t, clientCA, "ledger", true)
	if err := check(t, mtls, trillianlog.TLS{CA: ca.File, Cert: cert, Key: key}); err != nil {
		t.Fatalf("mutual TLS with a client certificate: %v", err)
	}
	if err := check(t, mtls, trillianlog.TLS{CA: ca.File}); err == nil {
		t.Fatal("mutual TLS server took a client without a certificate")
	}
	rogue, rogueKey := issue(t, other, "rogue", true)
	if err := check(t, mtls, trillianlog.TLS{CA: ca.File, Cert: rogue, Key: rogueKey}); err == nil {
		t.Fatal("mutual TLS server took a client certificate of another CA")
	}
}

// TestTLSRefusesPlaintextOffLoopback: without TLS settings only loopback
// addresses are dialled in plaintext, unless Insecure says otherwise.
func TestTLSRefusesPlaintextOffLoopback(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:8090", "localhost:8090", "[::1]:8090", "127.1.2.3:1"} {
		if _, err := (trillianlog.TLS{}).Credentials(addr); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	for _, addr := range []string{"10.0.0.5:8090", "trillian.internal:8090", "[2001:db8::1]:8090", "0.0.0.0:8090"} {
		_, err := (trillianlog.TLS{}).Credentials(addr)
		if err == nil || !strings.Contains(err.Error(), "--trillian-insecure") {
			t.Errorf("%s: %v, want a refusal naming --trillian-insecure", addr, err)
		}
		if _, err := (trillianlog.TLS{Insecure: true}).Credentials(addr); err != nil {
			t.Errorf("%s with Insecure: %v", addr, err)
		}
	}
	if _, err := (trillianlog.TLS{Cert: "c.pem"}).Credentials("127.0.0.1:1"); err == nil {
		t.Error("a client certificate without its key was accepted")
	}
}
