package trillianlog

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// TLS says how the connection to a Trillian server is secured. The zero
// value is plaintext, which Credentials allows only to a loopback address.
type TLS struct {
	// CA is a PEM file of the certificate authorities the server's
	// certificate must chain to. Setting it (or Cert) turns TLS on.
	CA string
	// Cert and Key are PEM files of the client certificate and its key,
	// for a server that requires mutual TLS. Both or neither.
	Cert, Key string
	// ServerName overrides the name the server's certificate is checked
	// against (default: the host of the address dialled).
	ServerName string
	// Insecure allows plaintext to an address that is not loopback (a
	// private network the operator trusts).
	Insecure bool
}

// Credentials returns the dial option that secures a connection to addr
// (host:port) as t says. Without CA or Cert it is plaintext, refused for
// an address that is not a loopback one unless t.Insecure: log entries and
// the roots Trillian returns would cross the network unauthenticated, and
// a machine in the middle could feed the ledger another log.
func (t TLS) Credentials(addr string) (grpc.DialOption, error) {
	if (t.Cert == "") != (t.Key == "") {
		return nil, errors.New("trillian TLS: a client certificate needs both --trillian-cert and --trillian-key")
	}
	if t.CA == "" && t.Cert == "" {
		if !t.Insecure && !IsLoopback(addr) {
			return nil, fmt.Errorf("trillian %s is not a loopback address: refusing plaintext gRPC; give --trillian-ca FILE (and --trillian-cert/--trillian-key for mutual TLS), or --trillian-insecure on a network you trust", addr)
		}
		return grpc.WithTransportCredentials(insecure.NewCredentials()), nil
	}
	if t.Insecure {
		return nil, errors.New("trillian TLS: --trillian-insecure contradicts --trillian-ca/--trillian-cert")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("trillian TLS: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("trillian TLS: %s holds no PEM certificate", t.CA)
		}
		cfg.RootCAs = pool
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("trillian TLS: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg)), nil
}

// IsLoopback reports whether addr (host:port or host) names the loopback
// interface: localhost, 127.0.0.0/8 or ::1.
func IsLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
