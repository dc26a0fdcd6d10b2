package rebuilder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
)

// Follower is the rebuild daemon: it reads a ledger's log as it grows,
// rebuilds every successful build recorded for this host's platform with
// bounded concurrency, attests each, and remembers its progress in a
// state file so that a restart resumes where it stopped.
type Follower struct {
	Rebuilder *Rebuilder
	// State is the path of the state file (JSON, replaced atomically).
	State string
	// Concurrency bounds the rebuilds running at once (default 1). Builds
	// recorded with the same build root still run one at a time (see
	// Rebuilder), since a rebuild must use the recorded paths.
	Concurrency int
	// Poll is the pause between looks at the log when there is nothing new
	// (default 5 s).
	Poll time.Duration
	// Platforms lists the platforms to rebuild; empty means this host's
	// (OS_DISTRIBUTION-OS_VERSION, as Run derives it).
	Platforms []string
	// Log receives one line per decision and outcome.
	Log *slog.Logger
}

// FollowState is what a follower remembers across restarts.
type FollowState struct {
	// Next is the first log index not yet handled: every build before it
	// was rebuilt (or skipped, or failed and logged).
	Next uint64 `json:"next"`
	// Checkpoint is the last checkpoint seen; the next must be consistent
	// with it.
	Checkpoint string `json:"checkpoint"`
}

func (f *Follower) load() (FollowState, error) {
	var st FollowState
	b, err := os.ReadFile(f.State)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state file %s: %w", f.State, err)
	}
	return st, nil
}

func (f *Follower) save(st FollowState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.State), ".follow-state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f.State)
}

// FollowReport counts what one pass over new log entries did.
type FollowReport struct {
	Rebuilt, Reproduced, Differs, Skipped, Failed int
}

// Run follows the log until ctx ends (returning nil) or the log proves
// inconsistent with a checkpoint seen before (an *httpapi.InconsistencyError).
func (f *Follower) Run(ctx context.Context) error {
	for {
		rep, err := f.Once(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ie *httpapi.InconsistencyError
			if errors.As(err, &ie) {
				return err
			}
			f.log().Error("follow: pass failed; retrying", "err", err)
		} else if rep.Rebuilt+rep.Skipped+rep.Failed > 0 {
			f.log().Info("follow: pass done", "rebuilt", rep.Rebuilt, "reproduced", rep.Reproduced, "differs", rep.Differs, "skipped", rep.Skipped, "failed", rep.Failed)
		}
		poll := f.Poll
		if poll <= 0 {
			poll = 5 * time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

func (f *Follower) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.Default()
}

type followItem struct {
	index uint64
	build *ledger.BuildRecorded
}

// Once handles every log entry from the state's Next up to the current
// checkpoint and saves the progress.
func (f *Follower) Once(ctx context.Context) (FollowReport, error) {
	var rep FollowReport
	c := f.Rebuilder.Client
	st, err := f.load()
	if err != nil {
		return rep, err
	}
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		return rep, err
	}
	if st.Checkpoint != "" {
		old, err := ledger.OpenCheckpoint([]byte(st.Checkpoint), cp.Origin, c.LogKey())
		if err != nil {
			return rep, fmt.Errorf("state file %s: %w", f.State, err)
		}
		if err := c.CheckConsistency(ctx, old, cp); err != nil {
			return rep, err
		}
	}
	platforms := f.Platforms
	if len(platforms) == 0 {
		h, err := ProbeHost()
		if err != nil {
			return rep, err
		}
		platforms = []string{h.Distribution + "-" + h.Version}
	}
	key := cas.Digest{}
	if f.Rebuilder.Signer != nil {
		key = cas.Digest(f.Rebuilder.Signer.KeyID())
	}

	// Collect the work, in log order.
	var items []followItem
	for i := st.Next; i < cp.Size; i++ {
		ve, err := c.Event(ctx, i, cp)
		if err != nil {
			return rep, err
		}
		b, ok := ve.Event.(*ledger.BuildRecorded)
		switch {
		case !ok:
			continue
		case !b.Succeeded():
			f.log().Info("follow: skipping failed build", "build", b.UUID, "job", b.Job, "index", i)
			rep.Skipped++
			continue
		case !contains(platforms, b.Platform):
			f.log().Info("follow: skipping build of another platform", "build", b.UUID, "platform", b.Platform, "index", i)
			rep.Skipped++
			continue
		}
		if !key.IsZero() {
			done, err := f.attested(ctx, b.UUID, key)
			if err != nil {
				return rep, err
			}
			if done {
				f.log().Info("follow: already attested by this key", "build", b.UUID, "index", i)
				rep.Skipped++
				continue
			}
		}
		items = append(items, followItem{i, b})
	}

	// Rebuild with bounded concurrency; one build root at a time.
	n := max(f.Concurrency, 1)
	work := make(chan followItem)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				start := time.Now()
				o, err := f.Rebuilder.Rebuild(ctx, it.build.UUID)
				mu.Lock()
				switch {
				case err != nil:
					rep.Failed++
					f.log().Error("follow: rebuild failed", "build", it.build.UUID, "job", it.build.Job, "index", it.index, "err", err)
				default:
					rep.Rebuilt++
					if o.Verdict == "reproduced" {
						rep.Reproduced++
					} else {
						rep.Differs++
					}
					f.log().Info("follow: rebuilt", "build", it.build.UUID, "job", it.build.Job, "index", it.index, "verdict", o.Verdict,
						"elapsed", time.Since(start).Round(time.Millisecond), "attestation_index", receiptIndex(o))
				}
				mu.Unlock()
			}
		}()
	}
	for _, it := range items {
		select {
		case work <- it:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return rep, ctx.Err() // progress is not saved: the pass is redone, and attested builds are skipped
	}
	st.Next, st.Checkpoint = cp.Size, string(cp.Note)
	return rep, f.save(st)
}

func receiptIndex(o *Outcome) int64 {
	if o.Receipt == nil {
		return -1
	}
	return int64(o.Receipt.LogIndex)
}

// attested reports whether key already attested build id.
func (f *Follower) attested(ctx context.Context, id uuid.UUID, key cas.Digest) (bool, error) {
	atts, err := f.Rebuilder.Client.AttestationsOfBuild(ctx, id)
	if err != nil {
		return false, err
	}
	for _, a := range atts {
		if a.KeyID == key {
			return true, nil
		}
	}
	return false, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
