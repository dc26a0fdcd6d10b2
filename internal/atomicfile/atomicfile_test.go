package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// dirNames lists the entries of dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("content %q, %v", b, err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if n := dirNames(t, dir); len(n) != 1 {
		t.Errorf("directory holds %v, want only state.json", n)
	}

	// A rename that cannot happen (the destination is a non-empty
	// directory, which fails even for root) leaves no temporary file.
	blocked := filepath.Join(dir, "blocked")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(blocked, []byte("x"), 0o600); err == nil {
		t.Fatal("replacing a directory succeeded")
	}
	if n := dirNames(t, dir); len(n) != 2 {
		t.Errorf("after a failed write the directory holds %v", n)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("write into a missing directory: %v", err)
	}
}

func TestFileCommitAs(t *testing.T) {
	dir := t.TempDir()
	f, err := CreateIn(dir, 0o700)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("image")); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err == nil {
		t.Fatal("Commit without a destination succeeded")
	}
	if n := dirNames(t, dir); len(n) != 0 {
		t.Errorf("a failed commit left %v", n)
	}

	f, err = CreateIn(dir, 0o700)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("image"))
	if err := f.CommitAs(filepath.Join(t.TempDir(), "elsewhere")); err == nil {
		t.Fatal("CommitAs to another directory succeeded")
	}

	f, err = CreateIn(dir, 0o700)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write([]byte("image"))
	dst := filepath.Join(dir, "sha256")
	if err := f.CommitAs(dst); err != nil {
		t.Fatal(err)
	}
	if err := f.CommitAs(dst); err == nil {
		t.Error("a second commit succeeded")
	}
	fi, err := os.Stat(dst)
	if err != nil || fi.Mode().Perm() != 0o700 || fi.Size() != 5 {
		t.Fatalf("committed file: %v, %v", fi, err)
	}
	f.Close() // after a commit: nothing happens
	if _, err := os.Stat(dst); err != nil {
		t.Errorf("Close after Commit removed the file: %v", err)
	}
}

func TestAbort(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Create(p, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half of the new"))
	f.Close()
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("after an abort the file holds %q", b)
	}
	if n := dirNames(t, dir); len(n) != 1 {
		t.Errorf("an abort left %v", n)
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{TempPrefix + "123", "keep.json", ".other"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveTemps(dir); err != nil {
		t.Fatal(err)
	}
	if n := dirNames(t, dir); len(n) != 2 || n[0] != ".other" || n[1] != "keep.json" {
		t.Errorf("left %v", n)
	}
}
