package rebuilder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/buildledger/buildledger/ledger/orb"
)

// maxCapture bounds the output of dpkg-query, pkg and opam read into
// memory.
const maxCapture = 64 << 20

// limitedBuffer keeps the first max bytes written to it and notes whether
// more came.
type limitedBuffer struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); len(p) > room {
		b.buf.Write(p[:max(room, 0)])
		b.truncated = true
		return len(p), nil
	}
	return b.buf.Write(p)
}

// output runs argv with env in dir and returns its standard output, or an
// error quoting its standard error.
// captureTimeout bounds one capture command (dpkg-query, opam export).
const captureTimeout = 5 * time.Minute

// output runs a capture command as cred (nil: this user) in a process group
// of its own, killed with everything in it when the command ends, times
// out or ctx ends; a process that keeps the output open cannot hold it up
// for more than WaitDelay. With jail it runs confined like the job, with
// the job's directories writable.
func output(ctx context.Context, argv, env []string, dir string, cred *syscall.Credential, jail *confinement) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, captureTimeout)
	defer cancel()
	run := argv
	if jail != nil {
		var err error
		if run, err = jail.Command(argv, dir, jail.writable, nil); err != nil {
			return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
		}
	}
	cmd := exec.CommandContext(ctx, run[0], run[1:]...)
	cmd.Env, cmd.Dir = env, dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = pipeGrace
	defer func() {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}()
	stdout := &limitedBuffer{max: maxCapture}
	stderr := &limitedBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.buf.String()); msg != "" {
			return nil, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, msg)
		}
		return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	if stdout.truncated {
		return nil, fmt.Errorf("%s: output exceeds %d bytes", strings.Join(argv, " "), maxCapture)
	}
	return stdout.buf.Bytes(), nil
}

// systemPackages lists the host's packages as orb does, sorted by name (a
// name listed once per architecture keeps the package manager's order),
// and returns them with their canonical system-packages file.
func systemPackages(ctx context.Context, family orb.Family) (*orb.Packages, []byte, error) {
	var tool string
	var args []string
	switch family {
	case orb.Debian:
		tool, args = "dpkg-query", []string{"--showformat=${Package}=${Version}\n", "-W"}
	case orb.FreeBSD:
		tool, args = "pkg", []string{"query", "%n-%v"}
	default:
		return nil, nil, fmt.Errorf("rebuilder: %w: family %v", ErrUnsupportedHost, family)
	}
	bin, err := lookPath(tool, DefaultPath)
	if err != nil {
		return nil, nil, fmt.Errorf("rebuilder: system-packages: %w", err)
	}
	out, err := output(ctx, append([]string{bin}, args...), []string{"PATH=" + DefaultPath}, "/", nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("rebuilder: system-packages: %w", err)
	}
	pkgs, err := orb.ParseSystemPackages(out, family)
	if err != nil {
		return nil, nil, fmt.Errorf("rebuilder: system-packages: %w", err)
	}
	slices.SortStableFunc(pkgs.List, func(a, b orb.Package) int { return strings.Compare(a.Name, b.Name) })
	data, err := pkgs.Format()
	if err != nil {
		return nil, nil, fmt.Errorf("rebuilder: system-packages: %w", err)
	}
	return &pkgs, data, nil
}

// opamSwitch exports the job's opam switch with `opam switch export
// --full --freeze -`, run like the job (same variables, in its working
// directory, so a local switch there is found, as the same user and
// confined the same way, since opam runs what the job left in its root),
// and returns it with its
// canonical opam-switch file. In OpamAuto mode it returns nil when opam is
// not on the job's PATH or the job's opam root does not exist, and turns
// failures into a console note; in OpamAlways mode they are errors
// wrapping ErrOpam.
func opamSwitch(ctx context.Context, mode OpamMode, env orb.Environment, environ []string, dir string, cred *syscall.Credential, jail *confinement, con *console) (*orb.Switch, []byte, error) {
	fail := func(err error) (*orb.Switch, []byte, error) {
		if mode == OpamAlways {
			return nil, nil, fmt.Errorf("rebuilder: %w: %w", ErrOpam, err)
		}
		con.note("no opam-switch: %v", err)
		return nil, nil, nil
	}
	path, _ := env.Get(varPath)
	bin, err := lookPath("opam", path)
	if err != nil {
		if mode == OpamAuto {
			return nil, nil, nil
		}
		return fail(err)
	}
	if mode == OpamAuto {
		root, ok := env.Get("OPAMROOT")
		if !ok {
			home, _ := env.Get(varHome)
			root = filepath.Join(home, ".opam")
		}
		if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil
		}
	}
	out, err := output(ctx, []string{bin, "switch", "export", "--full", "--freeze", "-"}, environ, dir, cred, jail)
	if err != nil {
		return fail(err)
	}
	sw, err := orb.ParseSwitch(out)
	if err != nil {
		return fail(fmt.Errorf("opam's export does not parse: %w", err))
	}
	data, err := sw.Format()
	if err != nil {
		return fail(fmt.Errorf("opam's export cannot be written back: %w", err))
	}
	return sw, data, nil
}
