package builder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// collect is a Sink that keeps what Decode hands it, to compare with Parse.
type collect struct {
	jobs        []string
	jobFiles    [][]byte
	outputFiles [][]byte
	order       []string // "job" and file paths, in call order
}

func (c *collect) Job(name string) error {
	c.jobs = append(c.jobs, name)
	c.order = append(c.order, "job")
	return nil
}

func (c *collect) File(f FileInfo, data io.Reader) error {
	b, err := io.ReadAll(data)
	if err != nil {
		return err
	}
	if int64(len(b)) != f.Size {
		return fmt.Errorf("file %q: read %d bytes, told %d", f.Path, len(b), f.Size)
	}
	if len(b) == 0 {
		b = nil // as Parse has it
	}
	if f.Job {
		if f.Index != len(c.jobFiles) {
			return fmt.Errorf("job file index %d, want %d", f.Index, len(c.jobFiles))
		}
		c.jobFiles = append(c.jobFiles, b)
	} else {
		if f.Index != len(c.outputFiles) {
			return fmt.Errorf("output file index %d, want %d", f.Index, len(c.outputFiles))
		}
		c.outputFiles = append(c.outputFiles, b)
	}
	c.order = append(c.order, f.Path)
	return nil
}

// decodeAll decodes der through a collecting sink and puts the file data
// back into the value, so that it can be compared with Parse's.
func decodeAll(der []byte, lim Limits, oneByte bool) (*Exec, *collect, error) {
	var r io.Reader = bytes.NewReader(der)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	c := new(collect)
	e, err := Decode(r, lim, c)
	if err != nil {
		return nil, c, err
	}
	if len(c.jobFiles) != len(e.Job.Files) || len(c.outputFiles) != len(e.Output) {
		return nil, c, fmt.Errorf("sink saw %d+%d files, value has %d+%d", len(c.jobFiles), len(c.outputFiles), len(e.Job.Files), len(e.Output))
	}
	for i := range e.Job.Files {
		if e.Job.Files[i].Data != nil {
			return nil, c, errors.New("Decode kept file data")
		}
		e.Job.Files[i].Data = c.jobFiles[i]
	}
	for i := range e.Output {
		if e.Output[i].Data != nil {
			return nil, c, errors.New("Decode kept file data")
		}
		e.Output[i].Data = c.outputFiles[i]
	}
	return e, c, nil
}

// FuzzDecode checks the streaming Decode against Parse, the in-memory
// parser: both accept the same inputs, with the same value; Decode's errors
// on input are *FormatError; the sink sees the job name first and every
// file once, in wire order, with its exact contents. Inputs of odd length
// are read one byte per Read, to exercise every split of the stream.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	lim := Limits{MaxFiles: 100, MaxFileSize: 1 << 20, MaxConsoleLines: 1000, MaxTotal: 1 << 22, MaxText: 1 << 16}
	f.Fuzz(func(t *testing.T, der []byte) {
		want, perr := Parse(der, lim)
		got, c, derr := decodeAll(der, lim, len(der)%2 == 1)
		if (perr == nil) != (derr == nil) {
			t.Fatalf("Parse: %v\nDecode: %v", perr, derr)
		}
		if derr != nil {
			var fe *FormatError
			if !errors.As(derr, &fe) {
				t.Fatalf("Decode error %T: %v", derr, derr)
			}
			return
		}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("values differ:\nParse  %s\nDecode %s", describe(want), describe(got))
		}
		if len(c.jobs) != 1 || c.jobs[0] != want.Job.Name || c.order[0] != "job" {
			t.Fatalf("sink calls %q", c.order)
		}
	})
}

// TestDecodeAgrees decodes the records of the round-trip and golden tests
// and a 10 MiB one, whole and one byte per Read, and compares with Parse.
func TestDecodeAgrees(t *testing.T) {
	big, _ := bigExec(t)
	msg := goldenWire()
	msg.result, msg.msg = 3, "timeout"
	msg.jobFiles = []wfile{{path: "a/b", data: []byte("c")}, {path: "empty"}}
	msg.output = append(msg.output, wfile{path: "bin/x", data: []byte("\x00")}, wfile{path: "README.md"})
	for name, der := range map[string][]byte{"golden": mustHex(t, goldenHex), "message": msg.der(), "big": big} {
		want, err := Parse(der, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		for _, oneByte := range []bool{false, true} {
			if oneByte && len(der) > 1<<20 {
				continue
			}
			got, c, err := decodeAll(der, Limits{}, oneByte)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("%s: values differ:\nParse  %s\nDecode %s", name, describe(want), describe(got))
			}
			if c.order[0] != "job" {
				t.Fatalf("%s: sink calls %q", name, c.order)
			}
		}
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type refuseJob struct{}

var errForbidden = errors.New("forbidden job")

func (refuseJob) Job(string) error               { return errForbidden }
func (refuseJob) File(FileInfo, io.Reader) error { return nil }

// TestDecodeStopsEarly checks that Decode reads no further than it must: a
// sink refusing the job, and a record claiming more than MaxTotal, stop it
// within the first read buffer of a 10 MiB record.
func TestDecodeStopsEarly(t *testing.T) {
	der, _ := bigExec(t)
	cr := &countingReader{r: bytes.NewReader(der)}
	if _, err := Decode(cr, Limits{}, refuseJob{}); err != errForbidden {
		t.Fatalf("refused job: %v, want the sink's error as is", err)
	}
	if cr.n > readBuffer {
		t.Errorf("refused job: read %d of %d bytes", cr.n, len(der))
	}
	cr = &countingReader{r: bytes.NewReader(der)}
	_, err := Decode(cr, Limits{MaxTotal: 1 << 20}, nil)
	if !errors.Is(err, ErrLimit) || err.Error() != fmt.Sprintf("exec: input of %d bytes is larger than the limit of 1048576 (at byte 0)", len(der)) {
		t.Fatalf("too large: %v", err)
	}
	if cr.n > readBuffer {
		t.Errorf("too large: read %d of %d bytes", cr.n, len(der))
	}
	// A file larger than MaxFileSize is refused at its header.
	cr = &countingReader{r: bytes.NewReader(der)}
	if _, err := Decode(cr, Limits{MaxFileSize: 1 << 20}, nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("file too large: %v", err)
	}
	if first := int64(bytes.Index(der, []byte("bin/hello.hvt"))); cr.n > first+readBuffer {
		t.Errorf("file too large: read %d bytes, the file starts at %d", cr.n, first)
	}
}

// TestDecodeErrorsFromReaderAndSink checks which error Decode returns when
// the reader fails, when the input ends inside a file the sink is reading,
// and when the sink fails; and that a sink may leave data unread.
func TestDecodeErrorsFromReaderAndSink(t *testing.T) {
	der, _ := bigExec(t)
	boom := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(der[:len(der)/2]), iotest.ErrReader(boom))
	if _, err := Decode(r, Limits{}, &collect{}); !errors.Is(err, boom) {
		t.Errorf("failing reader: %v", err)
	}
	var fe *FormatError
	_, err := Decode(bytes.NewReader(der[:len(der)/2]), Limits{}, &collect{})
	if !errors.As(err, &fe) || fe.Msg != "truncated: the input ends inside the exec record" || !strings.HasPrefix(fe.Field, "output file ") || !strings.HasSuffix(fe.Field, ": data") {
		t.Errorf("truncated inside a file: %v", err)
	}
	sinkErr := errors.New("disk full")
	if _, err := Decode(bytes.NewReader(der), Limits{}, failFile{sinkErr}); err != sinkErr {
		t.Errorf("failing sink: %v", err)
	}
	if _, err := Decode(bytes.NewReader(der), Limits{}, readSome{}); err != nil {
		t.Errorf("sink reading part of each file: %v", err)
	}
}

type failFile struct{ err error }

func (failFile) Job(string) error                 { return nil }
func (f failFile) File(FileInfo, io.Reader) error { return f.err }

type readSome struct{}

func (readSome) Job(string) error { return nil }
func (readSome) File(_ FileInfo, r io.Reader) error {
	_, err := r.Read(make([]byte, 10))
	if err == io.EOF {
		err = nil
	}
	return err
}
