package rebuilder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/buildledger/buildledger/httpapi/client"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/event"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/internal/atomicfile"
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
	// was rebuilt, skipped, or is in Retry. It is saved after every build.
	Next uint64 `json:"next"`
	// Checkpoint is the last checkpoint seen; the next must be consistent
	// with it.
	Checkpoint string `json:"checkpoint"`
	// Retry lists the builds whose rebuild or attestation failed, to be
	// tried again on the next passes (MaxAttempts in all).
	Retry []RetryItem `json:"retry,omitempty"`
}

// RetryItem is a build to rebuild again.
type RetryItem struct {
	Index     uint64    `json:"index"`
	Build     uuid.UUID `json:"build"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
}

// MaxAttempts is how often a follower tries one build before giving up
// on it (and saying so in its log).
const MaxAttempts = 3

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
	return atomicfile.WriteFile(f.State, append(b, '\n'), 0o600)
}

// FollowReport counts what one pass over new log entries did.
type FollowReport struct {
	Rebuilt, Reproduced, Differs, Skipped, Failed int
}

// Run follows the log until ctx ends (returning nil) or the log proves
// inconsistent with a checkpoint seen before (an *client.InconsistencyError).
func (f *Follower) Run(ctx context.Context) error {
	for {
		rep, err := f.Once(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ie *client.InconsistencyError
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
	build *event.BuildRecorded
}

// Once handles the builds to retry and every log entry from the state's
// Next up to the current checkpoint, saving the progress after each build.
// The state file is locked while it runs, so two followers cannot share
// it.
func (f *Follower) Once(ctx context.Context) (FollowReport, error) {
	var rep FollowReport
	unlock, err := lockFile(f.State + ".lock")
	if err != nil {
		return rep, err
	}
	defer unlock()
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
		old, err := checkpoint.Open([]byte(st.Checkpoint), cp.Origin, c.LogKey())
		if err != nil {
			return rep, fmt.Errorf("state file %s: %w", f.State, err)
		}
		if err := c.CheckConsistency(ctx, old, cp); err != nil {
			return rep, err
		}
	}
	st.Checkpoint = string(cp.Note)
	platforms := f.Platforms
	if len(platforms) == 0 {
		h, err := ProbeHost()
		if err != nil {
			return rep, err
		}
		platforms = []string{h.Distribution + "-" + h.Version}
	}
	key := digest.Digest{}
	if f.Rebuilder.Signer != nil {
		key = f.Rebuilder.Signer.KeyID()
	}

	// Collect the work: the retries, then the new entries in log order.
	attempts := map[uint64]int{}
	var items []followItem
	want := func(i uint64, b *event.BuildRecorded) (bool, error) {
		switch {
		case !b.Succeeded():
			f.log().Info("follow: skipping failed build", "build", b.UUID, "job", b.Job, "index", i)
			return false, nil
		case !slices.Contains(platforms, b.Platform):
			f.log().Info("follow: skipping build of another platform", "build", b.UUID, "platform", b.Platform, "index", i)
			return false, nil
		}
		if key.IsZero() {
			return true, nil
		}
		done, err := f.attested(ctx, b.UUID, key)
		if done {
			f.log().Info("follow: already attested by this key", "build", b.UUID, "index", i)
		}
		return !done, err
	}
	for _, r := range st.Retry {
		ve, err := c.Event(ctx, r.Index, cp)
		if err != nil {
			return rep, err
		}
		b, ok := ve.Event.(*event.BuildRecorded)
		if !ok || b.UUID != r.Build {
			return rep, fmt.Errorf("SECURITY: log index %d no longer holds build %s", r.Index, r.Build)
		}
		ok, err = want(r.Index, b)
		if err != nil {
			return rep, err
		}
		if ok {
			items = append(items, followItem{r.Index, b})
			attempts[r.Index] = r.Attempts
		} else {
			rep.Skipped++
		}
	}
	st.Retry = nil
	pending := map[uint64]bool{} // new entries not yet handled
	for i := st.Next; i < cp.Size; i++ {
		ve, err := c.Event(ctx, i, cp)
		if err != nil {
			return rep, err
		}
		b, ok := ve.Event.(*event.BuildRecorded)
		if !ok {
			continue
		}
		ok, err = want(i, b)
		if err != nil {
			return rep, err
		}
		if !ok {
			rep.Skipped++
			continue
		}
		items = append(items, followItem{i, b})
		pending[i] = true
	}
	first := st.Next
	// next is the new watermark: the lowest pending index, else the size.
	next := func() uint64 {
		for i := first; i < cp.Size; i++ {
			if pending[i] {
				return i
			}
		}
		return cp.Size
	}

	// Rebuild with bounded concurrency; the Rebuilder serialises builds
	// that share a build root.
	n := max(f.Concurrency, 1)
	work := make(chan followItem)
	var mu sync.Mutex
	var saveErr error
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for it := range work {
				start := time.Now()
				o, err := f.Rebuilder.Rebuild(ctx, it.build.UUID)
				if ctx.Err() != nil {
					return // not handled: the watermark stays below it
				}
				mu.Lock()
				if errors.Is(err, ErrForeignRoot) {
					// Not a failure, and no retry can change it.
					rep.Skipped++
					f.log().Info("follow: skipping build recorded in another build root", "build", it.build.UUID, "job", it.build.Job, "index", it.index, "err", err)
				} else if err != nil {
					rep.Failed++
					a := attempts[it.index] + 1
					if a < MaxAttempts {
						st.Retry = append(st.Retry, RetryItem{Index: it.index, Build: it.build.UUID, Attempts: a, LastError: err.Error()})
						f.log().Error("follow: rebuild failed; will retry", "build", it.build.UUID, "job", it.build.Job, "index", it.index, "attempt", a, "err", err)
					} else {
						f.log().Error("follow: rebuild failed; giving up on this build", "build", it.build.UUID, "job", it.build.Job, "index", it.index, "attempts", a, "err", err)
					}
				} else {
					rep.Rebuilt++
					if o.Verdict == "reproduced" {
						rep.Reproduced++
					} else {
						rep.Differs++
					}
					f.log().Info("follow: rebuilt", "build", it.build.UUID, "job", it.build.Job, "index", it.index, "verdict", o.Verdict,
						"elapsed", time.Since(start).Round(time.Millisecond), "attestation_index", receiptIndex(o))
				}
				delete(pending, it.index)
				st.Next = next()
				if err := f.save(st); err != nil && saveErr == nil {
					saveErr = err
				}
				mu.Unlock()
			}
		})
	}
	for _, it := range items {
		if ctx.Err() != nil {
			break
		}
		select {
		case work <- it:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	st.Next = next()
	if err := f.save(st); err != nil {
		return rep, err
	}
	return rep, saveErr
}

// lockFile takes an exclusive lock on path (created if needed).
func lockFile(path string) (func(), error) {
	fd, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fd.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another follower is using %s", strings.TrimSuffix(path, ".lock"))
		}
		return nil, err
	}
	return func() { fd.Close() }, nil
}

func receiptIndex(o *Outcome) int64 {
	if o.Receipt == nil {
		return -1
	}
	return int64(o.Receipt.LogIndex)
}

// attested reports whether key already attested build id.
func (f *Follower) attested(ctx context.Context, id uuid.UUID, key digest.Digest) (bool, error) {
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
