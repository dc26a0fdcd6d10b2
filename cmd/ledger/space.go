package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/internal/diskspace"
	"github.com/buildledger/buildledger/internal/kv"
)

// spaceFlags configure the free-space reserve of the data directory.
type spaceFlags struct {
	minFree string // --min-free; "" for the default
	// ballast: keep part of the reserve as an allocated file (serve only;
	// other commands leave the directory as they find it).
	ballast bool
}

func addSpaceFlags(root *cobra.Command, g *globals) {
	root.PersistentFlags().StringVar(&g.space.minFree, "min-free", "",
		"free space to keep on the data directory's filesystem (e.g. 1GiB); writes are refused (507) below it, and a start below it is read-only "+
			fmt.Sprintf("(default %s: badger's memtables and value-log file plus the largest upload)", diskspace.Bytes(defaultReserve())))
}

// maxWrite is the largest single write the reserve must take: serve's
// default --max-body.
const maxWrite = 512 << 20

func defaultReserve() uint64 {
	o := badger.DefaultOptions("")
	return diskspace.DefaultReserve(o.MemTableSize, o.ValueLogFileSize, maxWrite)
}

// guard returns the free-space guard of the data directory. Its ballast
// (DATA/space.reserve) holds part of the reserve as an allocated file,
// released when badger needs room on a full disk: to replay its logs at
// open after a kill, or to flush its memtable at close.
func (f spaceFlags) guard(data string) (*diskspace.Guard, error) {
	reserve := defaultReserve()
	if f.minFree != "" {
		r, err := diskspace.ParseBytes(f.minFree)
		if err != nil {
			return nil, fmt.Errorf("--min-free: %w", err)
		}
		reserve = r
	}
	g := &diskspace.Guard{Dir: data, Reserve: reserve}
	if f.ballast {
		size := min(int64(reserve/2), 2*badger.DefaultOptions("").MemTableSize)
		g.Ballast = &diskspace.Ballast{Path: filepath.Join(data, "space.reserve"), Size: size}
	}
	return g, nil
}

// openDB opens the data directory's badger database without writing to a
// full disk, which in badger is a SIGBUS, not an error. With the free space
// below the reserve:
//   - if the ballast is there, it is released and the database opened
//     writable: badger replays and truncates its logs (after a kill) in the
//     room the ballast made, and writes are refused until space is back,
//     when they resume by themselves;
//   - else, after a clean stop, the database is opened read-only: nothing is
//     written, reads are served, writes are refused until a restart with
//     space freed;
//   - else (the store must replay its logs, which writes) it refuses to
//     start, saying so.
func openDB(g *globals) (*badger.DB, *diskspace.Guard, error) {
	dir := filepath.Join(g.data, "db")
	space, err := g.space.guard(g.data)
	if err != nil {
		return nil, nil, err
	}
	full := space.Check()
	switch {
	case full == nil:
		db, err := kv.Open(dir, kv.Options{})
		return db, space, err
	case !errors.Is(full, diskspace.ErrFull):
		return nil, nil, full
	}
	released, err := space.Ballast.Release()
	if err != nil {
		return nil, nil, err
	}
	if released {
		g.log.Warn("the disk is full: released the space reserve to open the store; writes are refused until space is freed", "err", full)
		db, err := kv.Open(dir, kv.Options{})
		return db, space, err
	}
	if unclean, err := kv.NeedsReplay(dir); err != nil {
		return nil, nil, err
	} else if unclean {
		return nil, nil, fmt.Errorf("%w: the store in %s was not closed cleanly and must replay its logs, which writes; free some space and start again", full, dir)
	}
	db, err := kv.Open(dir, kv.Options{ReadOnly: true})
	if err != nil {
		return nil, nil, err
	}
	g.log.Warn("the disk is full: started read-only; writes are refused until the server is restarted with space freed", "err", full)
	space.ReadOnly = fmt.Errorf("%w: %w on a full disk: the server takes writes again once restarted with space freed", full, diskspace.ErrReadOnly)
	return db, space, nil
}
