package rebuilder

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/buildledger/buildledger/ledger/builder"
)

// MaxLineBytes is the longest console line kept as one line; longer output
// without a newline is split into lines of this size.
const MaxLineBytes = 64 << 10

// notePrefix starts the console lines Run adds itself, so that they cannot
// be mistaken for the script's output.
const notePrefix = "buildledger: "

// console collects the lines of a job's output within bounds: once the
// first half of the line or byte budget is used, later lines go to a tail
// that keeps only the newest ones, and the lines dropped in between are
// replaced by one note. A failing build's last lines, which say why, are
// kept however much it printed before.
type console struct {
	start time.Time
	live  io.Writer // receives every line as it comes, kept or not; may be nil

	headLines, tailLines int   // line budgets
	headBytes, tailBytes int64 // byte budgets

	head, tail   []builder.Line
	headNotes    int   // notes in head, outside its line budget
	hb, tb       int64 // bytes held in head and tail
	dropped      int
	droppedBytes int64
	lastDropped  time.Duration
}

// newConsole bounds the console to maxLines lines (the note included) and
// maxBytes bytes of line data (the note excluded).
func newConsole(start time.Time, maxLines int, maxBytes int64, live io.Writer) *console {
	maxLines = max(maxLines, 3)
	h := (maxLines - 1) / 2
	return &console{
		start: start, live: live,
		headLines: h, tailLines: maxLines - 1 - h,
		headBytes: maxBytes / 2, tailBytes: maxBytes - maxBytes/2,
	}
}

// add records one line, without its newline.
func (c *console) add(data []byte) {
	l := builder.Line{Delta: time.Since(c.start), Data: string(data)}
	if c.live != nil {
		_, _ = fmt.Fprintf(c.live, "%s\n", data)
	}
	n := int64(len(data))
	if c.dropped == 0 && len(c.tail) == 0 && len(c.head)-c.headNotes < c.headLines && c.hb+n <= c.headBytes {
		c.head = append(c.head, l)
		c.hb += n
		return
	}
	c.tail = append(c.tail, l)
	c.tb += n
	for len(c.tail) > c.tailLines || c.tb > c.tailBytes {
		d := c.tail[0]
		c.tail = c.tail[1:]
		c.tb -= int64(len(d.Data))
		c.dropped++
		c.droppedBytes += int64(len(d.Data))
		c.lastDropped = d.Delta
	}
}

// note adds a line of the rebuilder's own, outside the budgets. A note
// made while the head still takes lines (such as one before the script
// starts) goes there, so that it does not end the head.
func (c *console) note(format string, args ...any) {
	l := builder.Line{Delta: time.Since(c.start), Data: notePrefix + fmt.Sprintf(format, args...)}
	if c.live != nil {
		_, _ = fmt.Fprintf(c.live, "%s\n", l.Data)
	}
	if c.dropped == 0 && len(c.tail) == 0 {
		c.head = append(c.head, l)
		c.headNotes++
		return
	}
	c.tail = append(c.tail, l)
}

// lines returns the kept lines, oldest first, with a note where lines were
// dropped.
func (c *console) lines() []builder.Line {
	out := make([]builder.Line, 0, len(c.head)+1+len(c.tail))
	out = append(out, c.head...)
	if c.dropped > 0 {
		out = append(out, builder.Line{Delta: c.lastDropped, Data: fmt.Sprintf(
			"%sconsole truncated: %d lines (%d bytes) left out here", notePrefix, c.dropped, c.droppedBytes)})
	}
	return append(out, c.tail...)
}

// read adds the lines of r until it ends, splitting lines longer than
// MaxLineBytes. It returns nil at EOF, and otherwise the read error (such
// as an expired deadline) after adding what was read.
func (c *console) read(r io.Reader) error {
	br := bufio.NewReaderSize(r, MaxLineBytes)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			c.add(line[:len(line)-1])
		case errors.Is(err, bufio.ErrBufferFull):
			c.add(line)
		default:
			if len(line) > 0 {
				c.add(line)
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
