package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/buildledger/buildledger/internal/kv"
)

// TestTokens: a token acts for its user, within its jobs and role; a
// wrong, revoked or orphaned one is refused; the secret is not kept.
func TestTokens(t *testing.T) {
	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := New(db)
	if err := s.Add("farm", "farm-password", true); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAdmin("root", "root-password"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddToken("nobody", "", nil, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a token for no user: %v", err)
	}
	if _, _, err := s.AddToken("farm", "", nil, true); !errors.Is(err, ErrForbidden) {
		t.Fatalf("an admin token for a non-admin: %v", err)
	}
	secret, tok, err := s.AddToken("farm", "ci", []string{"hello"}, false)
	if err != nil || !IsToken(secret) || len(secret) != len(TokenPrefix)+43 {
		t.Fatalf("AddToken: %q %v", secret, err)
	}
	u, err := s.AuthenticateToken(secret)
	if err != nil || u.Name != "farm" || u.Token != tok.ID || u.Admin {
		t.Fatalf("AuthenticateToken: %+v %v", u, err)
	}
	if err := s.Authorize(u, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := s.Authorize(u, "other"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a token limited to hello uploads to other: %v", err)
	}
	other := "A"
	if strings.HasSuffix(secret, "A") {
		other = "B"
	}
	for _, bad := range []string{"", "blt_", secret[:len(secret)-1] + other, strings.Replace(secret, "blt_", "xyz_", 1), secret + strings.Repeat("x", 200)} {
		if _, err := s.AuthenticateToken(bad); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	// Nothing stored holds the secret.
	if err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, _ := it.Item().ValueCopy(nil)
			if strings.Contains(string(it.Item().Key())+string(v), secret[len(TokenPrefix):]) {
				t.Errorf("%s holds the secret", it.Item().Key())
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	list, err := s.Tokens("")
	if err != nil || len(list) != 1 || list[0].ID != tok.ID || list[0].Name != "ci" {
		t.Fatalf("Tokens: %+v %v", list, err)
	}
	admin, _, err := s.AddToken("root", "keys", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := s.AuthenticateToken(admin); err != nil || !u.Admin {
		t.Fatalf("an admin token: %+v %v", u, err)
	}
	if err := s.RevokeToken(tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateToken(secret); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("a revoked token: %v", err)
	}
	if err := s.RevokeToken(tok.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking it again: %v", err)
	}
	if err := s.Remove("root"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateToken(admin); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("the token of a removed user: %v", err)
	}
	if list, _ := s.Tokens(""); len(list) != 0 {
		t.Fatalf("tokens left: %+v", list)
	}
}
