package diskspace

import (
	"errors"
	"math"
	"path/filepath"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]uint64{
		"0": 0, "4096": 4096, "1KiB": 1 << 10, "16MiB": 16 << 20, "1GiB": 1 << 30, "1.5G": 3 << 29, "2T": 2 << 40, "300M": 300 << 20, "7B": 7,
	} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "1 GiB", "1XB", "-1", "1GiBx"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) accepted", in)
		}
	}
}

// TestCheck: a reserve above the filesystem's free space is ErrFull with
// the figures; a zero reserve passes and puts the ballast in place; a
// released ballast is put back by the next Check with room for it.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	err := (&Guard{Dir: dir, Reserve: math.MaxUint64}).Check()
	var fe *FullError
	if !errors.Is(err, ErrFull) || !errors.As(err, &fe) || fe.Reserve != math.MaxUint64 {
		t.Fatalf("Check with an impossible reserve: %v", err)
	}
	b := &Ballast{Path: filepath.Join(dir, "space.reserve"), Size: 1 << 20}
	g := &Guard{Dir: dir, Ballast: b}
	if err := g.Check(); err != nil || !b.Present() {
		t.Fatalf("Check: %v, ballast present %v", err, b.Present())
	}
	if ok, err := b.Release(); !ok || err != nil || b.Present() {
		t.Fatalf("Release: %v %v", ok, err)
	}
	if !g.BeforeClose() {
		t.Fatal("BeforeClose with room refused")
	}
	if err := g.Check(); err != nil || !b.Present() {
		t.Fatalf("Check after release: %v, ballast present %v", err, b.Present())
	}
	ro := &Guard{Dir: dir, ReadOnly: &FullError{Dir: dir}}
	if err := ro.Check(); !errors.Is(err, ErrFull) {
		t.Fatalf("read-only guard: %v", err)
	}
	var nilGuard *Guard
	if nilGuard.Check() != nil || !nilGuard.BeforeClose() {
		t.Fatal("a nil Guard checks nothing")
	}
}
