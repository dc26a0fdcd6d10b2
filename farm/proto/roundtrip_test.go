package proto

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/google/uuid"
)

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func manyFiles(n int) []builder.File {
	fs := make([]builder.File, n)
	for i := range fs {
		fs[i] = builder.File{Path: "dir/" + strings.Repeat("x", i%50+1)}
		if n := i % 300; n > 0 { // empty data decodes as nil
			fs[i].Data = bytes.Repeat([]byte{byte(i)}, n)
		}
	}
	return fs
}

// roundTrips holds values of every implemented alternative, with edge
// cases: empty and binary strings, integer extremes, absent and present
// optional fields, large and many files.
var roundTrips = []Cmd{
	JobRequested{},
	JobRequested{Platform: "ubuntu-20.04"},
	JobSchedule{UUID: uuid.Nil, Job: ScriptJob{}},
	JobSchedule{UUID: testUUID, Job: ScriptJob{Name: "n", Script: string(allBytes()), Platform: str("")}},
	JobSchedule{UUID: testUUID, Job: ScriptJob{Name: "n", Script: strings.Repeat("s", 70000), Files: manyFiles(3), Platform: str("freebsd-14")}},
	JobFinished{UUID: testUUID, Result: builder.Result{Kind: builder.ResultExited, Code: maxOCamlInt}},
	JobFinished{UUID: testUUID, Result: builder.Result{Kind: builder.ResultSignalled, Code: minOCamlInt}},
	JobFinished{UUID: testUUID, Result: builder.Result{Kind: builder.ResultStopped, Code: 128}},
	JobFinished{UUID: testUUID, Result: builder.Result{Kind: builder.ResultMsg}},
	JobFinished{UUID: testUUID, Result: builder.Result{Kind: builder.ResultMsg, Msg: string(allBytes())}, Data: manyFiles(2000)},
	JobFinished{UUID: testUUID, Result: builder.Result{Kind: builder.ResultExited, Code: 1},
		Data: []builder.File{{Path: "big", Data: bytes.Repeat(allBytes(), 70000)}, {Path: "/abs/../odd", Data: nil}}},
	Output{UUID: testUUID},
	Output{UUID: testUUID, Line: string(allBytes()), Timestamp: i64(0)},
	Output{UUID: testUUID, Line: "x", Timestamp: i64(-1)},
	Output{UUID: testUUID, Line: "x", Timestamp: i64(maxOCamlInt)},
	Output{UUID: testUUID, Line: "x", Timestamp: i64(minOCamlInt)},
	Schedule{Period: Hourly, Job: ScriptJob{Name: "a", Script: "b", Platform: str("c")}},
	Schedule{Period: Never, Job: ScriptJob{Name: "a", Script: "b"}},
	Info{},
	Unschedule{},
	Unschedule{Name: "job-with-a-long-name-" + strings.Repeat("n", 300)},
	Observe{UUID: testUUID},
	Observe{UUID: uuid.Max},
	ScheduleOrbBuild{Period: Daily, Job: OrbBuildJob{Name: "solo5-hello", OpamPackage: "hello"}},
	ScheduleOrbBuild{Period: Weekly},
	ClientHello{Role: RoleClient, Version: 13},
	ClientHello{Role: RoleWorker, Version: -129},
	ClientHello{Role: RoleWorker, Version: 128},
	ServerHello{},
	DropPlatform{Platform: "x"},
	DropPlatform{},
	Success{},
	Failure{},
	Failure{Msg: "unknown job \"foo\""},
	Execute{Name: "a"},
	Execute{Name: "a", Platform: str("")},
	UndropPlatform{Platform: "y"},
}

// TestRoundTrip: Unmarshal(Marshal(v)) == v for every value, the encoding
// is framed and read back, and every implemented alternative is covered.
func TestRoundTrip(t *testing.T) {
	seen := map[int]bool{}
	for i, c := range roundTrips {
		seen[c.Tag()] = true
		der, err := Marshal(c)
		if err != nil {
			t.Fatalf("%d %T: Marshal: %v", i, c, err)
		}
		if der[0] != 0xa0|byte(c.Tag()) {
			t.Errorf("%d %T: outer tag 0x%02x, want [%d]", i, c, der[0], c.Tag())
		}
		got, err := Unmarshal(der)
		if err != nil {
			t.Fatalf("%d %T: Unmarshal: %v", i, c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("%d %T: round trip changed the value:\n got %.300v\nwant %.300v", i, c, got, c)
		}
		var buf bytes.Buffer
		if err := WriteCmd(&buf, c, DefaultMaxFrame); err != nil {
			t.Fatalf("%d %T: WriteCmd: %v", i, c, err)
		}
		if buf.Len() != HeaderSize+len(der) {
			t.Fatalf("%d %T: frame of %d bytes, want %d", i, c, buf.Len(), HeaderSize+len(der))
		}
		got, err = ReadCmd(&buf, DefaultMaxFrame)
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("%d %T: ReadCmd = %.300v, %v", i, c, got, err)
		}
	}
	for _, tag := range []int{TagJobSchedule, TagJobFinished, TagOutput, TagSchedule, TagInfo,
		TagUnschedule, TagObserve, TagScheduleOrbBuild, TagClientHello, TagServerHello,
		TagJobRequested, TagDropPlatform, TagSuccess, TagFailure, TagExecute, TagUndropPlatform} {
		if !seen[tag] {
			t.Errorf("no round-trip value for [%d] %s", tag, name(tag))
		}
	}
}

// TestUnmarshalDoesNotAlias: the decoded value keeps no reference to the
// payload.
func TestUnmarshalDoesNotAlias(t *testing.T) {
	c := JobFinished{UUID: testUUID, Result: builder.Result{Kind: builder.ResultMsg, Msg: "m"},
		Data: []builder.File{{Path: "p", Data: []byte("data")}}}
	der, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(der)
	if err != nil {
		t.Fatal(err)
	}
	for i := range der {
		der[i] = 0
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("value changed with the payload: %#v", got)
	}
}
