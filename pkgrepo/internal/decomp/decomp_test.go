package decomp

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"runtime"
	"testing"

	ulxz "github.com/ulikunitz/xz"
)

// TestXzDictionaryBomb: an xz stream whose header names a 4 GiB
// dictionary is refused without allocating it.
func TestXzDictionaryBomb(t *testing.T) {
	var b bytes.Buffer
	w, _ := ulxz.NewWriter(&b)
	w.Write([]byte("hello"))
	w.Close()
	x := b.Bytes()
	// The block header follows the 12-byte stream header; its LZMA2
	// filter flags are 0x21 0x01 DICT.
	size := int(x[12]+1) * 4
	hdr := x[12 : 12+size]
	i := bytes.Index(hdr, []byte{0x21, 0x01})
	if i < 0 {
		t.Fatal("no LZMA2 filter flags")
	}
	hdr[i+2] = 40 // 4 GiB - 1
	binary.LittleEndian.PutUint32(hdr[size-4:], crc32.ChecksumIEEE(hdr[:size-4]))

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, done, err := Reader(Xz, bytes.NewReader(x))
	if err == nil {
		_, err = io.Copy(io.Discard, r)
		done()
	}
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a 4 GiB dictionary was accepted")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
		t.Fatalf("refusing it allocated %d MiB", grew>>20)
	}
	// The stream as written reads.
	binary.LittleEndian.PutUint32(hdr[size-4:], 0)
	var ok bytes.Buffer
	w, _ = ulxz.NewWriter(&ok)
	w.Write([]byte("hello"))
	w.Close()
	r, done, err = Reader(Xz, &ok)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if got, err := io.ReadAll(r); err != nil || string(got) != "hello" {
		t.Fatalf("%q, %v", got, err)
	}
}
