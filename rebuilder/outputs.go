package rebuilder

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/event"

	"github.com/buildledger/buildledger/ledger/builder"
)

// outputDir is the directory of the job's working directory whose files
// are its outputs.
const outputDir = "bin"

// collect reads every regular file under work/bin, in lexical order, and
// returns the files with their artifacts. Symlinks are never followed:
// they, and devices, pipes and sockets, are left out with a console note,
// as are files whose names the ledger cannot record. More than maxFiles
// files or maxSize bytes fail with ErrOutputLimit.
func collect(work string, maxSize int64, maxFiles int, con *console) ([]builder.File, []event.Artifact, error) {
	root, err := os.OpenRoot(work)
	if err != nil {
		return nil, nil, fmt.Errorf("rebuilder: %w", err)
	}
	defer root.Close()
	fi, err := root.Lstat(outputDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, []event.Artifact{}, nil
	case err != nil:
		return nil, nil, fmt.Errorf("rebuilder: %w", err)
	case !fi.IsDir():
		con.note("%s is %s, not a directory: no outputs collected", outputDir, describe(root, outputDir, fi.Mode()))
		return nil, []event.Artifact{}, nil
	}
	var files []builder.File
	arts := []event.Artifact{}
	var total int64
	err = fs.WalkDir(root.FS(), outputDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			con.note("%s: %v: not collected", p, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			con.note("%s is %s: not collected", p, describe(root, p, d.Type()))
			return nil
		}
		if err := checkOutputPath(p); err != nil {
			con.note("%q: %v: not collected", p, err)
			return nil
		}
		if len(files) == maxFiles {
			return fmt.Errorf("rebuilder: %w: more than %d files under %s/", ErrOutputLimit, maxFiles, outputDir)
		}
		data, err := readFile(root, p, maxSize-total)
		if err != nil {
			return err
		}
		total += int64(len(data))
		files = append(files, builder.File{Path: p, Data: data})
		arts = append(arts, event.Artifact{Path: p, SHA256: digest.Sum(data), Size: int64(len(data))})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return files, arts, nil
}

// readFile reads the regular file p of root, failing with ErrOutputLimit if
// it holds more than room bytes.
func readFile(root *os.Root, p string, room int64) ([]byte, error) {
	f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("rebuilder: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("rebuilder: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("rebuilder: %s changed while being collected", p)
	}
	data, err := io.ReadAll(io.LimitReader(f, room+1))
	if err != nil {
		return nil, fmt.Errorf("rebuilder: %w", err)
	}
	if int64(len(data)) > room {
		return nil, fmt.Errorf("rebuilder: %w: %s takes the outputs beyond the size limit", ErrOutputLimit, p)
	}
	return data, nil
}

// describe says what kind of file p is, for a console note.
func describe(root *os.Root, p string, mode fs.FileMode) string {
	switch {
	case mode&fs.ModeSymlink != 0:
		if target, err := root.Readlink(p); err == nil {
			return fmt.Sprintf("a symlink to %q", target)
		}
		return "a symlink"
	case mode&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	case mode&fs.ModeDevice != 0:
		return "a device"
	case mode.IsRegular():
		return "a regular file"
	}
	return "not a regular file"
}

// checkOutputPath reports why p cannot be recorded: the ledger's artifact
// path rules, and builder's refusal of C1 control characters.
func checkOutputPath(p string) error {
	if err := event.CheckArtifactPath(p); err != nil {
		return err
	}
	for _, r := range p {
		if r >= 0x80 && r <= 0x9f {
			return fmt.Errorf("contains a control character")
		}
	}
	return nil
}
