package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultMemory    = 8 << 30 // RLIMIT_AS: address space of each process
	DefaultFileBytes = 2 << 30 // RLIMIT_FSIZE: largest file a job may write
	DefaultProcesses = 4096    // RLIMIT_NPROC (not enforced for uid 0)
	DefaultOpenFiles = 4096    // RLIMIT_NOFILE
)

// checkTimeout bounds each command Check runs.
const checkTimeout = 10 * time.Second

// Config says how jobs are confined. The zero value is the strict default:
// bubblewrap required, no network.
type Config struct {
	// Bwrap is the path of bwrap; "" means looking it up in PATH.
	Bwrap string

	// Network shares the host's network namespace with the job. By
	// default the job gets a fresh one with only a loopback interface.
	Network bool

	// Unsandboxed is the operator's explicit choice to run jobs WITHOUT
	// bubblewrap: the job gets only the resource limits (and its caller's
	// process group). It is never chosen automatically.
	Unsandboxed bool

	// MemoryBytes is RLIMIT_AS of each process: 0 means DefaultMemory, a
	// negative value no limit.
	MemoryBytes int64

	// CPUSeconds is RLIMIT_CPU of each process; 0 means no limit.
	CPUSeconds int64

	// FileBytes is RLIMIT_FSIZE, the largest file a job may write: 0 means
	// DefaultFileBytes, a negative value no limit.
	FileBytes int64

	// Processes is RLIMIT_NPROC, the number of processes of the job's user:
	// 0 means DefaultProcesses. The kernel does not enforce it for uid 0:
	// run jobs as another user for it to hold.
	Processes int64

	// OpenFiles is RLIMIT_NOFILE: 0 means DefaultOpenFiles.
	OpenFiles int64

	// Hide lists host paths the job must not see, besides DefaultHidden
	// (e.g. the worker's TLS key): a directory is covered by an empty
	// tmpfs, a file by /dev/null. Paths that do not exist are skipped.
	Hide []string
}

// DefaultHidden are the host paths every job has covered by an empty
// tmpfs: /run (and /var/run) hold the host's Unix sockets (a container
// engine's, the session bus, databases), which a read-only bind does not
// stop a job from connecting to; /home and /root hold users' keys and
// credentials. /tmp is a fresh tmpfs already.
var DefaultHidden = []string{"/run", "/var/run", "/home", "/root"}

// Check reports, with an actionable message, why jobs cannot run with c on
// this host, or nil. It finds bwrap, records its version for Describe and
// runs it once with the flags Command uses (running `true`). With
// Unsandboxed it only checks that prlimit runs with the limits.
func (c Config) Check(ctx context.Context) error {
	return c.CheckAs(ctx, nil)
}

// CheckAs is Check for jobs run as cred (nil: this process's user), which
// matters where only some users may create user namespaces or where the
// limits are below what that user may set.
//
// A success is remembered for CheckTTL (per configuration and user), so
// that a worker running job after job does not pay two extra process
// starts per job; failures are not remembered.
func (c Config) CheckAs(ctx context.Context, cred *syscall.Credential) error {
	key := checkKey{c: fmt.Sprintf("%#v", c)}
	if cred != nil {
		key.uid, key.gid, key.other = cred.Uid, cred.Gid, true
	}
	if t, ok := checked.Load(key); ok && time.Since(t.(time.Time)) < CheckTTL {
		return nil
	}
	if err := c.checkAs(ctx, cred); err != nil {
		return err
	}
	checked.Store(key, time.Now())
	return nil
}

// CheckTTL is how long CheckAs trusts an earlier success.
const CheckTTL = time.Minute

type checkKey struct {
	c        string // the Config, printed (it holds a slice)
	uid, gid uint32
	other    bool
}

var checked sync.Map // checkKey → time.Time of the last success

func (c Config) checkAs(ctx context.Context, cred *syscall.Credential) error {
	prl, err := prlimitPath()
	if err != nil {
		return err
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		truePath = "/bin/true"
	}
	var bw string
	if !c.Unsandboxed {
		if bw, err = c.bwrapPath(); err != nil {
			return err
		}
		if _, err := version(ctx, bw); err != nil {
			return c.unusable(bw, err)
		}
	}
	argv, err := c.command(prl, []string{truePath}, "/", nil, nil)
	if err != nil {
		return err
	}
	if err := run(ctx, argv, cred); err != nil {
		if c.Unsandboxed {
			return fmt.Errorf("sandbox: resource limits cannot be set with %s: %w", prl, err)
		}
		return c.unusable(bw, err)
	}
	return nil
}

// unusable explains that bwrap at path cannot confine jobs.
func (c Config) unusable(path string, err error) error {
	hint := ""
	if msg := err.Error(); strings.Contains(msg, "ermission denied") || strings.Contains(msg, "peration not permitted") ||
		strings.Contains(msg, "No permissions") || strings.Contains(msg, "No space left") {
		hint = " (are user namespaces disabled? see sysctl user.max_user_namespaces and kernel.unprivileged_userns_clone)"
	}
	return fmt.Errorf("sandbox: bubblewrap (%s) cannot confine jobs on this host: %w%s; fix bubblewrap, or run jobs without it as an explicit choice (Config.Unsandboxed; rebuilder --unsandboxed)", path, err, hint)
}

// Command returns the argv that runs argv confined, in the working
// directory dir: prlimit with the limits, then (unless Unsandboxed) bwrap
// with the host's root read-only, fresh /dev, /proc and /tmp, the
// writable directories bound read-write and the readonly paths read-only
// on top, all namespaces unshared (the network unless Network),
// --die-with-parent, --new-session and --cap-drop ALL. The job's
// environment is the caller's (bwrap and prlimit pass it on unchanged).
// All paths must be absolute and clean; writable may not be "/". It fails
// when prlimit or bwrap cannot be found.
func (c Config) Command(argv []string, dir string, writable, readonly []string) ([]string, error) {
	prl, err := prlimitPath()
	if err != nil {
		return nil, err
	}
	return c.command(prl, argv, dir, writable, readonly)
}

func (c Config) command(prl string, argv []string, dir string, writable, readonly []string) ([]string, error) {
	if len(argv) == 0 {
		return nil, errors.New("sandbox: empty command")
	}
	if err := checkPath("working directory", dir); err != nil {
		return nil, err
	}
	for _, p := range writable {
		if err := checkPath("writable path", p); err != nil {
			return nil, err
		}
		if p == "/" {
			return nil, errors.New("sandbox: the root directory cannot be writable")
		}
	}
	for _, p := range readonly {
		if err := checkPath("read-only path", p); err != nil {
			return nil, err
		}
	}
	for _, p := range c.Hide {
		if err := checkPath("hidden path", p); err != nil {
			return nil, err
		}
	}
	out := append([]string{prl}, c.limitArgs()...)
	out = append(out, "--")
	if !c.Unsandboxed {
		bw, err := c.bwrapPath()
		if err != nil {
			return nil, err
		}
		out = append(out, bw)
		out = append(out, c.bwrapArgs(argv, dir, writable, readonly)...)
	}
	return append(out, argv...), nil
}

// bwrapArgs are bwrap's options, ending in "--", for argv.
func (c Config) bwrapArgs(argv []string, dir string, writable, readonly []string) []string {
	a := []string{
		"--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup",
	}
	if !c.Network {
		a = append(a, "--unshare-net")
	}
	a = append(a, "--die-with-parent", "--new-session", "--cap-drop", "ALL",
		// Order matters: every step mounts on top of the earlier ones, so
		// the tmpfs on /tmp must come before binds of paths under /tmp.
		// Sources are resolved on the host.
		"--ro-bind", "/", "/",
		"--dev", "/dev",
		"--proc", "/proc",
		"--tmpfs", "/tmp",
	)
	a = append(a, hideArgs(append(slices.Clone(DefaultHidden), c.Hide...))...)
	if c.Network {
		// Name resolution may live under /run (systemd-resolved's stub
		// resolv.conf): give the job that file back.
		if t, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil && t != "/etc/resolv.conf" {
			a = append(a, "--ro-bind", t, t)
		}
	}
	for _, p := range writable {
		a = append(a, "--bind", p, p)
	}
	for _, p := range readonly {
		a = append(a, "--ro-bind", p, p)
	}
	return append(a, "--chdir", dir, "--")
}

// hideArgs covers each existing path: a directory with an empty tmpfs, a
// file (or socket) with /dev/null. Symbolic links are left alone (bwrap
// would mount on their targets; /var/run → /run is covered as /run).
func hideArgs(paths []string) []string {
	var a []string
	for _, p := range paths {
		fi, err := os.Lstat(p)
		switch {
		case err != nil || fi.Mode()&os.ModeSymlink != 0:
		case fi.IsDir():
			a = append(a, "--tmpfs", p)
		default:
			a = append(a, "--ro-bind", "/dev/null", p)
		}
	}
	return a
}

// limitArgs are prlimit's options for c.
func (c Config) limitArgs() []string {
	var a []string
	add := func(flag string, v, def int64) {
		if v == 0 {
			v = def
		}
		if v > 0 {
			a = append(a, "--"+flag+"="+strconv.FormatInt(v, 10))
		}
	}
	add("as", c.MemoryBytes, DefaultMemory)
	add("cpu", c.CPUSeconds, 0)
	add("fsize", c.FileBytes, DefaultFileBytes)
	add("nproc", c.Processes, DefaultProcesses)
	add("nofile", c.OpenFiles, DefaultOpenFiles)
	return a
}

// Describe returns a one-line description of the confinement, such as
// "bubblewrap 0.8.0: no network, read-only root, …", for consoles and
// notes. The version is the one Check found ("version unknown" before).
func (c Config) Describe() string {
	var b strings.Builder
	if c.Unsandboxed {
		b.WriteString("UNSANDBOXED (operator's choice): no bubblewrap, the job can read and write whatever its user can, network shared")
	} else {
		b.WriteString("bubblewrap")
		v := "version unknown"
		if bw, err := c.bwrapPath(); err == nil {
			if cv, ok := versions.Load(bw); ok {
				v = cv.(string)
			}
		}
		b.WriteString(" " + v + ": ")
		if c.Network {
			b.WriteString("host network shared")
		} else {
			b.WriteString("no network (loopback only)")
		}
		b.WriteString(", read-only root, fresh /dev, /proc and /tmp, " + strings.Join(append(slices.Clone(DefaultHidden), c.Hide...), ", ") +
			" hidden, writable job directories only, new user/pid/ipc/uts/cgroup namespaces, no capabilities")
	}
	b.WriteString("; limits per process: ")
	lim := func(name string, v, def int64, unit func(int64) string) string {
		if v == 0 {
			v = def
		}
		if v <= 0 {
			return name + " unlimited"
		}
		return name + " " + unit(v)
	}
	num := func(v int64) string { return strconv.FormatInt(v, 10) }
	b.WriteString(strings.Join([]string{
		lim("address space", c.MemoryBytes, DefaultMemory, size),
		lim("file size", c.FileBytes, DefaultFileBytes, size),
		lim("CPU", c.CPUSeconds, 0, func(v int64) string { return num(v) + " s" }),
		lim("processes", c.Processes, DefaultProcesses, num),
		lim("open files", c.OpenFiles, DefaultOpenFiles, num),
	}, ", "))
	return b.String()
}

// size formats n bytes, in binary units when exact.
func size(n int64) string {
	for _, u := range []struct {
		s string
		n int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + " " + u.s
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func checkPath(what, p string) error {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.ContainsRune(p, 0) {
		return fmt.Errorf("sandbox: %s %q is not a clean absolute path", what, p)
	}
	return nil
}

// bwrapPath finds bwrap.
func (c Config) bwrapPath() (string, error) {
	if c.Bwrap != "" {
		if !filepath.IsAbs(c.Bwrap) {
			return "", fmt.Errorf("sandbox: bwrap path %q is not absolute", c.Bwrap)
		}
		fi, err := os.Stat(c.Bwrap)
		if err != nil {
			return "", missing(fmt.Sprintf("%s: %v", c.Bwrap, errors.Unwrap(err)))
		}
		if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return "", missing(c.Bwrap + " is not an executable file")
		}
		return c.Bwrap, nil
	}
	p, err := exec.LookPath("bwrap")
	if err != nil {
		return "", missing("bwrap is not in PATH")
	}
	return filepath.Abs(p)
}

func missing(why string) error {
	return fmt.Errorf("sandbox: bubblewrap is needed to confine jobs, and %s; install it (Debian and Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap), "+
		"or run jobs without it as an explicit choice (Config.Unsandboxed; rebuilder --unsandboxed)", why)
}

// prlimitPath finds util-linux's prlimit.
func prlimitPath() (string, error) {
	if p, err := exec.LookPath("prlimit"); err == nil {
		return filepath.Abs(p)
	}
	for _, p := range []string{"/usr/bin/prlimit", "/bin/prlimit"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("sandbox: prlimit is needed to set the jobs' resource limits and is not installed; install util-linux (Debian: apt-get install util-linux)")
}

// versions caches `bwrap --version` by bwrap's path.
var versions sync.Map

// version returns bwrap's version, running `bwrap --version` once per
// path.
func version(ctx context.Context, bw string) (string, error) {
	if v, ok := versions.Load(bw); ok {
		return v.(string), nil
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bw, "--version")
	cmd.Env = []string{}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w: %s", bw, err, bytes.TrimSpace(out))
	}
	// "bubblewrap 0.8.0"
	f := strings.Fields(string(out))
	if len(f) < 2 || f[0] != "bubblewrap" {
		return "", fmt.Errorf("%s --version says %q, not bubblewrap's version", bw, bytes.TrimSpace(out))
	}
	versions.Store(bw, f[1])
	return f[1], nil
}

// run runs argv as cred and reports its failure with its output.
func run(ctx context.Context, argv []string, cred *syscall.Credential) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if msg := bytes.TrimSpace(out); len(msg) > 0 {
			if len(msg) > 1000 {
				msg = msg[:1000]
			}
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}
