package vmm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/buildledger/buildledger/cas/digest"

	"github.com/buildledger/buildledger/vmm/gate"
)

// ErrRolledBack: an update's new image did not keep running, so the old
// image was booted again.
var ErrRolledBack = errors.New("update rolled back")

// UpdateReport is what an update did.
type UpdateReport struct {
	Name    string          `json:"name"`
	Running digest.Digest   `json:"running"`             // the image before the update
	New     *gate.Candidate `json:"candidate,omitempty"` // nil: the running build is the newest
	Updated bool            `json:"updated"`
	// NewExit is how the new image ended within the grace period, which
	// rolled the update back.
	NewExit *ExitStatus `json:"new_exit,omitempty"`
}

// Update is albatross's update with the gate in the middle: the running
// image's sha256 → Gate.Newer → "compare at URL"; unless dryRun, Download
// the new image, check it against the spec's devices, have the gate admit
// it, and swap it in with the same spec. A refusal, a failed download or
// a device mismatch leaves the old image running. If the new image exits
// within Config.UpdateGrace, the old one is booted again (through the
// gate) and the error wraps ErrRolledBack. The new record is saved
// before the old image is removed; if it cannot be saved, the new image
// is stopped and the old one booted again (ErrRolledBack too), so the
// state directory always names an image it holds. progress receives the
// lines for the operator as they happen.
func (d *Daemon) Update(ctx context.Context, name string, dryRun bool, progress func(string)) (*UpdateReport, error) {
	if progress == nil {
		progress = func(string) {}
	}
	u, err := d.lookup(name)
	if err != nil {
		return nil, err
	}
	defer u.op.Unlock()
	u.mu.Lock()
	old, spec := u.rec.Image, u.rec.Spec
	u.mu.Unlock()
	r := &UpdateReport{Name: name, Running: old}

	gctx, cancel := context.WithTimeout(ctx, d.cfg.GateTimeout)
	c, err := d.cfg.Gate.Newer(gctx, old)
	cancel()
	if err != nil {
		return r, fmt.Errorf("looking up a newer build of %s (sha256 %s): %w; check the gate policy's ledger URL and the network", name, old, err)
	}
	if c == nil {
		progress(fmt.Sprintf("%s runs the newest build (sha256 %s); nothing to update", name, old))
		return r, nil
	}
	r.New = c
	progress(fmt.Sprintf("%s: job %s on %s, running build %s, newest build %s (sha256 %s)", name, c.Job, c.Platform, c.Running.UUID, c.New.UUID, c.SHA256))
	progress("compare at " + c.CompareURL)
	if dryRun {
		return r, nil
	}
	if c.SHA256 == old {
		progress("the newest build produced the very image that runs; nothing to update")
		return r, nil
	}

	tmp, err := os.CreateTemp(filepath.Join(d.store.dir, imagesDir), ".tmp-download-")
	if err != nil {
		return r, err
	}
	tmp.Close()
	gctx, cancel = context.WithTimeout(ctx, d.cfg.GateTimeout)
	err = d.cfg.Gate.Download(gctx, c, tmp.Name())
	cancel()
	if err != nil {
		os.Remove(tmp.Name())
		return r, fmt.Errorf("downloading the new image: %w; %s keeps running the old one, try again later", err, name)
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return r, err
	}
	img, err := d.importImage(f, 1<<62)
	f.Close()
	os.Remove(tmp.Name())
	if err != nil {
		return r, err
	}
	swapped := false
	defer func() { d.release(img, !swapped) }()
	if img != c.SHA256 {
		return r, fmt.Errorf("the downloaded image has sha256 %s, the ledger records %s; %s keeps running the old one", img, c.SHA256, name)
	}
	tender, err := d.tender(spec.Tender)
	if err == nil {
		err = tender.Check(d.store.imagePath(img), &spec)
	}
	if err != nil {
		return r, fmt.Errorf("the new image does not fit %s's configuration, which an update keeps: %w\n%s keeps running the old image; create a new unikernel for the new one", name, err, name)
	}
	dec, err := d.admit(ctx, name, img, "update")
	if err != nil {
		progress(fmt.Sprintf("%s keeps running the old image (sha256 %s)", name, old))
		return r, err
	}
	progress("the gate admits sha256 " + img.String())

	d.halt(u)
	s, p, err := d.startSession(u, img)
	if err == nil {
		t := time.NewTimer(d.cfg.UpdateGrace)
		select {
		case <-t.C:
			// The new image is durable in the store; its record must be
			// too before the old image goes, so that whatever fails, the
			// state directory names an image it holds.
			u.mu.Lock()
			rec := u.rec
			u.mu.Unlock()
			rec.Image = img
			rec.Admission = admission(dec, "update", d.cfg.Now().UTC())
			rec.Stopped = false
			if err = d.store.saveRecord(&rec); err == nil {
				u.mu.Lock()
				u.rec = rec
				u.mu.Unlock()
				go d.supervise(s, u, p)
				swapped, r.Updated = true, true
				d.removeImageIfUnused(old)
				progress(fmt.Sprintf("updated %s to sha256 %s", name, img))
				return r, nil
			}
			// The record still names the old image: stop the new one
			// and boot the old one again, as the next daemon start would.
			err = fmt.Errorf("its record could not be saved: %w", err)
			d.kill(p)
		case <-p.exited:
			t.Stop()
		}
		// Ended within the grace period, or stopped: no restart-on-fail
		// for it.
		s.cancel()
		d.removeTaps(p.taps)
		u.mu.Lock()
		st := p.status
		u.proc, u.sess, u.lastExit = nil, nil, &st
		u.mu.Unlock()
		close(s.done)
		if err == nil {
			r.NewExit = &st
			err = fmt.Errorf("it ended within %v: %s", d.cfg.UpdateGrace, st)
		}
	}
	why := err
	progress(fmt.Sprintf("the new image failed: %v; rolling back to sha256 %s", why, old))
	err = d.boot(d.ctx, u, old, "rollback")
	if err != nil {
		return r, fmt.Errorf("%w: the new image (sha256 %s) failed: %v; and the old one could not be booted again:\n%v", ErrRolledBack, img, why, err)
	}
	return r, fmt.Errorf("%w: the new image (sha256 %s) failed: %v; %s runs the old image (sha256 %s) again; vmm console %s shows the new one's output",
		ErrRolledBack, img, why, name, old, name)
}
