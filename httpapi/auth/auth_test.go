package auth

import (
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
