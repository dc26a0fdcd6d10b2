package diskspace

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Ballast is a file that holds space in reserve for the moment the
// filesystem is full: removing it gives badger room for the writes it
// cannot avoid (replaying and truncating its logs at open after a kill,
// flushing a memtable at close), so a full disk neither stops the ledger
// from opening nor crashes it as it shuts down.
type Ballast struct {
	Path string
	Size int64
}

// Present reports whether the ballast file exists with its full size.
func (b *Ballast) Present() bool {
	fi, err := os.Stat(b.Path)
	return err == nil && fi.Size() >= b.Size
}

// Ensure creates the ballast file (allocating its blocks) unless it is
// there. It never takes the last free space: the caller checks the free
// space first (Guard.Check does).
func (b *Ballast) Ensure() error {
	if b == nil || b.Size <= 0 || b.Present() {
		return nil
	}
	tmp := b.Path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, b.Size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = writeZeros(f, b.Size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, b.Path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func writeZeros(f *os.File, n int64) error {
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// Release removes the ballast file, freeing its space. It reports whether
// there was one.
func (b *Ballast) Release() (bool, error) {
	if b == nil {
		return false, nil
	}
	os.Remove(b.Path + ".tmp")
	err := os.Remove(b.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
