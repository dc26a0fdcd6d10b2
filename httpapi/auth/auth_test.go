package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"reflect"
	"testing"

	"github.com/buildledger/buildledger/internal/kv"
)

func TestUsers(t *testing.T) {
	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := New(db)
	if err := s.Add("alice", "correct horse", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("root", "battery staple", true); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("alice", "whatever123", false); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := s.Add("bob", "short", false); err == nil {
		t.Fatal("short password accepted")
	}
	if err := s.Add("../x", "long enough", false); err == nil {
		t.Fatal("bad name accepted")
	}
	u, err := s.Authenticate("alice", "correct horse")
	if err != nil || u.Name != "alice" {
		t.Fatalf("login: %+v %v", u, err)
	}
	if _, err := s.Authenticate("alice", "correct horsE"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := s.Authenticate("mallory", "correct horse"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("unknown user: %v", err)
	}
	if string(u.Hash) == "correct horse" || len(u.Salt) != saltLen {
		t.Fatal("password not hashed")
	}
	if err := s.Authorize(u, "hello"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("restricted user without grant: %v", err)
	}
	if err := s.Grant("alice", "hello"); err != nil { // a job that does not exist yet
		t.Fatal(err)
	}
	if err := s.Authorize(u, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := s.Authorize(u, "other"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("other job: %v", err)
	}
	root, _ := s.Authenticate("root", "battery staple")
	if err := s.Authorize(root, "anything"); err != nil {
		t.Fatal(err)
	}
	list, _ := s.List()
	if !reflect.DeepEqual(list, map[string][]string{"alice": {"hello"}, "root": {}}) {
		t.Fatalf("list: %v", list)
	}
	if err := s.Remove("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate("alice", "correct horse"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("removed user logs in: %v", err)
	}
	if err := s.Remove("alice"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("remove twice: %v", err)
	}
	if err := s.Grant("alice", "hello"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("grant to removed user: %v", err)
	}
	list, _ = s.List()
	if !reflect.DeepEqual(list, map[string][]string{"root": {}}) {
		t.Fatalf("list after remove: %v", list)
	}
}

// TestAccounts: Accounts lists every user with its scope and sorted jobs,
// and what it returns carries no salt or hash.
func TestAccounts(t *testing.T) {
	db, err := kv.Open(t.TempDir(), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := New(db)
	for _, err := range []error{
		s.Add("bob", "correct horse", false),
		s.AddAdmin("admin", "battery staple"),
		s.Grant("bob", "zeta"),
		s.Grant("bob", "alpha"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Accounts()
	if err != nil {
		t.Fatal(err)
	}
	want := []Account{
		{Name: "admin", Unrestricted: true, Admin: true, Jobs: []string{}},
		{Name: "bob", Jobs: []string{"alpha", "zeta"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("accounts: %+v, want %+v", got, want)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"admin", "bob"} {
		u, err := s.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range [][]byte{u.Hash, u.Salt} {
			enc, _ := json.Marshal(secret)
			if bytes.Contains(b, bytes.Trim(enc, `"`)) {
				t.Fatalf("accounts expose %s's hash or salt: %s", name, b)
			}
		}
	}
}
