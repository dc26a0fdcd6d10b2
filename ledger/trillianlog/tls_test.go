package trillianlog_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
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

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/buildledger/buildledger/ledger/trillianlog"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate and key (PEM) signed by ca, for a server at
// 127.0.0.1 or a client.
func (ca *testCA) issue(t *testing.T, name string, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	if client {
		tmpl.ExtKeyUsage, tmpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsServer serves the gRPC health service on loopback over TLS with a
// certificate from ca, requiring client certificates from clientCA if set.
func tlsServer(t *testing.T, ca, clientCA *testCA) string {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, "trillian", false)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA.cert)
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
// connection without one.
func TestTLSCredentials(t *testing.T) {
	dir := t.TempDir()
	ca, other := newCA(t, "trillian CA"), newCA(t, "another CA")
	caFile, otherFile := writeFile(t, dir, "ca.pem", ca.pem), writeFile(t, dir, "other.pem", other.pem)

	addr := tlsServer(t, ca, nil)
	if err := check(t, addr, trillianlog.TLS{CA: caFile}); err != nil {
		t.Fatalf("TLS with the server's CA: %v", err)
	}
	if err := check(t, addr, trillianlog.TLS{CA: otherFile}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("TLS with another CA: %v, want a certificate error", err)
	}
	if err := check(t, addr, trillianlog.TLS{Insecure: true}); err == nil {
		t.Fatal("plaintext to a TLS server succeeded")
	}

	clientCA := newCA(t, "client CA")
	mtls := tlsServer(t, ca, clientCA)
	cert, key := clientCA.issue(t, "ledger", true)
	withCert := trillianlog.TLS{CA: caFile, Cert: writeFile(t, dir, "client.pem", cert), Key: writeFile(t, dir, "client.key", key)}
	if err := check(t, mtls, withCert); err != nil {
		t.Fatalf("mutual TLS with a client certificate: %v", err)
	}
	if err := check(t, mtls, trillianlog.TLS{CA: caFile}); err == nil {
		t.Fatal("mutual TLS server took a client without a certificate")
	}
	rogue, rogueKey := other.issue(t, "ledger", true)
	withRogue := trillianlog.TLS{CA: caFile, Cert: writeFile(t, dir, "rogue.pem", rogue), Key: writeFile(t, dir, "rogue.key", rogueKey)}
	if err := check(t, mtls, withRogue); err == nil {
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
