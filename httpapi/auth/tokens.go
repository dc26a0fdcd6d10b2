package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// API tokens let automation (a build farm, `ledger upload` in a CI job)
// authenticate without a password: a random 256-bit secret, shown once
// when it is made, kept only as its SHA-256 (a secret of that entropy
// needs no slow hash: nobody can guess one to match), found by that hash
// in one read and compared in constant time, so a check costs
// microseconds where a password costs an scrypt. A token acts for one
// account and never beyond it: it may be limited to some of the
// account's jobs, and it carries the administrator role only if made
// with it for an administrator. Revoking it, or removing its account,
// takes effect on the next request (TestTokens).

// TokenPrefix starts every token, so that a token given where a password
// goes (HTTP Basic, as builder's upload sends) is told apart.
const TokenPrefix = "blt_"

const (
	tokenPrefix   = "u/token/"   // + hex SHA-256 of the secret → Token
	tokenIDPrefix = "u/tokenid/" // + ID → hex SHA-256
	tokenBytes    = 32
)

// Token is an API token's record (never its secret).
type Token struct {
	ID      string    `json:"id"`             // public: names it in lists and revocations
	User    string    `json:"user"`           // the account it acts for
	Name    string    `json:"name,omitempty"` // what it is for
	Jobs    []string  `json:"jobs,omitempty"` // if set, the only jobs it may upload to
	Admin   bool      `json:"admin,omitempty"`
	Created time.Time `json:"created"`
	hash    []byte
}

// IsToken reports whether s has the form of an API token.
func IsToken(s string) bool { return strings.HasPrefix(s, TokenPrefix) }

// AddToken makes a token for user (which must exist), limited to jobs if
// any are given, with the administrator role if admin (the user must be
// an administrator). It returns the secret, which is not kept.
func (s *Store) AddToken(user, name string, jobs []string, admin bool) (string, Token, error) {
	var raw [tokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", Token{}, err
	}
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	h := sha256.Sum256([]byte(secret))
	t := Token{ID: hex.EncodeToString(h[:8]), User: user, Name: name, Jobs: slices.Sorted(slices.Values(jobs)), Admin: admin, Created: time.Now().UTC().Truncate(time.Second)}
	t.Jobs = slices.Compact(t.Jobs)
	if len(name) > 200 {
		return "", Token{}, fmt.Errorf("a token's name has at most 200 characters")
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		u, err := getUser(txn, user)
		if err != nil {
			return err
		}
		if admin && !u.Admin {
			return fmt.Errorf("%w: user %q is not an administrator, so its tokens cannot be", ErrForbidden, user)
		}
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		if err := txn.Set([]byte(tokenIDPrefix+t.ID), []byte(hex.EncodeToString(h[:]))); err != nil {
			return err
		}
		return txn.Set([]byte(tokenPrefix+hex.EncodeToString(h[:])), b)
	})
	if err != nil {
		return "", Token{}, err
	}
	return secret, t, nil
}

// RevokeToken deletes the token with this ID.
func (s *Store) RevokeToken(id string) error {
	return s.db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(tokenIDPrefix + id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: no token %q", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		h, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		if err := txn.Delete([]byte(tokenPrefix + string(h))); err != nil {
			return err
		}
		return txn.Delete([]byte(tokenIDPrefix + id))
	})
}

// Tokens lists the tokens (of user, or all if user is ""), without secrets.
func (s *Store) Tokens(user string) ([]Token, error) {
	var out []Token
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(tokenPrefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var t Token
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &t) }); err != nil {
				return err
			}
			if user == "" || t.User == user {
				out = append(out, t)
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b Token) int { return strings.Compare(a.User+a.ID, b.User+b.ID) })
	return out, err
}

// AuthenticateToken checks a token and returns the account it acts for,
// limited to the token's jobs and role (see Authorize). A wrong, revoked
// or malformed token, and one whose account is gone, give ErrUnauthorized.
func (s *Store) AuthenticateToken(secret string) (User, error) {
	if !IsToken(secret) || len(secret) > 100 {
		return User{}, ErrUnauthorized
	}
	h := sha256.Sum256([]byte(secret))
	var t Token
	var u User
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(tokenPrefix + hex.EncodeToString(h[:])))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrUnauthorized
		}
		if err != nil {
			return err
		}
		if err := it.Value(func(v []byte) error { return json.Unmarshal(v, &t) }); err != nil {
			return err
		}
		// The key is the hash; comparing the record's ID with the
		// secret's in constant time costs nothing and guards the lookup.
		if subtle.ConstantTimeCompare([]byte(t.ID), []byte(hex.EncodeToString(h[:8]))) != 1 {
			return ErrUnauthorized
		}
		u, err = getUser(txn, t.User)
		if errors.Is(err, ErrNotFound) {
			return ErrUnauthorized
		}
		return err
	})
	if err != nil {
		return User{}, err
	}
	u.Admin = u.Admin && t.Admin
	u.Token = t.ID
	u.tokenJobs = t.Jobs
	return u, nil
}
