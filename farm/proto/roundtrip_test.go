package proto

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

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
	Reschedule{Name: "a", Next: Time{T: time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)}, Period: Never},
	Reschedule{Name: "a", Next: Time{T: time.Date(0, 1, 1, 0, 0, 0, 1e6, time.UTC)}, Period: Hourly},
	Reschedule{Next: Time{T: time.Date(2050, 12, 31, 23, 59, 59, 0, time.UTC), Form: TimeUTC}},
	Reschedule{Next: Time{T: time.Date(1951, 1, 1, 0, 0, 0, 0, time.UTC), Form: TimeUTC}},
	Reschedule{Next: Time{T: time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC), Form: TimeGeneralizedZeroFraction}},
	InfoReply{},
	OldExecute{},
	OldExecute{Name: "j"},
	OldInfoReply{},
	OldInfoReply{
		Schedule: []ScheduleItem{{Next: Time{T: time.Date(2021, 11, 1, 0, 0, 0, 0, time.UTC), Form: TimeUTC}, Period: Weekly, Job: Job{Script: &ScriptJob{Name: "a"}}}},
		Running:  []Running{{Started: Time{T: time.Date(2021, 11, 1, 0, 0, 0, 7e6, time.UTC)}, UUID: testUUID, Job: ScriptJob{Name: "r", Platform: str("p")}}},
	},
	InfoReply{
		Schedule: []ScheduleItem{
			{Next: Time{T: time.Date(2025, 6, 1, 0, 0, 0, 123e6, time.UTC)}, Period: Daily, Job: Job{Script: &ScriptJob{Name: "a", Script: "b", Platform: str("c")}}},
			{Next: Time{T: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), Form: TimeUTC}, Period: Hourly, Job: Job{Orb: &OrbBuildJob{Name: "d", OpamPackage: "e"}}},
		},
		Queues: []Queue{{Platform: "x"}, {Platform: "y", Jobs: []Job{{Orb: &OrbBuildJob{}}, {Script: &ScriptJob{Files: manyFiles(2)}}}}},
		Running: []Running{
			{Started: Time{T: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}, UUID: testUUID, Job: ScriptJob{Name: "r"}},
			{Started: Time{T: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), Form: TimeGeneralizedZeroFraction}, UUID: uuid.Max, Job: ScriptJob{Name: "s", Platform: str("p")}},
		},
		DroppedPlatforms: []string{"", "z"},
	},
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
		TagJobRequested, TagDropPlatform, TagSuccess, TagFailure, TagExecute, TagUndropPlatform,
		TagReschedule, TagInfoReply, TagOldInfoReply, TagOldExecute} {
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

// TestMarshalTime: Marshal writes a time in UTC and drops what is below a
// millisecond, as builder does.
func TestMarshalTime(t *testing.T) {
	east := time.FixedZone("east", 2*3600)
	for _, tc := range []struct {
		t    Time
		want string
	}{
		{Time{T: time.Date(2024, 1, 2, 5, 4, 5, 0, east)}, "20240102030405Z"},
		{Time{T: time.Date(2024, 1, 2, 3, 4, 5, 999999, time.UTC)}, "20240102030405Z"},
		{Time{T: time.Date(2024, 1, 2, 3, 4, 5, 1999999, time.UTC)}, "20240102030405.001Z"},
		{Time{T: time.Date(2024, 1, 2, 3, 4, 5, 999999, time.UTC), Form: TimeGeneralizedZeroFraction}, "20240102030405.000Z"},
		{Time{T: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Form: TimeUTC}, "240102030405Z"},
		{Time{T: time.Date(1960, 1, 2, 3, 4, 5, 0, time.UTC), Form: TimeUTC}, "600102030405Z"},
	} {
		b, err := appendTime(nil, tc.t)
		if err != nil {
			t.Fatalf("%v: %v", tc.t, err)
		}
		if got := string(b[2:]); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.t, got, tc.want)
		}
	}
}
