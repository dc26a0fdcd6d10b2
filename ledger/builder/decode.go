package builder

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/buildledger/buildledger/internal/der"
)

// A Sink receives what Decode reads while it reads it.
type Sink interface {
	// Job is called with the job's name as soon as it is read and has
	// passed the name checks, before any byte after it is read: a caller
	// can refuse a job it may not write to having read only the first
	// bytes. An error stops Decode, which returns it as is.
	Job(name string) error
	// File is called for every file, job files and then output files in
	// wire order, once its path has passed the checks and its size the
	// limits. data yields exactly f.Size bytes and then io.EOF; File may
	// read all of it, part of it or none (Decode skips the rest). An error
	// stops Decode, which returns it as is, unless reading data failed: then
	// that failure is returned (a truncated input is a *FormatError).
	File(f FileInfo, data io.Reader) error
}

// FileInfo describes a file Decode hands to a Sink.
type FileInfo struct {
	Job   bool   // a job (input) file rather than an output file
	Index int    // index among the job files or the output files
	Path  string // checked like Parse checks it
	Size  int64  // bytes of data, at most Limits.MaxFileSize
}

// readBuffer is the only buffer of Decode besides what it keeps (names,
// paths, script, console, result): file data passes through it.
const readBuffer = 32 << 10

// Decode reads an exec record from r as Parse reads one from memory, with
// memory bounded by Limits rather than by the input: file contents are not
// kept but handed to s (nil discards them), so an upload of any size can be
// stored as it arrives. It accepts exactly the inputs Parse accepts, with
// the same value except that every File.Data of the result is nil
// (FuzzDecode checks both against Parse). It reads r up to the end of the
// record and one byte more, to refuse trailing bytes; it stops at the first
// error, having read no further than the element at fault, so a record
// that claims more than Limits.MaxTotal is refused after its first bytes.
//
// Errors about the input are *FormatError (wrapping ErrLimit when about
// lim), though their text may differ from Parse's for the same input; a
// failed Read of r is a *ReadError wrapping the reader's error;
// errors of s are returned as they are.
//
// Elements whose size Limits bound (UUID, console, timestamps, result) are
// read into memory and checked by Parse's own code; the record's framing,
// the job and the files are read from the stream.
func Decode(r io.Reader, lim Limits, s Sink) (*Exec, error) {
	lim = lim.withDefaults()
	if s == nil {
		s = discard{}
	}
	d := &decoder{in: &input{r: bufio.NewReaderSize(r, readBuffer)}, lim: lim, sink: s,
		p: &parser{lim: lim, canonical: true}}
	e, err := d.exec()
	if err != nil {
		return nil, err
	}
	return e, nil
}

type discard struct{}

func (discard) Job(string) error               { return nil }
func (discard) File(FileInfo, io.Reader) error { return nil }

// input counts what it reads and turns a premature end into a *FormatError.
type input struct {
	r   *bufio.Reader
	off int64 // bytes consumed
}

// failed converts an error of the underlying reader.
func (in *input) failed(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errorf(int(in.off), "truncated: the input ends inside the exec record")
	}
	return &ReadError{Offset: in.off, Err: err}
}

// ReadError is Decode's error when its reader fails (other than by ending).
type ReadError struct {
	Offset int64 // bytes read before the failure
	Err    error
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("exec: reading the input at byte %d: %v", e.Offset, e.Err)
}

func (e *ReadError) Unwrap() error { return e.Err }

func (in *input) byte() (byte, error) {
	c, err := in.r.ReadByte()
	if err != nil {
		return 0, in.failed(err)
	}
	in.off++
	return c, nil
}

func (in *input) full(b []byte) error {
	n, err := io.ReadFull(in.r, b)
	in.off += int64(n)
	if err != nil {
		return in.failed(err)
	}
	return nil
}

// header is a DER element's identifier and length, read from the stream;
// its n contents octets follow at bodyOff.
type header struct {
	tag     byte
	off     int64
	n       int64
	bodyOff int64
}

// scope is a constructed element being read: its children end at end.
type scope struct {
	in  *input
	end int64
}

func (c *scope) more() bool { return c.in.off < c.end }

// sub is the scope of the contents of constructed element h.
func (c *scope) sub(h header) scope { return scope{in: c.in, end: h.bodyOff + h.n} }

// next reads one element header in strict DER (see der.Cursor.Next): the
// same rules, applied as the octets arrive, checking that the contents fit
// in the scope.
func (c *scope) next() (header, error) {
	in, off := c.in, c.in.off
	rest := c.end - off
	switch {
	case rest <= 0:
		return header{}, errorf(int(off), "missing")
	case rest == 1:
		return header{}, errorf(int(off), "truncated: no length after the identifier octet")
	}
	tag, err := in.byte()
	if err != nil {
		return header{}, err
	}
	if err := execDER.Identifier(int(off), tag); err != nil {
		return header{}, err
	}
	l, err := in.byte()
	if err != nil {
		return header{}, err
	}
	n := uint64(l)
	hdr := int64(2)
	if l >= 0x80 {
		k, err := execDER.LengthOctets(int(off), tag, l, rest-2)
		if err != nil {
			return header{}, err
		}
		var b [8]byte
		if err := in.full(b[:k]); err != nil {
			return header{}, err
		}
		if n, err = execDER.LongLength(int(off), tag, b[:k]); err != nil {
			return header{}, err
		}
		hdr = 2 + int64(k)
	}
	if err := execDER.Fits(int(off), tag, n, rest-hdr); err != nil {
		return header{}, err
	}
	return header{tag: tag, off: off, n: int64(n), bodyOff: off + hdr}, nil
}

// expect reads one element header and checks its tag.
func (c *scope) expect(tag byte) (header, error) {
	if !c.more() {
		return header{}, errorf(int(c.in.off), "missing (expected %s)", der.TagName(tag))
	}
	h, err := c.next()
	if err != nil {
		return header{}, err
	}
	if h.tag != tag {
		return header{}, errorf(int(h.off), "expected %s, found %s", der.TagName(tag), der.TagName(h.tag))
	}
	return h, nil
}

// end checks that the scope's elements have all been read.
func (c *scope) done() error {
	rest := c.end - c.in.off
	if rest <= 0 {
		return nil
	}
	off := c.in.off
	what := "element"
	if h, err := c.next(); err == nil {
		what = der.TagName(h.tag)
	}
	return errorf(int(off), "unexpected %s after the last field (%s)", what, der.TrailingBytes(int(rest)))
}

// body reads the contents of h, which the caller has bounded.
func (in *input) body(h header) ([]byte, error) {
	b := make([]byte, h.n)
	return b, in.full(b)
}

// element reads the contents of h into memory and returns a cursor over the
// whole element, for Parse's code. The header is written anew: next accepts
// only the one DER encoding of a header, so it is the input's.
func (in *input) element(h header) (der.Cursor, error) {
	b := der.AppendHeader(make([]byte, 0, int(h.bodyOff-h.off)+int(h.n)), h.tag, int(h.n))
	if int64(len(b)) != h.bodyOff-h.off {
		return der.Cursor{}, errorf(int(h.off), "internal error: header of %d bytes re-encoded in %d", h.bodyOff-h.off, len(b))
	}
	b = b[:cap(b)]
	if err := in.full(b[h.bodyOff-h.off:]); err != nil {
		return der.Cursor{}, err
	}
	return execDER.Cursor(b, int(h.off)), nil
}

// decoder holds the state of one Decode.
type decoder struct {
	in   *input
	lim  Limits
	sink Sink
	p    *parser // Parse's, for the elements read into memory
}

// sinkError marks an error of the Sink, which within must not rename.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return e.err.Error() }

func (d *decoder) exec() (*Exec, error) {
	top := scope{in: d.in, end: math.MaxInt64}
	if _, err := d.in.r.Peek(1); err == io.EOF {
		return nil, errorf(0, "empty input")
	}
	outer, err := top.next()
	if err != nil {
		return nil, unwrapSink(err)
	}
	switch outer.tag {
	case tagExplicit0:
	case tagExplicit1:
		return nil, errorf(int(outer.off), "[1] (builder's NULL placeholder for a later version) is not supported; only [0] is defined")
	default:
		return nil, errorf(int(outer.off), "expected [0] (an exec record), found %s", der.TagName(outer.tag))
	}
	if total := outer.bodyOff + outer.n; total > d.lim.MaxTotal {
		return nil, limitf(0, "input of %d bytes is larger than the limit of %d", total, d.lim.MaxTotal)
	}
	e, err := d.record(top.sub(outer))
	if err != nil {
		return nil, unwrapSink(err)
	}
	// Nothing may follow the record.
	if _, err := d.in.r.Peek(1); err != io.EOF {
		if err != nil {
			return nil, d.in.failed(err)
		}
		return nil, errorf(int(d.in.off), "trailing bytes after the exec record")
	}
	return e, nil
}

func unwrapSink(err error) error {
	var se *sinkError
	if errors.As(err, &se) {
		return se.err
	}
	return err
}

func (d *decoder) record(in scope) (*Exec, error) {
	seq, err := in.expect(der.TagSequence)
	if err != nil {
		return nil, err
	}
	c := in.sub(seq)
	e := new(Exec)
	if e.Job, err = d.job(&c); err != nil {
		return nil, within(err, "job")
	}
	cur, err := d.small(&c, 64, false) // longer than 16 is wrong; Parse says how
	if err == nil {
		e.UUID, err = d.p.uuid(&cur)
	}
	if err != nil {
		return nil, within(err, "uuid")
	}
	cur, err = d.small(&c, d.lim.MaxText, true)
	if err != nil {
		return nil, within(err, "console")
	}
	if e.Console, err = d.p.console(&cur); err != nil {
		return nil, err
	}
	// Two GeneralizedTimes with fractions: 2 × (2 + 19) bytes.
	cur, err = d.small(&c, int64(2*(2+der.GeneralizedTimeFracLen)), false)
	if err == nil {
		e.Started, e.Finished, err = d.p.timestamps(&cur)
	}
	if err != nil {
		return nil, within(err, "timestamps")
	}
	// [3] { UTF8String msg }: a header of at most 10 bytes and the message.
	cur, err = d.small(&c, d.lim.MaxText+10, true)
	if err == nil {
		e.Result, err = d.p.result(&cur)
	}
	if err != nil {
		return nil, within(err, "result")
	}
	if e.Output, err = d.files(&c, "output", "output file", false); err != nil {
		return nil, err
	}
	if err := c.done(); err != nil {
		return nil, err
	}
	if err := in.done(); err != nil {
		return nil, err
	}
	return e, nil
}

// small reads the next element of c, of at most max contents octets, into
// memory. At the end of c it returns an empty cursor, for Parse's code to
// report what is missing. Longer elements are refused: as exceeding Limits
// if limit, else as malformed (no valid element of the kind is that long).
func (d *decoder) small(c *scope, max int64, limit bool) (der.Cursor, error) {
	if !c.more() {
		return execDER.Cursor(nil, int(d.in.off)), nil
	}
	h, err := c.next()
	if err != nil {
		return der.Cursor{}, err
	}
	if h.n > max {
		if limit {
			return der.Cursor{}, limitf(int(h.off), "%d bytes, more than the limit of %d", h.n, max)
		}
		return der.Cursor{}, errorf(int(h.off), "%s of %d bytes is too long", der.TagName(h.tag), h.n)
	}
	return d.in.element(h)
}

func (d *decoder) job(c *scope) (Job, error) {
	var j Job
	seq, err := c.expect(der.TagSequence)
	if err != nil {
		return j, err
	}
	jc := c.sub(seq)
	name, err := jc.expect(der.TagUTF8String)
	if err != nil {
		return j, within(err, "name")
	}
	if name.n > MaxName {
		return j, &FormatError{Field: "name", Offset: int(name.off), Msg: fmt.Sprintf("is %d bytes long, more than %d", name.n, MaxName)}
	}
	b, err := d.in.body(name)
	if err != nil {
		return j, within(err, "name")
	}
	j.Name = string(b)
	if msg := checkName(j.Name); msg != "" {
		return j, &FormatError{Field: "name", Value: quote(j.Name), Offset: int(name.off), Msg: msg}
	}
	if err := d.sink.Job(j.Name); err != nil {
		return j, &sinkError{err}
	}
	script, err := jc.expect(der.TagUTF8String)
	if err != nil {
		return j, within(err, "script")
	}
	if script.n > d.lim.MaxText {
		return j, within(limitf(int(script.off), "%d bytes, more than the limit of %d", script.n, d.lim.MaxText), "script")
	}
	if b, err = d.in.body(script); err != nil {
		return j, within(err, "script")
	}
	j.Script = string(b)
	if j.Files, err = d.files(&jc, "files", "file", true); err != nil {
		return j, err
	}
	if jc.more() {
		plat, err := jc.expect(der.TagUTF8String)
		if err != nil {
			return j, within(err, "platform")
		}
		if plat.n > MaxName {
			return j, &FormatError{Field: "platform", Offset: int(plat.off), Msg: fmt.Sprintf("is %d bytes long, more than %d", plat.n, MaxName)}
		}
		if b, err = d.in.body(plat); err != nil {
			return j, within(err, "platform")
		}
		j.Platform = string(b)
		if j.Platform != "" {
			if msg := checkName(j.Platform); msg != "" {
				return j, &FormatError{Field: "platform", Value: quote(j.Platform), Offset: int(plat.off), Msg: msg}
			}
		}
	}
	return j, jc.done()
}

// files reads builder's "data", handing each file's contents to the sink.
func (d *decoder) files(c *scope, field, item string, job bool) ([]File, error) {
	seq, err := c.expect(der.TagSequence)
	if err != nil {
		return nil, within(err, "%s", field)
	}
	fc := c.sub(seq)
	var (
		files []File
		set   pathSet
	)
	for i := 0; fc.more(); i++ {
		if i >= d.lim.MaxFiles {
			return nil, within(limitf(int(fc.in.off), "more than %d files", d.lim.MaxFiles), "%s", field)
		}
		f, err := d.file(&fc, &set, i, job)
		if err != nil {
			return nil, within(err, "%s %d", item, i)
		}
		files = append(files, f)
	}
	return files, nil
}

func (d *decoder) file(c *scope, set *pathSet, i int, job bool) (File, error) {
	seq, err := c.expect(der.TagSequence)
	if err != nil {
		return File{}, err
	}
	fc := c.sub(seq)
	pe, err := fc.expect(der.TagUTF8String)
	if err != nil {
		return File{}, within(err, "path")
	}
	if pe.n > MaxPath { // before reading it
		return File{}, &FormatError{Field: "path", Offset: int(pe.off), Msg: fmt.Sprintf("is %d bytes long, more than %d", pe.n, MaxPath)}
	}
	b, err := d.in.body(pe)
	if err != nil {
		return File{}, within(err, "path")
	}
	path := string(b)
	if msg := checkPath(path); msg != "" {
		return File{}, &FormatError{Field: "path", Value: quote(path), Offset: int(pe.off), Msg: msg}
	}
	if msg := set.add(path, i); msg != "" {
		return File{}, &FormatError{Field: "path", Value: quote(path), Offset: int(pe.off), Msg: msg}
	}
	de, err := fc.expect(der.TagUTF8String)
	if err != nil {
		return File{}, within(err, "data")
	}
	if de.n > d.lim.MaxFileSize {
		return File{}, within(limitf(int(de.off), "%d bytes, more than the limit of %d", de.n, d.lim.MaxFileSize), "data")
	}
	data := &dataReader{in: d.in, left: de.n}
	if err := d.sink.File(FileInfo{Job: job, Index: i, Path: path, Size: de.n}, data); err != nil {
		if data.err != nil {
			return File{}, within(data.err, "data")
		}
		return File{}, &sinkError{err}
	}
	if _, err := io.Copy(io.Discard, data); err != nil {
		return File{}, within(err, "data")
	}
	if err := fc.done(); err != nil {
		return File{}, err
	}
	return File{Path: path}, nil
}

// dataReader yields one file's contents from the input.
type dataReader struct {
	in   *input
	left int64
	err  error // sticky: the input failed
}

func (r *dataReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.in.r.Read(p)
	r.in.off += int64(n)
	r.left -= int64(n)
	if err != nil && (err != io.EOF || r.left > 0) {
		r.err = r.in.failed(err)
		return n, r.err
	}
	return n, nil
}
