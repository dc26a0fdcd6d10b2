package builder

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// bigExec is a 10 MiB record shaped like a unikernel build: a large binary,
// its debug twin, orb's text files and a long console.
func bigExec(tb testing.TB) ([]byte, *Exec) {
	e := goldenExec()
	e.Output = []File{
		{Path: "bin/hello.hvt", Data: bytes.Repeat(allBytes(), 4<<12)},       // 4 MiB
		{Path: "bin/hello.hvt.debug", Data: bytes.Repeat(allBytes(), 5<<12)}, // 5 MiB
		{Path: "opam-switch", Data: bytes.Repeat([]byte("package \"x\" {}\n"), 20000)},
		{Path: "build-environment", Data: []byte("PATH=/usr/bin\nHOME=/tmp\n")},
		{Path: "system-packages", Data: bytes.Repeat([]byte("libc6=2.36-9\n"), 2000)},
	}
	e.Console = nil
	for i := range 20000 {
		e.Console = append(e.Console, Line{time.Duration(i) * time.Millisecond, fmt.Sprintf("[%d] building package %d of 20000", i, i)})
	}
	der, err := e.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return der, e
}

func BenchmarkParse(b *testing.B) {
	der, _ := bigExec(b)
	b.SetBytes(int64(len(der)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(der, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	der, e := bigExec(b)
	b.SetBytes(int64(len(der)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
