package ledger

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/buildledger/buildledger/cas"
	"github.com/dgraph-io/badger/v4"
)

// The "latest build" projections (p/lb/, p/ls/) keep, per job and
// platform, the order of the newest build and of the newest successful
// one, so the index page, /job/J/build/latest and a job's summary read one
// key per platform instead of scanning a job's builds. "Newest" is the
// smallest order: the latest start time, and between equal start times
// the later log entry, exactly the first build JobBuilds lists.
// TestLatestBuild checks them against JobBuilds.

// projectLatest records build e (with the given order) as the newest of
// its job and platform if no newer one is known.
func projectLatest(txn *badger.Txn, e *BuildRecorded, order []byte) error {
	k := key([]byte(e.Job), []byte{0}, []byte(e.Platform))
	if err := setIfNewer(txn, key(pLatest, k), order); err != nil {
		return err
	}
	if successful(e) {
		return setIfNewer(txn, key(pLatOK, k), order)
	}
	return nil
}

// successful is builder-web's notion of a successful build, the one its
// "latest" links follow: it exited 0 and names a main binary.
func successful(e *BuildRecorded) bool { return e.Succeeded() && e.MainBinary != nil }

func setIfNewer(txn *badger.Txn, k, order []byte) error {
	item, err := txn.Get(k)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return err
	default:
		older := false
		if err := item.Value(func(v []byte) error {
			older = bytes.Compare(order, v) < 0
			return nil
		}); err != nil || !older {
			return err
		}
	}
	return txn.Set(k, order)
}

// LatestBuild returns the newest build of job on platform ("" for any
// platform): the latest start time, between equal starts the later log
// entry — the first build JobBuilds lists. With successful it returns the
// newest build that exited 0 and names a main binary (builder-web's
// "latest successful build"). It reads one key per platform of the job and
// decodes one event; it returns an error wrapping ErrNotFound when there is
// no such build.
func (l *Ledger) LatestBuild(job, platform string, successful bool) (BuildEntry, error) {
	var out BuildEntry
	err := l.view(func(txn *badger.Txn) error {
		orders, err := latestOrders(txn, job, platform, successful)
		if err != nil {
			return err
		}
		var best []byte
		for _, o := range orders {
			if best == nil || bytes.Compare(o, best) < 0 {
				best = o
			}
		}
		if best == nil {
			what := "build"
			if successful {
				what = "successful build"
			}
			if platform != "" {
				return fmt.Errorf("job %q has no %s on platform %q: %w", job, what, platform, ErrNotFound)
			}
			return fmt.Errorf("job %q has no %s: %w", job, what, ErrNotFound)
		}
		idx := orderIndex(best)
		b, err := eventAs[*BuildRecorded](l, txn, idx)
		out = BuildEntry{idx, b}
		return err
	})
	return out, err
}

// LatestBuilds returns, for every platform the job has a build on, the
// newest build (the newest successful one with successful), sorted by
// platform name. The work is bounded by the number of platforms, not of
// builds; a job without builds (or an unknown job) yields none.
func (l *Ledger) LatestBuilds(job string, successful bool) ([]BuildEntry, error) {
	var out []BuildEntry
	err := l.view(func(txn *badger.Txn) error {
		orders, err := latestOrders(txn, job, "", successful)
		if err != nil {
			return err
		}
		for _, o := range orders {
			idx := orderIndex(o)
			b, err := eventAs[*BuildRecorded](l, txn, idx)
			if err != nil {
				return err
			}
			out = append(out, BuildEntry{idx, b})
		}
		return nil
	})
	return out, err
}

// latestOrders returns the orders of the newest builds of job on platform
// (one at most) or on each of its platforms (platform ""), in platform
// order.
func latestOrders(txn *badger.Txn, job, platform string, successful bool) ([][]byte, error) {
	prefix := pLatest
	if successful {
		prefix = pLatOK
	}
	if platform != "" {
		item, err := txn.Get(key(prefix, []byte(job), []byte{0}, []byte(platform)))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		if len(v) != orderLen {
			return nil, fmt.Errorf("%w: latest build record of %q on %q", ErrCorrupt, job, platform)
		}
		return [][]byte{v}, nil
	}
	var out [][]byte
	err := scan(txn, key(prefix, []byte(job), []byte{0}), func(k, v []byte) (bool, error) {
		if len(v) != orderLen {
			return false, fmt.Errorf("%w: latest build record %q", ErrCorrupt, k)
		}
		out = append(out, v)
		return true, nil
	})
	return out, err
}

// orderLen is the length of a build's order (see buildOrder).
const orderLen = 16

// NewestBuildWith returns the newest build (by start time, then log
// index) with an artifact of digest d, and that artifact, in one point
// read and one short scan however many builds produced d (a browser's
// GET /hash redirects there). It returns ErrNotFound if no build did.
func (l *Ledger) NewestBuildWith(d cas.Digest) (ArtifactHit, error) {
	var index uint64
	err := l.view(func(txn *badger.Txn) error {
		item, err := txn.Get(key(pHashNw, d[:]))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("no build produced %s: %w", d, ErrNotFound)
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 16 {
				return fmt.Errorf("%w: newest-build record of %s", ErrCorrupt, d)
			}
			index = orderIndex(v)
			return nil
		})
	})
	if err != nil {
		return ArtifactHit{}, err
	}
	page, _, err := l.HashPage(d, index, 1)
	if err != nil {
		return ArtifactHit{}, err
	}
	if len(page.Builds) == 0 || page.Builds[0].Index != index {
		return ArtifactHit{}, fmt.Errorf("%w: the newest build of %s, at %d, is not in its hash index", ErrCorrupt, d, index)
	}
	return page.Builds[0], nil
}
