package builder

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/internal/der"
)

// Parse decodes the DER exec record that builder-server uploads (the body of
// builder-web's POST /upload). It accepts only the encodings builder
// writes, plus the UTCTime timestamps of older builders, and checks the
// values as described in the package documentation. All errors are
// *FormatError; those about lim wrap ErrLimit. Parse copies what it keeps:
// the result does not alias der.
func Parse(der []byte, lim Limits) (*Exec, error) {
	e, _, err := parse(der, lim)
	return e, err
}

// parser holds the state of one Parse.
type parser struct {
	lim Limits
	// canonical stays true while the input is exactly what Marshal writes
	// for the value read so far.
	canonical bool
}

// parse is Parse, and also reports whether Marshal reproduces der exactly.
func parse(der []byte, lim Limits) (*Exec, bool, error) {
	lim = lim.withDefaults()
	if int64(len(der)) > lim.MaxTotal {
		return nil, false, limitf(0, "input of %d bytes is larger than the limit of %d", len(der), lim.MaxTotal)
	}
	p := &parser{lim: lim, canonical: true}
	e, err := p.exec(der)
	if err != nil {
		return nil, false, err
	}
	return e, p.canonical, nil
}

func (p *parser) exec(rec []byte) (*Exec, error) {
	top := execDER.Cursor(rec, 0)
	outer, err := top.Next()
	if err != nil {
		if len(rec) == 0 {
			return nil, errorf(0, "empty input")
		}
		return nil, err
	}
	switch outer.Tag {
	case tagExplicit0:
	case tagExplicit1:
		return nil, errorf(outer.Off, "[1] (builder's NULL placeholder for a later version) is not supported; only [0] is defined")
	default:
		return nil, errorf(outer.Off, "expected [0] (an exec record), found %s", der.TagName(outer.Tag))
	}
	if top.More() {
		return nil, errorf(top.Off(), "%s after the exec record", der.TrailingBytes(top.Len()))
	}
	in := outer.Contents()
	seq, err := in.Expect(der.TagSequence)
	if err != nil {
		return nil, err
	}
	if err := in.End(); err != nil {
		return nil, err
	}
	c := seq.Contents()
	e := new(Exec)

	if e.Job, err = p.job(&c); err != nil {
		return nil, within(err, "job")
	}
	if e.UUID, err = p.uuid(&c); err != nil {
		return nil, within(err, "uuid")
	}
	if e.Console, err = p.console(&c); err != nil {
		return nil, err // already names "console" or "console line N"
	}
	if e.Started, e.Finished, err = p.timestamps(&c); err != nil {
		return nil, within(err, "timestamps")
	}
	if e.Result, err = p.result(&c); err != nil {
		return nil, within(err, "result")
	}
	if e.Output, err = p.files(&c, "output", "output file"); err != nil {
		return nil, err
	}
	if err := c.End(); err != nil {
		return nil, err
	}
	return e, nil
}

func (p *parser) job(c *der.Cursor) (Job, error) {
	var j Job
	seq, err := c.Expect(der.TagSequence)
	if err != nil {
		return j, err
	}
	jc := seq.Contents()
	name, err := jc.Expect(der.TagUTF8String)
	if err != nil {
		return j, within(err, "name")
	}
	j.Name = string(name.Body)
	if msg := checkName(j.Name); msg != "" {
		return j, &FormatError{Field: "name", Value: quote(j.Name), Offset: name.Off, Msg: msg}
	}
	script, err := jc.Expect(der.TagUTF8String)
	if err != nil {
		return j, within(err, "script")
	}
	if int64(len(script.Body)) > p.lim.MaxText {
		return j, within(limitf(script.Off, "%d bytes, more than the limit of %d", len(script.Body), p.lim.MaxText), "script")
	}
	j.Script = string(script.Body)
	if j.Files, err = p.files(&jc, "files", "file"); err != nil {
		return j, err
	}
	if jc.More() {
		plat, err := jc.Expect(der.TagUTF8String)
		if err != nil {
			return j, within(err, "platform")
		}
		j.Platform = string(plat.Body)
		if j.Platform == "" {
			p.canonical = false // Marshal leaves an empty platform out
		} else if msg := checkName(j.Platform); msg != "" {
			return j, &FormatError{Field: "platform", Value: quote(j.Platform), Offset: plat.Off, Msg: msg}
		}
	}
	return j, jc.End()
}

func (p *parser) uuid(c *der.Cursor) (uuid.UUID, error) {
	var u uuid.UUID
	e, err := c.Expect(der.TagUTF8String)
	if err != nil {
		return u, err
	}
	if len(e.Body) != len(u) {
		return u, errorf(e.Off, "is %d bytes, want the 16 raw bytes of a UUID", len(e.Body))
	}
	copy(u[:], e.Body)
	if u == uuid.Nil {
		return u, errorf(e.Off, "is the nil UUID")
	}
	return u, nil
}

func (p *parser) console(c *der.Cursor) ([]Line, error) {
	seq, err := c.Expect(der.TagSequence)
	if err != nil {
		return nil, within(err, "console")
	}
	if int64(len(seq.Body)) > p.lim.MaxText {
		return nil, within(limitf(seq.Off, "%d bytes, more than the limit of %d", len(seq.Body), p.lim.MaxText), "console")
	}
	cc := seq.Contents()
	// One copy of the whole console; each line's text is a substring of it.
	text := string(seq.Body)
	var lines []Line
	for i := 0; cc.More(); i++ {
		if i >= p.lim.MaxConsoleLines {
			return nil, within(limitf(cc.Off(), "more than %d lines", p.lim.MaxConsoleLines), "console")
		}
		l, err := p.line(&cc, text, seq.BodyOff)
		if err != nil {
			return nil, within(err, "console line %d", i)
		}
		lines = append(lines, l)
	}
	// builder sends the newest line first.
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	return lines, nil
}

// line reads one console line; text is the console's contents as a string,
// starting at offset base of the input.
func (p *parser) line(c *der.Cursor, text string, base int) (Line, error) {
	seq, err := c.Expect(der.TagSequence)
	if err != nil {
		return Line{}, err
	}
	lc := seq.Contents()
	d, err := lc.Expect(der.TagInteger)
	if err != nil {
		return Line{}, within(err, "delta")
	}
	delta, err := d.Int()
	if err != nil {
		return Line{}, within(err, "delta")
	}
	data, err := lc.Expect(der.TagUTF8String)
	if err != nil {
		return Line{}, within(err, "data")
	}
	if err := lc.End(); err != nil {
		return Line{}, err
	}
	start := data.BodyOff - base
	return Line{Delta: time.Duration(delta), Data: text[start : start+len(data.Body)]}, nil
}

func (p *parser) timestamps(c *der.Cursor) (started, finished time.Time, err error) {
	seq, err := c.Expect(der.TagSequence)
	if err != nil {
		return started, finished, err
	}
	tc := seq.Contents()
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"started", &started}, {"finished", &finished}} {
		e, err := tc.Next()
		if err != nil {
			if !tc.More() {
				err = errorf(tc.Off(), "missing (expected UTCTime or GeneralizedTime)")
			}
			return started, finished, within(err, "%s", f.name)
		}
		t, canonical, err := parseTime(e)
		if err != nil {
			return started, finished, within(err, "%s", f.name)
		}
		if !canonical {
			p.canonical = false
		}
		*f.t = t
	}
	if err := tc.End(); err != nil {
		return started, finished, err
	}
	return started, finished, checkOrder(started, finished, seq.Off)
}

func (p *parser) result(c *der.Cursor) (Result, error) {
	e, err := c.Next()
	if err != nil {
		if !c.More() {
			err = errorf(c.Off(), "missing (expected [0]..[3])")
		}
		return Result{}, err
	}
	var kind ResultKind
	switch e.Tag {
	case tagExplicit0:
		kind = ResultExited
	case tagExplicit1:
		kind = ResultSignalled
	case tagExplicit2:
		kind = ResultStopped
	case tagExplicit3:
		kind = ResultMsg
	default:
		return Result{}, errorf(e.Off, "expected [0] exited, [1] signalled, [2] stopped or [3] msg, found %s", der.TagName(e.Tag))
	}
	rc := e.Contents()
	var r Result
	if kind == ResultMsg {
		m, err := rc.Expect(der.TagUTF8String)
		if err != nil {
			return r, within(err, "msg")
		}
		if int64(len(m.Body)) > p.lim.MaxText {
			return r, within(limitf(m.Off, "%d bytes, more than the limit of %d", len(m.Body), p.lim.MaxText), "msg")
		}
		r = Result{Kind: kind, Msg: string(m.Body)}
	} else {
		ie, err := rc.Expect(der.TagInteger)
		if err != nil {
			return r, within(err, "%s", kind)
		}
		v, err := ie.Int()
		if err != nil {
			return r, within(err, "%s", kind)
		}
		if int64(int(v)) != v { // only where int has 32 bits
			return r, errorf(ie.Off, "%s code %d does not fit in an int here", kind, v)
		}
		r = Result{Kind: kind, Code: int(v)}
	}
	return r, rc.End()
}

// files reads builder's "data": SEQUENCE OF SEQUENCE { path, data }.
func (p *parser) files(c *der.Cursor, field, item string) ([]File, error) {
	seq, err := c.Expect(der.TagSequence)
	if err != nil {
		return nil, within(err, "%s", field)
	}
	fc := seq.Contents()
	var (
		files []File
		set   pathSet
	)
	for i := 0; fc.More(); i++ {
		if i >= p.lim.MaxFiles {
			return nil, within(limitf(fc.Off(), "more than %d files", p.lim.MaxFiles), "%s", field)
		}
		f, err := p.file(&fc, &set, i)
		if err != nil {
			return nil, within(err, "%s %d", item, i)
		}
		files = append(files, f)
	}
	return files, nil
}

func (p *parser) file(c *der.Cursor, set *pathSet, i int) (File, error) {
	seq, err := c.Expect(der.TagSequence)
	if err != nil {
		return File{}, err
	}
	fc := seq.Contents()
	pe, err := fc.Expect(der.TagUTF8String)
	if err != nil {
		return File{}, within(err, "path")
	}
	if len(pe.Body) > MaxPath { // before copying it
		return File{}, &FormatError{Field: "path", Value: quote(string(pe.Body[:maxQuote])), Offset: pe.Off,
			Msg: fmt.Sprintf("is %d bytes long, more than %d", len(pe.Body), MaxPath)}
	}
	path := string(pe.Body)
	if msg := checkPath(path); msg != "" {
		return File{}, &FormatError{Field: "path", Value: quote(path), Offset: pe.Off, Msg: msg}
	}
	if msg := set.add(path, i); msg != "" {
		return File{}, &FormatError{Field: "path", Value: quote(path), Offset: pe.Off, Msg: msg}
	}
	de, err := fc.Expect(der.TagUTF8String)
	if err != nil {
		return File{}, within(err, "data")
	}
	if int64(len(de.Body)) > p.lim.MaxFileSize {
		return File{}, within(limitf(de.Off, "%d bytes, more than the limit of %d", len(de.Body), p.lim.MaxFileSize), "data")
	}
	if err := fc.End(); err != nil {
		return File{}, err
	}
	return File{Path: path, Data: clone(de.Body)}, nil
}

// clone copies b; an empty b gives nil.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
