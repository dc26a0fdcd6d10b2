package builder

import "fmt"

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
	job := tlv(len(e.Job.Name)) + tlv(len(e.Job.Script)) + tlv(jobFiles)
	if e.Job.Platform != "" {
		job += tlv(len(e.Job.Platform))
	}
	console := 0
	for _, l := range e.Console {
		console += tlv(tlv(intLen(int64(l.Delta))) + tlv(len(l.Data)))
	}
	started, finished := e.Started.UTC(), e.Finished.UTC()
	times := tlv(generalizedTimeLen(started)) + tlv(generalizedTimeLen(finished))
	var result int
	if e.Result.Kind == ResultMsg {
		result = tlv(len(e.Result.Msg))
	} else {
		result = tlv(intLen(int64(e.Result.Code)))
	}
	seq := tlv(job) + tlv(len(e.UUID)) + tlv(console) + tlv(times) + tlv(result) + tlv(output)
	total = tlv(tlv(seq))

	b = make([]byte, 0, total-output+extra)
	b = appendHeader(b, tagExplicit0, tlv(seq))
	b = appendHeader(b, tagSequence, seq)

	b = appendHeader(b, tagSequence, job)
	b = appendString(b, e.Job.Name)
	b = appendString(b, e.Job.Script)
	b = appendFiles(b, e.Job.Files, jobFiles)
	if e.Job.Platform != "" {
		b = appendString(b, e.Job.Platform)
	}

	b = appendBytes(b, e.UUID[:])

	b = appendHeader(b, tagSequence, console)
	for i := len(e.Console) - 1; i >= 0; i-- {
		l := e.Console[i]
		b = appendHeader(b, tagSequence, tlv(intLen(int64(l.Delta)))+tlv(len(l.Data)))
		b = appendInt(b, int64(l.Delta))
		b = appendString(b, l.Data)
	}

	b = appendHeader(b, tagSequence, times)
	b = appendGeneralizedTime(b, started)
	b = appendGeneralizedTime(b, finished)

	b = appendHeader(b, tagExplicit0+byte(e.Result.Kind-ResultExited), result)
	if e.Result.Kind == ResultMsg {
		b = appendString(b, e.Result.Msg)
	} else {
		b = appendInt(b, int64(e.Result.Code))
	}
	b = appendHeader(b, tagSequence, output)
	return b, total
}

func filesLen(files []File) int {
	n := 0
	for _, f := range files {
		n += tlv(tlv(len(f.Path)) + tlv(len(f.Data)))
	}
	return n
}

func appendFiles(b []byte, files []File, n int) []byte {
	b = appendHeader(b, tagSequence, n)
	for _, f := range files {
		b = appendFileHeader(b, f.Path, len(f.Data))
		b = append(b, f.Data...)
	}
	return b
}

// appendFileHeader writes one file of data's SEQUENCE up to its contents,
// which are size bytes long.
func appendFileHeader(b []byte, path string, size int) []byte {
	b = appendHeader(b, tagSequence, tlv(len(path))+tlv(size))
	b = appendString(b, path)
	return appendHeader(b, tagUTF8String, size)
}
