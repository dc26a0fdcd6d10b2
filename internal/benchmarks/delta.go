package benchmarks

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/dgraph-io/badger/v4"
)

// DeltaResult is what one job rebuilt daily costs to store.
type DeltaResult struct {
	Days         int
	Size         int           // the binary's size on the last day
	Logical      int64         // bytes of all the days' binaries
	Stored       int64         // bytes the store wrote for them, patches allowed
	ChunkedOnly  int64         // bytes a store writes for them without patches
	XdeltaSum    int64         // sum of xdelta3 -9 deltas between consecutive days
	FirstDay     int64         // what the first day's binary took (stored whole)
	ChunkedFirst int64         // and without patches
	ReadNewest   time.Duration // the last day's binary, rebuilt from its chain
	ReadAgain    time.Duration // and read again (the Store keeps it)
	NewestDepth  int
	PatchedDays  int
	WholeRestart int // days stored whole after the first (chain restarts)
}

// DeltaYear stores a binary of size bytes rebuilt daily for days days, each
// day's with about 1% changed (runs of new bytes replaced, inserted and
// deleted at random places), through cas.PutWithBase against the previous
// day's (what an upload does) and, in a second store, through cas.Put alone;
// and runs xdelta3 -9 between consecutive days, the baseline. It needs the
// xdelta3 command.
func DeltaYear(days, size int) (DeltaResult, error) {
	if _, err := exec.LookPath("xdelta3"); err != nil {
		return DeltaResult{}, fmt.Errorf("the delta benchmark compares with xdelta3: install it (apt-get install xdelta3): %w", err)
	}
	dir, err := os.MkdirTemp("", "deltabench")
	if err != nil {
		return DeltaResult{}, err
	}
	defer os.RemoveAll(dir)
	dbOf := map[string]*badger.DB{}
	open := func(name string) (*cas.Store, func(), error) {
		db, err := kv.Open(filepath.Join(dir, name), kv.Options{})
		if err != nil {
			return nil, nil, err
		}
		s, err := cas.New(db, cas.Options{})
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		dbOf[name] = db
		return s, func() { db.Close() }, nil
	}
	patched, closeP, err := open("patched")
	if err != nil {
		return DeltaResult{}, err
	}
	defer closeP()
	chunked, closeC, err := open("chunked")
	if err != nil {
		return DeltaResult{}, err
	}
	defer closeC()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 17))
	cur := codeLike(r, size)
	res := DeltaResult{Days: days}
	var prev cas.Digest
	for day := range days {
		if day > 0 {
			next := changeHundredth(r, cur)
			x, err := xdelta(dir, cur, next)
			if err != nil {
				return res, err
			}
			res.XdeltaSum += x
			cur = next
		}
		info, err := patched.PutWithBase(ctx, bytes.NewReader(cur), int64(len(cur)), prev)
		if err != nil {
			return res, err
		}
		c, err := chunked.Put(ctx, bytes.NewReader(cur))
		if err != nil {
			return res, err
		}
		depth, err := patched.PatchDepth(info.Digest)
		if err != nil {
			return res, err
		}
		switch {
		case day == 0:
			res.FirstDay, res.ChunkedFirst = info.Written, c.Written
		case depth > 0:
			res.PatchedDays++
		default:
			res.WholeRestart++
		}
		res.Stored += info.Written
		res.ChunkedOnly += c.Written
		res.Logical += int64(len(cur))
		prev = info.Digest
	}
	res.Size = len(cur)
	depth, err := patched.PatchDepth(prev)
	if err != nil {
		return res, err
	}
	res.NewestDepth = depth
	// Read by a fresh Store on the same database: nothing rebuilt yet.
	cold, err := cas.New(dbOf["patched"], cas.Options{})
	if err != nil {
		return res, err
	}
	start := time.Now()
	if got, err := cold.Bytes(ctx, prev, cas.MaxDeltaSize); err != nil || !bytes.Equal(got, cur) {
		return res, fmt.Errorf("the last day's binary does not read back: %v", err)
	}
	res.ReadNewest = time.Since(start)
	start = time.Now()
	if _, err := cold.Bytes(ctx, prev, cas.MaxDeltaSize); err != nil {
		return res, err
	}
	res.ReadAgain = time.Since(start)
	return res, nil
}

// codeLike is n bytes of words from a vocabulary of 4,096 random words of 2
// to 15 bytes: about as compressible as machine code.
func codeLike(r *rand.Rand, n int) []byte {
	vocab := make([][]byte, 4096)
	for i := range vocab {
		vocab[i] = make([]byte, 2+r.IntN(14))
		for j := range vocab[i] {
			vocab[i][j] = byte(r.Uint32())
		}
	}
	b := make([]byte, 0, n+16)
	for len(b) < n {
		b = append(b, vocab[r.IntN(len(vocab))]...)
	}
	return b[:n]
}

// changeHundredth returns b with about 1% changed: runs of 256 bytes to
// 4 KiB of new bytes replacing, inserted before or replacing twice as many
// bytes at random places.
func changeHundredth(r *rand.Rand, b []byte) []byte {
	out := bytes.Clone(b)
	for budget := len(b) / 100; budget > 0; {
		n := min(256+r.IntN(4096), budget)
		budget -= n
		at := r.IntN(len(out) - n)
		run := make([]byte, n)
		for i := range run {
			run[i] = byte(r.Uint32())
		}
		switch r.IntN(3) {
		case 0:
			copy(out[at:], run)
		case 1:
			out = append(out[:at], append(run, out[at:]...)...)
		default:
			out = append(out[:at], append(run[:n/2], out[at+n:]...)...)
		}
	}
	return out
}

// xdelta is the size of xdelta3 -9's delta from a to b.
func xdelta(dir string, a, b []byte) (int64, error) {
	pa, pb, pd := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "d")
	if err := os.WriteFile(pa, a, 0o644); err != nil {
		return 0, err
	}
	if err := os.WriteFile(pb, b, 0o644); err != nil {
		return 0, err
	}
	if out, err := exec.Command("xdelta3", "-9", "-f", "-e", "-s", pa, pb, pd).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("xdelta3: %v: %s", err, out)
	}
	st, err := os.Stat(pd)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
