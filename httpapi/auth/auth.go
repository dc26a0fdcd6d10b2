// Package auth keeps the ledger's uploader accounts: users with scrypt
// password hashes and per-job access lists, in the ledger's badger database
// under "u/" — local data that never enters the public log.
//
// The model follows builder-web: an unrestricted user may upload to any job;
// a restricted user only to jobs on its access list. Unlike builder-web, a
// job may be granted before it exists, so a restricted uploader can create
// it with its first upload. Passwords are hashed with scrypt (N=32768, r=8,
// p=1, 16-byte random salt) and compared in constant time; the hash
// parameters are stored with each hash so they can be raised later.
// TestUsers covers add, authenticate, grant and removal; Accounts lists
// users without their hashes (TestAccounts).
//
// A server meets logins through a Guard (guard.go), which keeps a flood of
// wrong passwords from starving real uploaders: a failure budget per client
// network answered before any hashing (TestGuardLimitsClient), a bounded,
// context-aware wait for the process's four hashing slots
// (TestGuardBusy), and a short-lived cache of successful verifications
// (TestGuardCache).
package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/crypto/scrypt"
)

// Errors callers act on.
var (
	ErrNotFound     error = noSuchUser{} // errors.Is(err, fs.ErrNotExist) too
	ErrExists             = errors.New("auth: user exists")
	ErrUnauthorized       = errors.New("auth: wrong user name or password")
	ErrForbidden          = errors.New("auth: not allowed")
	// ErrBusy: every hashing slot stayed taken while the login waited.
	ErrBusy = errors.New("auth: too many logins in progress")
)

// Scrypt parameters for new hashes.
const (
	scryptN      = 1 << 15
	scryptR      = 8
	scryptP      = 1
	saltLen      = 16
	hashLen      = 32
	maxPassword  = 1024
	minPassword  = 8
	userPrefix   = "u/user/"
	accessPrefix = "u/acl/"
)

// User is an uploader account.
type User struct {
	Name         string `json:"name"`
	Unrestricted bool   `json:"unrestricted"`
	Admin        bool   `json:"admin,omitempty"` // may register and revoke rebuilder keys
	Salt         []byte `json:"salt"`
	Hash         []byte `json:"hash"`
	N            int    `json:"n"`
	R            int    `json:"r"`
	P            int    `json:"p"`
	// Token is the ID of the API token the request authenticated with
	// ("" for a password); such a User may only upload to the token's
	// jobs, if it names any (Authorize).
	Token     string   `json:"-"`
	tokenJobs []string `json:"-"`
}

// Store is the account database. It is safe for concurrent use.
type Store struct {
	db     *badger.DB
	hashes atomic.Uint64 // scrypt evaluations by Authenticate*
}

// New returns the account store kept in db.
func New(db *badger.DB) *Store { return &Store{db: db} }

// CheckName reports why name cannot be a user name.
func CheckName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("user name %q must be 1 to 64 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("user name %q: character %q not allowed (letters, digits, - _ .)", name, r)
		}
	}
	return nil
}

// Add creates a user with the given password.
func (s *Store) Add(name, password string, unrestricted bool) error {
	return s.add(name, password, unrestricted, false)
}

// AddAdmin creates an administrator: an unrestricted uploader who may also
// register and revoke rebuilder keys.
func (s *Store) AddAdmin(name, password string) error {
	return s.add(name, password, true, true)
}

func (s *Store) add(name, password string, unrestricted, admin bool) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if len(password) < minPassword || len(password) > maxPassword || !utf8.ValidString(password) {
		return fmt.Errorf("password must be %d to %d bytes of UTF-8", minPassword, maxPassword)
	}
	u := User{Name: name, Unrestricted: unrestricted, Admin: admin, Salt: make([]byte, saltLen), N: scryptN, R: scryptR, P: scryptP}
	if _, err := rand.Read(u.Salt); err != nil {
		return err
	}
	h, err := scrypt.Key([]byte(password), u.Salt, u.N, u.R, u.P, hashLen)
	if err != nil {
		return err
	}
	u.Hash = h
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(userPrefix + name)); err == nil {
			return fmt.Errorf("%w: %q", ErrExists, name)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return txn.Set([]byte(userPrefix+name), b)
	})
}

// Remove deletes a user and its access list.
func (s *Store) Remove(name string) error {
	return s.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(userPrefix + name)); errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w %q", ErrNotFound, name)
		} else if err != nil {
			return err
		}
		if err := txn.Delete([]byte(userPrefix + name)); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(accessPrefix + name + "\x00")})
		var keys [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		it.Close()
		// Its tokens go with it.
		tit := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(tokenPrefix), PrefetchValues: true})
		for tit.Rewind(); tit.Valid(); tit.Next() {
			var t Token
			if err := tit.Item().Value(func(v []byte) error { return json.Unmarshal(v, &t) }); err != nil {
				tit.Close()
				return err
			}
			if t.User == name {
				keys = append(keys, tit.Item().KeyCopy(nil), []byte(tokenIDPrefix+t.ID))
			}
		}
		tit.Close()
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Grant lets a restricted user upload to job (which need not exist yet).
func (s *Store) Grant(name, job string) error {
	return s.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(userPrefix + name)); errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w %q", ErrNotFound, name)
		} else if err != nil {
			return err
		}
		return txn.Set([]byte(accessPrefix+name+"\x00"+job), nil)
	})
}

// Revoke removes job from a user's access list.
func (s *Store) Revoke(name, job string) error {
	return s.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(userPrefix + name)); errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w %q", ErrNotFound, name)
		} else if err != nil {
			return err
		}
		return txn.Delete([]byte(accessPrefix + name + "\x00" + job))
	})
}

// noSuchUser is ErrNotFound: a user name with no account.
type noSuchUser struct{}

func (noSuchUser) Error() string        { return "no such user" }
func (noSuchUser) Is(target error) bool { return target == fs.ErrNotExist }

// Get returns a user.
func (s *Store) Get(name string) (User, error) {
	var u User
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		u, err = getUser(txn, name)
		return err
	})
	return u, err
}

func getUser(txn *badger.Txn, name string) (User, error) {
	var u User
	item, err := txn.Get([]byte(userPrefix + name))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return u, fmt.Errorf("%w %q", ErrNotFound, name)
	}
	if err != nil {
		return u, err
	}
	return u, item.Value(func(v []byte) error { return json.Unmarshal(v, &u) })
}

// List returns every user name with its jobs, sorted by name.
func (s *Store) List() (map[string][]string, error) {
	out := map[string][]string{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("u/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			switch {
			case len(k) > len(userPrefix) && k[:len(userPrefix)] == userPrefix:
				name := k[len(userPrefix):]
				if _, ok := out[name]; !ok {
					out[name] = []string{}
				}
			case len(k) > len(accessPrefix) && k[:len(accessPrefix)] == accessPrefix:
				rest := k[len(accessPrefix):]
				for i := 0; i < len(rest); i++ {
					if rest[i] == 0 {
						out[rest[:i]] = append(out[rest[:i]], rest[i+1:])
						break
					}
				}
			}
		}
		return nil
	})
	for _, jobs := range out {
		sort.Strings(jobs)
	}
	return out, err
}

// Account is what may be shown of a user: its name, scope and access
// list, never its password hash.
type Account struct {
	Name         string   `json:"name"`
	Unrestricted bool     `json:"unrestricted"`
	Admin        bool     `json:"admin,omitempty"`
	Jobs         []string `json:"jobs"` // sorted; unused when Unrestricted
}

// Accounts returns every user as an Account, sorted by name, read in one
// transaction (TestAccounts).
func (s *Store) Accounts() ([]Account, error) {
	var out []Account
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("u/"), PrefetchValues: true})
		defer it.Close()
		byName := map[string]int{}
		var jobs []struct{ user, job string }
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			if name, ok := strings.CutPrefix(k, userPrefix); ok {
				var u User
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &u) }); err != nil {
					return fmt.Errorf("user %q: %w", name, err)
				}
				byName[name] = len(out)
				out = append(out, Account{Name: name, Unrestricted: u.Unrestricted, Admin: u.Admin, Jobs: []string{}})
			} else if rest, ok := strings.CutPrefix(k, accessPrefix); ok {
				if user, job, ok := strings.Cut(rest, "\x00"); ok {
					jobs = append(jobs, struct{ user, job string }{user, job})
				}
			}
		}
		for _, j := range jobs {
			if i, ok := byName[j.user]; ok {
				out[i].Jobs = append(out[i].Jobs, j.job)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for _, a := range out {
		sort.Strings(a.Jobs)
	}
	return out, nil
}

// dummy is hashed when the user does not exist, so a failed login takes as
// long whether or not the name is known.
var dummy = User{Salt: make([]byte, saltLen), Hash: make([]byte, hashLen), N: scryptN, R: scryptR, P: scryptP}

// hashing bounds concurrent scrypt evaluations (32 MiB and tens of
// milliseconds each), so a flood of logins cannot exhaust memory.
var hashing = make(chan struct{}, 4)

// Authenticate checks a user's password. Both an unknown user and a wrong
// password give ErrUnauthorized, after the same amount of work. At most four
// passwords are hashed at a time in the process; further logins wait their
// turn. Servers use a Guard instead, whose logins never wait long.
func (s *Store) Authenticate(name, password string) (User, error) {
	return s.AuthenticateContext(context.Background(), name, password)
}

// AuthenticateContext is Authenticate that waits for a hashing slot only
// until ctx ends; it then returns an error wrapping ErrBusy and ctx.Err()
// without having hashed anything. Once a slot is taken, ctx is not
// consulted again.
func (s *Store) AuthenticateContext(ctx context.Context, name, password string) (User, error) {
	select {
	case hashing <- struct{}{}:
	default:
		select {
		case hashing <- struct{}{}:
		case <-ctx.Done():
			return User{}, fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
		}
	}
	defer func() { <-hashing }()
	u, err := s.Get(name)
	known := err == nil
	if errors.Is(err, fs.ErrNotExist) {
		u = dummy
	} else if err != nil {
		return User{}, err
	}
	if len(password) > maxPassword {
		return User{}, ErrUnauthorized
	}
	s.hashes.Add(1)
	h, err := scrypt.Key([]byte(password), u.Salt, u.N, u.R, u.P, len(u.Hash))
	if err != nil {
		return User{}, err
	}
	if subtle.ConstantTimeCompare(h, u.Hash) != 1 || !known {
		return User{}, ErrUnauthorized
	}
	return u, nil
}

// Hashes returns how many passwords this store has hashed to check logins.
func (s *Store) Hashes() uint64 { return s.hashes.Load() }

// Authorize reports whether u may upload to job.
func (s *Store) Authorize(u User, job string) error {
	if u.tokenJobs != nil && !slices.Contains(u.tokenJobs, job) {
		return fmt.Errorf("%w: token %s of user %q may only upload to %s (make another with ledger token add)", ErrForbidden, u.Token, u.Name, strings.Join(u.tokenJobs, ", "))
	}
	if u.Unrestricted {
		return nil
	}
	return s.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(accessPrefix + u.Name + "\x00" + job)); errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: user %q may not upload to job %q (ask an operator: ledger access add %s %s)", ErrForbidden, u.Name, job, u.Name, job)
		} else if err != nil {
			return err
		}
		return nil
	})
}
