package builder

import (
	"fmt"

	"github.com/buildledger/buildledger/internal/der"
)

// Marshal encodes e in DER exactly as builder writes it for the same value:
// GeneralizedTime timestamps with milliseconds (the part of a second below
// one millisecond is dropped, as builder drops it), console lines newest
// first, files in the order of the slices, and the platform left out when it
// is "". It refuses, with a *FormatError (Offset -1), a value that Parse
// would reject (Limits aside).
func (e *Exec) Marshal() ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	output := filesLen(e.Output)
	b, total := e.head(output, output)
	for _, f := range e.Output {
		b = appendFileHeader(b, f.Path, len(f.Data))
		b = append(b, f.Data...)
	}
	if len(b) != total {
		return nil, &FormatError{Offset: -1, Msg: fmt.Sprintf("internal error: wrote %d bytes, computed %d", len(b), total)}
	}
	return b, nil
}

// head encodes e up to the header of the output files' SEQUENCE OF, whose
// contents are output bytes long (e.Output is not read), into a buffer
// with room for extra more bytes. total is the length of the whole record.
// Sizes come first, so that the record is written into one buffer.
func (e *Exec) head(output, extra int) (b []byte, total int) {
	jobFiles := filesLen(e.Job.Files)
	job := der.TLV(len(e.Job.Name)) + der.TLV(len(e.Job.Script)) + der.TLV(jobFiles)
	if e.Job.Platform != "" {
		job += der.TLV(len(e.Job.Platform))
	}
	console := 0
	for _, l := range e.Console {
		console += der.TLV(der.TLV(der.IntLen(int64(l.Delta))) + der.TLV(len(l.Data)))
	}
	started, finished := e.Started.UTC(), e.Finished.UTC()
	times := der.TLV(generalizedTimeLen(started)) + der.TLV(generalizedTimeLen(finished))
	var result int
	if e.Result.Kind == ResultMsg {
		result = der.TLV(len(e.Result.Msg))
	} else {
		result = der.TLV(der.IntLen(int64(e.Result.Code)))
	}
	seq := der.TLV(job) + der.TLV(len(e.UUID)) + der.TLV(console) + der.TLV(times) + der.TLV(result) + der.TLV(output)
	total = der.TLV(der.TLV(seq))

	b = make([]byte, 0, total-output+extra)
	b = der.AppendHeader(b, tagExplicit0, der.TLV(seq))
	b = der.AppendHeader(b, der.TagSequence, seq)

	b = der.AppendHeader(b, der.TagSequence, job)
	b = der.AppendString(b, e.Job.Name)
	b = der.AppendString(b, e.Job.Script)
	b = appendFiles(b, e.Job.Files, jobFiles)
	if e.Job.Platform != "" {
		b = der.AppendString(b, e.Job.Platform)
	}

	b = der.AppendBytes(b, e.UUID[:])

	b = der.AppendHeader(b, der.TagSequence, console)
	for i := len(e.Console) - 1; i >= 0; i-- {
		l := e.Console[i]
		b = der.AppendHeader(b, der.TagSequence, der.TLV(der.IntLen(int64(l.Delta)))+der.TLV(len(l.Data)))
		b = der.AppendInt(b, int64(l.Delta))
		b = der.AppendString(b, l.Data)
	}

	b = der.AppendHeader(b, der.TagSequence, times)
	b = appendGeneralizedTime(b, started)
	b = appendGeneralizedTime(b, finished)

	b = der.AppendHeader(b, tagExplicit0+byte(e.Result.Kind-ResultExited), result)
	if e.Result.Kind == ResultMsg {
		b = der.AppendString(b, e.Result.Msg)
	} else {
		b = der.AppendInt(b, int64(e.Result.Code))
	}
	b = der.AppendHeader(b, der.TagSequence, output)
	return b, total
}

func filesLen(files []File) int {
	n := 0
	for _, f := range files {
		n += der.TLV(der.TLV(len(f.Path)) + der.TLV(len(f.Data)))
	}
	return n
}

func appendFiles(b []byte, files []File, n int) []byte {
	b = der.AppendHeader(b, der.TagSequence, n)
	for _, f := range files {
		b = appendFileHeader(b, f.Path, len(f.Data))
		b = append(b, f.Data...)
	}
	return b
}

// appendFileHeader writes one file of data's SEQUENCE up to its contents,
// which are size bytes long.
func appendFileHeader(b []byte, path string, size int) []byte {
	b = der.AppendHeader(b, der.TagSequence, der.TLV(len(path))+der.TLV(size))
	b = der.AppendString(b, path)
	return der.AppendHeader(b, der.TagUTF8String, size)
}
