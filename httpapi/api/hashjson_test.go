package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
)

// FuzzHashLookupJSON: AppendJSON writes what encoding/json writes, byte
// for byte, or fails where it fails, for any strings (escapes, invalid
// UTF-8), times (zones, years out of range) and numbers.
func FuzzHashLookupJSON(f *testing.F) {
	f.Add("hello", "debian-12", "bin/hello.hvt", "origin\n42\nroot\n\n— sig\n", int64(1767225600), int64(123456789), int64(95), 3600, uint64(7), int64(5<<20), true, uint64(0), false)
	f.Add("a", "b", "dir/<&>\"\\\x01\u2028\xff", "", int64(-62135596800), int64(0), int64(-1), -45296, uint64(0), int64(-1), false, uint64(99), true)
	f.Add("j", "p", "x", "c", int64(253402300799), int64(999999999), int64(1), 90000, uint64(1<<63), int64(0), false, uint64(1), false)
	f.Add("j", "p", "x", "c", int64(1767225600), int64(5), int64(1), -90000, uint64(3), int64(0), false, uint64(1), false)
	f.Fuzz(func(t *testing.T, job, platform, path, checkpoint string, started, nanos, took int64, zone int, index uint64, size int64, mainBinary bool, next uint64, attested bool) {
		loc := time.FixedZone("", zone)
		hit := HashHit{Job: job, UUID: uuid.NewSHA1(uuid.Nil, []byte(path)), Platform: platform,
			Started: time.Unix(started, nanos).In(loc), Finished: time.Unix(started+took, 0).UTC(),
			LogIndex: index, Path: path, Size: size, MainBinary: mainBinary}
		h := HashLookup{Builds: []HashHit{hit, hit}, Attestations: []AttestationInfo{}, Checkpoint: checkpoint}
		copy(h.SHA256[:], path)
		if next != 0 {
			h.Next = &next
		}
		if attested {
			h.Attestations = []AttestationInfo{{LogIndex: index, KeyName: job}}
			h.Builds = nil
		}
		want, werr := json.Marshal(&h)
		got, gerr := h.AppendJSON(nil, nil)
		if (werr != nil) != (gerr != nil) || werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("encoding/json: %s %v\nAppendJSON:    %s %v", want, werr, got, gerr)
		}
		if werr != nil {
			return
		}
		cp, _ := json.Marshal(checkpoint)
		if got, _ := h.AppendJSON(nil, cp); !bytes.Equal(got, want) {
			t.Fatalf("with the checkpoint encoded: %s\nwant %s", got, want)
		}
	})
}
