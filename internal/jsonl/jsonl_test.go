package jsonl

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestAppend: concurrent appends each land as one whole line, after what
// the file held; the file is private to its owner.
func TestAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	os.WriteFile(path, []byte("{\"n\":-1}\n"), 0o600)
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if err := l.Append(map[string]int{"n": i}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	l.Close()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[int]bool{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		var v struct{ N int }
		if err := json.Unmarshal(s.Bytes(), &v); err != nil {
			t.Fatalf("line %q: %v", s.Text(), err)
		}
		seen[v.N] = true
	}
	if len(seen) != 51 || !seen[-1] {
		t.Fatalf("%d distinct lines, want 51 with the one already there", len(seen))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}
