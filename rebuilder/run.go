package rebuilder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/buildledger/buildledger/farm/sandbox"
	"github.com/buildledger/buildledger/ledger/event"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/buildledger/buildledger/ledger/orb"
)

// Defaults for the zero fields of Options.
const (
	// DefaultRoot is the build root: the same path on every run and every
	// host, so that paths compiled into outputs do not differ.
	DefaultRoot = "/tmp/buildledger-build"

	// DefaultPath is the PATH of every fresh run: orb's allow-list of
	// system directories, preceded by /usr/local/go/bin where the Go
	// distribution installs go. It is fixed, not filtered from the
	// caller's PATH, so it reads the same on every host.
	DefaultPath = "/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

	DefaultTimeout         = time.Hour // builder's worker limit
	DefaultMaxConsoleLines = 100_000
	DefaultMaxConsoleBytes = 16 << 20
	DefaultMaxOutputSize   = 256 << 20 // held in memory by the exec record
	DefaultMaxOutputFiles  = builder.DefaultMaxFiles
)

// Names inside the build root.
const (
	markerFile = ".buildledger-root" // marks a directory Run may wipe, and is locked while a job runs
	scriptFile = "script"
	buildDir   = "build" // the job's working directory
	homeDir    = "home"  // the job's HOME
)

// pipeGrace is how long Run keeps reading output after the script and its
// process group have ended, for writers that escaped the group.
const pipeGrace = 2 * time.Second

// Errors callers act on; Run wraps them with details.
var (
	// ErrRootBusy: another Run holds the build root.
	ErrRootBusy = errors.New("build root in use")
	// ErrOutputLimit: the job left more output than Options allow.
	ErrOutputLimit = errors.New("output limit exceeded")
	// ErrOpam: OpamAlways, and opam is missing or its export failed.
	ErrOpam = errors.New("cannot capture the opam switch")
	// ErrUnsupportedHost: the host's package manager is neither dpkg nor
	// FreeBSD's pkg, so system-packages cannot be captured (see
	// Options.SkipSystem).
	ErrUnsupportedHost = errors.New("system packages of this host cannot be captured")
	// ErrSandbox: Options.Sandbox is set and jobs cannot be confined as it
	// says on this host (bubblewrap missing or unusable); the wrapped
	// error says how to fix it.
	ErrSandbox = errors.New("cannot confine the job")
)

// Phase names a step of Run, for progress reports.
type Phase string

const (
	PhasePreparing Phase = "preparing" // checking the spec, wiping the build root, writing the script
	PhaseRunning   Phase = "running"   // the script runs
	PhaseCapturing Phase = "capturing" // system-packages and opam-switch
	PhaseHashing   Phase = "hashing"   // reading and hashing the outputs under bin/
)

// Options configure Run. The zero value runs a fresh build in DefaultRoot
// with the default limits.
type Options struct {
	// Root is the build root, an absolute path: the job runs in Root/build
	// with HOME=Root/home, both wiped and created afresh by every run, and
	// its script is Root/script. Use the same Root for runs that should
	// produce the same bytes. Run refuses a Root that is not empty and was
	// not made by Run (it has no .buildledger-root file), is a symlink or
	// belongs to another user, and fails with ErrRootBusy while another Run
	// uses it. "" means DefaultRoot, or with Env the root of the recorded
	// HOME.
	Root string

	// Path is the PATH of a fresh run: absolute directories separated by
	// ":". "" means DefaultPath. Ignored with Env.
	Path string

	// Env, for a rebuild, is the recorded build-environment to restore: the
	// script runs with exactly these variables (HOME, PATH,
	// SOURCE_DATE_EPOCH, the host facts and the job's variables), and the
	// file is recorded again as it was given. The recorded HOME must be
	// "<root>/home"; that root is the build root (Root, if set, must equal
	// it). Spec.Vars and Spec.SourceDateEpoch must be empty. Run does not
	// compare the recorded host facts with this host: see CheckHost.
	Env *orb.Environment

	// Timeout bounds the script's run time; the job is then killed and
	// recorded with the result message "timeout", as builder does.
	// 0 means DefaultTimeout, a negative value no limit.
	Timeout time.Duration

	// SkipSystem leaves system-packages out, like orb's --skip-system. Hosts
	// that are neither of the Debian family nor FreeBSD need it.
	SkipSystem bool

	// MaxConsoleLines and MaxConsoleBytes bound the console kept in the
	// exec record (0: the defaults). Beyond them Run keeps the first and the
	// last lines, half the budget each, with a note of how many lines were
	// left out in between.
	MaxConsoleLines int
	MaxConsoleBytes int64

	// MaxOutputSize and MaxOutputFiles bound the files collected from bin/,
	// which the exec record holds in memory (0: the defaults). More fails
	// Run with ErrOutputLimit.
	MaxOutputSize  int64
	MaxOutputFiles int

	// RunAs, if set, runs the job (and the opam export) as this user and
	// group, which get the build and home directories; Run must then run as
	// root. A rebuild runs a script that came from the ledger: run it as
	// a user that cannot read the rebuilder's signing key, its environment
	// or anything else it must not touch (see the package documentation).
	RunAs *syscall.Credential

	// Sandbox, if set, confines the job and the opam export with
	// bubblewrap and resource limits (package farm/sandbox): the host's
	// root read-only, only Root/build and Root/home writable, the script
	// read-only, a private /tmp, no network unless Sandbox.Network, and
	// nothing of the job outlives it. Run first checks that the host can do
	// so and otherwise fails with ErrSandbox, running nothing. The
	// console's first line is a note describing the confinement.
	//
	// nil runs the job unconfined, as before: in its own process group,
	// with whatever access its user (see RunAs) has, including the network.
	Sandbox *sandbox.Config

	// Progress, if set, is called as Run enters each phase.
	Progress func(Phase)

	// Console, if set, receives every line of the job's output as it is
	// read (newline-terminated), whether or not the bounded console keeps it.
	// Write errors are ignored.
	Console io.Writer
}

// Result is one finished run of a job.
type Result struct {
	// Exec is the record to upload: a new random UUID, the job's name,
	// script and platform, the console, start and finish times, the result
	// and as output the files build-environment, system-packages (unless
	// skipped), opam-switch (if captured) and every file under bin/, in
	// that order, bin/ sorted by path. Failed builds are recorded too: a
	// non-zero exit, a signal, a timeout.
	Exec *builder.Exec

	// Inputs are the captured input files, parsed.
	Inputs Inputs

	// Artifacts are the files under bin/: path, SHA-256 and size, sorted by
	// path. They are what Compare compares.
	Artifacts []event.Artifact

	// Root is the build root used. Root/build keeps the job's files until
	// the next run there.
	Root string
}

// Run runs one job in a normalised environment and captures it as orb and
// builder do; see the package documentation for what the job sees and what
// is recorded.
//
// The error is nil whenever the job ran, whatever its result. Run fails,
// recording nothing, for an invalid Spec or Options (ErrInvalidSpec), a
// busy or foreign build root (ErrRootBusy), output beyond the limits
// (ErrOutputLimit), a host whose packages cannot be listed
// (ErrUnsupportedHost), a required opam switch it cannot export
// (ErrOpam), and when ctx ends: the job's whole process group is then
// killed and the error wraps ctx.Err().
func Run(ctx context.Context, spec Spec, opts Options) (*Result, error) {
	progress := func(p Phase) {
		if opts.Progress != nil {
			opts.Progress(p)
		}
	}
	progress(PhasePreparing)
	if err := event.CheckName(spec.Job); err != nil {
		return nil, invalidSpec("job: %v", err)
	}
	if len(spec.Script) == 0 {
		return nil, invalidSpec("empty script")
	}
	if spec.Opam > OpamNever {
		return nil, invalidSpec("unknown opam mode %v", spec.Opam)
	}
	host, err := ProbeHost()
	if err != nil {
		return nil, err
	}
	root, env, err := opts.environment(spec, host)
	if err != nil {
		return nil, err
	}
	platform, err := spec.platform(env)
	if err != nil {
		return nil, err
	}
	family := orb.Environment{Vars: host.Vars()}.Family()
	if !opts.SkipSystem && family == orb.UnknownFamily {
		return nil, fmt.Errorf("rebuilder: %w: OS %s, family %s (set SkipSystem to build without system-packages)",
			ErrUnsupportedHost, host.OS, host.Family)
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return nil, fmt.Errorf("rebuilder: %w", err)
	}
	if opts.Sandbox != nil {
		if err := opts.Sandbox.CheckAs(ctx, opts.RunAs); err != nil {
			return nil, fmt.Errorf("rebuilder: %w: %w", ErrSandbox, err)
		}
	}

	unlock, err := prepareRoot(root, opts.RunAs)
	if err != nil {
		return nil, err
	}
	defer unlock()
	scriptPath := filepath.Join(root, scriptFile)
	if err := os.WriteFile(scriptPath, spec.Script, 0o500); err != nil {
		return nil, fmt.Errorf("rebuilder: %w", err)
	}
	if opts.RunAs != nil {
		if err := os.Chown(scriptPath, int(opts.RunAs.Uid), int(opts.RunAs.Gid)); err != nil {
			return nil, fmt.Errorf("rebuilder: %w", err)
		}
	}
	argv := []string{scriptPath}
	if !strings.HasPrefix(string(spec.Script), "#!") {
		argv = []string{"/bin/sh", "-e", scriptPath}
	}
	environ := make([]string, len(env.Vars))
	for i, v := range env.Vars {
		environ[i] = v.Name + "=" + v.Value
	}
	work := filepath.Join(root, buildDir)
	var jail *confinement
	if opts.Sandbox != nil {
		jail = &confinement{Config: *opts.Sandbox, writable: []string{work, filepath.Join(root, homeDir)}}
		if argv, err = jail.Command(argv, work, jail.writable, []string{scriptPath}); err != nil {
			return nil, fmt.Errorf("rebuilder: %w: %w", ErrSandbox, err)
		}
	}

	progress(PhaseRunning)
	started := time.Now()
	con := newConsole(started, orDefault(opts.MaxConsoleLines, DefaultMaxConsoleLines),
		orDefault(opts.MaxConsoleBytes, DefaultMaxConsoleBytes), opts.Console)
	if jail != nil {
		con.note("sandbox: %s", jail.Describe())
	}
	timeout := orDefault(opts.Timeout, DefaultTimeout)
	result, err := runScript(ctx, argv, work, environ, timeout, opts.RunAs, jail != nil && !jail.Unsandboxed, con)
	if err != nil {
		return nil, fmt.Errorf("rebuilder: job %s: %w", spec.Job, err)
	}
	finished := time.Now()

	progress(PhaseCapturing)
	res := &Result{Root: root, Inputs: Inputs{Environment: env}}
	envFile, err := env.Format()
	if err != nil {
		return nil, invalidSpec("build-environment: %v", err)
	}
	files := []builder.File{{Path: orb.EnvironmentFile, Data: envFile}}
	if !opts.SkipSystem {
		pkgs, data, err := systemPackages(ctx, family)
		if err != nil {
			return nil, err
		}
		res.Inputs.Packages = pkgs
		files = append(files, builder.File{Path: orb.PackagesFile, Data: data})
	}
	if spec.Opam != OpamNever {
		sw, data, err := opamSwitch(ctx, spec.Opam, env, environ, work, opts.RunAs, jail, con)
		if err != nil {
			return nil, err
		}
		if sw != nil {
			res.Inputs.Switch = sw
			files = append(files, builder.File{Path: orb.SwitchFile, Data: data})
		}
	}

	progress(PhaseHashing)
	out, arts, err := collect(work, orDefault(opts.MaxOutputSize, DefaultMaxOutputSize),
		orDefault(opts.MaxOutputFiles, DefaultMaxOutputFiles), con)
	if err != nil {
		return nil, err
	}
	res.Artifacts = arts
	res.Exec = &builder.Exec{
		Job:      builder.Job{Name: spec.Job, Script: string(spec.Script), Platform: platform},
		UUID:     id,
		Console:  con.lines(),
		Started:  started.UTC().Round(0),
		Finished: finished.UTC().Round(0),
		Result:   result,
		Output:   append(files, out...),
	}
	return res, nil
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// environment returns the build root and the variables of the run.
func (o Options) environment(spec Spec, host Host) (string, orb.Environment, error) {
	if o.Env != nil {
		if len(spec.Vars) > 0 || spec.SourceDateEpoch != 0 {
			return "", orb.Environment{}, invalidSpec("a rebuild takes its variables and SOURCE_DATE_EPOCH from the recorded environment; Spec.Vars and Spec.SourceDateEpoch must be empty")
		}
		root, err := checkRecorded(*o.Env)
		if err != nil {
			return "", orb.Environment{}, err
		}
		if o.Root != "" && o.Root != root {
			return "", orb.Environment{}, invalidSpec("Root %q differs from the recorded build root %q (HOME=%s/%s)", o.Root, root, root, homeDir)
		}
		return root, orb.Environment{Vars: append([]orb.Var(nil), o.Env.Vars...)}, nil
	}
	root := o.Root
	if root == "" {
		root = DefaultRoot
	}
	if err := checkRoot(root); err != nil {
		return "", orb.Environment{}, err
	}
	path := o.Path
	if path == "" {
		path = DefaultPath
	}
	for _, dir := range strings.Split(path, ":") {
		if !filepath.IsAbs(dir) || strings.ContainsAny(dir, "\n\r\x00") {
			return "", orb.Environment{}, invalidSpec("PATH element %q is not an absolute directory", dir)
		}
	}
	env, err := spec.environment(filepath.Join(root, homeDir), path, host)
	return root, env, err
}

// checkRoot reports why root cannot be a build root path.
func checkRoot(root string) error {
	if !filepath.IsAbs(root) || filepath.Clean(root) != root || root == "/" || strings.ContainsAny(root, ":\n\r\x00") {
		return invalidSpec("build root %q must be a clean absolute path other than /, without ':' or control characters", root)
	}
	return nil
}

// prepareRoot creates or reclaims root, locks it, and wipes and recreates
// the build and home directories. The returned function unlocks it.
func prepareRoot(root string, owner *syscall.Credential) (unlock func(), err error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("rebuilder: %w", err)
	}
	fi, err := os.Lstat(root)
	if err != nil {
		return nil, fmt.Errorf("rebuilder: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("rebuilder: build root %s is not a directory", root)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return nil, fmt.Errorf("rebuilder: build root %s belongs to uid %d, not to this user", root, st.Uid)
	}
	marker := filepath.Join(root, markerFile)
	f, err := os.OpenFile(marker, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		entries, rerr := os.ReadDir(root)
		if rerr != nil {
			return nil, fmt.Errorf("rebuilder: %w", rerr)
		}
		if len(entries) > 0 {
			return nil, fmt.Errorf("rebuilder: %s is not empty and has no %s: not a build root, refusing to wipe it", root, markerFile)
		}
		f, err = os.OpenFile(marker, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	}
	if err != nil {
		return nil, fmt.Errorf("rebuilder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("rebuilder: %s: %w", root, ErrRootBusy)
		}
		return nil, fmt.Errorf("rebuilder: lock %s: %w", marker, err)
	}
	unlock = func() { f.Close() } // closing releases the lock
	for _, name := range []string{scriptFile, buildDir, homeDir} {
		p := filepath.Join(root, name)
		if err := wipe(p); err != nil {
			unlock()
			return nil, fmt.Errorf("rebuilder: wiping %s: %w", p, err)
		}
	}
	for _, name := range []string{buildDir, homeDir} {
		p := filepath.Join(root, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			unlock()
			return nil, fmt.Errorf("rebuilder: %w", err)
		}
		if owner != nil {
			if err := os.Chown(p, int(owner.Uid), int(owner.Gid)); err != nil {
				unlock()
				return nil, fmt.Errorf("rebuilder: giving %s to uid %d: %w (running a job as another user needs root)", p, owner.Uid, err)
			}
		}
	}
	return unlock, nil
}

// wipe removes p and everything below it, making read-only directories
// (as Go's module cache leaves them) writable first if needed.
func wipe(p string) error {
	if err := os.RemoveAll(p); err == nil {
		return nil
	}
	_ = filepath.WalkDir(p, func(q string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(q, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}

// confinement is how Run confines the job's processes.
type confinement struct {
	sandbox.Config
	writable []string // the job's work and home directories
}

// runScript runs argv in dir with exactly env, its output going to con,
// in a process group of its own that is killed when ctx ends, when the
// timeout expires and when the script has exited. It returns the result
// as builder records it; the error is ctx's when ctx ended. bwrapped says
// that argv runs the script under bubblewrap (see bwrapSignal).
func runScript(ctx context.Context, argv []string, dir string, env []string, timeout time.Duration, cred *syscall.Credential, bwrapped bool, con *console) (builder.Result, error) {
	tctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		tctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return builder.Result{}, err
	}
	defer pr.Close()
	cmd := exec.CommandContext(tctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Start()
	pw.Close()
	if err != nil {
		if ctx.Err() != nil {
			return builder.Result{}, ctx.Err()
		}
		con.note("cannot start the script: %v", err)
		return builder.Result{Kind: builder.ResultMsg, Msg: "cannot start the script: " + err.Error()}, nil
	}
	read := make(chan error, 1)
	go func() { read <- con.read(pr) }()
	_ = cmd.Wait() // the status is in cmd.ProcessState
	// Whatever the script left running in its group goes with it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = pr.SetReadDeadline(time.Now().Add(pipeGrace))
	if err := <-read; err != nil {
		con.note("output still open %v after the script ended (by a process outside its process group?); stopped reading: %v", pipeGrace, err)
	}
	switch {
	case ctx.Err() != nil:
		return builder.Result{}, ctx.Err()
	case tctx.Err() != nil:
		con.note("killed after the timeout of %v", timeout)
		return builder.Result{Kind: builder.ResultMsg, Msg: "timeout"}, nil
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ok && bwrapped && ws.Exited():
		if sig, ok := bwrapSignal(ws.ExitStatus()); ok {
			con.note("bubblewrap reported exit status %d, as it reports a job killed by signal %d (%v): recorded as that signal", ws.ExitStatus(), int(sig), sig)
			return builder.Result{Kind: builder.ResultSignalled, Code: OCamlSignal(sig)}, nil
		}
	case !ok:
		return builder.Result{Kind: builder.ResultExited, Code: cmd.ProcessState.ExitCode()}, nil
	case ws.Signaled():
		return builder.Result{Kind: builder.ResultSignalled, Code: OCamlSignal(ws.Signal())}, nil
	case ws.Stopped():
		return builder.Result{Kind: builder.ResultStopped, Code: OCamlSignal(ws.StopSignal())}, nil
	}
	return builder.Result{Kind: builder.ResultExited, Code: ws.ExitStatus()}, nil
}

// bwrapSignal reads an exit status of bubblewrap. bwrap cannot die of the
// signal that killed the job (its PID namespace's init), so it reports a
// job killed by signal n as exit status 128+n, as shells do. Run records
// that as the signal, as builder records a killed job; a script that calls
// `exit 137` itself is recorded as killed by SIGKILL, as its shell parent
// would see it.
func bwrapSignal(status int) (syscall.Signal, bool) {
	if status > 128 && status <= 128+64 {
		return syscall.Signal(status - 128), true
	}
	return 0, false
}

// lookPath finds an executable file in the directories of path.
func lookPath(file, path string) (string, error) {
	for _, dir := range strings.Split(path, ":") {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH %s", file, path)
}
