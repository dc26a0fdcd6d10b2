package proto

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/google/uuid"
)

// unhex decodes hex written one TLV a line; "--" starts a comment (as in
// ASN.1) that runs to the end of the line.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "--")
		b.WriteString(strings.Join(strings.Fields(line), ""))
	}
	out, err := hex.DecodeString(b.String())
	if err != nil {
		t.Fatalf("bad hex literal: %v", err)
	}
	return out
}

func str(s string) *string { return &s }
func i64(v int64) *int64   { return &v }

var testUUID = uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff")

// uuidHex is testUUID as builder writes it: a UTF8String of the 16 raw bytes.
const uuidHex = "0c 10 00112233445566778899aabbccddeeff -- UTF8String, 16 bytes: the UUID\n"

// The golden cases: DER written by hand from builder's ASN.1 (lib/builder.ml,
// module Asn, value cmd), one TLV a line, lengths counted by hand. Every
// [n] is EXPLICIT: context-specific, constructed, 0xa0|n.
var goldens = []struct {
	name string
	der  string
	cmd  Cmd
}{
	{"job_requested", `
b0 05             -- [16] job_requested
   0c 03 783836   -- UTF8String "x86" (platform)
`, JobRequested{Platform: "x86"}},

	{"client_hello worker 5", `
ae 09             -- [14] client_hello
   30 07          -- SEQUENCE
      a1 02       -- typ: [1] worker
         05 00    -- NULL
      02 01 05    -- version: INTEGER 5
`, ClientHello{Role: RoleWorker, Version: 5}},

	{"client_hello client 13", `
ae 09             -- [14] client_hello
   30 07          -- SEQUENCE
      a0 02       -- typ: [0] client
         05 00    -- NULL
      02 01 0d    -- version: INTEGER 13
`, ClientHello{Role: RoleClient, Version: 13}},

	{"server_hello", `
af 02             -- [15] server_hello
   05 00          -- NULL
`, ServerHello{}},

	{"info", `
a6 02             -- [6] info
   05 00          -- NULL
`, Info{}},

	{"success", `
b2 02             -- [18] success
   05 00          -- NULL
`, Success{}},

	{"failure", `
b3 04             -- [19] failure
   0c 02 6e6f     -- UTF8String "no"
`, Failure{Msg: "no"}},

	{"job_schedule", `
a2 2d             -- [2] job_schedule, 45 bytes
   30 2b          -- SEQUENCE, 43 bytes
      ` + uuidHex + `
      30 17       -- job: script_job SEQUENCE, 23 bytes
         0c 05 68656c6c6f      -- name "hello"
         0c 07 6563686f206869  -- script "echo hi"
         30 00                 -- files: empty SEQUENCE OF
         0c 03 783836          -- platform "x86" (OPTIONAL, present)
`, JobSchedule{UUID: testUUID, Job: ScriptJob{Name: "hello", Script: "echo hi", Platform: str("x86")}}},

	{"job_finished exited 0", `
a3 28             -- [3] job_finished, 40 bytes
   30 26          -- SEQUENCE, 38 bytes
      ` + uuidHex + `
      a0 03       -- result: [0] exited
         02 01 00 -- INTEGER 0
      30 0d       -- data: SEQUENCE OF, 13 bytes
         30 0b    -- SEQUENCE, 11 bytes
            0c 05 62696e2f78  -- path "bin/x"
            0c 02 00ff        -- data: the bytes 00 ff
`, JobFinished{UUID: testUUID, Result: builder.Result{Kind: builder.ResultExited},
		Data: []builder.File{{Path: "bin/x", Data: []byte{0, 0xff}}}}},

	{"job_finished signalled -7 no data", `
a3 1b             -- [3] job_finished, 27 bytes
   30 19          -- SEQUENCE, 25 bytes
      ` + uuidHex + `
      a1 03       -- result: [1] signalled
         02 01 f9 -- INTEGER -7 (OCaml's Sys.sigkill)
      30 00       -- data: empty
`, JobFinished{UUID: testUUID, Result: builder.Result{Kind: builder.ResultSignalled, Code: -7}}},

	{"job_finished stopped 300", `
a3 1c             -- [3] job_finished, 28 bytes
   30 1a          -- SEQUENCE, 26 bytes
      ` + uuidHex + `
      a2 04       -- result: [2] stopped
         02 02 012c -- INTEGER 300
      30 00       -- data: empty
`, JobFinished{UUID: testUUID, Result: builder.Result{Kind: builder.ResultStopped, Code: 300}}},

	{"job_finished msg, 200-byte file (long-form lengths)", `
a3 81 f4          -- [3] job_finished, 244 bytes (long form: 81 = one length octet)
   30 81 f1       -- SEQUENCE, 241 bytes
      ` + uuidHex + `
      a3 09       -- result: [3] msg, 9 bytes
         0c 07 74696d656f7574  -- UTF8String "timeout"
      30 81 d1    -- data: SEQUENCE OF, 209 bytes
         30 81 ce -- SEQUENCE, 206 bytes
            0c 01 66          -- path "f"
            0c 81 c8          -- data: UTF8String, 200 bytes:
            ` + strings.Repeat("ab", 200) + `
`, JobFinished{UUID: testUUID, Result: builder.Result{Kind: builder.ResultMsg, Msg: "timeout"},
		Data: []builder.File{{Path: "f", Data: bytes.Repeat([]byte{0xab}, 200)}}}},

	{"output from a worker", `
a4 18             -- [4] output, 24 bytes
   30 16          -- SEQUENCE, 22 bytes
      ` + uuidHex + `
      0c 02 6869  -- output "hi"; timestamp (OPTIONAL) absent
`, Output{UUID: testUUID, Line: "hi"}},

	{"output to an observer", `
a4 1d             -- [4] output, 29 bytes
   30 1b          -- SEQUENCE, 27 bytes
      ` + uuidHex + `
      0c 02 6869       -- output "hi"
      02 03 0f4240     -- timestamp: INTEGER 1000000 (ns)
`, Output{UUID: testUUID, Line: "hi", Timestamp: i64(1000000)}},

	{"schedule daily, old script_job without platform", `
a5 10             -- [5] schedule, 16 bytes
   30 0e          -- SEQUENCE, 14 bytes
      a1 02       -- period: [1] daily
         05 00    -- NULL
      30 08       -- job: script_job, 8 bytes
         0c 01 6a -- name "j"
         0c 01 73 -- script "s"
         30 00    -- files: empty; platform absent
`, Schedule{Period: Daily, Job: ScriptJob{Name: "j", Script: "s"}}},

	{"schedule hourly, job files", `
a5 1c             -- [5] schedule, 28 bytes
   30 1a          -- SEQUENCE, 26 bytes
      a0 02 05 00 -- period: [0] hourly, NULL
      30 14       -- job: script_job, 20 bytes
         0c 01 6a -- name "j"
         0c 00    -- script ""
         30 0a    -- files, 10 bytes
            30 08 -- SEQUENCE
               0c 03 612f62   -- path "a/b"
               0c 01 63       -- data "c"
         0c 01 70 -- platform "p"
`, Schedule{Period: Hourly, Job: ScriptJob{Name: "j", Files: []builder.File{{Path: "a/b", Data: []byte("c")}}, Platform: str("p")}}},

	{"unschedule", `
a9 03             -- [9] unschedule
   0c 01 6a       -- UTF8String "j"
`, Unschedule{Name: "j"}},

	{"observe", `
aa 12             -- [10] observe, 18 bytes
   ` + uuidHex,
		Observe{UUID: testUUID}},

	{"schedule_orb_build never", `
ac 12             -- [12] schedule_orb_build, 18 bytes
   30 10          -- SEQUENCE, 16 bytes
      a3 02 05 00 -- period: [3] never, NULL
      30 0a       -- orb_build_job, 10 bytes
         0c 01 6e           -- name "n"
         0c 05 6f63616d6c   -- opam_package "ocaml"
`, ScheduleOrbBuild{Period: Never, Job: OrbBuildJob{Name: "n", OpamPackage: "ocaml"}}},

	{"schedule_orb_build weekly", `
ac 0e             -- [12] schedule_orb_build, 14 bytes
   30 0c          -- SEQUENCE, 12 bytes
      a2 02 05 00 -- period: [2] weekly, NULL
      30 06       -- orb_build_job, 6 bytes
         0c 01 6e -- name "n"
         0c 01 70 -- opam_package "p"
`, ScheduleOrbBuild{Period: Weekly, Job: OrbBuildJob{Name: "n", OpamPackage: "p"}}},

	{"execute on a platform", `
b4 0a             -- [20] execute, 10 bytes
   30 08          -- SEQUENCE, 8 bytes
      0c 01 6a    -- job_name "j"
      0c 03 783836 -- platform "x86" (OPTIONAL, present)
`, Execute{Name: "j", Platform: str("x86")}},

	{"execute anywhere", `
b4 05             -- [20] execute
   30 03          -- SEQUENCE
      0c 01 6a    -- job_name "j"; platform absent
`, Execute{Name: "j"}},

	{"drop_platform", `
b1 05             -- [17] drop_platform
   0c 03 783836   -- "x86"
`, DropPlatform{Platform: "x86"}},

	{"undrop_platform", `
b5 05             -- [21] undrop_platform
   0c 03 783836   -- "x86"
`, UndropPlatform{Platform: "x86"}},
}

var t0 = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func init() {
	goldens = append(goldens, []struct {
		name string
		der  string
		cmd  Cmd
	}{
		{"reschedule daily", `
ad 1a             -- [13] reschedule, 26 bytes
   30 18          -- SEQUENCE, 24 bytes
      0c 01 6a    -- name "j"
      18 0f 32303234303130323033303430355a -- next: GeneralizedTime "20240102030405Z"
      a1 02 05 00 -- period: [1] daily (OPTIONAL, present)
`, Reschedule{Name: "j", Next: Time{T: t0}, Period: Daily}},

		{"reschedule with milliseconds", `
ad 1a             -- [13] reschedule, 26 bytes
   30 18          -- SEQUENCE, 24 bytes
      0c 01 6a    -- name "j"
      18 13 32303234303130323033303430352e3235305a -- next: "20240102030405.250Z"; period absent
`, Reschedule{Name: "j", Next: Time{T: t0.Add(250 * time.Millisecond)}}},

		{"reschedule zero fraction", `
ad 1a             -- [13] reschedule, 26 bytes
   30 18          -- SEQUENCE, 24 bytes
      0c 01 6a    -- name "j"
      18 13 32303234303130323033303430352e3030305a -- next: "20240102030405.000Z"
`, Reschedule{Name: "j", Next: Time{T: t0, Form: TimeGeneralizedZeroFraction}}},

		{"reschedule UTCTime 1999", `
ad 14             -- [13] reschedule, 20 bytes
   30 12          -- SEQUENCE, 18 bytes
      0c 01 6a    -- name "j"
      17 0d 3939313233313233353935395a -- next: UTCTime "991231235959Z" (99 > 50: 1999)
`, Reschedule{Name: "j", Next: Time{T: time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC), Form: TimeUTC}}},

		{"old_execute", `
ab 03             -- [11] old_execute
   0c 01 6a       -- UTF8String "j"
`, OldExecute{Name: "j"}},

		{"old_info_reply", `
a7 19             -- [7] old_info_reply, 25 bytes
   30 17          -- SEQUENCE, 23 bytes: no dropped-platforms
      30 00       -- schedule: empty
      30 11       -- queues, 17 bytes
         30 0f    -- SEQUENCE, 15 bytes
            0c 01 78          -- platform "x"
            30 0a             -- jobs, 10 bytes
               a1 08          -- [1] orb_build_job
                  30 06
                     0c 01 6e -- name "n"
                     0c 01 70 -- opam_package "p"
      30 00       -- running: empty
`, OldInfoReply{Queues: []Queue{{Platform: "x", Jobs: []Job{{Orb: &OrbBuildJob{Name: "n", OpamPackage: "p"}}}}}}},

		{"info_reply empty", `
b6 0a             -- [22] info_reply
   30 08          -- SEQUENCE
      30 00       -- schedule
      30 00       -- queues
      30 00       -- running
      30 00       -- dropped-platforms
`, InfoReply{}},

		{"info_reply", `
b6 73             -- [22] info_reply, 115 bytes
   30 71          -- SEQUENCE, 113 bytes
      30 21       -- schedule: SEQUENCE OF, 33 bytes
         30 1f    -- schedule item, 31 bytes
            18 0f 32303234303130323033303430355a -- next "20240102030405Z"
            a2 02 05 00       -- period: [2] weekly
            a1 08             -- job: [1] orb_build_job
               30 06
                  0c 01 6e    -- name "n"
                  0c 01 70    -- opam_package "p"
      30 15       -- queues: SEQUENCE OF, 21 bytes
         30 13    -- SEQUENCE, 19 bytes
            0c 03 783836      -- platform "x86"
            30 0c             -- jobs: SEQUENCE OF, 12 bytes
               a0 0a          -- [0] script_job
                  30 08
                     0c 01 6a -- name "j"
                     0c 01 73 -- script "s"
                     30 00    -- files; platform absent
      30 30       -- running: SEQUENCE OF, 48 bytes
         30 2e    -- SEQUENCE, 46 bytes
            17 0d 3234303130323033303430355a -- started: UTCTime "240102030405Z" (2024)
            ` + uuidHex + `
            30 0b             -- job: script_job, 11 bytes
               0c 01 6a       -- name "j"
               0c 01 73       -- script "s"
               30 00          -- files
               0c 01 70       -- platform "p"
      30 03       -- dropped-platforms: SEQUENCE OF
         0c 01 71 -- "q"
`, InfoReply{
			Schedule:         []ScheduleItem{{Next: Time{T: t0}, Period: Weekly, Job: Job{Orb: &OrbBuildJob{Name: "n", OpamPackage: "p"}}}},
			Queues:           []Queue{{Platform: "x86", Jobs: []Job{{Script: &ScriptJob{Name: "j", Script: "s"}}}}},
			Running:          []Running{{Started: Time{T: t0, Form: TimeUTC}, UUID: testUUID, Job: ScriptJob{Name: "j", Script: "s", Platform: str("p")}}},
			DroppedPlatforms: []string{"q"},
		}},
	}...)
}

// TestGolden decodes the hand-written DER, compares the value, and checks
// that Marshal writes the same bytes.
func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			der := unhex(t, g.der)
			got, err := Unmarshal(der)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, g.cmd) {
				t.Fatalf("Unmarshal = %#v, want %#v", got, g.cmd)
			}
			enc, err := Marshal(g.cmd)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.Equal(enc, der) {
				t.Fatalf("Marshal = %x\nwant      %x", enc, der)
			}
		})
	}
}

// TestEveryPrefixFails: no proper prefix of a golden message decodes.
func TestEveryPrefixFails(t *testing.T) {
	for _, g := range goldens {
		der := unhex(t, g.der)
		for i := range der {
			if c, err := Unmarshal(der[:i]); err == nil {
				t.Errorf("%s: prefix of %d bytes decodes to %#v", g.name, i, c)
			}
		}
	}
}
