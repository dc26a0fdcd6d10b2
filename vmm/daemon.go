package vmm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/buildledger/buildledger/cas/digest"

	"github.com/buildledger/buildledger/vmm/gate"
)

// Gate is the boot gate every boot goes through (package vmm/gate
// implements it against the ledger).
type Gate interface {
	// Admit decides whether the image file may boot. A refusal is a
	// Decision with Admitted false and a multi-line Reason for the
	// operator; err is only for failures of the gate itself, which the
	// daemon treats as a refusal.
	Admit(ctx context.Context, image string) (*gate.Decision, error)
	// Newer finds, for the running image's sha256, the newest successful
	// build of the same job and platform; nil, nil when the running one
	// is the newest.
	Newer(ctx context.Context, running digest.Digest) (*gate.Candidate, error)
	// Download fetches the candidate's main binary to path and checks
	// its sha256.
	Download(ctx context.Context, c *gate.Candidate, path string) error
}

// Backoff spaces the restarts of a failing unikernel: Initial after the
// first exit, doubling up to Max; a run of at least Reset starts over at
// Initial.
type Backoff struct {
	Initial, Max, Reset time.Duration
}

// Config configures a Daemon. The zero value of every field but StateDir
// and Gate is a default.
type Config struct {
	StateDir string
	Gate     Gate
	// Tenders by the name create's --tender takes; nil: DefaultTenders().
	Tenders map[string]Tender
	// DefaultTender is the tender of a Spec that names none; "" means solo5-hvt.
	DefaultTender string
	// Network creates taps for tenders that need them; nil: &IPNetwork{}.
	Network Network
	// Taskset, if set, is the path of taskset(1), with which every
	// tender is pinned to its Spec.CPU as albatross does.
	Taskset string
	// Path is the PATH tenders run with; "" means DefaultPath.
	Path string
	// Backoff defaults to 1s, doubling up to 1m, reset after a 1m run.
	Backoff Backoff
	// UpdateGrace is how long a new image must run after an update
	// before it replaces the old one for good; default 2s.
	UpdateGrace time.Duration
	// StopTimeout is how long a tender has after SIGTERM before SIGKILL; default 10s.
	StopTimeout time.Duration
	// GateTimeout bounds every gate call; default 2m.
	GateTimeout time.Duration
	// ConsoleLines is the size of each console ring buffer; default 1000.
	ConsoleLines int
	// MaxImageSize bounds images sent by clients; default 512 MiB.
	MaxImageSize int64
	// OwnerUID is the uid besides root that may use the socket; 0 means
	// the daemon's own effective uid.
	OwnerUID int
	// Logger receives what happens in the background (exits, restarts);
	// nil discards it.
	Logger *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// WriteFile replaces a file of the state directory (a unikernel's
	// record, the resource policy) atomically and durably; nil:
	// atomicfile.WriteFile. Tests make it fail to show that a failed
	// write leaves a state that boots (TestUpdateSaveFailsKeepsOld).
	WriteFile func(path string, data []byte, perm fs.FileMode) error
}

func (c *Config) setDefaults() error {
	if c.Gate == nil {
		return fmt.Errorf("%w: no boot gate configured; the daemon boots nothing without one", ErrInvalid)
	}
	// Tenders run in other directories: every path the daemon hands
	// them (images, block devices under the state) must be absolute.
	if c.StateDir != "" {
		abs, err := filepath.Abs(c.StateDir)
		if err != nil {
			return err
		}
		c.StateDir = abs
	}
	if c.Tenders == nil {
		c.Tenders = DefaultTenders()
	}
	if c.DefaultTender == "" {
		c.DefaultTender = "solo5-hvt"
	}
	if c.Network == nil {
		c.Network = &IPNetwork{}
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Backoff.Initial, time.Second)
	def(&c.Backoff.Max, time.Minute)
	def(&c.Backoff.Reset, c.Backoff.Max)
	if c.Backoff.Max < c.Backoff.Initial {
		c.Backoff.Max = c.Backoff.Initial
	}
	def(&c.UpdateGrace, 2*time.Second)
	def(&c.StopTimeout, 10*time.Second)
	def(&c.GateTimeout, 2*time.Minute)
	if c.ConsoleLines <= 0 {
		c.ConsoleLines = 1000
	}
	if c.MaxImageSize <= 0 {
		c.MaxImageSize = 512 << 20
	}
	if c.OwnerUID == 0 {
		c.OwnerUID = os.Geteuid()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// DefaultPath is the PATH tenders run with unless Config.Path says otherwise.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// State is where a unikernel is in its life.
type State string

const (
	StateCreating State = "creating"
	StateRunning  State = "running"
	StateWaiting  State = "waiting" // exited; restarts after the backoff
	StateExited   State = "exited"  // exited and not restarted
	StateRefused  State = "refused" // the gate refused a boot
	StateFailed   State = "failed"  // the tender could not be started
)

// Info describes a unikernel.
type Info struct {
	Name        string        `json:"name"`
	State       State         `json:"state"`
	Reason      string        `json:"reason,omitempty"` // why it is not running
	Spec        Spec          `json:"spec"`
	Image       digest.Digest `json:"image"`
	Admission   *Admission    `json:"admission,omitempty"`
	PID         int           `json:"pid,omitempty"`
	Started     time.Time     `json:"started,omitzero"`
	Uptime      time.Duration `json:"uptime,omitempty"`
	Restarts    int           `json:"restarts"`
	LastExit    *ExitStatus   `json:"last_exit,omitempty"`
	NextRestart time.Time     `json:"next_restart,omitzero"`
	Created     time.Time     `json:"created"`
	// Recheck is what the gate decides about Image now, when asked
	// (Client.Recheck); Admission is only what it decided at Admission.Time.
	Recheck *Recheck `json:"recheck,omitempty"`
}

// Recheck is the gate's decision about a unikernel's image at Time, beside
// the one recorded when it was admitted: keys revoked or attestations
// added since then change it. A running unikernel keeps running; its next
// boot (a restart, the daemon's start) is decided anew.
type Recheck struct {
	Time     time.Time  `json:"time"`
	Admitted bool       `json:"admitted"`
	Decision *Admission `json:"decision,omitempty"` // nil when the gate failed
	Reason   string     `json:"reason,omitempty"`   // why refused, or the gate's error
}

// Daemon runs unikernels, every boot admitted by the gate first.
type Daemon struct {
	cfg   Config
	store *store
	audit *auditLog
	ctx   context.Context // canceled by Close; sessions derive from it
	stop  context.CancelFunc

	mu      sync.Mutex
	vms     map[string]*unikernel
	pending map[digest.Digest]int // images imported by creates and updates under way
	policy  *Policy
	closed  bool
}

type unikernel struct {
	name    string
	op      sync.Mutex // held by create, destroy, restart, update for their whole run
	console *console

	mu          sync.Mutex // guards what follows
	rec         record
	state       State
	reason      string
	proc        *process
	sess        *session
	restarts    int
	lastExit    *ExitStatus
	nextRestart time.Time
	gone        bool // destroyed, or a create that failed
}

// Open opens the state directory (locking it against other daemons) and
// boots the unikernels it records, each admitted by the gate again, in
// startup priority order (0 first; ties by name). A unikernel the gate
// refuses or that cannot start stays down, its Info saying why.
func Open(cfg Config) (*Daemon, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	st, err := openStore(cfg.StateDir, cfg.WriteFile)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, store: st, vms: map[string]*unikernel{}, pending: map[digest.Digest]int{}}
	fail := func(err error) (*Daemon, error) {
		st.close()
		return nil, err
	}
	if d.policy, err = st.loadPolicy(); err != nil {
		return fail(err)
	}
	if d.audit, err = openAudit(cfg.StateDir); err != nil {
		return fail(err)
	}
	recs, err := st.records()
	if err != nil {
		d.audit.close()
		return fail(err)
	}
	d.ctx, d.stop = context.WithCancel(context.Background())
	slices.SortFunc(recs, func(a, b *record) int {
		return cmp.Or(cmp.Compare(a.Spec.Startup, b.Spec.Startup), cmp.Compare(a.Spec.Name, b.Spec.Name))
	})
	for _, r := range recs {
		u := d.newUnikernel(*r)
		d.vms[u.name] = u
		if r.Stopped {
			u.state, u.reason = StateExited, "it had exited before the daemon stopped; vmm restart "+u.name+" boots it"
			continue
		}
		if err := d.boot(d.ctx, u, r.Image, "restore"); err != nil {
			d.cfg.Logger.Warn("unikernel not restored", "name", u.name, "err", err)
		}
	}
	return d, nil
}

func (d *Daemon) newUnikernel(r record) *unikernel {
	return &unikernel{name: r.Spec.Name, rec: r, console: newConsole(d.cfg.ConsoleLines, d.cfg.Now)}
}

// Close stops every unikernel (their records stay, so the next Open
// boots them again) and releases the state directory.
func (d *Daemon) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	vms := make([]*unikernel, 0, len(d.vms))
	for _, u := range d.vms {
		vms = append(vms, u)
	}
	d.mu.Unlock()
	d.stop()
	var wg sync.WaitGroup
	for _, u := range vms {
		wg.Go(func() {
			u.op.Lock()
			defer u.op.Unlock()
			d.halt(u)
		})
	}
	wg.Wait()
	return errors.Join(d.audit.close(), d.store.close())
}

// lookup returns the named unikernel with its op lock held.
func (d *Daemon) lookup(name string) (*unikernel, error) {
	d.mu.Lock()
	u := d.vms[name]
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	if u == nil {
		return nil, notFound(name)
	}
	u.op.Lock()
	if u.gone {
		u.op.Unlock()
		return nil, notFound(name)
	}
	return u, nil
}

var errClosed = errors.New("the daemon is shutting down; try again when it is back")

func notFound(name string) error {
	return fmt.Errorf("%w: %q; list the unikernels with vmm info", ErrNotFound, name)
}

// admit asks the gate about the image and records the decision in the
// audit log; any doubt is a refusal (*RefusedError).
func (d *Daemon) admit(ctx context.Context, name string, img digest.Digest, op string) (*gate.Decision, error) {
	gctx, cancel := context.WithTimeout(ctx, d.cfg.GateTimeout)
	dec, err := d.cfg.Gate.Admit(gctx, d.store.imagePath(img))
	cancel()
	e := AuditEntry{Time: d.cfg.Now().UTC(), Name: name, Op: op, Image: img}
	refused := &RefusedError{Name: name, Op: op, Decision: dec, Err: err}
	switch {
	case err != nil:
		e.Reason = refused.Reason()
	case dec == nil:
		refused.Err = errors.New("the gate returned no decision")
		e.Reason = refused.Reason()
	case dec.Admitted && dec.Image != img:
		refused.Err = fmt.Errorf("the gate saw sha256 %s, but the image recorded is %s: the file in the state directory changed", dec.Image, img)
		e.Reason = refused.Reason()
	default:
		e.Admitted, e.Reason = dec.Admitted, dec.Reason
	}
	if werr := d.audit.append(e); werr != nil {
		return nil, &RefusedError{Name: name, Op: op, Err: fmt.Errorf("cannot write the audit log, so no boot is allowed: %v; check the state directory's disk and permissions", werr)}
	}
	if !e.Admitted {
		return nil, refused
	}
	return dec, nil
}

// boot admits img and starts it in a new supervised session. The caller
// holds u.op, or is Open. On failure u's state says why.
func (d *Daemon) boot(ctx context.Context, u *unikernel, img digest.Digest, op string) error {
	dec, err := d.admit(ctx, u.name, img, op)
	if err != nil {
		u.setDown(StateRefused, err)
		return err
	}
	return d.launch(u, img, dec, op)
}

// launch records an admitted image as u's and starts it in a new
// supervised session.
func (d *Daemon) launch(u *unikernel, img digest.Digest, dec *gate.Decision, op string) error {
	u.mu.Lock()
	u.rec.Image = img
	u.rec.Admission = admission(dec, op, d.cfg.Now().UTC())
	u.rec.Stopped = false
	rec := u.rec
	u.mu.Unlock()
	if err := d.store.saveRecord(&rec); err != nil {
		err = fmt.Errorf("cannot save the record of %s, so it was not started: %w", u.name, err)
		u.setDown(StateFailed, err)
		return err
	}
	s, p, err := d.startSession(u, img)
	if err != nil {
		return err
	}
	go d.supervise(s, u, p)
	return nil
}

func (u *unikernel) setDown(s State, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.proc == nil {
		u.state, u.reason = s, err.Error()
	}
}
