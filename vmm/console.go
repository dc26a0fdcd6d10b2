package vmm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Line is one line of a unikernel's console output.
type Line struct {
	Seq  uint64    `json:"seq"` // 1 for the first line the unikernel ever printed
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// ConsoleQuery selects buffered lines: the last Count, or those at or
// after Since, or (both zero) all; Follow then streams new lines.
type ConsoleQuery struct {
	Since  time.Time `json:"since,omitzero"`
	Count  int       `json:"count,omitempty"`
	Follow bool      `json:"follow,omitempty"`
}

// console is a unikernel's ring buffer of output lines, kept across its
// restarts. Followers wait on wake, which is closed and replaced at every
// append (a broadcast); a follower that falls more than the ring behind
// is told how many lines it missed.
type console struct {
	now func() time.Time

	mu     sync.Mutex
	ring   []Line
	start  int    // index of the oldest line in ring
	next   uint64 // Seq of the next line
	wake   chan struct{}
	closed bool
}

func newConsole(size int, now func() time.Time) *console {
	return &console{now: now, ring: make([]Line, 0, size), next: 1, wake: make(chan struct{})}
}

func (c *console) append(text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	l := Line{Seq: c.next, Time: c.now(), Text: text}
	c.next++
	if len(c.ring) < cap(c.ring) {
		c.ring = append(c.ring, l)
	} else {
		c.ring[c.start] = l
		c.start = (c.start + 1) % len(c.ring)
	}
	close(c.wake)
	c.wake = make(chan struct{})
}

// maxLine is the longest console line kept; longer ones are split.
const maxLine = 64 << 10

// copy reads lines until r ends, splitting overlong lines, and keeps
// reading (and dropping) after any error, so a unikernel never blocks on
// or dies from (SIGPIPE) a console nobody reads.
func (c *console) copy(r io.Reader) {
	br := bufio.NewReaderSize(r, maxLine)
	var line []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			if len(line) > 0 {
				c.append(string(line))
			}
			io.Copy(io.Discard, br)
			return
		}
		line = append(line, chunk...)
		if isPrefix && len(line) < maxLine {
			continue
		}
		c.append(string(line))
		line = line[:0]
	}
}

// from returns the buffered lines with Seq ≥ seq, how many lines before
// them were lost, and a channel closed when more arrive.
func (c *console) from(seq uint64) (lines []Line, lost uint64, wake <-chan struct{}, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.ring {
		l := c.ring[(c.start+i)%len(c.ring)]
		if l.Seq >= seq {
			lines = append(lines, l)
		}
	}
	if len(lines) > 0 && lines[0].Seq > seq {
		lost = lines[0].Seq - seq
	} else if len(lines) == 0 && c.next > seq {
		lost = c.next - seq
	}
	return lines, lost, c.wake, c.closed
}

// query returns the buffered lines q selects and the Seq to follow from.
func (c *console) query(q ConsoleQuery) ([]Line, uint64) {
	all, _, _, _ := c.from(0)
	var next uint64 = 1
	if n := len(all); n > 0 {
		next = all[n-1].Seq + 1
	} else {
		c.mu.Lock()
		next = c.next
		c.mu.Unlock()
	}
	switch {
	case q.Count > 0:
		if len(all) > q.Count {
			all = all[len(all)-q.Count:]
		}
	case !q.Since.IsZero():
		i := 0
		for i < len(all) && all[i].Time.Before(q.Since) {
			i++
		}
		all = all[i:]
	}
	return all, next
}

// follow calls fn for every line from seq on until ctx ends or the
// console closes (its unikernel was destroyed). A follower that fell
// behind gets a line saying how many it missed.
func (c *console) follow(ctx context.Context, seq uint64, fn func(Line) error) error {
	for {
		lines, lost, wake, closed := c.from(seq)
		if lost > 0 {
			if err := fn(Line{Time: c.now(), Text: fmt.Sprintf("[vmm: %d console lines dropped, the reader was too slow]", lost)}); err != nil {
				return err
			}
		}
		for _, l := range lines {
			if err := fn(l); err != nil {
				return err
			}
			seq = l.Seq + 1
		}
		if lost > 0 && len(lines) == 0 {
			seq += lost
		}
		if closed {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

func (c *console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.wake)
	}
}
