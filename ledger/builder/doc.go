// Package builder reads and writes the "exec" record of Robur's builder
// (robur-coop/builder): the DER body that builder-server POSTs to
// builder-web's /upload, that it saves as <job>/<uuid>/full when the upload
// fails, and that builder-web serves again as /job/J/build/U/exec. Parse lets
// an unchanged builder-server upload to the ledger; Marshal re-exports a
// recorded build in the same format, byte for byte as builder writes it.
//
// # The record
//
// The ASN.1 below is transcribed from builder's lib/builder.ml (module Asn:
// exec, script_job, data, uuid, res; asn1-combinators, DER codec) and
// checked against the combinators' own source (mirleft/ocaml-asn1-combinators,
// src/asn_prim.ml and the combinator definitions). Every [n] is EXPLICIT:
// a context-specific constructed element wrapping the complete inner
// element, so [0] around a SEQUENCE is a0 len 30 len ....
//
//	Exec ::= CHOICE {
//	  v0 [0] EXPLICIT SEQUENCE {
//	    job        ScriptJob,
//	    uuid       UTF8String,   -- the 16 raw bytes of the UUID, not its text
//	    console    SEQUENCE OF SEQUENCE {
//	                 delta INTEGER,     -- nanoseconds since the job started
//	                 data  UTF8String } -- one line without its newline; newest first
//	    timestamps SEQUENCE { started Time, finished Time },
//	    result     Result,
//	    output     Data },       -- every file the job left in its directory
//	  none [1] EXPLICIT NULL }   -- a placeholder: builder never writes it and
//	                             -- its decoder aborts on it (assert false)
//
//	ScriptJob ::= SEQUENCE {
//	  name     UTF8String,
//	  script   UTF8String,
//	  files    Data,             -- builder always writes it empty
//	  platform UTF8String OPTIONAL } -- builder always writes it; reads absent as "no-platform"
//
//	Data ::= SEQUENCE OF SEQUENCE { path UTF8String, data UTF8String }
//
//	Time ::= CHOICE { UTCTime, GeneralizedTime }
//
//	Result ::= CHOICE {
//	  exited    [0] EXPLICIT INTEGER,
//	  signalled [1] EXPLICIT INTEGER,
//	  stopped   [2] EXPLICIT INTEGER,
//	  msg       [3] EXPLICIT UTF8String }
//
// What the source shows beyond the ASN.1, and this package follows:
//
//   - UTF8String is not checked by asn1-combinators: builder puts raw bytes
//     in it. File data (unikernel images), the UUID and console output are
//     arbitrary octets inside a UTF8String, never an OCTET STRING.
//   - builder writes GeneralizedTime as "YYYYMMDDhhmmssZ" when the fraction
//     of the second is zero and otherwise "YYYYMMDDhhmmss.fffZ": always three
//     digits, milliseconds truncated, so a fraction below 1 ms is ".000".
//     Its decoder reads at most three fraction digits (".5" would mean 5 ms).
//     Builders before the change to CHOICE { UTCTime, GeneralizedTime } wrote
//     UTCTime "YYMMDDhhmmssZ", which asn1-combinators reads with 51..99 as
//     19YY and 00..50 as 20YY.
//   - INTEGER is decoded into OCaml's int: 63 bits.
//   - builder-server keeps console lines newest first and sends them so;
//     builder-web writes console.txt oldest first and reverses it again for
//     its /exec export. The delta is Duration.of_f of the elapsed seconds.
//   - Output paths are what builder-worker's Fpath.rem_prefix leaves of the
//     files under its temporary directory (script.sh excluded): relative
//     paths such as "bin/hello.hvt", in directory-walk order.
//   - Signal numbers in Signalled and Stopped are OCaml's (Sys.sigkill is
//     -7), as Unix.waitpid reports them to builder-worker.
//
// # Parse
//
// Parse accepts only the encodings builder's DER encoder produces, plus
// UTCTime times from older builders. It rejects, with a *FormatError that
// names the element, the value and the byte offset (e.g.
// `exec: output file 3: path "../x": has a ".." element (at byte 1234)`):
//
//   - anything that is not strict DER: indefinite or non-minimal lengths,
//     high tag numbers, constructed strings, non-minimal INTEGERs, a wrong
//     tag anywhere, a missing or an extra element, trailing bytes;
//   - the [1] alternative (builder's decoder raises an exception on it);
//   - a UUID that is not 16 bytes, and the nil UUID;
//   - a job name that is empty, longer than MaxName bytes, not UTF-8, "." or
//     "..", or contains "/", "\" or a control character; a present, non-empty
//     platform with the same faults;
//   - an output or job file path that is empty, longer than MaxPath, not
//     UTF-8, absolute, contains a backslash, NUL or another control
//     character (C0, DEL, C1), has a ".." element, or is not clean (empty or
//     "." element, trailing "/"); two files with the same path; a file that
//     would also have to be a directory ("bin" next to "bin/x");
//   - times that are not of builder's form (a fraction of other than three
//     digits, a zone other than Z, a missing seconds field), invalid dates,
//     second 60, and a finish before the start;
//   - INTEGERs outside OCaml's 63-bit int;
//   - input beyond Limits (wrapping ErrLimit): its total size, the number of
//     files, the size of one file, the number of console lines, the size of
//     the script, the console or the result message. Every length
//     is compared with the bytes actually present before anything is
//     sliced or copied, and every count is checked before the element is
//     kept, so a length field claiming 4 GiB costs nothing.
//
// Job script, console lines and the result message are kept verbatim, like
// file data: builder does not check them, and a build that prints bytes that
// are not UTF-8 must still be recorded. Callers that need text must treat
// them as bytes (or use strings.ToValidUTF8). Names, platforms and paths,
// which end up in URLs and file systems, must be UTF-8.
//
// The value does not alias the input. Empty sequences read as nil slices and
// empty file data as nil; times are in UTC; Console is oldest first.
//
// # Marshal
//
// Marshal writes DER as builder does: the [0] alternative, console newest
// first, files in slice order, GeneralizedTime as described above (a time in
// another zone is converted to UTC). builder always writes a platform;
// Marshal leaves Platform "" out, which builder-web reads as "no-platform".
// It refuses, with a *FormatError whose Offset is -1, every value Parse
// would reject, Limits aside.
//
// Round trips: for every value e that Marshal accepts and whose times have
// whole milliseconds, Parse(Marshal(e)) equals e (times as instants, empty
// and nil slices alike) when within Limits. For every record x that
// Parse accepts, Marshal(Parse(x)) parses to the same value, and equals x
// unless x holds one of three forms that builder's decoder reads as the
// same value as Marshal's output: UTCTime (written as GeneralizedTime), a
// ".000" fraction (written without a fraction; builder-web's own re-export
// drops it the same way, as it keeps the decoded time) and a present empty
// platform (left out).
//
// # Decode: the same record from a stream
//
// Decode reads a record from an io.Reader with memory bounded by Limits,
// not by the input: it hands each file's contents to a Sink as they arrive
// (an upload's files go straight into the CAS) and the job's name, the
// record's first field, as soon as it is read, so that a caller can refuse
// a job it may not write having read only a few bytes. It reads nothing
// past the element at fault, refuses at its header a record that claims
// more than MaxTotal or a file larger than MaxFileSize, and accepts exactly
// what Parse accepts, with the same value but for the file data (FuzzDecode
// checks both with Parse as the oracle, reading odd-length inputs one byte
// at a time; TestParseErrors runs its table through Decode too). The
// elements Limits bound (UUID, console, timestamps, result) are read into
// memory and checked by Parse's own code; the framing, the job and the
// files are read from the stream. What is kept in memory is bounded by
// MaxText (script, console and message, each; default 16 MiB), which Parse
// enforces as well.
//
// # Encoder: Marshal with streamed files
//
// An Encoder writes the bytes Marshal writes, with each output file copied
// from a reader of known size while it is written: every DER length
// follows from the sizes, so a recorded build can be re-exported without
// holding its files (TestEncoderMatchesMarshal compares with Marshal).
//
// # Assumptions
//
//   - The format is that of builder at the commits read (lib/builder.ml with
//     the CHOICE of UTCTime and GeneralizedTime, and an older one with
//     UTCTime only; asn1-combinators with Ptime times, whose time codec is
//     the same in every version read). A record without platform, as the
//     oldest builders wrote it, reads as Platform "". Versions of
//     builder.ml older than these were not checked.
//   - The checks on names and paths are the ledger's, stricter than
//     builder-web's (which only runs Fpath.of_string): builder never
//     produces values they reject.
//   - The default limits (DefaultMaxTotal etc.) are generous for unikernel
//     builds; the HTTP layer should bound the body to MaxTotal before Parse.
//
// # Tests
//
// TestGolden parses records assembled by hand (a hex literal annotated
// octet by octet, and cryptobyte builds in wire_test.go that share no code
// with Marshal), compares the values, and checks that Marshal writes the
// same bytes (or, for UTCTime input, builder's GeneralizedTime form).
// TestTimeEncoding pins the time forms and the UTCTime century rule.
// TestRoundTrip covers binary data with all 256 byte values, an empty
// console, message and signal results, 70 000 console lines, 3 000 files and
// a 17 MiB file. TestParseErrors is the negative table (truncation, wrong
// tags, bad UUIDs, hostile paths, duplicates, every limit, huge claimed
// lengths, trailing bytes, non-UTF-8 names and paths, bad integers and
// times), each with its full error text; TestHugeClaimsDoNotAllocate
// measures that such input allocates nothing; TestEveryPrefixFails tries
// every prefix and every single-bit flip of a record. TestMarshalErrors
// covers Marshal's refusals. FuzzParse checks the round trips above on
// arbitrary input; BenchmarkParse and BenchmarkMarshal use a 10 MiB record.
// TestDecodeAgrees, TestDecodeStopsEarly (a refused job and an oversized
// record stop Decode within its first 32 KiB read of a 10 MiB record) and
// TestDecodeErrorsFromReaderAndSink cover Decode; TestEncoderErrors the
// Encoder's refusals and that it reads no more than a file's size.
package builder
