package proto

import (
	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/google/uuid"
)

// Unmarshal decodes one cmd from a frame's payload. It accepts exactly the
// DER that Marshal writes for some value (so Marshal(Unmarshal(p)) == p):
// strict DER, every element and tag in place, nothing after the cmd. The
// value does not alias p.
func Unmarshal(p []byte) (Cmd, error) {
	c := cursor{b: p}
	if !c.more() {
		return nil, errorf(0, "empty payload")
	}
	e, err := c.next()
	if err != nil {
		return nil, err
	}
	if err := c.end(); err != nil {
		return nil, err
	}
	if e.tag&0xe0 != 0xa0 {
		return nil, errorf(e.off, "expected a context tag [n] of builder's cmd CHOICE, found %s", tagName(e.tag))
	}
	tag := int(e.tag & 0x1f)
	in := e.contents()
	var cmd Cmd
	switch tag {
	case TagJobSchedule:
		cmd, err = decodeJobSchedule(&in)
	case TagJobFinished:
		cmd, err = decodeJobFinished(&in)
	case TagOutput:
		cmd, err = decodeOutput(&in)
	case TagSchedule:
		cmd, err = decodeSchedule(&in)
	case TagInfo:
		cmd, err = Info{}, expectNull(&in)
	case TagUnschedule:
		var s string
		s, err = expectString(&in)
		cmd = Unschedule{Name: s}
	case TagObserve:
		var u uuid.UUID
		u, err = expectUUID(&in)
		cmd = Observe{UUID: u}
	case TagScheduleOrbBuild:
		cmd, err = decodeScheduleOrbBuild(&in)
	case TagClientHello:
		cmd, err = decodeClientHello(&in)
	case TagServerHello:
		cmd, err = ServerHello{}, expectNull(&in)
	case TagJobRequested:
		var s string
		s, err = expectString(&in)
		cmd = JobRequested{Platform: s}
	case TagDropPlatform:
		var s string
		s, err = expectString(&in)
		cmd = DropPlatform{Platform: s}
	case TagSuccess:
		cmd, err = Success{}, expectNull(&in)
	case TagFailure:
		var s string
		s, err = expectString(&in)
		cmd = Failure{Msg: s}
	case TagExecute:
		cmd, err = decodeExecute(&in)
	case TagReschedule:
		cmd, err = decodeReschedule(&in)
	case TagInfoReply:
		cmd, err = decodeInfoReply(&in)
	case TagOldInfoReply:
		cmd, err = decodeOldInfoReply(&in)
	case TagOldExecute:
		var s string
		s, err = expectString(&in)
		cmd = OldExecute{Name: s}
	case TagUndropPlatform:
		var s string
		s, err = expectString(&in)
		cmd = UndropPlatform{Platform: s}
	default:
		if tag < len(tagInfo) && tagInfo[tag] != "" {
			return nil, errorf(e.off, "%s", tagInfo[tag])
		}
		return nil, errorf(e.off, "%s is not an alternative of builder's cmd", tagName(e.tag))
	}
	if err == nil {
		err = in.end()
	}
	if err != nil {
		return nil, within(err, "%s", name(tag))
	}
	return cmd, nil
}

func expectString(c *cursor) (string, error) {
	e, err := c.expect(tagUTF8String)
	if err != nil {
		return "", err
	}
	return string(e.body), nil
}

func expectUUID(c *cursor) (uuid.UUID, error) {
	e, err := c.expect(tagUTF8String)
	if err != nil {
		return uuid.UUID{}, within(err, "uuid")
	}
	if len(e.body) != 16 {
		return uuid.UUID{}, within(errorf(e.off, "UUID has %d bytes, not 16", len(e.body)), "uuid")
	}
	return uuid.UUID(e.body), nil
}

func expectInt(c *cursor) (int64, error) {
	e, err := c.expect(tagInteger)
	if err != nil {
		return 0, err
	}
	return parseInt(e)
}

// sequence reads a SEQUENCE and returns a cursor on its contents.
func sequence(c *cursor) (cursor, error) {
	e, err := c.expect(tagSequence)
	if err != nil {
		return cursor{}, err
	}
	return e.contents(), nil
}

// explicitNull reads a CHOICE of [0]..[n-1] EXPLICIT NULL and returns the
// index of the alternative.
func explicitNull(c *cursor, n int) (int, error) {
	if !c.more() {
		return 0, errorf(c.off, "missing (expected [0]..[%d])", n-1)
	}
	e, err := c.next()
	if err != nil {
		return 0, err
	}
	if e.tag < 0xa0 || int(e.tag) >= 0xa0+n {
		return 0, errorf(e.off, "expected [0]..[%d], found %s", n-1, tagName(e.tag))
	}
	in := e.contents()
	if err := expectNull(&in); err != nil {
		return 0, err
	}
	if err := in.end(); err != nil {
		return 0, err
	}
	return int(e.tag - 0xa0), nil
}

func decodePeriod(c *cursor) (Period, error) {
	i, err := explicitNull(c, 4)
	if err != nil {
		return 0, within(err, "period")
	}
	return Hourly + Period(i), nil
}

func decodeData(c *cursor) ([]builder.File, error) {
	in, err := sequence(c)
	if err != nil {
		return nil, err
	}
	var files []builder.File
	for i := 0; in.more(); i++ {
		f, err := decodeFile(&in)
		if err != nil {
			return nil, within(err, "file %d", i)
		}
		files = append(files, f)
	}
	return files, nil
}

func decodeFile(c *cursor) (builder.File, error) {
	in, err := sequence(c)
	if err != nil {
		return builder.File{}, err
	}
	pe, err := in.expect(tagUTF8String)
	if err != nil {
		return builder.File{}, within(err, "path")
	}
	if msg := checkPath(string(pe.body)); msg != "" {
		return builder.File{}, within(errorf(pe.off, "%s", msg), "path")
	}
	de, err := in.expect(tagUTF8String)
	if err != nil {
		return builder.File{}, within(err, "data")
	}
	if err := in.end(); err != nil {
		return builder.File{}, err
	}
	var data []byte
	if len(de.body) > 0 {
		data = append([]byte(nil), de.body...)
	}
	return builder.File{Path: string(pe.body), Data: data}, nil
}

func decodeScriptJob(c *cursor) (ScriptJob, error) {
	in, err := sequence(c)
	if err != nil {
		return ScriptJob{}, within(err, "job")
	}
	var j ScriptJob
	if j.Name, err = expectString(&in); err != nil {
		return ScriptJob{}, within(err, "job: name")
	}
	if j.Script, err = expectString(&in); err != nil {
		return ScriptJob{}, within(err, "job: script")
	}
	if j.Files, err = decodeData(&in); err != nil {
		return ScriptJob{}, within(err, "job: files")
	}
	if in.peek() == tagUTF8String {
		p, err := expectString(&in)
		if err != nil {
			return ScriptJob{}, within(err, "job: platform")
		}
		j.Platform = &p
	}
	if err := in.end(); err != nil {
		return ScriptJob{}, within(err, "job")
	}
	return j, nil
}

func decodeJobSchedule(c *cursor) (Cmd, error) {
	in, err := sequence(c)
	if err != nil {
		return nil, err
	}
	var m JobSchedule
	if m.UUID, err = expectUUID(&in); err != nil {
		return nil, err
	}
	if m.Job, err = decodeScriptJob(&in); err != nil {
		return nil, err
	}
	return m, in.end()
}

func decodeResult(c *cursor) (builder.Result, error) {
	if !c.more() {
		return builder.Result{}, errorf(c.off, "missing (expected [0]..[3])")
	}
	e, err := c.next()
	if err != nil {
		return builder.Result{}, err
	}
	in := e.contents()
	var r builder.Result
	switch e.tag {
	case 0xa0, 0xa1, 0xa2:
		v, err := expectInt(&in)
		if err != nil {
			return builder.Result{}, err
		}
		r = builder.Result{Kind: builder.ResultExited + builder.ResultKind(e.tag-0xa0), Code: int(v)}
	case 0xa3:
		s, err := expectString(&in)
		if err != nil {
			return builder.Result{}, err
		}
		r = builder.Result{Kind: builder.ResultMsg, Msg: s}
	default:
		return builder.Result{}, errorf(e.off, "expected [0]..[3], found %s", tagName(e.tag))
	}
	return r, in.end()
}

func decodeJobFinished(c *cursor) (Cmd, error) {
	in, err := sequence(c)
	if err != nil {
		return nil, err
	}
	var m JobFinished
	if m.UUID, err = expectUUID(&in); err != nil {
		return nil, err
	}
	if m.Result, err = decodeResult(&in); err != nil {
		return nil, within(err, "result")
	}
	if m.Data, err = decodeData(&in); err != nil {
		return nil, within(err, "data")
	}
	return m, in.end()
}

func decodeOutput(c *cursor) (Cmd, error) {
	in, err := sequence(c)
	if err != nil {
		return nil, err
	}
	var m Output
	if m.UUID, err = expectUUID(&in); err != nil {
		return nil, err
	}
	if m.Line, err = expectString(&in); err != nil {
		return nil, within(err, "output")
	}
	if in.peek() == tagInteger {
		v, err := expectInt(&in)
		if err != nil {
			return nil, within(err, "timestamp")
		}
		m.Timestamp = &v
	}
	return m, in.end()
}

func decodeSchedule(c *cursor) (Cmd, error) {
	in, err := sequence(c)
	if err != nil {
		return nil, err
	}
	var m Schedule
	if m.Period, err = decodePeriod(&in); err != nil {
		return nil, err
	}
	if m.Job, err = decodeScriptJob(&in); err != nil {
		return nil, err
	}
	return m, in.end()
}

func decodeScheduleOrbBuild(c *cursor) (Cmd, error) {
	in, err := sequence(c)
	if err != nil {
		return nil, err
	}
	var m ScheduleOrbBuild
	if m.Period, err = decodePeriod(&in); err != nil {
		return nil, err
	}
	if m.Job, err = decodeOrbBuildJob(&in); err != nil {
		return nil, err
	}
	return m, in.end()
}

func decodeClientHello(c *cursor) (Cmd, error) {
	in, err := sequence(c)
	if err != nil {
		return nil, err
	}
	i, err := explicitNull(&in, 2)
	if err != nil {
		return nil, within(err, "typ")
	}
	v, err := expectInt(&in)
	if err != nil {
		return nil, within(err, "version")
	}
	return ClientHello{Role: RoleClient + Role(i), Version: v}, in.end()
}

func decodeExecute(c *cursor) (Cmd, error) {
	in, err := sequence(c)
	if err != nil {
		return nil, err
	}
	var m Execute
	if m.Name, err = expectString(&in); err != nil {
		return nil, within(err, "job_name")
	}
	if in.peek() == tagUTF8String {
		p, err := expectString(&in)
		if err != nil {
			return nil, within(err, "platform")
		}
		m.Platform = &p
	}
	return m, in.end()
}
