package cas_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/cas/castest"
	"github.com/klauspost/compress/zstd"
)

func usage(t *testing.T, s *cas.Store) cas.Usage {
	t.Helper()
	u, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestPutTwice checks that storing content again writes nothing, for inline
// and chunked blobs, through Put and PutBytes.
func TestPutTwice(t *testing.T) {
	ctx := context.Background()
	s, _ := castest.Open(t, cas.Options{})
	for _, data := range [][]byte{castest.Text(1, 1000), castest.RandBytes(2, 3<<20), castest.Text(3, 3<<20)} {
		if _, err := s.PutBytes(ctx, data); err != nil {
			t.Fatal(err)
		}
		before := usage(t, s)
		for range 2 {
			info, err := s.Put(ctx, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if info.Written != 0 {
				t.Errorf("second Put of %d bytes wrote %d", len(data), info.Written)
			}
			info, err = s.PutBytes(ctx, data)
			if err != nil || info.Written != 0 {
				t.Errorf("second PutBytes: %v, wrote %d", err, info.Written)
			}
		}
		if after := usage(t, s); after != before {
			t.Errorf("usage changed by storing the same content again:\n%+v\n%+v", before, after)
		}
	}
}

// TestNearIdentical checks that a package list differing in a few lines
// from one already stored costs a small fraction of the first.
func TestNearIdentical(t *testing.T) {
	ctx := context.Background()
	s, _ := castest.Open(t, cas.Options{})
	p := castest.NewPackages(1, 300_000)
	if _, err := s.PutBytes(ctx, p.Bytes()); err != nil {
		t.Fatal(err)
	}
	first := usage(t, s).StoredBytes
	p.Change(3)
	info, err := s.PutBytes(ctx, p.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	added := usage(t, s).StoredBytes - first
	t.Logf("first version stored in %d bytes, a 3-line change added %d (Put wrote %d)", first, added, info.Written)
	if added > first/4 {
		t.Errorf("a 3-line change added %d bytes, more than a quarter of the first version's %d", added, first)
	}
	st, err := s.Stat(info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if st.StoredBytes < added {
		t.Errorf("Stat says the second version occupies %d bytes, less than it added (%d)", st.StoredBytes, added)
	}
}

// TestDedupChunkSizes measures, for several FastCDC size settings, what 30
// daily rebuilds cost: each day stores a ~300 KB system-packages list and a
// ~600 KB opam switch export, each with a few packages changed since the
// day before. It reports stored/logical bytes and compares with storing each
// file zstd-compressed on its own (no dedup). The defaults come from here.
func TestDedupChunkSizes(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	ctx := context.Background()
	const days = 30
	var defaultPerDay int64
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	var out strings.Builder
	fmt.Fprintf(&out, "\n%-18s %10s %10s %9s %12s %12s %8s\n", "min/normal/max", "logical", "stored", "stored/", "per day", "zstd whole", "dedup")
	fmt.Fprintf(&out, "%-18s %10s %10s %9s %12s %12s %8s\n", "", "bytes", "bytes", "logical", "bytes", "per day", "saving")
	for _, o := range []cas.Options{
		{MinChunk: 512, NormalChunk: 2 << 10, MaxChunk: 16 << 10},
		{MinChunk: 1 << 10, NormalChunk: 4 << 10, MaxChunk: 32 << 10},
		{MinChunk: 2 << 10, NormalChunk: 4 << 10, MaxChunk: 32 << 10},
		{MinChunk: 2 << 10, NormalChunk: 8 << 10, MaxChunk: 64 << 10},
		{MinChunk: 4 << 10, NormalChunk: 16 << 10, MaxChunk: 64 << 10},
		{MinChunk: 8 << 10, NormalChunk: 32 << 10, MaxChunk: 128 << 10},
		{}, // the defaults
	} {
		s, _ := castest.Open(t, o)
		pk := castest.NewPackages(7, 300_000)
		sw := castest.NewSwitch(8, 600_000)
		var logical, whole, firstStored, firstWhole int64
		for day := 0; day <= days; day++ {
			if day > 0 {
				pk.Change(5)
				sw.Change(3)
			}
			for _, b := range [][]byte{pk.Bytes(), sw.Bytes()} {
				if _, err := s.PutBytes(ctx, b); err != nil {
					t.Fatal(err)
				}
				logical += int64(len(b))
				whole += int64(len(enc.EncodeAll(b, nil)))
			}
			if day == 0 {
				firstStored, firstWhole = usage(t, s).StoredBytes, whole
			}
		}
		u := usage(t, s)
		perDay := (u.StoredBytes - firstStored) / days
		if o.MinChunk == 0 {
			defaultPerDay = perDay
		}
		wholePerDay := (whole - firstWhole) / days
		name := fmt.Sprintf("%d/%d/%d", o.MinChunk, o.NormalChunk, o.MaxChunk)
		if o.MinChunk == 0 {
			name = "default"
		}
		fmt.Fprintf(&out, "%-18s %10d %10d %9.4f %12d %12d %7.1fx\n", name, logical, u.StoredBytes,
			float64(u.StoredBytes)/float64(logical), perDay, wholePerDay, float64(wholePerDay)/float64(perDay))
	}
	t.Log(out.String())
	if last := defaultPerDay; last > 40_000 {
		t.Errorf("with the default chunk sizes a day of edits costs %d bytes; expected about 32 KB", last)
	}
}
