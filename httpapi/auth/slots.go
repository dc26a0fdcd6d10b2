package auth

import (
	"container/heap"
	"context"
	"sync"
)

// slots admits at most n holders at a time. Waiters are served by
// priority, highest first, and in arrival order among equals, so a client
// with its failure budget intact is not queued behind clients that have
// been failing (a flood from many addresses cannot starve a first login).
type slots struct {
	mu      sync.Mutex
	free    int
	seq     uint64
	waiters waitHeap
}

func newSlots(n int) *slots { return &slots{free: n} }

type waiter struct {
	prio    float64
	seq     uint64
	index   int // in the heap; -1 once removed
	ready   chan struct{}
	granted bool
}

// acquire waits for a slot until ctx ends, then returns ctx.Err().
func (s *slots) acquire(ctx context.Context, prio float64) error {
	s.mu.Lock()
	if s.free > 0 && len(s.waiters) == 0 {
		s.free--
		s.mu.Unlock()
		return nil
	}
	s.seq++
	w := &waiter{prio: prio, seq: s.seq, ready: make(chan struct{})}
	heap.Push(&s.waiters, w)
	s.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.granted {
		// Granted as the context ended: pass the slot on.
		s.releaseLocked()
	} else {
		heap.Remove(&s.waiters, w.index)
	}
	return ctx.Err()
}

func (s *slots) release() {
	s.mu.Lock()
	s.releaseLocked()
	s.mu.Unlock()
}

func (s *slots) releaseLocked() {
	if len(s.waiters) == 0 {
		s.free++
		return
	}
	w := heap.Pop(&s.waiters).(*waiter)
	w.granted = true
	close(w.ready)
}

// waitHeap orders waiters by priority (highest first), then arrival.
type waitHeap []*waiter

func (h waitHeap) Len() int { return len(h) }
func (h waitHeap) Less(i, j int) bool {
	if h[i].prio != h[j].prio {
		return h[i].prio > h[j].prio
	}
	return h[i].seq < h[j].seq
}
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *waitHeap) Push(x any) {
	w := x.(*waiter)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *waitHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.index = -1
	return w
}
