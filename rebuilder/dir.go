package rebuilder

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// WriteDir writes the build as an orb output directory, the layout `ledger
// upload` reads: every output file of the exec (build-environment,
// system-packages, opam-switch, bin/...), the script as "script" and the
// console as "console" in builder-web's console.txt form, one
// "<seconds since start, 3 decimals>s:<line>" per line. dir is created; it
// must not exist or be empty. orb's <package>.build-hashes file is not
// written: it lists opam's MD5 digests of the files a package installed,
// which a script job does not have; Artifacts holds the SHA-256 of every
// output instead.
func (r *Result) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("rebuilder: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("rebuilder: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("rebuilder: %s is not empty", dir)
	}
	var console bytes.Buffer
	for _, l := range r.Exec.Console {
		fmt.Fprintf(&console, "%.3fs:%s\n", l.Delta.Seconds(), l.Data)
	}
	write := func(p string, data []byte) error {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("rebuilder: %w", err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			return fmt.Errorf("rebuilder: %w", err)
		}
		return nil
	}
	for _, f := range r.Exec.Output {
		if err := write(f.Path, f.Data); err != nil {
			return err
		}
	}
	if err := write("script", []byte(r.Exec.Job.Script)); err != nil {
		return err
	}
	return write("console", console.Bytes())
}
