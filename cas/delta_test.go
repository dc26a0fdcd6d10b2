package cas

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// nextVersion changes about a hundredth of b: replaced, inserted and
// deleted runs of random bytes at random places, as a rebuild with a few
// changed functions changes a binary.
func nextVersion(seed uint64, b []byte) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	out := bytes.Clone(b)
	for budget := len(b) / 100; budget > 0; {
		n := min(256+r.IntN(4096), budget)
		budget -= n
		at := r.IntN(len(out) - n)
		run := randBytes(r.Uint64(), n)
		switch r.IntN(3) {
		case 0:
			copy(out[at:], run)
		case 1:
			out = append(out[:at], append(run, out[at:]...)...)
		default:
			out = append(out[:at], append(run[:n/2], out[at+n:]...)...)
		}
	}
	return out
}

// codeBytes is n bytes drawn from a vocabulary of 4,096 random words of 2
// to 15 bytes: about as compressible as machine code (2:1), with matches as
// unambiguous.
func codeBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 11))
	vocab := make([][]byte, 4096)
	for i := range vocab {
		vocab[i] = randBytes(r.Uint64(), 2+r.IntN(14))
	}
	b := make([]byte, 0, n+16)
	for len(b) < n {
		b = append(b, vocab[r.IntN(len(vocab))]...)
	}
	return b[:n]
}

func recordOf(t *testing.T, s *Store, d Digest) record {
	t.Helper()
	rec, reason := parseRecord(getValue(t, s.db, blobKey(d)))
	if reason != "" {
		t.Fatal(reason)
	}
	return rec
}

// storedAsPatch stores base whole and its next version (seed) against it,
// checking that the version is stored as a patch; it returns the base's
// digest, the version and its Info.
func storedAsPatch(t *testing.T, s *Store, base []byte, seed uint64) (Digest, []byte, Info) {
	t.Helper()
	ctx := context.Background()
	bi, err := s.Put(ctx, bytes.NewReader(base))
	if err != nil {
		t.Fatal(err)
	}
	next := nextVersion(seed, base)
	info, err := s.PutWithBase(ctx, bytes.NewReader(next), int64(len(next)), bi.Digest)
	if err != nil || recordOf(t, s, info.Digest).delta == nil {
		t.Fatalf("setup: not stored as a patch: %+v %v", info, err)
	}
	return bi.Digest, next, info
}

// readAll checks every way of reading d against want.
func readAll(t *testing.T, s *Store, d Digest, want []byte) {
	t.Helper()
	ctx := context.Background()
	got, err := s.Bytes(ctx, d, MaxDeltaSize)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Bytes: %d bytes, %v; want %d", len(got), err, len(want))
	}
	r, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != int64(len(want)) {
		t.Fatalf("Size %d, want %d", r.Size(), len(want))
	}
	if len(want) >= 2000 {
		part := make([]byte, 1000)
		if _, err := r.ReadAt(part, int64(len(want)/2)); err != nil || !bytes.Equal(part, want[len(want)/2:len(want)/2+1000]) {
			t.Fatalf("ReadAt: %v", err)
		}
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("Read: %v", err)
	}
}

// TestDeltaRoundTrip: a blob with a hundredth changed from its base is
// stored as a patch far smaller than what storing it whole writes, reads
// back exactly every way, and Stat counts the patch's bytes.
func TestDeltaRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Options{})
	base := codeBytes(1, 2<<20)
	bi, err := s.Put(ctx, bytes.NewReader(base))
	if err != nil {
		t.Fatal(err)
	}
	next := nextVersion(2, base)
	info, err := s.PutWithBase(ctx, bytes.NewReader(next), int64(len(next)), bi.Digest)
	if err != nil || info.Digest != Sum(next) || info.Size != int64(len(next)) {
		t.Fatalf("PutWithBase: %+v %v", info, err)
	}
	rec := recordOf(t, s, info.Digest)
	if rec.delta == nil || rec.delta.depth != 1 || rec.delta.base != bi.Digest {
		t.Fatalf("stored as kind %d (%+v), want a patch against the base", rec.kind, rec.delta)
	}
	whole, _ := openTest(t, Options{})
	if _, err := whole.Put(ctx, bytes.NewReader(base)); err != nil {
		t.Fatal(err)
	}
	wi, err := whole.Put(ctx, bytes.NewReader(next))
	if err != nil {
		t.Fatal(err)
	}
	if info.Written*4 > wi.Written {
		t.Fatalf("the patch wrote %d bytes, storing it whole %d", info.Written, wi.Written)
	}
	readAll(t, s, info.Digest, next)
	// Read again (from the rebuilt cache): what Bytes hands out is the
	// caller's to change.
	got, err := s.Bytes(ctx, info.Digest, MaxDeltaSize)
	if err != nil {
		t.Fatal(err)
	}
	got[0] ^= 1
	readAll(t, s, info.Digest, next)
	st, err := s.Stat(info.Digest)
	if err != nil || st.StoredBytes < info.Written-100 || st.StoredBytes > info.Written {
		t.Fatalf("Stat: %+v %v; written %d", st, err, info.Written)
	}
	// Storing it again writes nothing.
	again, err := s.PutWithBase(ctx, bytes.NewReader(next), int64(len(next)), bi.Digest)
	if err != nil || again.Written != 0 || again.Digest != info.Digest {
		t.Fatalf("again: %+v %v", again, err)
	}
}

// TestDeltaFallbacks: content is stored whole when there is no usable base
// or the patch would not pay, and the caller's size is only a hint.
func TestDeltaFallbacks(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Options{})
	base := codeBytes(1, 1<<20)
	bi, _ := s.Put(ctx, bytes.NewReader(base))
	for name, c := range map[string]struct {
		data []byte
		size int64
		base Digest
	}{
		"no base":           {nextVersion(3, base), 1 << 20, Digest{}},
		"unknown base":      {nextVersion(4, base), 1 << 20, Sum([]byte("never stored"))},
		"unrelated":         {randBytes(5, 1<<20), 1 << 20, bi.Digest},
		"small":             {base[:1000], 1000, bi.Digest},
		"longer than said":  {nextVersion(6, base), 1000 * 1000, bi.Digest},
		"shorter than said": {nextVersion(7, base)[:900000], 1 << 20, bi.Digest},
	} {
		info, err := s.PutWithBase(ctx, bytes.NewReader(c.data), c.size, c.base)
		if err != nil || info.Digest != Sum(c.data) {
			t.Fatalf("%s: %+v %v", name, info, err)
		}
		rec := recordOf(t, s, info.Digest)
		if wantDelta := name == "shorter than said"; (rec.delta != nil) != wantDelta {
			t.Errorf("%s: stored as a patch: %v, want %v", name, rec.delta != nil, wantDelta)
		}
		readAll(t, s, info.Digest, c.data)
	}
}

// TestDeltaChain stores 140 successive versions, each against the one
// before: every version reads back exactly, no chain is deeper than
// MaxDeltaDepth, chains are restarted with a whole copy when their patches
// outweigh 1.5 times a whole copy, and what was written stays within the
// bound the restarts give: the patches plus a whole copy per 1.5 copies'
// worth of patches.
func TestDeltaChain(t *testing.T) {
	if testing.Short() {
		t.Skip("140 patch encodings")
	}
	ctx := context.Background()
	s, _ := openTest(t, Options{})
	cur := codeBytes(9, 256<<10)
	info, err := s.Put(ctx, bytes.NewReader(cur))
	if err != nil {
		t.Fatal(err)
	}
	versions := [][]byte{cur}
	digests := []Digest{info.Digest}
	var written, patches, restarts, wholeSize int64
	for i := range 140 {
		next := nextVersion(uint64(100+i), cur)
		n, err := s.PutWithBase(ctx, bytes.NewReader(next), int64(len(next)), digests[len(digests)-1])
		if err != nil {
			t.Fatal(err)
		}
		written += n.Written
		if rec := recordOf(t, s, n.Digest); rec.delta == nil {
			restarts++
		} else {
			p, err := s.Stat(rec.delta.patch)
			if err != nil {
				t.Fatal(err)
			}
			patches += p.StoredBytes
			if rec.delta.depth > MaxDeltaDepth || rec.delta.depth != recordDepth(t, s, rec.delta.base)+1 {
				t.Fatalf("version %d at depth %d", i, rec.delta.depth)
			}
		}
		wholeSize = int64(len(s.enc.EncodeAll(next, nil)))
		versions, digests, cur = append(versions, next), append(digests, n.Digest), next
	}
	for i, d := range digests {
		readAll(t, s, d, versions[i])
	}
	if restarts == 0 || restarts > 20 {
		t.Fatalf("%d chains restarted with a whole copy", restarts)
	}
	if limit := patches + (restarts+1)*wholeSize*5/4; written > limit {
		t.Fatalf("wrote %d bytes: patches %d, %d whole copies of ~%d", written, patches, restarts, wholeSize)
	}
	t.Logf("140 versions of %d KiB: %d bytes written, %d in patches, %d whole copies", len(cur)>>10, written, patches, restarts)
}

func recordDepth(t *testing.T, s *Store, d Digest) int64 {
	if rec := recordOf(t, s, d); rec.delta != nil {
		return rec.delta.depth
	}
	return 0
}

// TestDeltaCorrupt damages a patch, its record and its chain: every read
// fails with an *IntegrityError and hands out nothing.
func TestDeltaCorrupt(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*Store, Digest, Digest, []byte) {
		s, _ := openTest(t, Options{})
		base, next, info := storedAsPatch(t, s, codeBytes(1, 1<<20), 2)
		return s, info.Digest, base, next
	}
	rewrite := func(t *testing.T, s *Store, d Digest, f func(*deltaRecord, *int64)) {
		rec := recordOf(t, s, d)
		size := rec.size
		f(rec.delta, &size)
		setValue(t, s.db, blobKey(d), appendDeltaRecord(nil, size, *rec.delta))
	}
	t.Run("patch bytes", func(t *testing.T) {
		s, d, _, next := setup(t)
		p := recordOf(t, s, d).delta.patch
		k := blobKey(p) // a small patch is inline
		if refs := chunkRefs(t, s, p); len(refs) > 0 {
			k = chunkKey(refs[0].d)
		}
		v := getValue(t, s.db, k)
		v[len(v)/2] ^= 1
		setValue(t, s.db, k, v)
		expectIntegrityErr(t, s, d, next, false)
	})
	t.Run("other patch", func(t *testing.T) {
		s, d, _, next := setup(t)
		other, _ := s.Put(ctx, bytes.NewReader(randBytes(3, 100<<10)))
		rewrite(t, s, d, func(r *deltaRecord, _ *int64) { r.patch = other.Digest })
		expectIntegrity(t, s, d, next)
	})
	t.Run("bomb", func(t *testing.T) {
		s, d, _, next := setup(t)
		bomb, _ := s.Put(ctx, bytes.NewReader(zstdBomb(t)))
		rewrite(t, s, d, func(r *deltaRecord, _ *int64) { r.patch = bomb.Digest })
		expectIntegrity(t, s, d, next)
	})
	t.Run("missing base", func(t *testing.T) {
		s, d, _, next := setup(t)
		rewrite(t, s, d, func(r *deltaRecord, _ *int64) { r.base = Sum([]byte("gone")) })
		expectIntegrity(t, s, d, next)
	})
	t.Run("other base", func(t *testing.T) {
		s, d, _, next := setup(t)
		other, _ := s.Put(ctx, bytes.NewReader(codeBytes(4, 1<<20)))
		rewrite(t, s, d, func(r *deltaRecord, _ *int64) { r.base = other.Digest })
		expectIntegrity(t, s, d, next)
	})
	t.Run("wrong size", func(t *testing.T) {
		s, d, _, next := setup(t)
		rewrite(t, s, d, func(_ *deltaRecord, size *int64) { *size -= 10 })
		expectIntegrity(t, s, d, next)
	})
	t.Run("depth", func(t *testing.T) {
		s, d, _, next := setup(t)
		rewrite(t, s, d, func(r *deltaRecord, _ *int64) { r.depth = 2 })
		expectIntegrity(t, s, d, next)
	})
	t.Run("loop", func(t *testing.T) {
		// A patch whose patch is itself (and whose base is itself):
		// refused, not followed.
		s, d, _, next := setup(t)
		rewrite(t, s, d, func(r *deltaRecord, _ *int64) { r.patch, r.base = d, d })
		expectIntegrity(t, s, d, next)
		var ie *IntegrityError
		if _, err := s.Stat(d); !errors.As(err, &ie) {
			t.Fatalf("Stat: %v", err)
		}
	})
}

// TestDeltaPatchAlreadyAPatch: the bytes of a new blob's patch can be
// predicted (builds are reproducible) and stored beforehand as a patch
// themselves; the new blob is then stored whole, not as a patch nobody can
// read, and the next version stores and reads normally.
func TestDeltaPatchAlreadyAPatch(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Options{})
	base := codeBytes(1, 8<<20) // a patch larger than InlineMax
	bi, _ := s.Put(ctx, bytes.NewReader(base))
	target := nextVersion(2, base)
	patch, err := encodePatch(base, target)
	if err != nil {
		t.Fatal(err)
	}
	near := bytes.Clone(patch)
	for i := 0; i < len(near); i += 1024 {
		near[i] ^= 0xff
	}
	ni, _ := s.Put(ctx, bytes.NewReader(near))
	pi, err := s.PutWithBase(ctx, bytes.NewReader(patch), int64(len(patch)), ni.Digest)
	if err != nil || recordOf(t, s, pi.Digest).delta == nil {
		t.Fatalf("setup: the patch's bytes are not stored as a patch: %v", err)
	}
	ti, err := s.PutWithBase(ctx, bytes.NewReader(target), int64(len(target)), bi.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if rec := recordOf(t, s, ti.Digest); rec.delta != nil && rec.delta.patch == pi.Digest {
		t.Fatal("stored as a patch whose patch is a patch")
	}
	readAll(t, s, ti.Digest, target)
	if _, err := s.Stat(ti.Digest); err != nil {
		t.Fatal(err)
	}
	next := nextVersion(3, target)
	xi, err := s.PutWithBase(ctx, bytes.NewReader(next), int64(len(next)), ti.Digest)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, s, xi.Digest, next)
}

// TestDeltaDamagedBase: a new version stored against a base that no longer
// reads back (its patch is gone) is stored whole, readable, instead of
// failing or depending on the damage.
func TestDeltaDamagedBase(t *testing.T) {
	ctx := context.Background()
	s, db := openTest(t, Options{})
	_, v1, i1 := storedAsPatch(t, s, codeBytes(1, 1<<20), 2)
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(blobKey(recordOf(t, s, i1.Digest).delta.patch)) }); err != nil {
		t.Fatal(err)
	}
	v2 := nextVersion(3, v1)
	info, err := s.PutWithBase(ctx, bytes.NewReader(v2), int64(len(v2)), i1.Digest)
	if err != nil || recordOf(t, s, info.Digest).delta != nil {
		t.Fatalf("stored against a damaged base: %+v %v", info, err)
	}
	readAll(t, s, info.Digest, v2)
}

// blockingReader yields its bytes only after release is closed.
type blockingReader struct {
	r       io.Reader
	release chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	<-b.release
	return b.r.Read(p)
}

// TestDeltaSlowSenders: uploads whose bodies have not arrived hold none of
// the patch budget, so blobs stored as patches still open at once.
func TestDeltaSlowSenders(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, Options{})
	base := codeBytes(1, 1<<20)
	baseDigest, _, info := storedAsPatch(t, s, base, 2)
	release := make(chan struct{})
	done := make(chan error, 8)
	for i := range 8 {
		body := &blockingReader{bytes.NewReader(nextVersion(uint64(10+i), base)), release}
		go func() {
			_, err := s.PutWithBase(ctx, body, MaxDeltaSize, baseDigest)
			done <- err
		}()
	}
	s.rebuilt = newRebuiltCache(rebuiltBytes) // nothing kept: Open rebuilds
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := s.Open(octx, info.Digest)
	if err != nil {
		t.Fatalf("Open with 8 uploads waiting for their bodies: %v", err)
	}
	r.Close()
	close(release)
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeltaOpenRebuildsOnRead: opening a blob stored as a patch reads its
// record only (its size answers a HEAD or a 304); the rebuild happens on
// the first read, once, also when reads race.
func TestDeltaOpenRebuildsOnRead(t *testing.T) {
	ctx := context.Background()
	s, db := openTest(t, Options{})
	_, next, info := storedAsPatch(t, s, codeBytes(1, 1<<20), 2)
	patch := recordOf(t, s, info.Digest).delta.patch
	s.rebuilt = newRebuiltCache(rebuiltBytes)
	r, err := s.Open(ctx, info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	// Gone after the Open: only a read can notice.
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(blobKey(patch)) }); err != nil {
		t.Fatal(err)
	}
	var ie *IntegrityError
	if r.Size() != int64(len(next)) {
		t.Fatalf("Size %d, want %d", r.Size(), len(next))
	}
	if _, err := r.Read(make([]byte, 10)); !errors.As(err, &ie) {
		t.Fatalf("first read: %v, want the missing patch", err)
	}
	r.Close()

	s2, _ := openTest(t, Options{})
	_, next, info = storedAsPatch(t, s2, codeBytes(3, 1<<20), 4)
	s2.rebuilt = newRebuiltCache(rebuiltBytes)
	r, err = s2.Open(ctx, info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			p := make([]byte, 1000)
			off := int64(i * 100_000)
			if _, err := r.ReadAt(p, off); err != nil || !bytes.Equal(p, next[off:off+1000]) {
				t.Errorf("ReadAt %d: %v", off, err)
			}
		})
	}
	wg.Wait()
}
