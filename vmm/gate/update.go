package gate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/buildledger/buildledger/cas/digest"

	"github.com/buildledger/buildledger/internal/atomicfile"
)

// Candidate is a newer build of the job a running image came from.
type Candidate struct {
	Job, Platform string
	Running, New  BuildRef
	SHA256        digest.Digest // of the new build's main binary
	Size          int64         // its recorded size
	CompareURL    string
}

// Newer finds, for the running image's digest, the newest successful build
// of the same job and platform, as albatross's update does with
// builder-web: running hash → /hash → job → newest build. It returns nil
// when the running build is the newest. Both build records are proven
// against the log; the new image still has to pass Check before it boots.
func (g *Gate) Newer(ctx context.Context, running digest.Digest) (*Candidate, error) {
	c := g.client
	if c == nil {
		return nil, errors.New("the gate policy names no ledger (or the gate is offline); updates need one")
	}
	hl, err := c.HashLookup(ctx, running)
	if err != nil {
		return nil, fmt.Errorf("the running image %s: %w", running, err)
	}
	if len(hl.Builds) == 0 {
		return nil, fmt.Errorf("no build in the ledger has the running image's SHA-256 %s", running)
	}
	cur := hl.Builds[0]
	for _, h := range hl.Builds[1:] {
		if h.Started.After(cur.Started) {
			cur = h
		}
	}
	builds, err := c.JobBuilds(ctx, cur.Job)
	if err != nil {
		return nil, err
	}
	for _, b := range builds { // newest first
		if b.Platform != cur.Platform || !b.Succeeded || b.MainBinary == nil {
			continue
		}
		if b.UUID == cur.UUID || b.MainBinary.SHA256 == running || !b.Started.After(cur.Started) {
			return nil, nil // the running build (or one with the same image) is the newest
		}
		rec, index, _, err := c.Build(ctx, b.UUID)
		if err != nil {
			return nil, err
		}
		if rec.MainBinary == nil {
			return nil, fmt.Errorf("build %s has no main binary in its record", b.UUID)
		}
		a, _ := rec.Artifact(*rec.MainBinary)
		if a.SHA256 != b.MainBinary.SHA256 || rec.Job != cur.Job || rec.Platform != cur.Platform || !rec.Succeeded() {
			return nil, fmt.Errorf("SECURITY: the ledger's listing of build %s does not match its record", b.UUID)
		}
		// The listings are unproven: the proven records must agree that the
		// candidate is newer, so a ledger cannot steer an update backwards.
		old, oldIndex, _, err := c.Build(ctx, cur.UUID)
		if err != nil {
			return nil, err
		}
		if oa, ok := old.Artifact(cur.Path); !ok || oa.SHA256 != running {
			return nil, fmt.Errorf("SECURITY: build %s does not record the running image at %s", cur.UUID, cur.Path)
		}
		if index <= oldIndex || !rec.Started.After(old.Started) {
			return nil, fmt.Errorf("SECURITY: the ledger offers build %s (log index %d, started %s) as newer than the running build %s (log index %d, started %s)",
				rec.UUID, index, rec.Started.Format(time.RFC3339), old.UUID, oldIndex, old.Started.Format(time.RFC3339))
		}
		return &Candidate{
			Size: a.Size,
			Job:  cur.Job, Platform: cur.Platform,
			Running:    BuildRef{Job: cur.Job, Platform: cur.Platform, UUID: cur.UUID, LogIndex: cur.LogIndex},
			New:        BuildRef{Job: rec.Job, Platform: rec.Platform, UUID: rec.UUID, LogIndex: index},
			SHA256:     a.SHA256,
			CompareURL: strings.TrimSuffix(g.cfg.Policy.Ledger, "/") + "/compare/" + cur.UUID.String() + "/" + rec.UUID.String(),
		}, nil
	}
	return nil, nil
}

// Download fetches the candidate's main binary to path (created with mode
// 0644, replaced atomically) and checks its SHA-256.
func (g *Gate) Download(ctx context.Context, cand *Candidate, path string) error {
	if g.client == nil {
		return errors.New("the gate has no ledger to download from")
	}
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := g.client.MainBinary(ctx, cand.Job, cand.New.UUID, cand.SHA256, cand.Size, f); err != nil {
		return err
	}
	return f.Commit()
}
