package cas

import (
	"crypto/sha256"
	"errors"
)

// treeBuilder assembles a chunked blob's manifest from its chunk references
// in order (see record.go). It keeps one partly filled page per level and
// writes a page once it is full and another reference arrives, so a blob
// whose references fit in the record needs no page at all.
type treeBuilder struct {
	fanout int // references per page; pageFanout except in tests
	levels [][]ref
	chunks int64
	size   int64
	// writePage stores an encoded page value (header byte included) under
	// its digest.
	writePage func(d Digest, val []byte) error
}

func (t *treeBuilder) addChunk(r ref) error {
	t.chunks++
	t.size += r.size
	return t.add(0, r)
}

func (t *treeBuilder) add(level int, r ref) error {
	if level == len(t.levels) {
		t.levels = append(t.levels, make([]ref, 0, t.fanout))
	}
	if len(t.levels[level]) == t.fanout {
		if err := t.flush(level); err != nil {
			return err
		}
	}
	t.levels[level] = append(t.levels[level], r)
	return nil
}

func (t *treeBuilder) flush(level int) error {
	refs := t.levels[level]
	val := make([]byte, 1, 1+len(refs)*(len(Digest{})+3))
	val[0] = encRaw
	var size int64
	for _, r := range refs {
		val = appendRef(val, r)
		size += r.size
	}
	d := Digest(sha256.Sum256(val[1:]))
	if err := t.writePage(d, val); err != nil {
		return err
	}
	t.levels[level] = refs[:0]
	return t.add(level+1, ref{d: d, size: size})
}

// finish writes the remaining partial pages and returns the tree height and
// the references for the blob record.
func (t *treeBuilder) finish() (height int, refs []ref, err error) {
	if len(t.levels) == 0 {
		return 0, nil, errors.New("cas: Put: internal error: chunked blob without chunks")
	}
	for level := 0; ; level++ {
		if level == len(t.levels)-1 {
			return level, t.levels[level], nil
		}
		if len(t.levels[level]) > 0 {
			if err := t.flush(level); err != nil {
				return 0, nil, err
			}
		}
	}
}
