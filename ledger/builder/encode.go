package builder

import (
	"fmt"
	"io"
	"math"

	"github.com/buildledger/buildledger/internal/der"
)

// StreamFile is an output file whose contents an Encoder reads only while
// it writes them.
type StreamFile struct {
	Path string
	Size int64 // the exact number of bytes Open yields
	// Open returns the contents. The Encoder reads Size bytes, no more, and
	// closes it.
	Open func() (io.ReadCloser, error)
}

// An Encoder writes an exec record exactly as Marshal does, except that the
// output files' contents are copied from their StreamFiles while they are
// written: as every size is known in advance, so is every DER length, and
// memory does not grow with the files (TestEncoderMatchesMarshal checks the
// bytes against Marshal's).
type Encoder struct {
	// AfterHead, if set, is called once the record's head (everything
	// before the output files: job, script, console, result) is written
	// and dropped, before the files are copied: a caller that holds
	// resources for the head (memory, a slot) can let them go.
	AfterHead func()

	head  []byte // the record up to the output files' contents
	files []StreamFile
	size  int64
}

// NewEncoder prepares the record of e with files as its output (e.Output is
// ignored). It refuses, like Marshal, a value that Parse would reject.
func NewEncoder(e *Exec, files []StreamFile) (*Encoder, error) {
	v := *e
	v.Output = make([]File, len(files))
	output := 0
	for i, f := range files {
		v.Output[i] = File{Path: f.Path}
		// Every length must fit in an int, with room for the headers.
		if f.Size < 0 || f.Size > math.MaxInt/4 || output > math.MaxInt/4 {
			return nil, &FormatError{Field: fmt.Sprintf("output file %d", i), Offset: -1, Msg: fmt.Sprintf("size %d is out of range", f.Size)}
		}
		output += der.TLV(der.TLV(len(f.Path)) + der.TLV(int(f.Size)))
	}
	if err := v.validate(); err != nil {
		return nil, err
	}
	head, total := v.head(output, 0)
	return &Encoder{head: head, files: files, size: int64(total)}, nil
}

// Size is the length of the record in bytes.
func (enc *Encoder) Size() int64 { return enc.size }

// WriteTo writes the record to w. It fails if a file yields fewer bytes
// than its Size; bytes past Size are not read.
func (enc *Encoder) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(enc.head)
	written := int64(n)
	if err != nil {
		return written, err
	}
	enc.head = nil
	if enc.AfterHead != nil {
		enc.AfterHead()
	}
	var hdr []byte
	for i, f := range enc.files {
		hdr = appendFileHeader(hdr[:0], f.Path, int(f.Size))
		n, err := w.Write(hdr)
		written += int64(n)
		if err != nil {
			return written, err
		}
		m, err := enc.copyFile(w, i)
		written += m
		if err != nil {
			return written, err
		}
	}
	if written != enc.size {
		return written, fmt.Errorf("exec: internal error: wrote %d bytes, computed %d", written, enc.size)
	}
	return written, nil
}

func (enc *Encoder) copyFile(w io.Writer, i int) (int64, error) {
	f := enc.files[i]
	rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("exec: output file %d %q: %w", i, f.Path, err)
	}
	defer rc.Close()
	n, err := io.CopyN(w, rc, f.Size)
	if err == io.EOF {
		return n, fmt.Errorf("exec: output file %d %q: %d bytes, %d expected", i, f.Path, n, f.Size)
	}
	if err != nil {
		return n, fmt.Errorf("exec: output file %d %q: %w", i, f.Path, err)
	}
	return n, nil
}
