package ledger

import (
	"bytes"
	"fmt"

	"github.com/buildledger/buildledger/cas"
	"github.com/dgraph-io/badger/v4"
)

// The newest build of a job on a platform is the first key under
// p/jp/<job>\0<platform>\0 and the newest successful one the first under
// p/ls/<job>\0<platform>\0, so the index page, /job/J/build/latest and a
// job's summary read one key per platform instead of scanning a job's
// builds. "Newest" is the smallest order: the latest start time, and
// between equal start times the later log entry, exactly the first build
// JobBuilds lists. Both are written blind (a key per build, nothing read),
// which keeps reads off the commit path. TestLatestBuild checks them
// against JobBuilds.

// projectLatest records build e (with the given order) among the
// successful builds of its job and platform if it is one.
func projectLatest(txn *badger.Txn, e *BuildRecorded, order []byte) error {
	if !successful(e) {
		return nil
	}
	return txn.Set(key(pLatOK, []byte(e.Job), []byte{0}, []byte(e.Platform), []byte{0}, order), nil)
}

// successful is builder-web's notion of a successful build, the one its
// "latest" links follow: it exited 0 and names a main binary.
func successful(e *BuildRecorded) bool { return e.Succeeded() && e.MainBinary != nil }

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
// order: one seek per platform.
func latestOrders(txn *badger.Txn, job, platform string, successful bool) ([][]byte, error) {
	prefix := key(pJobP, []byte(job), []byte{0})
	if successful {
		prefix = key(pLatOK, []byte(job), []byte{0})
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	seek := prefix
	if platform != "" {
		seek = key(prefix, []byte(platform), []byte{0})
	}
	var out [][]byte
	for it.Seek(seek); it.Valid(); it.Seek(seek) {
		k := it.Item().Key()
		rest := k[len(prefix):]
		end := bytes.IndexByte(rest, 0)
		if end < 0 || len(rest)-end-1 != orderLen {
			return nil, fmt.Errorf("%w: build list key %q", ErrCorrupt, k)
		}
		if platform != "" && string(rest[:end]) != platform {
			break
		}
		out = append(out, bytes.Clone(rest[end+1:]))
		if platform != "" {
			break
		}
		// The next platform: past every key of this one.
		seek = key(prefix, rest[:end], []byte{1})
	}
	return out, nil
}

// orderLen is the length of a build's order (see buildOrder).
const orderLen = 16

// NewestBuildWith returns the newest build (by start time, then log
// index) with an artifact of digest d, and that artifact, in one point
// read (and a short scan when d has many entries) however many builds
// produced d (a browser's GET /hash redirects there). It returns
// ErrNotFound if no build did.
func (l *Ledger) NewestBuildWith(d cas.Digest) (ArtifactHit, error) {
	var index uint64
	var hit *ArtifactHit
	err := l.view(func(txn *badger.Txn) error {
		h, found, err := readHead(txn, d)
		if err != nil {
			return err
		}
		if !found || h.flags&headNewest == 0 {
			return fmt.Errorf("no build produced %s: %w", d, ErrNotFound)
		}
		index = orderIndex(h.newest)
		for _, e := range h.entries {
			if e.index == index && e.kind == hashArtifact {
				a, err := parseHit(e.index, e.path, e.value)
				hit = &a
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ArtifactHit{}, err
	}
	if hit != nil {
		return *hit, nil
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
