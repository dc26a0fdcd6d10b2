package proto

import (
	"github.com/buildledger/buildledger/internal/der"
	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/google/uuid"
)

// Unmarshal decodes one cmd from a frame's payload. It accepts exactly the
// DER that Marshal writes for some value (so Marshal(Unmarshal(p)) == p):
// strict DER, every element and tag in place, nothing after the cmd. The
// value does not alias p.
func Unmarshal(p []byte) (Cmd, error) {
	c := cmdDER.Cursor(p, 0)
	if !c.More() {
		return nil, errorf(0, "empty payload")
	}
	e, err := c.Next()
	if err != nil {
		return nil, err
	}
	if err := c.End(); err != nil {
		return nil, err
	}
	if e.Tag&0xe0 != 0xa0 {
		return nil, errorf(e.Off, "expected a context tag [n] of builder's cmd CHOICE, found %s", tagName(e.Tag))
	}
	tag := int(e.Tag & 0x1f)
	in := e.Contents()
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
		cmd, err = Info{}, in.ExpectNull()
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
		cmd, err = ServerHello{}, in.ExpectNull()
	case TagJobRequested:
		var s string
		s, err = expectString(&in)
		cmd = JobRequested{Platform: s}
	case TagDropPlatform:
		var s string
		s, err = expectString(&in)
		cmd = DropPlatform{Platform: s}
	case TagSuccess:
		cmd, err = Success{}, in.ExpectNull()
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
			return nil, errorf(e.Off, "%s", tagInfo[tag])
		}
		return nil, errorf(e.Off, "%s is not an alternative of builder's cmd", tagName(e.Tag))
	}
	if err == nil {
		err = in.End()
	}
	if err != nil {
		return nil, within(err, "%s", name(tag))
	}
	return cmd, nil
}

func expectString(c *der.Cursor) (string, error) {
	e, err := c.Expect(der.TagUTF8String)
	if err != nil {
		return "", err
	}
	return string(e.Body), nil
}

func expectUUID(c *der.Cursor) (uuid.UUID, error) {
	e, err := c.Expect(der.TagUTF8String)
	if err != nil {
		return uuid.UUID{}, within(err, "uuid")
	}
	if len(e.Body) != 16 {
		return uuid.UUID{}, within(errorf(e.Off, "UUID has %d bytes, not 16", len(e.Body)), "uuid")
	}
	return uuid.UUID(e.Body), nil
}

func expectInt(c *der.Cursor) (int64, error) {
	e, err := c.Expect(der.TagInteger)
	if err != nil {
		return 0, err
	}
	return e.Int()
}

// sequence reads a SEQUENCE and returns a cursor on its contents.
func sequence(c *der.Cursor) (der.Cursor, error) {
	e, err := c.Expect(der.TagSequence)
	if err != nil {
		return der.Cursor{}, err
	}
	return e.Contents(), nil
}

// explicitNull reads a CHOICE of [0]..[n-1] EXPLICIT NULL and returns the
// index of the alternative.
func explicitNull(c *der.Cursor, n int) (int, error) {
	if !c.More() {
		return 0, errorf(c.Off(), "missing (expected [0]..[%d])", n-1)
	}
	e, err := c.Next()
	if err != nil {
		return 0, err
	}
	if e.Tag < 0xa0 || int(e.Tag) >= 0xa0+n {
		return 0, errorf(e.Off, "expected [0]..[%d], found %s", n-1, tagName(e.Tag))
	}
	in := e.Contents()
	if err := in.ExpectNull(); err != nil {
		return 0, err
	}
	if err := in.End(); err != nil {
		return 0, err
	}
	return int(e.Tag - 0xa0), nil
}

func decodePeriod(c *der.Cursor) (Period, error) {
	i, err := explicitNull(c, 4)
	if err != nil {
		return 0, within(err, "period")
	}
	return Hourly + Period(i), nil
}

func decodeData(c *der.Cursor) ([]builder.File, error) {
	in, err := sequence(c)
	if err != nil {
		return nil, err
	}
	var files []builder.File
	for i := 0; in.More(); i++ {
		f, err := decodeFile(&in)
		if err != nil {
			return nil, within(err, "file %d", i)
		}
		files = append(files, f)
	}
	return files, nil
}

func decodeFile(c *der.Cursor) (builder.File, error) {
	in, err := sequence(c)
	if err != nil {
		return builder.File{}, err
	}
	pe, err := in.Expect(der.TagUTF8String)
	if err != nil {
		return builder.File{}, within(err, "path")
	}
	if msg := checkPath(string(pe.Body)); msg != "" {
		return builder.File{}, within(errorf(pe.Off, "%s", msg), "path")
	}
	de, err := in.Expect(der.TagUTF8String)
	if err != nil {
		return builder.File{}, within(err, "data")
	}
	if err := in.End(); err != nil {
		return builder.File{}, err
	}
	var data []byte
	if len(de.Body) > 0 {
		data = append([]byte(nil), de.Body...)
	}
	return builder.File{Path: string(pe.Body), Data: data}, nil
}

func decodeScriptJob(c *der.Cursor) (ScriptJob, error) {
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
	if in.Peek() == der.TagUTF8String {
		p, err := expectString(&in)
		if err != nil {
			return ScriptJob{}, within(err, "job: platform")
		}
		j.Platform = &p
	}
	if err := in.End(); err != nil {
		return ScriptJob{}, within(err, "job")
	}
	return j, nil
}

func decodeJobSchedule(c *der.Cursor) (Cmd, error) {
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
	return m, in.End()
}

func decodeResult(c *der.Cursor) (builder.Result, error) {
	if !c.More() {
		return builder.Result{}, errorf(c.Off(), "missing (expected [0]..[3])")
	}
	e, err := c.Next()
	if err != nil {
		return builder.Result{}, err
	}
	in := e.Contents()
	var r builder.Result
	switch e.Tag {
	case 0xa0, 0xa1, 0xa2:
		v, err := expectInt(&in)
		if err != nil {
			return builder.Result{}, err
		}
		r = builder.Result{Kind: builder.ResultExited + builder.ResultKind(e.Tag-0xa0), Code: int(v)}
	case 0xa3:
		s, err := expectString(&in)
		if err != nil {
			return builder.Result{}, err
		}
		r = builder.Result{Kind: builder.ResultMsg, Msg: s}
	default:
		return builder.Result{}, errorf(e.Off, "expected [0]..[3], found %s", tagName(e.Tag))
	}
	return r, in.End()
}

func decodeJobFinished(c *der.Cursor) (Cmd, error) {
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
	return m, in.End()
}

func decodeOutput(c *der.Cursor) (Cmd, error) {
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
	if in.Peek() == der.TagInteger {
		v, err := expectInt(&in)
		if err != nil {
			return nil, within(err, "timestamp")
		}
		m.Timestamp = &v
	}
	return m, in.End()
}

func decodeSchedule(c *der.Cursor) (Cmd, error) {
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
	return m, in.End()
}

func decodeScheduleOrbBuild(c *der.Cursor) (Cmd, error) {
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
	return m, in.End()
}

func decodeClientHello(c *der.Cursor) (Cmd, error) {
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
	return ClientHello{Role: RoleClient + Role(i), Version: v}, in.End()
}

func decodeExecute(c *der.Cursor) (Cmd, error) {
	in, err := sequence(c)
	if err != nil {
		return nil, err
	}
	var m Execute
	if m.Name, err = expectString(&in); err != nil {
		return nil, within(err, "job_name")
	}
	if in.Peek() == der.TagUTF8String {
		p, err := expectString(&in)
		if err != nil {
			return nil, within(err, "platform")
		}
		m.Platform = &p
	}
	return m, in.End()
}
