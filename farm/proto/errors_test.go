package proto

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/ledger/builder"
)

// TestUnmarshalErrors: malformed payloads are refused with an error that
// names the element and the offset.
func TestUnmarshalErrors(t *testing.T) {
	uuidBody := "0c10 00112233445566778899aabbccddeeff"
	for _, tc := range []struct{ name, der, want string }{
		{"empty", "", "proto: cmd: empty payload (at byte 0)"},
		{"garbage", "48656c6c6f", "proto: cmd: truncated: tag 0x48 claims 101 bytes, 3 remain (at byte 0)"},
		{"universal tag", "0500", "proto: cmd: expected a context tag [n] of builder's cmd CHOICE, found NULL (at byte 0)"},
		{"trailing bytes", "a6020500 00", "proto: cmd: unexpected 0x00 after the last field (1 trailing bytes) (at byte 4)"},
		{"indefinite length", "a6800500 0000", "proto: cmd: [6] has an indefinite length, which DER forbids (at byte 0)"},
		{"long form below 128", "a681020500", "proto: cmd: [6] length 2 is in long form, which DER forbids below 128 (at byte 0)"},
		{"leading zero length", "a68200020500", "proto: cmd: [6] length has a leading zero octet, which DER forbids (at byte 0)"},
		{"huge length", "a68fffffffffffffffffffffffffffffff", "proto: cmd: [6] has a 15-octet length field (at byte 0)"},
		{"huge claim", "a688ffffffffffffffff", "proto: cmd: truncated: [6] claims 18446744073709551615 bytes, 0 remain (at byte 0)"},
		{"high tag", "bf1f00", "proto: cmd: high-tag-number identifier 0xbf is not used by builder (at byte 0)"},
		{"tag 0", "a003020101", "proto: cmd: [0] INTEGER (unused; builder's decoder fails on it) (at byte 0)"},
		{"tag 8", "a8020500", "proto: cmd: [8] NULL, the job request of protocol versions before platforms (builder's decoder fails on it) (at byte 0)"},
		{"tag 1", "a103020101", "proto: cmd: [1] INTEGER (unused; builder's decoder fails on it) (at byte 0)"},
		{"old_info_reply with dropped platforms", "a70a 3008 3000 3000 3000 3000", "proto: cmd: old_info_reply: unexpected SEQUENCE after the last field (2 trailing bytes) (at byte 10)"},
		{"old_execute as a SEQUENCE", "ab05 3003 0c016a", "proto: cmd: old_execute: expected UTF8String, found SEQUENCE (at byte 2)"},
		{"tag 23", "b7020500", "proto: cmd: [23] is not an alternative of builder's cmd (at byte 0)"},
		{"primitive context tag", "86020500", "proto: cmd: expected a context tag [n] of builder's cmd CHOICE, found tag 0x86 (at byte 0)"},
		{"null with contents", "a60305 0100", "proto: cmd: info: NULL has 1 contents octets, DER requires none (at byte 2)"},
		{"info with extra", "a6040500 0500", "proto: cmd: info: unexpected NULL after the last field (2 trailing bytes) (at byte 4)"},
		{"constructed string", "b0052c030c0178", "proto: cmd: job_requested: expected UTF8String, found constructed UTF8String (at byte 2)"},
		{"octet string", "b00304 0178", "proto: cmd: job_requested: expected UTF8String, found tag 0x04 (at byte 2)"},
		{"short uuid", "aa030c0100", "proto: cmd: observe: uuid: UUID has 1 bytes, not 16 (at byte 2)"},
		{"long uuid", "aa130c11" + strings.Repeat("00", 17), "proto: cmd: observe: uuid: UUID has 17 bytes, not 16 (at byte 2)"},
		{"non-minimal integer", "ae0a 3008 a0020500 02020005", "proto: cmd: client_hello: version: INTEGER is not in its shortest form, which DER requires (at byte 8)"},
		{"non-minimal negative integer", "ae0a 3008 a0020500 0202ff80", "proto: cmd: client_hello: version: INTEGER is not in its shortest form, which DER requires (at byte 8)"},
		{"empty integer", "ae08 3006 a0020500 0200", "proto: cmd: client_hello: version: INTEGER has no contents octets (at byte 8)"},
		{"integer beyond 63 bits", "ae10 300e a0020500 02084000000000000000", "proto: cmd: client_hello: version: INTEGER 4611686018427387904 is out of range of builder's 63-bit int (at byte 8)"},
		{"integer of 9 octets", "ae11 300f a0020500 0209010000000000000000", "proto: cmd: client_hello: version: INTEGER of 9 octets is out of range of builder's 63-bit int (at byte 8)"},
		{"role [2]", "ae09 3007 a2020500 020105", "proto: cmd: client_hello: typ: expected [0]..[1], found [2] (at byte 4)"},
		{"missing version", "ae06 3004 a0020500", "proto: cmd: client_hello: version: missing (expected INTEGER) (at byte 8)"},
		{"period [4]", "ac0e 300c a4020500 3006 0c016e 0c0170", "proto: cmd: schedule_orb_build: period: expected [0]..[3], found [4] (at byte 4)"},
		{"period not null", "ac0f 300d a003020100 3006 0c016e 0c0170", "proto: cmd: schedule_orb_build: period: expected NULL, found INTEGER (at byte 6)"},
		{"orb job extra", "ac11 300f a3020500 3009 0c016e 0c0170 0c0171", "proto: cmd: schedule_orb_build: orb_build_job: unexpected UTF8String after the last field (3 trailing bytes) (at byte 16)"},
		{"result [4]", "a31b 3019 " + uuidBody + " a403020100 3000", "proto: cmd: job_finished: result: expected [0]..[3], found [4] (at byte 22)"},
		{"exited with a string", "a31b 3019 " + uuidBody + " a0030c0100 3000", "proto: cmd: job_finished: result: expected INTEGER, found UTF8String (at byte 24)"},
		{"msg with an integer", "a31b 3019 " + uuidBody + " a303020100 3000", "proto: cmd: job_finished: result: expected UTF8String, found INTEGER (at byte 24)"},
		{"result extra", "a31e 301c " + uuidBody + " a006020100020100 3000", "proto: cmd: job_finished: result: unexpected INTEGER after the last field (3 trailing bytes) (at byte 27)"},
		{"missing data", "a319 3017 " + uuidBody + " a003020100", "proto: cmd: job_finished: data: missing (expected SEQUENCE) (at byte 27)"},
		{"empty path", "a321 301f " + uuidBody + " a003020100 3006 3004 0c00 0c00", "proto: cmd: job_finished: data: file 0: path: empty path (at byte 31)"},
		{"NUL in path", "a322 3020 " + uuidBody + " a003020100 3007 3005 0c01 00 0c00", "proto: cmd: job_finished: data: file 0: path: path has a NUL byte (at byte 31)"},
		{"file without data", "a31f 301d " + uuidBody + " a003020100 3004 3002 0c00", "proto: cmd: job_finished: data: file 0: path: empty path (at byte 31)"},
		{"file without data 2", "a320 301e " + uuidBody + " a003020100 3005 3003 0c0161", "proto: cmd: job_finished: data: file 0: data: missing (expected UTF8String) (at byte 34)"},
		{"file extra", "a326 3024 " + uuidBody + " a003020100 300b 3009 0c0161 0c0162 0c0163", "proto: cmd: job_finished: data: file 0: unexpected UTF8String after the last field (3 trailing bytes) (at byte 37)"},
		{"output timestamp string", "a41a 3018 " + uuidBody + " 0c0168 0c0169", "proto: cmd: output: unexpected UTF8String after the last field (3 trailing bytes) (at byte 25)"},
		{"output timestamp bad", "a419 3017 " + uuidBody + " 0c0168 0201", "proto: cmd: output: timestamp: truncated: INTEGER claims 1 bytes, 0 remain (at byte 25)"},
		{"job_schedule without uuid", "a208 3006 0c016a 0c0173", "proto: cmd: job_schedule: uuid: UUID has 1 bytes, not 16 (at byte 4)"},
		{"script job missing files", "a21c 301a " + uuidBody + " 3006 0c016a 0c0173", "proto: cmd: job_schedule: job: files: missing (expected SEQUENCE) (at byte 30)"},
		{"script job platform integer", "a221 301f " + uuidBody + " 300b 0c016a 0c0173 3000 020101", "proto: cmd: job_schedule: job: unexpected INTEGER after the last field (3 trailing bytes) (at byte 32)"},
		{"execute platform truncated", "b406 3004 0c016a 0c", "proto: cmd: execute: platform: truncated: no length after the identifier octet (at byte 7)"},
		{"time: non-digit year", tl("ad", tl("30", "0c016a", tl("18", hexs("20Z40102030405Z")))), "proto: cmd: reschedule: next: GeneralizedTime \"20Z40102030405Z\" has a non-digit (at byte 7)"},
		{"time: short", tl("ad", tl("30", "0c016a", tl("18", hexs("2024J010203")))), "proto: cmd: reschedule: next: GeneralizedTime \"2024J010203\" is not of the form YYYYMMDDhhmmss[.fff]Z (at byte 7)"},
		{"time: fraction of 1 digit", tl("ad", tl("30", "0c016a", tl("18", hexs("20240102030405.5Z")))), "proto: cmd: reschedule: next: GeneralizedTime \"20240102030405.5Z\" is not of the form YYYYMMDDhhmmss[.fff]Z (at byte 7)"},
		{"time: zone offset", tl("ad", tl("30", "0c016a", tl("18", hexs("20240102030405+0000")))), "proto: cmd: reschedule: next: GeneralizedTime \"20240102030405+0000\" is not of the form YYYYMMDDhhmmss[.fff]Z (at byte 7)"},
		{"time: fraction not dot", tl("ad", tl("30", "0c016a", tl("18", hexs("20240102030405,000Z")))), "proto: cmd: reschedule: next: GeneralizedTime \"20240102030405,000Z\" is not of the form YYYYMMDDhhmmss[.fff]Z (at byte 7)"},
		{"time: non-digit fraction", tl("ad", tl("30", "0c016a", tl("18", hexs("20240102030405.0a0Z")))), "proto: cmd: reschedule: next: GeneralizedTime \"20240102030405.0a0Z\" has a non-digit (at byte 7)"},
		{"time: fraction without Z", tl("ad", tl("30", "0c016a", tl("18", hexs("20240102030405.0001")))), "proto: cmd: reschedule: next: GeneralizedTime \"20240102030405.0001\" does not end in Z (UTC) (at byte 7)"},
		{"time: no Z", tl("ad", tl("30", "0c016a", tl("18", hexs("202401020304050")))), "proto: cmd: reschedule: next: GeneralizedTime \"202401020304050\" does not end in Z (UTC) (at byte 7)"},
		{"time: non-digit second", tl("ad", tl("30", "0c016a", tl("18", hexs("202401020304a5Z")))), "proto: cmd: reschedule: next: GeneralizedTime \"202401020304a5Z\" has a non-digit (at byte 7)"},
		{"time: month 13", tl("ad", tl("30", "0c016a", tl("18", hexs("20241302030405Z")))), "proto: cmd: reschedule: next: GeneralizedTime \"20241302030405Z\" is not a valid date and time (at byte 7)"},
		{"time: hour 24", tl("ad", tl("30", "0c016a", tl("18", hexs("20240102240000Z")))), "proto: cmd: reschedule: next: GeneralizedTime \"20240102240000Z\" is not a valid date and time (at byte 7)"},
		{"time: second 60", tl("ad", tl("30", "0c016a", tl("18", hexs("20240102030460Z")))), "proto: cmd: reschedule: next: GeneralizedTime \"20240102030460Z\" is not a valid date and time (at byte 7)"},
		{"time: day 0", tl("ad", tl("30", "0c016a", tl("18", hexs("20240100030405Z")))), "proto: cmd: reschedule: next: GeneralizedTime \"20240100030405Z\" is not a valid date and time (at byte 7)"},
		{"time: February 30", tl("ad", tl("30", "0c016a", tl("18", hexs("20240230030405Z")))), "proto: cmd: reschedule: next: GeneralizedTime \"20240230030405Z\" is not a valid date (at byte 7)"},
		{"time: February 29 of 2023", tl("ad", tl("30", "0c016a", tl("18", hexs("20230229030405Z")))), "proto: cmd: reschedule: next: GeneralizedTime \"20230229030405Z\" is not a valid date (at byte 7)"},
		{"time: UTCTime without seconds", tl("ad", tl("30", "0c016a", tl("17", hexs("2401020304Z")))), "proto: cmd: reschedule: next: UTCTime \"2401020304Z\" is not of the form YYMMDDhhmmssZ (at byte 7)"},
		{"time: UTCTime with fraction", tl("ad", tl("30", "0c016a", tl("17", hexs("240102030405.000Z")))), "proto: cmd: reschedule: next: UTCTime \"240102030405.000Z\" is not of the form YYMMDDhhmmssZ (at byte 7)"},
		{"time: UTCTime non-digit", tl("ad", tl("30", "0c016a", tl("17", hexs("2x0102030405Z")))), "proto: cmd: reschedule: next: UTCTime \"2x0102030405Z\" has a non-digit (at byte 7)"},
		{"time: wrong type", tl("ad", tl("30", "0c016a", "0c026869")), "proto: cmd: reschedule: next: expected UTCTime or GeneralizedTime, found UTF8String (at byte 7)"},
		{"time: missing", "ad05 3003 0c016a", "proto: cmd: reschedule: next: missing (expected UTCTime or GeneralizedTime) (at byte 7)"},
		{"reschedule period [5]", "ad1a 3018 0c016a 180f 32303234303130323033303430355a a5020500", "proto: cmd: reschedule: period: expected [0]..[3], found [5] (at byte 24)"},
		{"info_reply job [2]", tl("b6", tl("30", tl("30", tl("30", tl("18", hexs("20240102030405Z")), "a0020500", "a200")), "3000", "3000", "3000")), "proto: cmd: info_reply: schedule 0: job: expected [0] or [1], found [2] (at byte 29)"},
		{"info_reply missing dropped", "b608 3006 3000 3000 3000", "proto: cmd: info_reply: dropped-platforms: missing (expected SEQUENCE) (at byte 10)"},
		{"info_reply dropped integer", "b60d 300b 3000 3000 3000 3003020101", "proto: cmd: info_reply: dropped-platforms 0: expected UTF8String, found INTEGER (at byte 12)"},
		{"info_reply queue job [2]", "b614 3012 3000 300a 3008 0c0178 3003 a20100 3000 3000", "proto: cmd: info_reply: queue 0: job 0: expected [0] or [1], found [2] (at byte 15)"},
		{"info_reply running bad uuid", tl("b6", tl("30", "3000", "3000", tl("30", tl("30", tl("17", hexs("240102030405Z")), "0c00", "3000")), "3000")), "proto: cmd: info_reply: running 0: uuid: UUID has 0 bytes, not 16 (at byte 27)"},
		{"execute no name", "b402 3000", "proto: cmd: execute: job_name: missing (expected UTF8String) (at byte 4)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Unmarshal(unhex(t, tc.der))
			if err == nil {
				t.Fatalf("Unmarshal accepted it: %#v", c)
			}
			if err.Error() != tc.want {
				t.Fatalf("error\n got %s\nwant %s", err, tc.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FormatError", err)
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	for _, tc := range []struct {
		cmd  Cmd
		want string
	}{
		{nil, "proto: cmd: nil cmd"},
		{Schedule{Job: ScriptJob{Name: "a"}}, "proto: cmd: schedule: period: invalid period 0"},
		{ScheduleOrbBuild{Period: Never + 1}, "proto: cmd: schedule_orb_build: period: invalid period 5"},
		{ClientHello{Version: 1}, "proto: cmd: client_hello: typ: invalid role 0"},
		{ClientHello{Role: RoleClient, Version: maxOCamlInt + 1}, "proto: cmd: client_hello: version: integer 4611686018427387904 is out of range of builder's 63-bit int"},
		{Output{Timestamp: i64(minOCamlInt - 1)}, "proto: cmd: output: timestamp: integer -4611686018427387905 is out of range of builder's 63-bit int"},
		{JobFinished{}, "proto: cmd: job_finished: result: invalid result kind 0"},
		{JobFinished{Result: builder.Result{Kind: builder.ResultExited, Msg: "x"}}, "proto: cmd: job_finished: result: exited result with a message"},
		{JobFinished{Result: builder.Result{Kind: builder.ResultMsg, Code: 1}}, "proto: cmd: job_finished: result: msg result with code 1"},
		{JobFinished{Result: builder.Result{Kind: builder.ResultStopped, Code: minOCamlInt - 1}}, "proto: cmd: job_finished: result: integer -4611686018427387905 is out of range of builder's 63-bit int"},
		{JobFinished{Result: builder.Result{Kind: builder.ResultMsg}, Data: []builder.File{{Path: "a"}, {Path: ""}}}, "proto: cmd: job_finished: data: file 1: path: empty path"},
		{JobSchedule{Job: ScriptJob{Files: []builder.File{{Path: "a\x00b"}}}}, "proto: cmd: job_schedule: job: files: file 0: path: path has a NUL byte"},
		{Reschedule{Next: Time{T: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}, "proto: cmd: reschedule: next: year 10000 does not fit GeneralizedTime"},
		{Reschedule{Next: Time{T: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}}, "proto: cmd: reschedule: next: year -1 does not fit GeneralizedTime"},
		{Reschedule{Next: Time{T: time.Date(2051, 1, 1, 0, 0, 0, 0, time.UTC), Form: TimeUTC}}, "proto: cmd: reschedule: next: year 2051 does not fit UTCTime (1951 to 2050)"},
		{Reschedule{Next: Time{T: time.Date(1950, 12, 31, 0, 0, 0, 0, time.UTC), Form: TimeUTC}}, "proto: cmd: reschedule: next: year 1950 does not fit UTCTime (1951 to 2050)"},
		{Reschedule{Next: Time{T: time.Date(2024, 1, 1, 0, 0, 0, 5e6, time.UTC), Form: TimeUTC}}, "proto: cmd: reschedule: next: time 2024-01-01T00:00:00.005Z has a fraction of a second, which UTCTime cannot hold"},
		{Reschedule{Next: Time{T: time.Date(2024, 1, 1, 0, 0, 0, 5e6, time.UTC), Form: TimeGeneralizedZeroFraction}}, "proto: cmd: reschedule: next: time 2024-01-01T00:00:00.005Z has 5 ms, not the zero fraction of its form"},
		{Reschedule{Next: Time{Form: 3}}, "proto: cmd: reschedule: next: invalid time form 3"},
		{Reschedule{Period: 9}, "proto: cmd: reschedule: period: invalid period 9"},
		{InfoReply{Schedule: []ScheduleItem{{Period: Daily}}}, "proto: cmd: info_reply: schedule 0: job: a job needs exactly one of Script and Orb"},
		{InfoReply{Schedule: []ScheduleItem{{Job: Job{Orb: &OrbBuildJob{}}}}}, "proto: cmd: info_reply: schedule 0: period: invalid period 0"},
		{InfoReply{Queues: []Queue{{}, {Jobs: []Job{{Script: &ScriptJob{}, Orb: &OrbBuildJob{}}}}}}, "proto: cmd: info_reply: queue 1: job 0: a job needs exactly one of Script and Orb"},
		{InfoReply{Queues: []Queue{{Jobs: []Job{{Script: &ScriptJob{Files: []builder.File{{}}}}}}}}, "proto: cmd: info_reply: queue 0: job 0: job: files: file 0: path: empty path"},
		{OldInfoReply{Schedule: []ScheduleItem{{Period: Hourly, Job: Job{}}}}, "proto: cmd: old_info_reply: schedule 0: job: a job needs exactly one of Script and Orb"},
		{InfoReply{Running: []Running{{Started: Time{Form: TimeUTC}}}}, "proto: cmd: info_reply: running 0: started: year 1 does not fit UTCTime (1951 to 2050)"},
		{InfoReply{Running: []Running{{Job: ScriptJob{Files: []builder.File{{}}}}}}, "proto: cmd: info_reply: running 0: job: files: file 0: path: empty path"},
	} {
		b, err := Marshal(tc.cmd)
		if err == nil {
			t.Errorf("Marshal(%#v) = %x, want an error", tc.cmd, b)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Marshal(%#v):\n got %s\nwant %s", tc.cmd, err, tc.want)
		}
	}
}

// tl is the hex of a DER element with that tag (hex) and the contents
// parts (hex, spaces allowed), for contents under 128 bytes.
func tl(tag string, parts ...string) string {
	body := strings.ReplaceAll(strings.Join(parts, ""), " ", "")
	if len(body)/2 >= 0x80 {
		panic("tl: long form")
	}
	return tag + fmt.Sprintf("%02x", len(body)/2) + body
}

func hexs(s string) string { return hex.EncodeToString([]byte(s)) }

func frame(n uint64, payload []byte) []byte {
	b := binary.BigEndian.AppendUint64(nil, n)
	return append(b, payload...)
}

// failAfter fails the test if more than n bytes are read from it.
type failAfter struct {
	t *testing.T
	r io.Reader
	n int
}

func (f *failAfter) Read(p []byte) (int, error) {
	k, err := f.r.Read(p)
	f.n -= k
	if f.n < 0 {
		f.t.Fatalf("read %d bytes beyond the limit", -f.n)
	}
	return k, err
}

func TestReadFrame(t *testing.T) {
	info := unhex(t, "a6020500")
	t.Run("ok", func(t *testing.T) {
		r := bytes.NewReader(append(frame(4, info), frame(0, nil)...))
		p, err := ReadFrame(r, 4)
		if err != nil || !bytes.Equal(p, info) {
			t.Fatalf("ReadFrame = %x, %v", p, err)
		}
		p, err = ReadFrame(r, 4)
		if err != nil || len(p) != 0 {
			t.Fatalf("empty frame: %x, %v", p, err)
		}
		if _, err := ReadFrame(r, 4); err != io.EOF {
			t.Fatalf("at the end: %v, want io.EOF", err)
		}
	})
	t.Run("truncated header", func(t *testing.T) {
		_, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0}), 10)
		if !errors.Is(err, io.ErrUnexpectedEOF) || err.Error() != "proto: frame header truncated after 3 of 8 bytes: unexpected EOF" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("truncated payload", func(t *testing.T) {
		_, err := ReadFrame(bytes.NewReader(frame(4, info[:3])), 10)
		if !errors.Is(err, io.ErrUnexpectedEOF) || err.Error() != "proto: frame of 4 bytes truncated after 3: unexpected EOF" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("truncated large payload", func(t *testing.T) {
		_, err := ReadFrame(bytes.NewReader(frame(1<<20, make([]byte, 100000))), 1<<20)
		if !errors.Is(err, io.ErrUnexpectedEOF) || err.Error() != "proto: frame of 1048576 bytes truncated after 100000: unexpected EOF" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("oversized", func(t *testing.T) {
		for _, n := range []uint64{5, 1 << 40, 1 << 63, ^uint64(0)} {
			r := &failAfter{t: t, r: bytes.NewReader(frame(n, make([]byte, 10))), n: HeaderSize}
			_, err := ReadFrame(r, 4)
			if !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("claim %d: err = %v", n, err)
			}
			if n == 5 && err.Error() != "proto: frame too large: header claims 5 bytes, the limit is 4" {
				t.Fatalf("err = %v", err)
			}
		}
	})
	t.Run("garbage", func(t *testing.T) {
		_, err := ReadCmd(bytes.NewReader(frame(5, []byte("hello"))), 10)
		var fe *FormatError
		if !errors.As(err, &fe) || err.Error() != "proto: cmd: truncated: tag 0x68 claims 101 bytes, 3 remain (at byte 0)" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("writer refuses oversize", func(t *testing.T) {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, info, 3); !errors.Is(err, ErrFrameTooLarge) || buf.Len() != 0 {
			t.Fatalf("err = %v, wrote %d bytes", err, buf.Len())
		}
		if err := WriteCmd(&buf, Info{}, 3); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("WriteCmd err = %v", err)
		}
		if err := WriteFrame(&buf, info, 4); err != nil || !bytes.Equal(buf.Bytes(), frame(4, info)) {
			t.Fatalf("WriteFrame = %x, %v", buf.Bytes(), err)
		}
	})
}

// TestClaimDoesNotAllocate: a header that claims a payload within the
// limit, followed by little, costs memory in proportion to what arrived,
// not to the claim.
func TestClaimDoesNotAllocate(t *testing.T) {
	in := frame(1<<30, make([]byte, 1000))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := ReadFrame(bytes.NewReader(in), 1<<30)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("a claim of 1 GiB with 1000 bytes sent allocated %d bytes", d)
	}
}
