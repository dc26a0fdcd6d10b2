package scheduler

import (
	"fmt"
	"sync"
	"time"

	"github.com/buildledger/buildledger/ledger/builder"
)

// Limits of the console the scheduler keeps of a running job, for
// observers and for the uploaded build (the worker's own limits are
// usually tighter).
const (
	DefaultMaxConsoleLines = 100_000
	DefaultMaxConsoleBytes = 16 << 20
	// observerQueue is how many lines an observer may fall behind before
	// lines are skipped for it (builder: 100, silently).
	observerQueue = 256
)

// Line is one console line of a running job: the time since the job
// started and the text.
type Line struct {
	Delta time.Duration
	Text  string
}

// Event is what an observer receives: a console line, or, with End set,
// the end of the job (Text then says how it ended, e.g. "exited 0").
type Event struct {
	Line
	End bool
	// Skipped counts lines left out before this one because the observer
	// fell behind.
	Skipped int
}

// console is the bounded console of one running job and its observers.
type console struct {
	mu        sync.Mutex
	lines     []Line
	bytes     int
	left      int // lines not kept (over the limits)
	leftBytes int
	maxLines  int
	maxBytes  int
	ended     bool
	end       Line
	observers map[*observer]struct{}
}

type observer struct {
	ch      chan Event
	skipped int
}

func newConsole(maxLines, maxBytes int) *console {
	return &console{maxLines: maxLines, maxBytes: maxBytes, observers: map[*observer]struct{}{}}
}

// add appends a line and hands it to every observer.
func (c *console) add(l Line) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	if len(c.lines) < c.maxLines && c.bytes+len(l.Text) <= c.maxBytes {
		c.lines = append(c.lines, l)
		c.bytes += len(l.Text)
	} else {
		c.left++
		c.leftBytes += len(l.Text)
	}
	for o := range c.observers {
		o.send(Event{Line: l})
	}
}

func (o *observer) send(e Event) {
	e.Skipped = o.skipped
	select {
	case o.ch <- e:
		o.skipped = 0
	default:
		o.skipped++
	}
}

// finish ends the console: observers get the end event and their channels
// are closed. It returns the lines to record, with a note of what the
// limits left out.
func (c *console) finish(end Line) []builder.Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ended {
		c.ended = true
		c.end = end
		for o := range c.observers {
			// The end is always delivered: make room for it.
			select {
			case o.ch <- Event{Line: end, End: true, Skipped: o.skipped}:
			default:
				select {
				case <-o.ch:
					o.skipped++
				default:
				}
				o.ch <- Event{Line: end, End: true, Skipped: o.skipped}
			}
			close(o.ch)
		}
		c.observers = nil
	}
	out := make([]builder.Line, 0, len(c.lines)+1)
	for _, l := range c.lines {
		out = append(out, builder.Line{Delta: l.Delta, Data: l.Text})
	}
	if c.left > 0 {
		last := time.Duration(0)
		if len(c.lines) > 0 {
			last = c.lines[len(c.lines)-1].Delta
		}
		out = append(out, builder.Line{Delta: last, Data: fmt.Sprintf(
			"[scheduler: %d further lines (%d bytes) left out: the console limit is %d lines or %d bytes]",
			c.left, c.leftBytes, c.maxLines, c.maxBytes)})
	}
	return out
}

// observe returns the lines so far and a channel of what follows; cancel
// stops the subscription. For an ended console the channel holds just the
// end.
func (c *console) observe() (past []Line, ch <-chan Event, cancel func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// No copy: lines is only appended to, so the first len(lines)
	// elements never change (the cap stops an append through past).
	past = c.lines[:len(c.lines):len(c.lines)]
	o := &observer{ch: make(chan Event, observerQueue)}
	if c.ended {
		o.ch <- Event{Line: c.end, End: true}
		close(o.ch)
		return past, o.ch, func() {}
	}
	c.observers[o] = struct{}{}
	return past, o.ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.observers[o]; ok {
			delete(c.observers, o)
			close(o.ch)
		}
	}
}
