// Command farm runs the build farm: a scheduler that runs jobs
// periodically on workers and records every build in a buildledger, the
// workers that run the jobs in a sandbox, and the client that manages the
// schedule. It speaks Robur's builder protocol, so builder-worker and
// builder-client work with this scheduler, and these with builder-server.
//
//	farm server --dir DIR [--listen 127.0.0.1:1234] [--upload URL --user NAME]
//	farm worker PLATFORM [-r ADDR] [--root DIR] [--timeout 1h]
//	farm schedule NAME PLATFORM SCRIPT [--period daily]
//	farm orb-build NAME OPAM_PACKAGE [--period daily]
//	farm unschedule NAME
//	farm reschedule NAME TIME [--period P]
//	farm execute NAME [--platform P]
//	farm info
//	farm observe UUID
//	farm observe-latest [--job NAME] [--platform P]
//	farm drop-platform PLATFORM
//	farm undrop-platform PLATFORM
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/farm/client"
	"github.com/buildledger/buildledger/farm/proto"
	"github.com/buildledger/buildledger/farm/sandbox"
	"github.com/buildledger/buildledger/farm/scheduler"
	"github.com/buildledger/buildledger/farm/worker"
	httpapi "github.com/buildledger/buildledger/httpapi/client"
	"github.com/buildledger/buildledger/internal/atomicfile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "farm:", err)
		os.Exit(1)
	}
}

// tlsFlags are the TLS options of every command.
type tlsFlags struct {
	cert, key, ca, serverName string
	workerCA                  string // the scheduler's: CA of the workers' certificates
}

func (f *tlsFlags) register(cmd *cobra.Command, server bool) {
	cmd.Flags().StringVar(&f.cert, "tls-cert", "", "TLS certificate (PEM) of this "+map[bool]string{true: "scheduler", false: "worker or client"}[server])
	cmd.Flags().StringVar(&f.key, "tls-key", "", "its private key (PEM)")
	if server {
		cmd.Flags().StringVar(&f.ca, "client-ca", "", "CA (PEM) of the clients' certificates (schedule, info, observe, ...)")
		cmd.Flags().StringVar(&f.workerCA, "worker-ca", "", "CA (PEM) of the workers' certificates; a certificate of only one of the two CAs acts only in that role (give the same file twice to let one CA's certificates do both)")
	} else {
		cmd.Flags().StringVar(&f.ca, "tls-ca", "", "CA (PEM) of the scheduler's certificate; connects over TLS")
		cmd.Flags().StringVar(&f.serverName, "tls-server-name", "", "name in the scheduler's certificate (default: the host of --remote)")
	}
}

func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// server returns the scheduler's TLS configuration and the check of a
// peer's role: a client must present a certificate of --client-ca, a
// worker one of --worker-ca.
func (f *tlsFlags) server() (*tls.Config, func(net.Conn, proto.Role) error, error) {
	if f.cert == "" && f.key == "" && f.ca == "" && f.workerCA == "" {
		return nil, nil, nil
	}
	if f.cert == "" || f.key == "" || (f.ca == "" && f.workerCA == "") {
		return nil, nil, errors.New("TLS needs --tls-cert, --tls-key and --client-ca or --worker-ca (or both): every worker and client must present a certificate of its CA")
	}
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, nil, err
	}
	pools := map[proto.Role]*x509.CertPool{}
	all := x509.NewCertPool()
	for role, path := range map[proto.Role]string{proto.RoleClient: f.ca, proto.RoleWorker: f.workerCA} {
		if path == "" {
			continue
		}
		if pools[role], err = loadPool(path); err != nil {
			return nil, nil, err
		}
		b, _ := os.ReadFile(path)
		all.AppendCertsFromPEM(b)
	}
	authorize := func(c net.Conn, role proto.Role) error {
		tc, ok := c.(*tls.Conn)
		if !ok {
			return errors.New("not a TLS connection")
		}
		certs := tc.ConnectionState().PeerCertificates
		pool := pools[role]
		if len(certs) == 0 || pool == nil {
			return fmt.Errorf("no %s certificates are accepted here", role)
		}
		inter := x509.NewCertPool()
		for _, ic := range certs[1:] {
			inter.AddCert(ic)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return fmt.Errorf("the certificate of %q is not one of a %s: %v", certs[0].Subject, role, err)
		}
		return nil
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: all, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}, authorize, nil
}

func (f *tlsFlags) client(addr string) (*tls.Config, error) {
	if f.ca == "" {
		if f.cert != "" || f.key != "" {
			return nil, errors.New("--tls-cert and --tls-key need --tls-ca, the CA of the scheduler's certificate")
		}
		return nil, nil
	}
	pool, err := loadPool(f.ca)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{RootCAs: pool, ServerName: f.serverName, MinVersion: tls.VersionTLS13}
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(addr)
	}
	if f.cert != "" {
		cert, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// remote is the scheduler address and TLS options of workers and clients.
type remote struct {
	addr string
	tls  tlsFlags
}

func (r *remote) register(cmd *cobra.Command) {
	def := os.Getenv("BUILDER_REMOTE")
	if def == "" {
		def = client.DefaultAddr
	}
	cmd.PersistentFlags().StringVarP(&r.addr, "remote", "r", def, "scheduler address HOST:PORT (default from $BUILDER_REMOTE)")
	r.tls.register(cmd, false)
}

func (r *remote) dialer() (client.Dialer, error) {
	t, err := r.tls.client(r.addr)
	return client.Dialer{Addr: r.addr, TLS: t}, err
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "farm",
		Short:         "Run jobs periodically on sandboxed workers and record every build in a buildledger",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serverCmd(), workerCmd())
	root.AddCommand(clientCmds()...)
	return root
}

func logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func serverCmd() *cobra.Command {
	var (
		dir, configDir, listen, upload, user, logKey, httpAddr string
		keyFile, builderID                                     string
		tick, jobTimeout                                       time.Duration
		maxFrame                                               int64
		t                                                      tlsFlags
		allowPlain                                             bool
	)
	cmd := &cobra.Command{
		Use:   "server --dir DIR",
		Short: "Run the scheduler (builder-server)",
		Long: `Run the scheduler: the schedule, one queue per platform, the jobs workers run.
Finished builds are written to DIR (fsynced) and, with --upload, recorded in a
buildledger; a failed upload is retried until the ledger records or refuses it.
The password of --user is read from $BUILDLEDGER_PASSWORD. With --key, the
scheduler also signs each recorded build's provenance (an in-toto statement,
SLSA Provenance v1, verdict "built"), so that a VMM gate can require "built by
this farm and reproduced by k others" (built_by in its policy). Orb builds use the
template DIR/orb-build.template.PLATFORM (or in --config-dir), with
%%OPAM_PACKAGE%% and %%PLATFORM%% replaced.

Without TLS the scheduler listens on loopback only (builder's protocol has no
authentication); --tls-cert, --tls-key and --client-ca require a certificate of
every worker and client.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("--dir is required")
			}
			if keyFile != "" && upload == "" {
				return errors.New("--key signs what the farm uploads: it needs --upload")
			}
			tc, authorize, err := t.server()
			if err != nil {
				return err
			}
			host, _, err := net.SplitHostPort(listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			if ip := net.ParseIP(host); tc == nil && !allowPlain && (ip == nil || !ip.IsLoopback()) {
				return fmt.Errorf("--listen %s without TLS would let anyone on the network schedule jobs; listen on 127.0.0.1, or give --tls-cert, --tls-key, --client-ca and --worker-ca (or --insecure-plain-tcp to accept that)", listen)
			}
			log := logger(cmd.ErrOrStderr())
			cfg := scheduler.Config{Dir: dir, ConfigDir: configDir, Tick: tick, JobTimeout: jobTimeout, MaxFrame: maxFrame, Log: log, Authorize: authorize}
			if upload != "" {
				u, err := newUploader(cmd.Context(), dir, upload, user, logKey, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				if keyFile != "" {
					if u.Signer, err = attest.LoadSignerFile(keyFile); err != nil {
						return err
					}
					if u.BuilderID, err = attest.BuilderID(builderID, "farm"); err != nil {
						return fmt.Errorf("--builder-id: %w", err)
					}
				}
				cfg.Upload = u
			}
			s, err := scheduler.New(cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			var ln net.Listener
			if ln, err = net.Listen("tcp", listen); err != nil {
				return err
			}
			if tc != nil {
				ln = tls.NewListener(ln, tc)
			}
			log.Info("scheduler listening", "addr", ln.Addr().String(), "tls", tc != nil)
			if httpAddr != "" {
				hl, err := net.Listen("tcp", httpAddr)
				if err != nil {
					return err
				}
				hs := &http.Server{Handler: scheduler.NewConsole(s, upload), ReadHeaderTimeout: 10 * time.Second}
				go func() { _ = hs.Serve(hl) }()
				defer hs.Close()
				log.Info("live consoles", "url", "http://"+hl.Addr().String()+"/")
			}
			return s.Serve(cmd.Context(), ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "state directory")
	f.StringVar(&configDir, "config-dir", "", "directory of the orb-build templates (default: --dir)")
	f.StringVar(&listen, "listen", client.DefaultAddr, "address for workers and clients")
	f.StringVar(&httpAddr, "http", "", "address of the live console pages (e.g. 127.0.0.1:8081); none by default")
	f.StringVar(&upload, "upload", "", "ledger URL to record builds in, e.g. http://127.0.0.1:3000")
	f.StringVar(&user, "user", "", "ledger account with the uploader role (password from $BUILDLEDGER_PASSWORD; not needed with an API token in $BUILDLEDGER_TOKEN)")
	f.StringVar(&logKey, "log-key", "", "the ledger's log verifier key (default: fetched once and pinned in DIR/ledger-log-key)")
	f.StringVar(&keyFile, "key", "", "sign every recorded build's provenance (verdict \"built\") with this key, registered in the ledger")
	f.StringVar(&builderID, "builder-id", "", "the farm's SLSA builder id, a URI (default https://HOSTNAME/buildledger-farm)")
	f.DurationVar(&tick, "tick", scheduler.DefaultTick, "how often due jobs are queued")
	f.DurationVar(&jobTimeout, "job-timeout", scheduler.DefaultJobTimeout, "how long a worker may hold a job before it is put back (longer than the workers' --timeout plus the time to collect and send the files; builder records a timeout here, this scheduler puts the job back and records it as failed after 3 losses)")
	f.BoolVar(&allowPlain, "insecure-plain-tcp", false, "listen without TLS on a non-loopback address")
	f.Int64Var(&maxFrame, "max-frame", scheduler.DefaultMaxFrame, "largest message a worker may send, in bytes: a finished job with all its files (workers' --max-output must fit)")
	t.register(cmd, true)
	return cmd
}

// newUploader pins the ledger's log key in dir (trust on first use unless
// --log-key is given) and returns the verifying uploader.
func newUploader(ctx context.Context, dir, server, user, key string, stderr io.Writer) (*scheduler.LedgerUploader, error) {
	pw := os.Getenv("BUILDLEDGER_TOKEN")
	if pw == "" {
		if user == "" {
			return nil, errors.New("--upload needs an API token in $BUILDLEDGER_TOKEN (ledger token add), or --user, an account with the uploader role")
		}
		if pw = os.Getenv("BUILDLEDGER_PASSWORD"); pw == "" {
			return nil, errors.New("--upload needs the password of --user in $BUILDLEDGER_PASSWORD (or an API token in $BUILDLEDGER_TOKEN)")
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pin := filepath.Join(dir, "ledger-log-key")
	pinned, err := os.ReadFile(pin)
	switch {
	case err == nil:
		p := strings.TrimSpace(string(pinned))
		if key != "" && key != p {
			return nil, fmt.Errorf("--log-key differs from the key pinned in %s (%s); remove the file to re-pin deliberately", pin, p)
		}
		key = p
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	case key == "":
		if key, err = httpapi.FetchLogKey(ctx, server, nil); err != nil {
			return nil, fmt.Errorf("fetching the ledger's log key: %w", err)
		}
		fmt.Fprintf(stderr, "pinned log key %s in %s (trust on first use; pass --log-key to check it)\n", key, pin)
		fallthrough
	default:
		if err := atomicfile.WriteFile(pin, []byte(key+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	c, err := httpapi.New(server, key, &http.Client{Timeout: 10 * time.Minute})
	if err != nil {
		return nil, err
	}
	return &scheduler.LedgerUploader{Client: c, Cred: httpapi.Credentials{User: user, Password: pw}}, nil
}

func workerCmd() *cobra.Command {
	var (
		r                remote
		root, runAs      string
		timeout          time.Duration
		once, skipSystem bool
		sde              int64
		sb               sandbox.Config
		maxOutput        int64
	)
	cmd := &cobra.Command{
		Use:   "worker PLATFORM",
		Short: "Run jobs for PLATFORM from the scheduler (builder-worker), each in a sandbox",
		Long: `Ask the scheduler for a job for PLATFORM, run it as orb builds (a fixed build
root, a normalised environment, build-environment, system-packages and
opam-switch recorded, the files under bin/ collected), stream its console, and
report it; then ask for the next. Jobs run in bubblewrap: no network unless
--network, the host read-only, a fresh /tmp, their own PID namespace, limits on
memory, CPU, file size and processes, killed as a group at --timeout. Without
bubblewrap the worker refuses to start, unless --unsandboxed says to run jobs
unconfined.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := r.dialer()
			if err != nil {
				return err
			}
			cfg := worker.Config{Scheduler: d, Platform: args[0], Sandbox: &sb, Root: root, Timeout: timeout,
				SourceDateEpoch: sde, SkipSystem: skipSystem, MaxOutputSize: maxOutput, Log: logger(cmd.ErrOrStderr())}
			// The worker's own TLS key is no job's business.
			if r.tls.key != "" {
				abs, err := filepath.Abs(r.tls.key)
				if err != nil {
					return err
				}
				sb.Hide = append(sb.Hide, abs)
			}
			if runAs != "" {
				if cfg.RunAs, err = credential(runAs); err != nil {
					return err
				}
			} else if os.Geteuid() == 0 && !sb.Unsandboxed {
				cfg.Log.Warn("jobs run as root inside their sandbox: they can read what root can read outside the hidden paths; give --run-as USER to run them as an unprivileged user")
			}
			if once {
				if err := cfg.Sandbox.CheckAs(cmd.Context(), cfg.RunAs); err != nil {
					return err
				}
				return worker.Once(cmd.Context(), cfg)
			}
			return worker.Run(cmd.Context(), cfg)
		},
	}
	r.register(cmd)
	f := cmd.Flags()
	f.StringVar(&root, "root", "", "build root (default /tmp/buildledger-build); one per worker on a host")
	f.DurationVar(&timeout, "timeout", time.Hour, "stop a job after this long (recorded as \"timeout\")")
	f.BoolVar(&once, "once", false, "run one job and exit, as builder-worker")
	f.BoolVar(&skipSystem, "skip-system", false, "do not record system-packages (hosts outside the Debian family and FreeBSD)")
	f.Int64Var(&sde, "source-date-epoch", worker.DefaultSourceDateEpoch, "SOURCE_DATE_EPOCH of the jobs")
	f.StringVar(&runAs, "run-as", "", "run jobs as this user (the worker must run as root)")
	f.Int64Var(&maxOutput, "max-output", 0, "bound of a job's files in bytes (default 256 MiB)")
	f.StringVar(&sb.Bwrap, "bwrap", "", "path of bwrap (default: from PATH)")
	f.BoolVar(&sb.Network, "network", false, "let jobs use the host's network")
	f.BoolVar(&sb.Unsandboxed, "unsandboxed", false, "run jobs WITHOUT bubblewrap (resource limits only)")
	f.Int64Var(&sb.MemoryBytes, "memory", 0, "address space of each job process in bytes (default 8 GiB)")
	f.Int64Var(&sb.CPUSeconds, "cpu-seconds", 0, "CPU seconds of each job process (default: none)")
	return cmd
}

func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("--run-as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("--run-as %s: %w", name, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func periodFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "period", "daily", "hourly, daily, weekly or never")
}

func clientCmds() []*cobra.Command {
	var r remote
	// Each command has its own variables: cobra sets a flag's variable to
	// its default when the flag is defined.
	var (
		schedPeriod, orbPeriod, reschedPeriod string
		execPlatform, latestPlatform, job     string
	)
	do := func(build func(args []string) (proto.Cmd, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := build(args)
			if err != nil {
				return err
			}
			d, err := r.dialer()
			if err != nil {
				return err
			}
			return client.Do(cmd.Context(), d, c)
		}
	}
	schedule := &cobra.Command{
		Use: "schedule NAME PLATFORM SCRIPT", Short: "Run the shell script SCRIPT (a file) on PLATFORM every period, starting now",
		Args: cobra.ExactArgs(3),
		RunE: do(func(a []string) (proto.Cmd, error) {
			p, err := scheduler.ParsePeriod(schedPeriod)
			if err != nil {
				return nil, err
			}
			script, err := os.ReadFile(a[2])
			if err != nil {
				return nil, err
			}
			return proto.Schedule{Period: p, Job: proto.ScriptJob{Name: a[0], Script: string(script), Platform: &a[1]}}, nil
		}),
	}
	periodFlag(schedule, &schedPeriod)
	orb := &cobra.Command{
		Use: "orb-build NAME OPAM_PACKAGE", Short: "Build OPAM_PACKAGE on every platform with a template, every period, starting now",
		Args: cobra.ExactArgs(2),
		RunE: do(func(a []string) (proto.Cmd, error) {
			p, err := scheduler.ParsePeriod(orbPeriod)
			return proto.ScheduleOrbBuild{Period: p, Job: proto.OrbBuildJob{Name: a[0], OpamPackage: a[1]}}, err
		}),
	}
	periodFlag(orb, &orbPeriod)
	unschedule := &cobra.Command{Use: "unschedule NAME", Short: "Remove a job from the schedule and the queues", Args: cobra.ExactArgs(1),
		RunE: do(func(a []string) (proto.Cmd, error) { return proto.Unschedule{Name: a[0]}, nil })}
	resched := &cobra.Command{
		Use: "reschedule NAME TIME", Short: "Queue a job now and run it next one period after TIME (RFC 3339, UTC)",
		Args: cobra.ExactArgs(2),
		RunE: do(func(a []string) (proto.Cmd, error) {
			t, err := time.Parse(time.RFC3339, a[1])
			if err != nil {
				return nil, fmt.Errorf("TIME: %w (e.g. 2026-12-24T06:00:00Z)", err)
			}
			rs := proto.Reschedule{Name: a[0], Next: proto.Time{T: t.UTC()}}
			if reschedPeriod != "" {
				if rs.Period, err = scheduler.ParsePeriod(reschedPeriod); err != nil {
					return nil, err
				}
			}
			return rs, nil
		}),
	}
	resched.Flags().StringVar(&reschedPeriod, "period", "", "new period (default: keep it)")
	execute := &cobra.Command{Use: "execute NAME", Short: "Put a job at the front of its queue (or of PLATFORM's)", Args: cobra.ExactArgs(1),
		RunE: do(func(a []string) (proto.Cmd, error) {
			e := proto.Execute{Name: a[0]}
			if execPlatform != "" {
				e.Platform = &execPlatform
			}
			return e, nil
		})}
	execute.Flags().StringVar(&execPlatform, "platform", "", "only on this platform")
	drop := &cobra.Command{Use: "drop-platform PLATFORM", Short: "Stop queueing jobs for a platform", Args: cobra.ExactArgs(1),
		RunE: do(func(a []string) (proto.Cmd, error) { return proto.DropPlatform{Platform: a[0]}, nil })}
	undrop := &cobra.Command{Use: "undrop-platform PLATFORM", Short: "Undo drop-platform", Args: cobra.ExactArgs(1),
		RunE: do(func(a []string) (proto.Cmd, error) { return proto.UndropPlatform{Platform: a[0]}, nil })}
	// getInfo asks the scheduler for its info.
	getInfo := func(cmd *cobra.Command) (client.Dialer, proto.InfoReply, error) {
		d, err := r.dialer()
		if err != nil {
			return d, proto.InfoReply{}, err
		}
		in, err := client.Info(cmd.Context(), d)
		return d, in, err
	}
	info := &cobra.Command{Use: "info", Short: "Show the schedule, the queues and the running jobs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, in, err := getInfo(cmd)
			if err != nil {
				return err
			}
			printInfo(cmd.OutOrStdout(), in)
			return nil
		}}
	observe := &cobra.Command{Use: "observe UUID", Short: "Print a running job's console, then follow it until it ends", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			id, err := uuid.Parse(a[0])
			if err != nil {
				return fmt.Errorf("error parsing uuid: %w", err)
			}
			d, err := r.dialer()
			if err != nil {
				return err
			}
			return observeTo(cmd, d, id)
		}}
	latest := &cobra.Command{Use: "observe-latest", Short: "Observe the running job that started last", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, in, err := getInfo(cmd)
			if err != nil {
				return err
			}
			run, ok := client.Latest(in, job, latestPlatform)
			if !ok {
				return errors.New("no running jobs")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Observing %s on %s (%s)\n", run.Job.Name, platformOf(run.Job), run.UUID)
			return observeTo(cmd, d, run.UUID)
		}}
	latest.Flags().StringVar(&job, "job", "", "only this job")
	latest.Flags().StringVar(&latestPlatform, "platform", "", "only this platform")
	cmds := []*cobra.Command{schedule, orb, unschedule, resched, execute, info, observe, latest, drop, undrop}
	for _, c := range cmds {
		r.register(c)
	}
	return cmds
}

func observeTo(cmd *cobra.Command, d client.Dialer, id uuid.UUID) error {
	w := cmd.OutOrStdout()
	return client.Observe(cmd.Context(), d, id, func(delta time.Duration, text string) {
		fmt.Fprintf(w, "%9.3fs %s\n", delta.Seconds(), text)
	})
}

func platformOf(j proto.ScriptJob) string {
	if j.Platform == nil {
		return "no-platform"
	}
	return *j.Platform
}

func jobString(j proto.Job) string {
	if j.Orb != nil {
		return fmt.Sprintf("%s (orb build of %s)", j.Orb.Name, j.Orb.OpamPackage)
	}
	return fmt.Sprintf("%s on %s", j.Script.Name, platformOf(*j.Script))
}

func printInfo(w io.Writer, in proto.InfoReply) {
	fmt.Fprintln(w, "schedule:")
	for _, it := range in.Schedule {
		next := it.Next.T.UTC().Format(time.RFC3339)
		if it.Period == proto.Never {
			next = "never"
		}
		fmt.Fprintf(w, "  %s, %s, next %s\n", jobString(it.Job), it.Period, next)
	}
	fmt.Fprintln(w, "queues:")
	for _, q := range in.Queues {
		names := make([]string, len(q.Jobs))
		for i, j := range q.Jobs {
			names[i] = jobString(j)
		}
		fmt.Fprintf(w, "  %s: %s\n", q.Platform, strings.Join(names, "; "))
	}
	fmt.Fprintln(w, "running:")
	for _, r := range in.Running {
		fmt.Fprintf(w, "  %s on %s, %s, started %s\n", r.Job.Name, platformOf(r.Job), r.UUID, r.Started.T.UTC().Format(time.RFC3339))
	}
	if len(in.DroppedPlatforms) > 0 {
		fmt.Fprintf(w, "dropped platforms: %s\n", strings.Join(in.DroppedPlatforms, " "))
	}
}
