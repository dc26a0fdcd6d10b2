// Package httpapitest serves a real ledger over HTTP on loopback for
// tests: a ledgertest ledger (real badger in a temporary directory, its
// invariants checked at the end), an administrator and an uploader
// account, a verifying client, rebuilder keys registered through the API,
// and a handler that can be swapped so a test can make the server lie or
// serve another history.
package httpapitest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/ledger/ledgertest"
	"github.com/buildledger/buildledger/ledger/witnessing"
)

// Accounts of every test server.
var (
	Admin = httpapi.Credentials{User: "root", Password: "root-password"}
	Farm  = httpapi.Credentials{User: "farm", Password: "farm-password"}
)

// Server is a ledger served on loopback.
type Server struct {
	tb      testing.TB
	L       *ledgertest.Ledger
	URL     string
	Client  *httpapi.Client // verifies with the ledger's key
	Keys    map[string]*attest.Signer
	KeyPEMs map[string][]byte // the private keys of Keys, PEM (PKCS #8)
	handler atomic.Pointer[http.Handler]
}

// New starts a server on a fresh ledger; it stops when the test ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{tb: tb, L: ledgertest.Open(tb), Keys: map[string]*attest.Signer{}, KeyPEMs: map[string][]byte{}}
	users := auth.New(s.L.DB)
	if err := users.AddAdmin(Admin.User, Admin.Password); err != nil {
		tb.Fatal(err)
	}
	if err := users.Add(Farm.User, Farm.Password, true); err != nil {
		tb.Fatal(err)
	}
	h, err := httpapi.New(httpapi.Config{Ledger: s.L.Ledger, VKey: s.L.VKey, Users: users})
	if err != nil {
		tb.Fatal(err)
	}
	s.Swap(h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*s.handler.Load()).ServeHTTP(w, r) }))
	tb.Cleanup(srv.Close)
	s.URL = srv.URL
	if s.Client, err = httpapi.NewClient(srv.URL, s.L.VKey, nil); err != nil {
		tb.Fatal(err)
	}
	return s
}

// Witness makes the server serve the checkpoints w cosigned
// (/checkpoint with cosignatures, /checkpoint/witnessed).
func (s *Server) Witness(w *witnessing.Witnessing) {
	s.tb.Helper()
	users := auth.New(s.L.DB)
	h, err := httpapi.New(httpapi.Config{Ledger: s.L.Ledger, VKey: s.L.VKey, Users: users, Witnessed: w.Latest, WitnessedQuorum: w.LatestQuorum})
	if err != nil {
		s.tb.Fatal(err)
	}
	s.Swap(h)
}

// Swap makes the server answer with h from now on.
func (s *Server) Swap(h http.Handler) { s.handler.Store(&h) }

// Serve makes the server answer for another ledger (the same key, another
// history: a server that rewrote its log).
func (s *Server) Serve(l *ledgertest.Ledger) {
	s.tb.Helper()
	users := auth.New(l.DB)
	users.AddAdmin(Admin.User, Admin.Password)
	h, err := httpapi.New(httpapi.Config{Ledger: l.Ledger, VKey: l.VKey, Users: users})
	if err != nil {
		s.tb.Fatal(err)
	}
	s.Swap(h)
}

// Key makes an ECDSA P-256 rebuilder key named name and, if register,
// registers it through the API as the administrator.
func (s *Server) Key(name string, register bool) *attest.Signer {
	s.tb.Helper()
	p, err := attest.GenerateKey(attest.ECDSAP256)
	if err != nil {
		s.tb.Fatal(err)
	}
	k, err := attest.LoadSigner(p, nil)
	if err != nil {
		s.tb.Fatal(err)
	}
	s.Keys[name], s.KeyPEMs[name] = k, p
	if register {
		if _, err := s.Client.AddKey(context.Background(), name, string(k.PublicKeyPEM()), Admin); err != nil {
			s.tb.Fatal(err)
		}
	}
	return k
}
