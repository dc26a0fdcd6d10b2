package scheduler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/internal/atomicfile"
)

// Directories below Config.Dir.
const (
	uploadDir = "uploads" // UUID.full: builds not yet recorded by the ledger
	failedDir = "failed"  // UUID.full and UUID.err: builds the ledger refused
	buildsDir = "builds"  // JOB/UUID/full: finished builds without an Uploader
	fullExt   = ".full"
)

// keep writes a finished build durably before the scheduler forgets the
// job: into the upload queue, or without an Uploader where builder keeps
// builds (builds/JOB/UUID/full).
func (s *Scheduler) keep(jobName string, id uuid.UUID, der []byte) error {
	if s.cfg.Upload == nil {
		dir := filepath.Join(s.cfg.Dir, buildsDir, jobName, id.String())
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		return atomicfile.WriteFile(filepath.Join(dir, "full"), der, 0o600)
	}
	return atomicfile.WriteFile(filepath.Join(s.cfg.Dir, uploadDir, id.String()+fullExt), der, 0o600)
}

// kickUploads wakes the uploader.
func (s *Scheduler) kickUploads() {
	select {
	case s.uploadKick <- struct{}{}:
	default:
	}
}

// kept reports whether the build of id was already written by keep.
func (s *Scheduler) kept(id uuid.UUID) bool {
	for _, p := range []string{
		filepath.Join(s.cfg.Dir, uploadDir, id.String()+fullExt),
		filepath.Join(s.cfg.Dir, failedDir, id.String()+fullExt),
	} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	m, _ := filepath.Glob(filepath.Join(s.cfg.Dir, buildsDir, "*", id.String(), "full"))
	return len(m) > 0
}

// Pending lists the builds waiting for upload.
func (s *Scheduler) Pending() ([]uuid.UUID, error) {
	ents, err := os.ReadDir(filepath.Join(s.cfg.Dir, uploadDir))
	if err != nil {
		return nil, err
	}
	var ids []uuid.UUID
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), fullExt)
		if !ok {
			continue
		}
		if id, err := uuid.Parse(name); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// uploader sends kept builds to the Uploader, retrying failures with a
// growing delay. A build leaves the upload queue only when the ledger
// recorded it (or had it already: the ledger refuses a second build with
// the same UUID as a duplicate, so a retry never records a build twice),
// or refused it for good (moved to failed/ with the reason).
func (s *Scheduler) uploader() {
	defer s.wg.Done()
	if s.cfg.Upload == nil {
		return
	}
	delay := s.cfg.RetryUpload
	for {
		failed := s.uploadAll()
		wait := time.Duration(1<<62 - 1)
		if failed {
			wait = delay
			delay = min(2*delay, 32*s.cfg.RetryUpload)
		} else {
			delay = s.cfg.RetryUpload
		}
		t := time.NewTimer(wait)
		select {
		case <-s.closed:
			t.Stop()
			return
		case <-s.uploadKick:
		case <-t.C:
		}
		t.Stop()
	}
}

// uploadAll tries every pending build once; it reports whether any
// failed in a way worth retrying.
func (s *Scheduler) uploadAll() (retry bool) {
	ids, err := s.Pending()
	if err != nil {
		s.log.Error("cannot list pending uploads", "err", err)
		return true
	}
	for _, id := range ids {
		select {
		case <-s.closed:
			return false
		default:
		}
		s.mu.Lock()
		_, running := s.running[id]
		s.mu.Unlock()
		if running {
			continue // kept, but its job is still saved as running: wait for finish
		}
		p := filepath.Join(s.cfg.Dir, uploadDir, id.String()+fullExt)
		der, err := os.ReadFile(p)
		if err != nil {
			s.log.Error("cannot read a pending upload", "uuid", id, "err", err)
			retry = true
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Minute)
		err = s.cfg.Upload.Upload(ctx, der, id)
		cancel()
		switch {
		case err == nil:
			if err := os.Remove(p); err != nil {
				s.log.Error("uploaded, but cannot remove it from the queue", "uuid", id, "err", err)
			}
			s.log.Info("build uploaded", "uuid", id, "bytes", len(der))
		case errors.Is(err, ErrPermanent):
			s.log.Error("the ledger refused a build; kept in "+failedDir, "uuid", id, "err", err)
			s.fail(id, p, err)
		default:
			s.log.Warn("upload failed; will retry", "uuid", id, "err", err)
			retry = true
		}
	}
	return retry
}

func (s *Scheduler) fail(id uuid.UUID, p string, cause error) {
	dir := filepath.Join(s.cfg.Dir, failedDir)
	if err := atomicfile.WriteFile(filepath.Join(dir, id.String()+".err"), []byte(cause.Error()+"\n"), 0o600); err != nil {
		s.log.Error("cannot write the refusal", "uuid", id, "err", err)
	}
	if err := os.Rename(p, filepath.Join(dir, id.String()+fullExt)); err != nil {
		s.log.Error("cannot move the refused build", "uuid", id, "err", err)
		return
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		s.log.Error("cannot sync", "dir", dir, "err", err)
	}
}
