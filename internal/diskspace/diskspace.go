// Package diskspace refuses writes before the filesystem under a data
// directory runs out of space.
//
// badger writes its value log, memtable logs and tables through memory
// maps of files it grew in advance (sparse), so a full filesystem is not an
// ENOSPC error it could return but a SIGBUS that kills the process, and
// kills it again at every start while the disk stays full. A Guard asks the
// filesystem (statfs) how much space an unprivileged writer still has and
// answers ErrFull while that is below a reserve, so callers refuse the
// write (HTTP 507 with Retry-After) instead of attempting it. The reserve
// must cover what badger may still write on its own after the last
// accepted write: flushing a memtable, compacting, growing the value log
// (see DefaultReserve).
//
// TestDiskFull in cmd/ledger fills a real tmpfs under a running server and
// restarts the server on the full filesystem.
package diskspace

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrFull: the free space on the data directory's filesystem is below the
// reserve; nothing was written. Retry once space is freed.
var ErrFull = errors.New("not enough free disk space")

// ErrReadOnly is wrapped (with ErrFull) by Guard.ReadOnly errors: the store
// was opened read-only because the disk was full, and only a restart with
// space freed makes it writable again; waiting does not.
var ErrReadOnly = errors.New("started read-only")

// FullError is ErrFull with the figures.
type FullError struct {
	Dir           string
	Free, Reserve uint64
}

func (e *FullError) Error() string {
	return fmt.Sprintf("%s: %s (%s free, %s reserved)", e.Dir, ErrFull, Bytes(e.Free), Bytes(e.Reserve))
}

func (e *FullError) Unwrap() error { return ErrFull }

// Guard checks the free space of the filesystem holding Dir.
type Guard struct {
	// Dir is any path on the filesystem to watch.
	Dir string
	// Reserve is the free space, in bytes, below which Check fails.
	Reserve uint64
	// Ballast, if set, is put back (allocated again) by a Check that finds
	// at least Reserve + Ballast.Size bytes free after it was released.
	Ballast *Ballast
	// ReadOnly, if set, makes every Check fail with it: the store was
	// opened read-only because the disk was full, and takes no writes
	// until it is reopened.
	ReadOnly error

	mu sync.Mutex // one ballast allocation at a time
}

// Free returns the bytes an unprivileged writer may still allocate on the
// filesystem of g.Dir (statfs f_bavail × f_bsize).
func (g *Guard) Free() (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(g.Dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", g.Dir, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// Check returns nil when at least Reserve bytes are free, a *FullError
// (errors.Is ErrFull) when not, and the statfs error if it fails. A nil
// Guard checks nothing.
func (g *Guard) Check() error {
	if g == nil {
		return nil
	}
	if g.ReadOnly != nil {
		return g.ReadOnly
	}
	free, err := g.Free()
	if err != nil {
		return err
	}
	if free < g.Reserve {
		return &FullError{Dir: g.Dir, Free: free, Reserve: g.Reserve}
	}
	if b := g.Ballast; b != nil && free >= g.Reserve+uint64(b.Size) && !b.Present() {
		g.mu.Lock()
		err := b.Ensure()
		g.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// DefaultReserve is the reserve for a badger database with the given
// memtable and value-log file sizes that takes writes of up to maxWrite
// bytes: the write itself, a memtable log and a full memtable flushed to a
// table (twice the memtable size each), and the rest of a value-log file.
// It is never below 256 MiB.
func DefaultReserve(memTableSize, valueLogFileSize, maxWrite int64) uint64 {
	r := uint64(maxWrite) + 4*uint64(memTableSize) + uint64(valueLogFileSize)
	return max(r, 256<<20)
}

// Bytes formats n as a size with a binary unit (KiB, MiB, GiB).
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// ParseBytes parses a size such as "1GiB", "512MiB", "300M", "4096" (bytes).
// K, M, G and T, with or without "iB" or "B", are powers of 1024.
func ParseBytes(s string) (uint64, error) {
	num, mult := s, uint64(1)
	for i, c := range s {
		if (c < '0' || c > '9') && c != '.' {
			num = s[:i]
			switch unit := s[i:]; unit {
			case "B", "":
			case "K", "KB", "KiB", "k":
				mult = 1 << 10
			case "M", "MB", "MiB":
				mult = 1 << 20
			case "G", "GB", "GiB":
				mult = 1 << 30
			case "T", "TB", "TiB":
				mult = 1 << 40
			default:
				return 0, fmt.Errorf("size %q: unknown unit %q (want B, KiB, MiB, GiB or TiB)", s, unit)
			}
			break
		}
	}
	var f float64
	if _, err := fmt.Sscanf(num, "%g", &f); err != nil || f < 0 || num == "" {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit (e.g. 1GiB)", s)
	}
	return uint64(f * float64(mult)), nil
}

// BeforeClose prepares for closing the database on the filesystem and
// reports whether closing it is safe. Closing writes (badger flushes its
// memtable, up to half the ballast's size): when the free space is below
// the reserve the ballast is released to make room, and when even then
// there is less than half the ballast free, closing is not safe and the
// caller should leave the database unclosed (its logs are synced; the next
// open replays them, as after a kill) rather than die of SIGBUS. A nil
// Guard, a read-only one or one without a ballast always closes.
func (g *Guard) BeforeClose() bool {
	if g == nil || g.ReadOnly != nil || g.Ballast == nil {
		return true
	}
	free, err := g.Free()
	if err != nil || free >= g.Reserve {
		return true
	}
	g.Ballast.Release()
	free, err = g.Free()
	return err != nil || free >= uint64(g.Ballast.Size/2)
}
