package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Value-log garbage collection. badger keeps values above its value
// threshold (CAS chunks, large index values) in value-log files and never
// reclaims the space of overwritten or deleted ones by itself: that is
// RunValueLogGC's job, and somebody has to call it. Open starts a loop
// that does every GCConfig.Interval; CollectGarbage runs one round.
// TestCollectGarbage shows a value log with overwritten values shrink and
// the ledger stay intact; TestGCLoop that Open's loop runs.

// GCConfig configures the value-log garbage collection loop Open starts.
type GCConfig struct {
	// Interval between collections. Zero means every 10 minutes; negative
	// disables the loop (call CollectGarbage yourself). A database opened
	// read-only is never collected.
	Interval time.Duration
	// Done, if set, is called after each collection of the loop with the
	// number of value-log files rewritten and the error, if any (for
	// logging and metrics).
	Done func(rewritten int, err error)
}

// gcDiscardRatio is the share of a value-log file that must be garbage for
// badger to rewrite it: 0.5, as badger recommends, bounds the lifetime
// write amplification of the value log to 2.
const gcDiscardRatio = 0.5

const defaultGCInterval = 10 * time.Minute

// gcLoop is the state of Open's collection loop.
type gcLoop struct {
	done chan struct{} // closed when the loop has stopped; nil if none runs
}

// CollectGarbage rewrites the value-log files of which at least half is
// garbage, one at a time, until badger finds none left (it reports
// badger.ErrNoRewrite, which is not an error here) or ctx ends. It returns
// the number of files rewritten. Reads and appends continue meanwhile; a
// collection already running elsewhere makes it return
// badger.ErrRejected. Like every write it first asks Config.CheckSpace and
// stops with its error when the disk is too full.
func (l *Ledger) CollectGarbage(ctx context.Context) (rewritten int, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return rewritten, err
		}
		// A rewrite copies a file's live values before it deletes the
		// file: on a full disk that write would kill the process.
		if err := l.checkSpace(); err != nil {
			return rewritten, err
		}
		err := l.db.RunValueLogGC(gcDiscardRatio)
		if errors.Is(err, badger.ErrNoRewrite) {
			return rewritten, nil
		}
		if err != nil {
			return rewritten, err
		}
		rewritten++
	}
}

// startGC starts the collection loop unless cfg disables it or the
// database is read-only (a collection writes).
func (l *Ledger) startGC(cfg GCConfig) {
	if cfg.Interval < 0 || l.db.Opts().ReadOnly || l.db.Opts().InMemory {
		return
	}
	if cfg.Interval == 0 {
		cfg.Interval = defaultGCInterval
	}
	l.gc.done = make(chan struct{})
	go func() {
		defer close(l.gc.done)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-l.quit:
				cancel()
			case <-ctx.Done():
			}
		}()
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-l.quit:
				return
			case <-t.C:
			}
			n, err := l.CollectGarbage(ctx)
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return
			}
			if cfg.Done != nil {
				cfg.Done(n, err)
			}
		}
	}()
}

// stopGC waits for the collection loop to stop (Close has closed l.quit).
func (l *Ledger) stopGC() {
	if l.gc.done != nil {
		<-l.gc.done
	}
}
