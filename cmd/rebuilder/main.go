// Command rebuilder builds jobs the way orb does and rebuilds builds
// recorded in a buildledger, attesting whether they are reproducible.
//
//	rebuilder build   --job NAME --script FILE [--var K=V]... --source-date-epoch N [--server URL --user NAME] [--out DIR]
//	rebuilder rebuild --server URL --build UUID --key KEY.pem [--ignore-env-differences]
//	rebuilder follow  --server URL --key KEY.pem --state FILE [--concurrency N]
//	rebuilder key generate --out PREFIX [--algorithm ecdsa-p256|ed25519|rsa-3072]
//
// build, rebuild and follow run jobs unconfined unless given --sandbox,
// which runs them under bubblewrap with resource limits (package
// farm/sandbox; --sandbox-network, --memory, --cpu-seconds), and refuses
// to run them when bubblewrap is missing or unusable; --unsandboxed
// instead applies only the limits, as the operator's explicit choice.
//
// Private keys are PEM files (PKCS #8, SEC 1, PKCS #1, or cosign's
// encrypted keys, whose password is read from $COSIGN_PASSWORD).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/buildledger/buildledger/httpapi/api"
	"github.com/buildledger/buildledger/httpapi/client"

	"github.com/google/uuid"
	intoto "github.com/in-toto/in-toto-golang/in_toto"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/farm/sandbox"
	"github.com/buildledger/buildledger/internal/atomicfile"
	"github.com/buildledger/buildledger/rebuilder"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "rebuilder:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "rebuilder",
		Short:         "Build jobs reproducibly and attest rebuilds of recorded builds",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(buildCmd(), rebuildCmd(), followCmd(), keyCmd())
	return root
}

// server are the flags that reach a ledger.
type server struct {
	url, logKey, pins string
	// pinPath is the state file client used, for explaining a changed key.
	pinPath string
}

func (s *server) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.url, "server", "", "ledger server URL, e.g. http://127.0.0.1:3000")
	cmd.Flags().StringVar(&s.logKey, "log-key", "", "the ledger's log key (name+hash+key); default: $BUILDLEDGER_LOG_KEY, else the key pinned in the --pins file, else fetched from the server and pinned (trust on first use)")
	cmd.Flags().StringVar(&s.pins, "pins", "", "state file keeping the pinned log key (default: the one `ledger` uses for this server, in the user config dir)")
}

// check validates --server without contacting it.
func (s *server) check() error {
	if s.url == "" {
		return errors.New("--server is required")
	}
	if _, err := client.ParseServerURL(s.url); err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	return nil
}

// pinState is the part of ledger's client state file the rebuilder reads
// and, on first use, writes: the same file pins a server's key for both.
type pinState struct {
	Server     string `json:"server"`
	LogKey     string `json:"log_key"`
	Checkpoint string `json:"checkpoint"`
}

// pinPathFor is where ledger keeps what it remembers about a server.
func (s *server) pinPathFor() (string, error) {
	if s.pins != "" {
		return s.pins, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no --pins given and no user config directory: %w", err)
	}
	u, err := url.Parse(s.url)
	if err != nil {
		return "", err
	}
	name := strings.NewReplacer(":", "_", "/", "_").Replace(u.Host + u.Path)
	return filepath.Join(dir, "buildledger", name+".json"), nil
}

func (s *server) client(cmd *cobra.Command) (*client.Client, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	key := s.logKey
	if key != "" {
		// A key given on the command line is pinned when nothing is yet
		// (after an operator removed a stale pin, as explain advises),
		// so later runs need no flag.
		path, err := s.pinPathFor()
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if err := writePin(path, pinState{Server: s.url, LogKey: key}); err != nil {
				return nil, err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "pinned log key %s in %s (from --log-key)\n", key, path)
		}
	}
	if key == "" {
		key = os.Getenv("BUILDLEDGER_LOG_KEY")
	}
	if key == "" {
		path, err := s.pinPathFor()
		if err != nil {
			return nil, err
		}
		s.pinPath = path
		var st pinState
		switch b, err := os.ReadFile(path); {
		case err == nil:
			if err := json.Unmarshal(b, &st); err != nil {
				return nil, fmt.Errorf("state file %s: %w", path, err)
			}
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
		key = st.LogKey
		if key == "" {
			if key, err = client.FetchLogKey(cmd.Context(), s.url, nil); err != nil {
				return nil, fmt.Errorf("fetching the log key: %w", err)
			}
			if err := writePin(path, pinState{Server: s.url, LogKey: key}); err != nil {
				return nil, err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "pinned log key %s in %s (trust on first use; pass --log-key to check it)\n", key, path)
		}
	}
	return client.New(s.url, key, nil)
}

// writePin records st in the pin file at path (0600, atomically).
func writePin(path string, st pinState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}

// explain adds to an error that the server's log key changed where the
// pinned key came from and how to pin the new one.
func (s *server) explain(err error) error {
	var kc *client.KeyChangedError
	if !errors.As(err, &kc) {
		return err
	}
	var from string
	switch {
	case s.logKey != "":
		from = "The pinned key came from --log-key."
	case s.pinPath == "":
		from = "The pinned key came from $BUILDLEDGER_LOG_KEY."
	default:
		from = fmt.Sprintf("The pinned key is kept in %s; to pin the new key, remove it\n(rm %s) and pass --log-key '%s' once.", s.pinPath, s.pinPath, kc.Served)
	}
	return fmt.Errorf("%w\nA test server that was reset gets a new key; a production log never changes its key,\nso ask its operator before trusting the new one. %s", err, from)
}

// sandboxFlags are the flags of the commands that run jobs.
type sandboxFlags struct {
	on, network, unsandboxed bool
	memory                   string
	cpuSeconds               int64
}

func (s *sandboxFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&s.on, "sandbox", false, "confine jobs with bubblewrap: read-only host root, only the build and home directories writable, private /tmp, no network, "+
		"new namespaces, no capabilities, nothing outlives the job, resource limits; refuses to run jobs if bwrap is missing or unusable (default off: jobs run unconfined)")
	f.BoolVar(&s.network, "sandbox-network", false, "with --sandbox: share the host's network with jobs (default: loopback only)")
	f.BoolVar(&s.unsandboxed, "unsandboxed", false, "apply --sandbox's resource limits WITHOUT bubblewrap, as an explicit choice on hosts that lack it (no file system or network confinement)")
	f.StringVar(&s.memory, "memory", "", "with --sandbox or --unsandboxed: address space limit (RLIMIT_AS) per job process, bytes or with K, M, G, T (binary), or none (default 8G)")
	f.Int64Var(&s.cpuSeconds, "cpu-seconds", 0, "with --sandbox or --unsandboxed: CPU time limit (RLIMIT_CPU) per job process in seconds (default none)")
}

// config returns the sandbox the flags ask for, nil for none.
func (s *sandboxFlags) config() (*sandbox.Config, error) {
	if !s.on && !s.unsandboxed {
		if s.network || s.memory != "" || s.cpuSeconds != 0 {
			return nil, errors.New("--sandbox-network, --memory and --cpu-seconds need --sandbox (or --unsandboxed)")
		}
		return nil, nil
	}
	if s.unsandboxed && s.network {
		return nil, errors.New("--sandbox-network means nothing with --unsandboxed: jobs share the network anyway")
	}
	if s.cpuSeconds < 0 {
		return nil, fmt.Errorf("--cpu-seconds %d: want a positive number of seconds, or 0 for no limit", s.cpuSeconds)
	}
	mem, err := parseSize(s.memory)
	if err != nil {
		return nil, fmt.Errorf("--memory: %w", err)
	}
	return &sandbox.Config{Network: s.network, Unsandboxed: s.unsandboxed, MemoryBytes: mem, CPUSeconds: s.cpuSeconds}, nil
}

// parseSize reads a size in bytes, optionally with a binary unit K, M,
// G or T (8G, 8GiB and 8GB are all 8 GiB), "none" (-1) or "" (0, the
// default).
func parseSize(s string) (int64, error) {
	switch s {
	case "":
		return 0, nil
	case "none":
		return -1, nil
	}
	num, mult := strings.TrimSuffix(strings.TrimSuffix(s, "iB"), "B"), int64(1)
	if num != "" {
		if i := strings.IndexByte("KMGT", strings.ToUpper(num)[len(num)-1]); i >= 0 {
			num, mult = num[:len(num)-1], 1<<(10*(i+1))
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q: want a positive number of bytes, optionally with K, M, G or T, or none", s)
	}
	return n * mult, nil
}

// progress reports phases: on a terminal as one updating line with the
// elapsed time, otherwise as plain log lines.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	mu    sync.Mutex
	phase string
	stop  chan struct{}
	done  sync.WaitGroup
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty, p.stop = true, make(chan struct{})
		p.done.Add(1)
		go func() {
			defer p.done.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-p.stop:
					return
				case <-t.C:
					p.draw()
				}
			}
		}()
	}
	return p
}

func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.phase != "" {
		fmt.Fprintf(p.w, "\r\033[K%s … %s", p.phase, time.Since(p.start).Round(time.Second))
	}
}

func (p *progress) set(phase string) {
	p.mu.Lock()
	p.phase = phase
	p.mu.Unlock()
	if p.tty {
		p.draw()
		return
	}
	fmt.Fprintf(p.w, "%s %s (elapsed %s)\n", time.Now().UTC().Format(time.RFC3339), phase, time.Since(p.start).Round(time.Millisecond))
}

func (p *progress) close() {
	if p.tty {
		close(p.stop)
		p.done.Wait()
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func buildCmd() *cobra.Command {
	var srv server
	var job, script, user, out, root, platform, opam string
	var vars []string
	var epoch int64
	var timeout time.Duration
	var skipSystem bool
	var sb sandboxFlags
	cmd := &cobra.Command{
		Use:   "build --job NAME --script FILE --source-date-epoch N [--var K=V]... [--server URL --user NAME] [--out DIR]",
		Short: "Run a job in a normalised environment, capture its inputs and outputs, and upload the build",
		Long: `build runs the job script in ROOT/build (HOME=ROOT/home, both fresh) with only
HOME, PATH, SOURCE_DATE_EPOCH, the host facts (OS, OS_DISTRIBUTION, OS_VERSION,
OS_FAMILY, ARCH) and the declared --var variables; records build-environment,
system-packages, opam-switch (when the job uses opam), the console with
timestamps and every file the script leaves under bin/; and, with --server,
uploads the build to the ledger (builder's exec format; the password comes from
$BUILDLEDGER_PASSWORD or standard input) and proves the receipt. --out writes
orb's output directory as well. --sandbox confines the job with bubblewrap.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if job == "" || script == "" {
				return errors.New("--job and --script are required")
			}
			body, err := os.ReadFile(script)
			if err != nil {
				return err
			}
			spec := rebuilder.Spec{Job: job, Script: body, SourceDateEpoch: epoch, Platform: platform, Vars: map[string]string{}}
			for _, v := range vars {
				k, val, ok := strings.Cut(v, "=")
				if !ok {
					return fmt.Errorf("--var %q: want NAME=VALUE", v)
				}
				spec.Vars[k] = val
			}
			if spec.Opam, err = parseOpam(opam); err != nil {
				return err
			}
			jail, err := sb.config()
			if err != nil {
				return err
			}
			var c *client.Client
			var cred client.Credentials
			if srv.url != "" {
				if user == "" {
					return errors.New("--user is required with --server")
				}
				if c, err = srv.client(cmd); err != nil {
					return err
				}
				if cred, err = password(cmd, user); err != nil {
					return err
				}
			}
			p := newProgress(cmd.ErrOrStderr())
			res, err := rebuilder.Run(cmd.Context(), spec, rebuilder.Options{Root: root, Timeout: timeout, SkipSystem: skipSystem, Sandbox: jail,
				Progress: func(ph rebuilder.Phase) { p.set(string(ph)) }})
			p.close()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "build %s of job %s on %s: %s\n", res.Exec.UUID, job, res.Exec.Job.Platform, res.Exec.Result)
			for _, a := range res.Artifacts {
				fmt.Fprintf(w, "  %s  %s  %d bytes\n", a.SHA256, a.Path, a.Size)
			}
			if out != "" {
				if err := res.WriteDir(out); err != nil {
					return err
				}
				fmt.Fprintf(w, "orb output directory: %s\n", out)
			}
			// A job that failed is an error once its record is kept
			// (builder records failed builds too).
			failed := func(recorded string) error {
				if res.Exec.Result.Success() {
					return nil
				}
				where := "; pass --out DIR to keep its console"
				switch {
				case recorded != "":
					where = "; recorded as a failed build: " + recorded
				case out != "":
					where = "; its console is in " + filepath.Join(out, "console")
				}
				return fmt.Errorf("job %s failed (%s)%s", job, res.Exec.Result, where)
			}
			if c == nil {
				return failed("")
			}
			der, err := res.Exec.Marshal()
			if err != nil {
				return err
			}
			rc, _, err := c.Upload(cmd.Context(), der, res.Exec.UUID, cred)
			if err != nil {
				return srv.explain(err)
			}
			fmt.Fprintf(w, "uploaded: log index %d, inclusion proven\n%s%s\n", rc.LogIndex, strings.TrimSuffix(srv.url, "/"), rc.URL)
			return failed(strings.TrimSuffix(srv.url, "/") + rc.URL)
		},
	}
	srv.register(cmd)
	f := cmd.Flags()
	f.StringVar(&job, "job", "", "job name")
	f.StringVar(&script, "script", "", "the job's shell script")
	f.StringArrayVar(&vars, "var", nil, "a declared variable NAME=VALUE (repeatable)")
	f.Int64Var(&epoch, "source-date-epoch", 0, "SOURCE_DATE_EPOCH for the build (seconds since 1970), e.g. the time of the job's last change")
	f.StringVar(&root, "root", "", "build root (default "+rebuilder.DefaultRoot+"); a rebuild uses the same path")
	f.StringVar(&platform, "platform", "", "platform name (default OS_DISTRIBUTION-OS_VERSION)")
	f.StringVar(&opam, "opam", "auto", "capture opam-switch: auto, always or never")
	f.DurationVar(&timeout, "timeout", 0, "kill the job after this long (default "+rebuilder.DefaultTimeout.String()+")")
	f.BoolVar(&skipSystem, "skip-system", false, "do not record system-packages (hosts without dpkg or pkg)")
	f.StringVar(&user, "user", "", "uploader account (with --server)")
	f.StringVar(&out, "out", "", "also write orb's output directory here")
	sb.register(cmd)
	return cmd
}

func parseOpam(s string) (rebuilder.OpamMode, error) {
	switch s {
	case "auto":
		return rebuilder.OpamAuto, nil
	case "always":
		return rebuilder.OpamAlways, nil
	case "never":
		return rebuilder.OpamNever, nil
	}
	return 0, fmt.Errorf("--opam %q: want auto, always or never", s)
}

func password(cmd *cobra.Command, user string) (client.Credentials, error) {
	if pw := os.Getenv("BUILDLEDGER_PASSWORD"); pw != "" {
		return client.Credentials{User: user, Password: pw}, nil
	}
	if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(cmd.ErrOrStderr(), "password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		return client.Credentials{User: user, Password: string(b)}, err
	}
	b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
	if err != nil || len(b) == 0 {
		return client.Credentials{}, errors.New("no password: set BUILDLEDGER_PASSWORD or pass it on standard input")
	}
	return client.Credentials{User: user, Password: strings.TrimRight(string(b), "\r\n")}, nil
}

// rebuilderFlags are shared by rebuild and follow.
type rebuilderFlags struct {
	srv        server
	root       string
	runAs      string
	key        string
	builderID  string
	ignoreEnv  bool
	noAttest   bool
	timeout    time.Duration
	skipSystem bool
	sandbox    sandboxFlags
}

func (r *rebuilderFlags) register(cmd *cobra.Command) {
	r.srv.register(cmd)
	f := cmd.Flags()
	f.StringVar(&r.key, "key", "", "private key (PEM) that signs the attestations")
	f.StringVar(&r.builderID, "builder-id", "", "this rebuilder's id in attestations, a URI (default https://HOSTNAME/buildledger-rebuilder)")
	f.BoolVar(&r.ignoreEnv, "ignore-env-differences", false, "rebuild even if the host's OS, distribution, version or architecture differ from the recorded ones")
	f.BoolVar(&r.noAttest, "no-attest", false, "compare only; do not sign or submit an attestation")
	f.DurationVar(&r.timeout, "timeout", 0, "kill a rebuild's job after this long")
	f.BoolVar(&r.skipSystem, "skip-system", false, "do not capture system-packages")
	f.StringVar(&r.root, "root", rebuilder.DefaultRoot, "the build root rebuilds run in; builds recorded with another root are refused")
	f.StringVar(&r.runAs, "run-as", "", "run recorded jobs as this user (name or uid:gid; needs root), so they cannot read the signing key")
	r.sandbox.register(cmd)
}

// credential resolves --run-as.
func credential(spec string) (*syscall.Credential, error) {
	if spec == "" {
		return nil, nil
	}
	if u, g, ok := strings.Cut(spec, ":"); ok {
		uid, err1 := strconv.ParseUint(u, 10, 32)
		gid, err2 := strconv.ParseUint(g, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("--run-as %q: want a user name or uid:gid", spec)
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	u, err := user.Lookup(spec)
	if err != nil {
		return nil, fmt.Errorf("--run-as: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// missing names the flags a rebuild needs that were not given, the
// signing key first, with what else the command needs (extra); nil when
// none is missing. It contacts nothing.
func (r *rebuilderFlags) missing(extra ...string) error {
	var m []string
	if !r.noAttest && r.key == "" {
		m = append(m, "--key KEY.pem (the key that signs the attestation; or --no-attest to compare only)")
	}
	if r.srv.url == "" {
		m = append(m, "--server URL (the ledger that recorded the build)")
	}
	m = append(m, extra...)
	switch len(m) {
	case 0:
		return r.srv.check()
	case 1:
		return fmt.Errorf("missing %s", m[0])
	}
	return fmt.Errorf("missing:\n  %s", strings.Join(m, "\n  "))
}

func (r *rebuilderFlags) rebuilder(cmd *cobra.Command, p *progress) (*rebuilder.Rebuilder, error) {
	if err := r.missing(); err != nil {
		return nil, err
	}
	jail, err := r.sandbox.config()
	if err != nil {
		return nil, err
	}
	c, err := r.srv.client(cmd)
	if err != nil {
		return nil, err
	}
	cred, err := credential(r.runAs)
	if err != nil {
		return nil, err
	}
	rb := &rebuilder.Rebuilder{Client: c, BuilderID: r.builderID, IgnoreEnvDifferences: r.ignoreEnv,
		Options: rebuilder.Options{Root: r.root, Timeout: r.timeout, SkipSystem: r.skipSystem, RunAs: cred, Sandbox: jail}}
	if p != nil {
		rb.Options.Progress = func(ph rebuilder.Phase) { p.set(string(ph)) }
	}
	if rb.BuilderID, err = attest.BuilderID(rb.BuilderID, "rebuilder"); err != nil {
		return nil, fmt.Errorf("--builder-id: %w", err)
	}
	if !r.noAttest {
		if rb.Signer, err = attest.LoadSignerFile(r.key); err != nil {
			return nil, err
		}
	}
	return rb, nil
}

func rebuildCmd() *cobra.Command {
	var rf rebuilderFlags
	var build, envOut, bundleOut, linkOut string
	cmd := &cobra.Command{
		Use:   "rebuild --server URL --build UUID --key KEY.pem",
		Short: "Rebuild a recorded build in its recorded environment, compare every file, attest the verdict",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var need []string
			if build == "" {
				need = append(need, "--build UUID (the recorded build to rebuild, e.g. from `ledger lookup` or the server's /job/NAME page)")
			}
			if linkOut != "" && rf.key == "" {
				need = append(need, "--key KEY.pem (--link-out signs the in-toto link with it)")
			}
			if err := rf.missing(need...); err != nil {
				return err
			}
			// The link key first: a key in-toto cannot read fails before
			// the rebuild, not after it.
			var linkKey intoto.Key
			if linkOut != "" {
				b, err := os.ReadFile(rf.key)
				if err != nil {
					return err
				}
				if linkKey, err = attest.LoadInTotoKey(b); err != nil {
					return fmt.Errorf("--link-out: in-toto cannot load %s (an unencrypted PKCS #8 ECDSA, Ed25519 or RSA key, as rebuilder key generate writes; not a cosign-encrypted one): %w", rf.key, err)
				}
			}
			id, err := uuid.Parse(build)
			if err != nil {
				return fmt.Errorf("--build %q is not a UUID", build)
			}
			p := newProgress(cmd.ErrOrStderr())
			rb, err := rf.rebuilder(cmd, p)
			if err != nil {
				p.close()
				return rf.srv.explain(err)
			}
			p.set("fetching build " + id.String())
			o, err := rb.Rebuild(cmd.Context(), id)
			p.close()
			if o != nil && o.Result != nil {
				fmt.Fprint(cmd.OutOrStdout(), o)
			}
			if envOut != "" && o != nil && o.Envelope != nil {
				if werr := os.WriteFile(envOut, o.Envelope, 0o644); werr != nil {
					return werr
				}
				fmt.Fprintf(cmd.OutOrStdout(), "DSSE envelope written to %s\n", envOut)
			}
			if linkOut != "" && o != nil && o.Result != nil {
				mb, lerr := rebuilder.Link(o, linkKey)
				if lerr == nil {
					var p string
					if p, lerr = rebuilder.WriteLink(mb, linkOut, linkKey); lerr == nil {
						fmt.Fprintf(cmd.OutOrStdout(), "in-toto link written to %s (verdict %s)\n", p, o.Verdict)
					}
				}
				if lerr == nil && !rf.noAttest {
					// Logged like the envelope, so that anyone can
					// export it (ledger intoto export).
					var data []byte
					if data, lerr = json.Marshal(mb); lerr == nil {
						var rc *api.AttestationReceipt
						if rc, lerr = rb.Client.SubmitAttestation(cmd.Context(), data); lerr == nil {
							fmt.Fprintf(cmd.OutOrStdout(), "in-toto link logged at index %d\n", rc.LogIndex)
						}
					}
				}
				if lerr != nil && err == nil {
					err = lerr
				}
			}
			if bundleOut != "" && o != nil && o.Envelope != nil {
				b, berr := attest.Bundle(o.Envelope, rb.Signer.KeyID())
				if berr == nil {
					berr = os.WriteFile(bundleOut, b, 0o644)
				}
				if berr != nil && err == nil {
					err = berr
				} else if berr == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "Sigstore bundle written to %s\n", bundleOut)
				}
			} else if bundleOut != "" && o != nil && o.Result != nil {
				fmt.Fprintln(cmd.OutOrStdout(), "no Sigstore bundle: nothing was signed (--no-attest)")
			}
			if err != nil {
				return rf.srv.explain(err)
			}
			if o.Verdict != attest.Reproduced {
				return errors.New("the build is NOT reproducible")
			}
			return nil
		},
	}
	rf.register(cmd)
	cmd.Flags().StringVar(&build, "build", "", "UUID of the recorded build")
	cmd.Flags().StringVar(&envOut, "envelope-out", "", "also write the signed DSSE envelope to this file (for cosign verify-blob-attestation --signature)")
	cmd.Flags().StringVar(&bundleOut, "bundle-out", "", "also write it as a Sigstore bundle v0.3 (for cosign verify-blob-attestation --bundle)")
	cmd.Flags().StringVar(&linkOut, "link-out", "", "also write an in-toto link of the step \"rebuild\" (materials: the recorded inputs; products: the rebuilt files) into this directory, signed with --key, and (unless --no-attest) submit it to the ledger")
	return cmd
}

func followCmd() *cobra.Command {
	var rf rebuilderFlags
	var state string
	var conc int
	var poll time.Duration
	var once bool
	var platforms []string
	cmd := &cobra.Command{
		Use:   "follow --server URL --key KEY.pem --state FILE",
		Short: "Rebuild and attest every new build recorded for this platform, remembering progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var need []string
			if state == "" {
				need = append(need, "--state FILE (where follow remembers its progress)")
			}
			if err := rf.missing(need...); err != nil {
				return err
			}
			rb, err := rf.rebuilder(cmd, nil)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			f := &rebuilder.Follower{Rebuilder: rb, State: state, Concurrency: conc, Poll: poll, Platforms: platforms, Log: log}
			if once {
				rep, err := f.Once(cmd.Context())
				fmt.Fprintf(cmd.OutOrStdout(), "rebuilt %d (reproduced %d, differs %d), skipped %d, failed %d\n",
					rep.Rebuilt, rep.Reproduced, rep.Differs, rep.Skipped, rep.Failed)
				return rf.srv.explain(err)
			}
			return rf.srv.explain(f.Run(cmd.Context()))
		},
	}
	rf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "state file remembering progress and the last checkpoint")
	f.IntVar(&conc, "concurrency", 1, "rebuilds at once (builds sharing a build root still run one at a time)")
	f.DurationVar(&poll, "poll", 5*time.Second, "pause between looks at the log")
	f.BoolVar(&once, "once", false, "handle what is in the log now, then exit")
	f.StringSliceVar(&platforms, "platform", nil, "platforms to rebuild (default: this host's)")
	return cmd
}

func keyCmd() *cobra.Command {
	key := &cobra.Command{Use: "key", Short: "Make signing keys"}
	var out, alg string
	gen := &cobra.Command{
		Use:   "generate --out PREFIX",
		Short: "Write a new private key to PREFIX.key (mode 0600) and its public key to PREFIX.pub",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			pemKey, err := attest.GenerateKey(attest.KeyAlgorithm(alg))
			if err != nil {
				return err
			}
			s, err := attest.LoadSigner(pemKey, nil)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			kf, err := os.OpenFile(out+".key", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if _, err := kf.Write(pemKey); err != nil {
				kf.Close()
				return err
			}
			if err := kf.Close(); err != nil {
				return err
			}
			if err := os.WriteFile(out+".pub", s.PublicKeyPEM(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s.key, %s.pub: %s key %s\n", out, out, alg, s.KeyID())
			return nil
		},
	}
	algs := []string{string(attest.ECDSAP256), string(attest.Ed25519), string(attest.RSA3072)}
	sort.Strings(algs)
	gen.Flags().StringVar(&out, "out", "", "path prefix of the key files")
	gen.Flags().StringVar(&alg, "algorithm", string(attest.ECDSAP256), "key algorithm: "+strings.Join(algs, ", "))
	key.AddCommand(gen)
	return key
}
