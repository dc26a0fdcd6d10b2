package kv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// removeEmptyLogs deletes the zero-length memtable logs (*.mem) and value
// log files (*.vlog) in dir and returns their names.
//
// badger creates each of these files by creating it and then growing it to
// its full size; a process killed between the two leaves a file of zero
// bytes. badger v4 (up to v4.9.6, dgraph-io/badger issue 2207; the fix,
// pull request 2331, is not released) then fails every Open with "while
// opening fid: … Create a new file" (or "Open existing file: … .vlog").
// A file of zero bytes has never held a header, let alone an entry or a
// value a pointer could name, so removing it loses nothing; any other size
// is left to badger's own replay. Nothing is removed while another process
// has the database open (it holds badger's lock on the directory): its
// files are not ours to judge, and badger refuses the open anyway.
func removeEmptyLogs(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.Close() // releases the lock
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, nil
	}
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		if !e.Type().IsRegular() || !(strings.HasSuffix(e.Name(), ".mem") || strings.HasSuffix(e.Name(), ".vlog")) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return removed, err
		}
		if fi.Size() != 0 {
			continue
		}
		if err := os.Remove(p); err != nil {
			return removed, fmt.Errorf("removing the empty log %s: %w", p, err)
		}
		removed = append(removed, e.Name())
	}
	if len(removed) > 0 {
		d.Sync()
	}
	return removed, nil
}

// NeedsReplay reports whether the database in dir holds memtable logs with
// data, which badger replays (and truncates) at open: it was not closed
// cleanly. Such a database cannot be opened read-only.
func NeedsReplay(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Size() > 0 {
			return true, nil
		}
	}
	return false, nil
}
