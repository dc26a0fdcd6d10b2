package vmm

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/buildledger/buildledger/cas/digest"
)

// The operations a client asks the daemon for (server.go dispatches
// them): create, destroy, restart, info, console and the resource policy,
// with the image store bookkeeping they share. Update is in update.go.

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
func (d *Daemon) importImage(r io.Reader, max int64) (digest.Digest, error) {
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
func (d *Daemon) release(img digest.Digest, remove bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending[img]--; d.pending[img] <= 0 {
		delete(d.pending, img)
	}
	if remove {
		d.removeImageIfUnusedLocked(img)
	}
}

func (d *Daemon) removeImageIfUnused(img digest.Digest) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removeImageIfUnusedLocked(img)
}

func (d *Daemon) removeImageIfUnusedLocked(img digest.Digest) {
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

// Recheck is Info with the gate asked again about every image listed, as
// it would be at a boot now; nothing is booted, stopped or audited.
func (d *Daemon) Recheck(ctx context.Context, name string) ([]Info, error) {
	infos, err := d.Info(name)
	if err != nil {
		return nil, err
	}
	for i := range infos {
		gctx, cancel := context.WithTimeout(ctx, d.cfg.GateTimeout)
		dec, err := d.cfg.Gate.Admit(gctx, d.store.imagePath(infos[i].Image))
		cancel()
		r := &Recheck{Time: d.cfg.Now().UTC()}
		switch {
		case err != nil:
			r.Reason = "the gate failed: " + err.Error()
		case dec == nil:
			r.Reason = "the gate returned no decision"
		default:
			r.Admitted, r.Reason = dec.Admitted && dec.Image == infos[i].Image, dec.Reason
			r.Decision = admission(dec, "recheck", r.Time)
		}
		infos[i].Recheck = r
	}
	return infos, nil
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
