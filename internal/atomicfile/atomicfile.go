// Package atomicfile replaces files so that a reader, or the next start
// after a crash, sees either the old content or the whole new content,
// never a torn file: the bytes go to a temporary file in the destination's
// directory, which is fsynced, renamed over the destination, and the
// directory fsynced so the rename itself is durable.
//
// Temporary files are named TempPrefix+random; a crash can leave one
// behind, which RemoveTemps deletes (call it when the directory's owner
// starts). TestWriteFile, TestFileCommitAs, TestAbort and
// TestRemoveTemps prove it.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix starts the name of every temporary file this package creates.
const TempPrefix = ".tmp-"

// File is a temporary file that becomes its destination on Commit. It is
// an *os.File for writing; the caller writes to it and then either
// commits it or aborts it.
type File struct {
	*os.File
	dir, path string
	perm      fs.FileMode
	finished  bool
}

// Create starts replacing path: the temporary file is in path's directory
// and gets mode perm (not subject to the umask) when committed.
func Create(path string, perm fs.FileMode) (*File, error) {
	f, err := CreateIn(filepath.Dir(path), perm)
	if err != nil {
		return nil, err
	}
	f.path = path
	return f, nil
}

// CreateIn starts a file in dir whose name is known only later (content-
// addressed files): commit it with CommitAs.
func CreateIn(dir string, perm fs.FileMode) (*File, error) {
	t, err := os.CreateTemp(dir, TempPrefix+"*")
	if err != nil {
		return nil, err
	}
	return &File{File: t, dir: dir, perm: perm}, nil
}

// Commit makes the written bytes the content of the destination given to
// Create. On error the destination is unchanged and the temporary file
// removed.
func (f *File) Commit() error {
	if f.path == "" {
		f.Abort()
		return errors.New("atomicfile: Commit of a file made by CreateIn; use CommitAs")
	}
	return f.CommitAs(f.path)
}

// CommitAs is Commit to path, which must be in the directory the file was
// created in (a rename is atomic only within one file system).
func (f *File) CommitAs(path string) error {
	if f.finished {
		return errors.New("atomicfile: file already committed or aborted")
	}
	if filepath.Clean(filepath.Dir(path)) != filepath.Clean(f.dir) {
		f.Abort()
		return fmt.Errorf("atomicfile: %s is not in %s, where the temporary file is", path, f.dir)
	}
	err := f.Chmod(f.perm)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	f.finished = true
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return SyncDir(f.dir)
}

// Abort discards the file; the destination is unchanged. It does nothing
// after Commit, so it can be deferred.
func (f *File) Abort() {
	if f.finished {
		return
	}
	f.finished = true
	f.File.Close()
	os.Remove(f.Name())
}

// Close aborts the file unless it was committed: the temporary file never
// outlives its writer.
func (f *File) Close() error {
	f.Abort()
	return nil
}

// WriteFile replaces path with data, atomically and durably, with mode perm.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// SyncDir fsyncs a directory, making the creations, renames and removals
// of entries in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RemoveTemps deletes the temporary files a crash left in dir.
func RemoveTemps(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), TempPrefix) && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
