// Package proto speaks the wire protocol of Robur's builder
// (github.com/robur-coop/builder): the messages between builder-server
// (the scheduler), builder-worker and builder-client. It is the codec only;
// the farm's scheduler, workers and client are to be built on it.
//
// # Source
//
// The definitions are transcribed from builder's lib/builder.ml (module Asn,
// value cmd, with script_job, orb_build_job, job, period, res, data, uuid
// and client_or_worker) at commit 023b882a4fc5da7e3a3787dd128ceac4d81b2f6a
// of robur-coop/builder: the protocol with client_version 13 and
// worker_version 5, which has platforms, drop-platform and execute with a
// platform. Older versions of builder.ml (e.g. commit ce21b8fb, with
// Client_hello2 and no platforms) speak an incompatible protocol and are
// not supported. asn1-combinators encodes it in DER; every [n] is
// EXPLICIT (context-specific, constructed, wrapping the whole inner element).
//
// # Framing
//
// TCP; every message is an 8-byte big-endian unsigned length followed by
// that many bytes of DER: one cmd. builder reads any length (and allocates
// it); ReadFrame refuses a header that claims more than its limit before
// reading or allocating any of the payload, and grows its buffer for large
// frames with the bytes that actually arrive. WriteFrame writes header and
// payload with one vectored write. ReadCmd and WriteCmd combine framing with
// Unmarshal and Marshal.
//
// # The cmd CHOICE
//
// Every alternative builder can decode is implemented, each as a Go type
// named after builder's constructor:
//
//	Cmd ::= CHOICE {
//	  [0]  INTEGER,                    -- unused: builder's decoder fails
//	  [1]  INTEGER,                    -- unused: builder's decoder fails
//	  [2]  SEQUENCE { uuid UUID, job ScriptJob }           -- JobSchedule
//	  [3]  SEQUENCE { uuid UUID, result Result, data Data } -- JobFinished
//	  [4]  SEQUENCE { uuid UUID, output UTF8String,
//	                  timestamp INTEGER OPTIONAL }          -- Output
//	  [5]  SEQUENCE { period Period, job ScriptJob }        -- Schedule
//	  [6]  NULL                                             -- Info
//	  [7]  SEQUENCE { schedule, queues, running }           -- OldInfoReply
//	  [8]  NULL, old job request; builder's decoder fails
//	  [9]  UTF8String job name                              -- Unschedule
//	  [10] UUID                                             -- Observe
//	  [11] UTF8String job name                              -- OldExecute
//	  [12] SEQUENCE { period Period, orb_build_job SEQUENCE {
//	                  name UTF8String, opam_package UTF8String } }
//	                                                        -- ScheduleOrbBuild
//	  [13] SEQUENCE { name UTF8String, next Time,
//	                  period Period OPTIONAL }              -- Reschedule
//	  [14] SEQUENCE { typ CHOICE { client [0] NULL, worker [1] NULL },
//	                  version INTEGER }                     -- ClientHello
//	  [15] NULL                                             -- ServerHello
//	  [16] UTF8String platform                              -- JobRequested
//	  [17] UTF8String platform                              -- DropPlatform
//	  [18] NULL                                             -- Success
//	  [19] UTF8String message                               -- Failure
//	  [20] SEQUENCE { job_name UTF8String,
//	                  platform UTF8String OPTIONAL }        -- Execute
//	  [21] UTF8String platform                              -- UndropPlatform
//	  [22] SEQUENCE {                                       -- InfoReply
//	         schedule SEQUENCE OF SEQUENCE {
//	           next Time, period Period, job Job },
//	         queues SEQUENCE OF SEQUENCE {
//	           platform UTF8String, jobs SEQUENCE OF Job },
//	         running SEQUENCE OF SEQUENCE {
//	           started Time, uuid UUID, job ScriptJob },
//	         dropped-platforms SEQUENCE OF UTF8String }
//	}
//
//	ScriptJob ::= SEQUENCE { name UTF8String, script UTF8String,
//	                         files Data, platform UTF8String OPTIONAL }
//	Data      ::= SEQUENCE OF SEQUENCE { path UTF8String, data UTF8String }
//	UUID      ::= UTF8String  -- the 16 raw bytes
//	Period    ::= CHOICE { hourly [0] NULL, daily [1] NULL,
//	                       weekly [2] NULL, never [3] NULL }
//	Result    ::= CHOICE { exited [0] INTEGER, signalled [1] INTEGER,
//	                       stopped [2] INTEGER, msg [3] UTF8String }
//	Job       ::= CHOICE { script [0] ScriptJob, orb_build [1] SEQUENCE {
//	                       name UTF8String, opam_package UTF8String } }
//	Time      ::= CHOICE { UTCTime, GeneralizedTime }
//
// OldInfoReply [7] (InfoReply without dropped platforms) and OldExecute
// [11] (Execute without platform) are older forms that builder still reads
// but no longer writes; they are kept apart from InfoReply and Execute so
// that they re-encode unchanged. [0], [1] and [8], which builder's decoder
// fails on (assert false), and tags above 22 are refused.
//
// Conversations, as builder (app/server.ml, worker.ml, client.ml) runs
// them: every connection starts with ClientHello (RoleWorker with
// WorkerVersion 5, RoleClient with ClientVersion 13), answered by
// ServerHello; on another version or another first message builder's
// server closes the connection. A worker then sends JobRequested with its
// platform, receives JobSchedule, streams Output without timestamps and
// ends with JobFinished. A client sends one command and reads Success or
// Failure (Info is answered with InfoReply, Observe with timestamped
// Output messages).
//
// # What the codec follows from builder and asn1-combinators
//
//   - UTF8String contents are not checked for UTF-8: builder puts raw bytes
//     there (console output, file contents, the UUID). Strings are Go
//     strings holding those bytes, file data []byte.
//   - Times: builder writes GeneralizedTime "YYYYMMDDhhmmssZ", or
//     "YYYYMMDDhhmmss.fffZ" (milliseconds, truncated, three digits) when
//     the fraction is not zero, and reads UTCTime "YYMMDDhhmmssZ" too (51..99
//     as 19YY, 00..50 as 20YY), the rules ledger/builder follows for the
//     exec record. Unmarshal accepts these forms only and records which one
//     it read in Time.Form (a ".000" fraction is a form of its own), so that
//     they re-encode unchanged. Marshal writes Time.T in UTC and drops what
//     is below a millisecond.
//   - INTEGER is OCaml's 63-bit int: values outside [-2^62, 2^62-1] are
//     refused both ways.
//   - A data path must be what Fpath.of_string accepts: not empty, no NUL
//     byte. Nothing else is checked here; a receiver that writes files must
//     refuse absolute paths and ".." itself (ledger/builder does for
//     uploads).
//   - Result and File are ledger/builder's types, so a JobFinished becomes
//     the exec record of an upload without conversion.
//   - Optional fields are kept as present or absent (pointer fields;
//     Reschedule's Period 0 for an absent period), and a
//     script job's "files", which builder always writes empty and ignores,
//     is kept: every payload Unmarshal accepts re-encodes to the same bytes.
//
// Unmarshal accepts strict DER only: definite lengths in their shortest
// form, low tag numbers, primitive strings, minimal INTEGERs, empty NULLs,
// no missing, extra or trailing elements. Errors are *FormatError, naming
// the element and its byte offset, e.g.
// `proto: cmd: job_finished: data: file 0: path: empty path (at byte 31)`.
// Marshal refuses (Offset -1) what builder could not read: a zero Period,
// Role or Result kind, a Job with not exactly one of Script and Orb,
// integers beyond 63 bits, bad paths, a time its form cannot hold.
//
// # Tests
//
// TestGolden decodes DER written by hand in golden_test.go, one annotated
// TLV a line with lengths counted by hand from the ASN.1 above, for every
// alternative (with short and long length forms, negative and multi-octet
// integers, absent and present optional fields, all three time forms and
// both UTCTime centuries), and checks that Marshal writes the same bytes.
// TestEveryPrefixFails refuses every proper prefix of them. TestRoundTrip
// runs values of every alternative (all 256 byte values, integer extremes,
// 2,000 files, an 18 MB file) through Marshal/Unmarshal and
// WriteCmd/ReadCmd, and fails if an alternative has no value.
// TestUnmarshalErrors is the negative table with full error texts
// (malformed DER, the refused tags, wrong tags, bad UUIDs, integers, paths
// and times); TestMarshalErrors and TestMarshalTime (UTC conversion,
// millisecond truncation) cover Marshal. TestReadFrame covers clean EOF,
// truncated header and payload, oversized claims (read no further than the
// header), garbage payloads and WriteFrame's limit;
// TestClaimDoesNotAllocate shows a 1 GiB claim with 1,000 bytes sent
// allocating under 1 MiB. FuzzUnmarshal checks that Unmarshal never panics,
// refuses only with a *FormatError, and that whatever it accepts
// re-encodes to the same bytes and decodes to the same value.
package proto
