package cas

import (
	"container/list"
	"sync"
)

// rebuiltBytes bounds the rebuilt blobs a Store keeps: the newest build of
// an artifact is read again and again (downloads, boots, the next build's
// patch), and rebuilding it applies up to MaxDeltaDepth patches.
const rebuiltBytes = 96 << 20

// rebuiltCache keeps verified contents of blobs stored as patches, least
// recently used first out, at most max bytes. Its slices are shared and
// never modified.
type rebuiltCache struct {
	mu   sync.Mutex
	max  int64
	used int64
	ll   *list.List // of *rebuiltEntry, most recent first
	m    map[Digest]*list.Element
}

type rebuiltEntry struct {
	d Digest
	b []byte
}

func newRebuiltCache(max int64) *rebuiltCache {
	return &rebuiltCache{max: max, ll: list.New(), m: make(map[Digest]*list.Element)}
}

func (c *rebuiltCache) get(d Digest) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[d]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*rebuiltEntry).b, true
}

func (c *rebuiltCache) add(d Digest, b []byte) {
	if int64(len(b)) > c.max/2 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[d]; ok {
		return
	}
	c.m[d] = c.ll.PushFront(&rebuiltEntry{d, b})
	c.used += int64(len(b))
	for c.used > c.max {
		e := c.ll.Back()
		old := e.Value.(*rebuiltEntry)
		c.ll.Remove(e)
		delete(c.m, old.d)
		c.used -= int64(len(old.b))
	}
}
