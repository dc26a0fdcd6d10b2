package vmm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/buildledger/buildledger/cas"
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
	Newer(ctx context.Context, running cas.Digest) (*gate.Candidate, error)
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
	Image       cas.Digest    `json:"image"`
	Admission   *Admission    `json:"admission,omitempty"`
	PID         int           `json:"pid,omitempty"`
	Started     time.Time     `json:"started,omitzero"`
	Uptime      time.Duration `json:"uptime,omitempty"`
	Restarts    int           `json:"restarts"`
	LastExit    *ExitStatus   `json:"last_exit,omitempty"`
	NextRestart time.Time     `json:"next_restart,omitzero"`
	Created     time.Time     `json:"created"`
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
	pending map[cas.Digest]int // images imported by creates and updates under way
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
	d := &Daemon{cfg: cfg, store: st, vms: map[string]*unikernel{}, pending: map[cas.Digest]int{}}
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
func (d *Daemon) admit(ctx context.Context, name string, img cas.Digest, op string) (*gate.Decision, error) {
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
func (d *Daemon) boot(ctx context.Context, u *unikernel, img cas.Digest, op string) error {
	dec, err := d.admit(ctx, u.name, img, op)
	if err != nil {
		u.setDown(StateRefused, err)
		return err
	}
	return d.launch(u, img, dec, op)
}

// launch records an admitted image as u's and starts it in a new
// supervised session.
func (d *Daemon) launch(u *unikernel, img cas.Digest, dec *gate.Decision, op string) error {
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

// Create imports the image, checks the spec, the tender and the resource
// policy, has the gate admit the image and boots it. Nothing is started
// when any of these refuses.
func (d *Daemon) Create(ctx context.Context, s Spec, image io.Reader) (*Info, error) {
	if s.Tender == "" {
		s.Tender = d.cfg.DefaultTender
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	tender, err := d.tender(s.Tender)
	if err != nil {
		return nil, err
	}
	blockMB, err := blockSizes(&s)
	if err != nil {
		return nil, err
	}
	img, err := d.importImage(image, d.cfg.MaxImageSize)
	if err != nil {
		return nil, err
	}
	created := false
	defer func() { d.release(img, !created) }()
	u := d.newUnikernel(record{Spec: s, Image: img, BlockMB: blockMB, Created: d.cfg.Now().UTC()})
	u.state = StateCreating
	u.op.Lock()
	defer u.op.Unlock()

	d.mu.Lock()
	switch {
	case d.closed:
		err = errClosed
	case d.vms[s.Name] != nil:
		err = fmt.Errorf("%w: %q; destroy it first (vmm destroy %s) or choose another name", ErrExists, s.Name, s.Name)
	default:
		err = d.policy.Check(d.usageLocked(), &s, blockMB)
	}
	if err == nil {
		d.vms[s.Name] = u
	}
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	undo := func(err error) (*Info, error) {
		d.forget(u)
		d.store.removeRecord(s.Name)
		return nil, err
	}
	if err := tender.Check(d.store.imagePath(img), &s); err != nil {
		return undo(err)
	}
	if err := d.boot(ctx, u, img, "create"); err != nil {
		return undo(err)
	}
	created = true
	info := u.info(d.cfg.Now())
	return &info, nil
}

func (d *Daemon) tender(name string) (Tender, error) {
	t := d.cfg.Tenders[name]
	if t == nil {
		names := make([]string, 0, len(d.cfg.Tenders))
		for n := range d.cfg.Tenders {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("%w: unknown tender %q; choose one of %v with --tender", ErrInvalid, name, names)
	}
	return t, nil
}

// blockSizes checks the block files and returns their total size in MB,
// each rounded up.
func blockSizes(s *Spec) (int, error) {
	total := 0
	for _, b := range s.Blocks {
		fi, err := os.Stat(b.File)
		if err != nil {
			return 0, fmt.Errorf("%w: --block %s:%s: %v; create the file first (e.g. truncate -s 64M %s)", ErrInvalid, b.Name, b.File, err, b.File)
		}
		if !fi.Mode().IsRegular() {
			return 0, fmt.Errorf("%w: --block %s:%s is not a regular file", ErrInvalid, b.Name, b.File)
		}
		total += int((fi.Size() + 1<<20 - 1) >> 20)
	}
	return total, nil
}

func (d *Daemon) usageLocked() Usage {
	var u Usage
	for _, v := range d.vms {
		v.mu.Lock()
		u.add(&v.rec.Spec, v.rec.BlockMB)
		v.mu.Unlock()
	}
	return u
}

// forget removes u from the table; the caller holds u.op.
func (d *Daemon) forget(u *unikernel) {
	u.mu.Lock()
	u.gone = true
	u.mu.Unlock()
	d.mu.Lock()
	if d.vms[u.name] == u {
		delete(d.vms, u.name)
	}
	d.mu.Unlock()
	u.console.close()
}

// importImage receives an image into the store and holds it there
// until release.
func (d *Daemon) importImage(r io.Reader, max int64) (cas.Digest, error) {
	tmp, img, err := d.store.receive(r, max)
	if err != nil {
		return img, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.store.commit(tmp, img); err != nil {
		return img, err
	}
	d.pending[img]++
	return img, nil
}

// release ends the hold of importImage; with remove, the image goes
// unless a unikernel or another import uses it.
func (d *Daemon) release(img cas.Digest, remove bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending[img]--; d.pending[img] <= 0 {
		delete(d.pending, img)
	}
	if remove {
		d.removeImageIfUnusedLocked(img)
	}
}

func (d *Daemon) removeImageIfUnused(img cas.Digest) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removeImageIfUnusedLocked(img)
}

func (d *Daemon) removeImageIfUnusedLocked(img cas.Digest) {
	if d.pending[img] > 0 {
		return
	}
	for _, u := range d.vms {
		u.mu.Lock()
		used := u.rec.Image == img
		u.mu.Unlock()
		if used {
			return
		}
	}
	os.Remove(d.store.imagePath(img))
}

// Destroy stops the unikernel, whatever it is doing (a pending restart
// included), and removes it.
func (d *Daemon) Destroy(ctx context.Context, name string) error {
	u, err := d.lookup(name)
	if err != nil {
		return err
	}
	defer u.op.Unlock()
	d.halt(u)
	if err := d.store.removeRecord(name); err != nil {
		return fmt.Errorf("%s is stopped but its record could not be removed (it would come back at the next daemon start): %w", name, err)
	}
	d.forget(u)
	u.mu.Lock()
	img := u.rec.Image
	u.mu.Unlock()
	d.removeImageIfUnused(img)
	os.RemoveAll(d.store.runDir(name))
	return nil
}

// Restart has the gate admit the image again, then stops the unikernel
// and boots it. A refusal leaves a running unikernel running.
func (d *Daemon) Restart(ctx context.Context, name string) (*Info, error) {
	u, err := d.lookup(name)
	if err != nil {
		return nil, err
	}
	defer u.op.Unlock()
	u.mu.Lock()
	img := u.rec.Image
	u.mu.Unlock()
	dec, err := d.admit(ctx, name, img, "restart")
	if err != nil {
		return nil, err
	}
	d.halt(u)
	if err := d.launch(u, img, dec, "restart"); err != nil {
		return nil, err
	}
	info := u.info(d.cfg.Now())
	return &info, nil
}

// Info describes the named unikernel, or all of them (by name) for "".
func (d *Daemon) Info(name string) ([]Info, error) {
	d.mu.Lock()
	var vms []*unikernel
	for n, u := range d.vms {
		if name == "" || n == name {
			vms = append(vms, u)
		}
	}
	d.mu.Unlock()
	if name != "" && len(vms) == 0 {
		return nil, notFound(name)
	}
	now := d.cfg.Now()
	out := make([]Info, 0, len(vms))
	for _, u := range vms {
		out = append(out, u.info(now))
	}
	slices.SortFunc(out, func(a, b Info) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

func (u *unikernel) info(now time.Time) Info {
	u.mu.Lock()
	defer u.mu.Unlock()
	i := Info{
		Name: u.name, State: u.state, Reason: u.reason, Spec: u.rec.Spec, Image: u.rec.Image,
		Admission: u.rec.Admission, Restarts: u.restarts, LastExit: u.lastExit, Created: u.rec.Created,
	}
	if u.proc != nil {
		i.PID, i.Started, i.Uptime = u.proc.pid, u.proc.started, now.Sub(u.proc.started).Truncate(time.Millisecond)
	}
	if u.state == StateWaiting {
		i.NextRestart = u.nextRestart
	}
	return i
}

// Console calls fn for the buffered console lines q selects and, with
// q.Follow, for every new line until ctx ends or the unikernel is
// destroyed.
func (d *Daemon) Console(ctx context.Context, name string, q ConsoleQuery, fn func(Line) error) error {
	if q.Count < 0 {
		return fmt.Errorf("%w: --count %d: give a positive number of lines", ErrInvalid, q.Count)
	}
	if q.Count > 0 && !q.Since.IsZero() {
		return fmt.Errorf("%w: give --since or --count, not both", ErrInvalid)
	}
	d.mu.Lock()
	u := d.vms[name]
	d.mu.Unlock()
	if u == nil {
		return notFound(name)
	}
	lines, next := u.console.query(q)
	for _, l := range lines {
		if err := fn(l); err != nil {
			return err
		}
	}
	if !q.Follow {
		return nil
	}
	return u.console.follow(ctx, next, fn)
}

// Policy returns the resource policy and what is in use.
func (d *Daemon) Policy() (Policy, Usage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return *d.policy, d.usageLocked()
}

// SetPolicy replaces the resource policy. It returns where the existing
// unikernels already exceed it: they keep running, new ones are refused.
func (d *Daemon) SetPolicy(p Policy) ([]string, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.store.savePolicy(&p); err != nil {
		return nil, err
	}
	d.policy = &p
	return p.Violations(d.usageLocked()), nil
}
