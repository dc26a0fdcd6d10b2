package builder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// streamFiles turns e's output into StreamFiles reading from the slices.
func streamFiles(e *Exec) []StreamFile {
	var fs []StreamFile
	for _, f := range e.Output {
		fs = append(fs, StreamFile{Path: f.Path, Size: int64(len(f.Data)), Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(f.Data)), nil
		}})
	}
	return fs
}

// TestEncoderMatchesMarshal checks the streaming Encoder against Marshal,
// the in-memory encoder: the same bytes for records with no output, empty
// files, several files, a message result, and a 10 MiB record; Size is the
// length written.
func TestEncoderMatchesMarshal(t *testing.T) {
	_, big := bigExec(t)
	none := goldenExec()
	none.Output = nil
	several := goldenExec()
	several.Output = append(several.Output, File{Path: "empty"}, File{Path: "bin/x.debug", Data: bytes.Repeat([]byte{0xff}, 300)},
		File{Path: "opam-switch", Data: []byte("opam-version: \"2.0\"\n")})
	msg := goldenExec()
	msg.Result = Result{Kind: ResultMsg, Msg: "timeout"}
	msg.Job.Platform = ""
	for name, e := range map[string]*Exec{"golden": goldenExec(), "no output": none, "several": several, "message": msg, "big": big} {
		want, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		enc, err := NewEncoder(e, streamFiles(e))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got bytes.Buffer
		n, err := enc.WriteTo(&got)
		if err != nil || n != int64(got.Len()) || enc.Size() != n {
			t.Fatalf("%s: wrote %d (Size %d, buffer %d): %v", name, n, enc.Size(), got.Len(), err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("%s: Encoder and Marshal differ", name)
		}
	}
}

// TestEncoderErrors checks that the Encoder refuses what Marshal refuses,
// fails on a file shorter than its size, and reads no more than the size.
func TestEncoderErrors(t *testing.T) {
	e := goldenExec()
	fs := streamFiles(e)
	fs[0].Path = "../x"
	if _, err := NewEncoder(e, fs); err == nil || err.Error() != `exec: output file 0: path "../x": has a ".." element` {
		t.Errorf("bad path: %v", err)
	}
	fs = streamFiles(e)
	fs[0].Size = -1
	if _, err := NewEncoder(e, fs); err == nil {
		t.Error("negative size accepted")
	}

	fs = streamFiles(e)
	fs[0].Size++
	enc, err := NewEncoder(e, fs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.WriteTo(io.Discard); err == nil || !strings.Contains(err.Error(), "4 bytes, 5 expected") {
		t.Errorf("short file: %v", err)
	}

	long := &countingReader{r: bytes.NewReader(append(bytes.Clone(e.Output[0].Data), "extra"...))}
	fs = streamFiles(e)
	fs[0].Open = func() (io.ReadCloser, error) { return io.NopCloser(long), nil }
	enc, _ = NewEncoder(e, fs)
	var got bytes.Buffer
	if _, err := enc.WriteTo(&got); err != nil {
		t.Fatal(err)
	}
	if want, _ := e.Marshal(); !bytes.Equal(got.Bytes(), want) || long.n != int64(len(e.Output[0].Data)) {
		t.Errorf("a longer source: read %d bytes", long.n)
	}

	boom := errors.New("integrity")
	fs = streamFiles(e)
	fs[0].Open = func() (io.ReadCloser, error) { return nil, boom }
	enc, _ = NewEncoder(e, fs)
	if _, err := enc.WriteTo(io.Discard); !errors.Is(err, boom) {
		t.Errorf("failing open: %v", err)
	}
}

// TestEncoderAfterHead: AfterHead runs once, after the head is written and
// before any output file is opened, so a caller can give back what it
// held for the script and console while the files stream.
func TestEncoderAfterHead(t *testing.T) {
	e := goldenExec()
	e.Output = append(e.Output, File{Path: "bin/second", Data: []byte("two")})
	var events []string
	var out bytes.Buffer
	files := streamFiles(e)
	for i := range files {
		open := files[i].Open
		files[i].Open = func() (io.ReadCloser, error) {
			events = append(events, fmt.Sprintf("open after %d bytes", out.Len()))
			return open()
		}
	}
	enc, err := NewEncoder(e, files)
	if err != nil {
		t.Fatal(err)
	}
	enc.AfterHead = func() { events = append(events, fmt.Sprintf("after head at %d bytes", out.Len())) }
	if _, err := enc.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	if len(events) != 1+len(files) || !strings.HasPrefix(events[0], "after head") || out.Len() == 0 {
		t.Fatalf("events: %q", events)
	}
	want, _ := e.Marshal()
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatal("the record differs from Marshal's")
	}
}
