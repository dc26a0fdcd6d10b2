package cas_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/cas/castest"
)

const benchSize = 256 << 20

var (
	benchRand = sync.OnceValue(func() []byte { return castest.RandBytes(42, benchSize) })
	benchText = sync.OnceValue(func() []byte { return castest.Text(42, benchSize) })
)

// Each benchmark runs on 256 MiB of incompressible and of text-like data,
// with BenchmarkSHA256 over the same bytes as the baseline.
func benchInputs(b *testing.B, f func(*testing.B, []byte)) {
	b.Run("incompressible", func(b *testing.B) { f(b, benchRand()) })
	b.Run("text", func(b *testing.B) { f(b, benchText()) })
}

func BenchmarkSHA256(b *testing.B)      { benchInputs(b, castest.BenchSHA256) }
func BenchmarkPut(b *testing.B)         { benchInputs(b, castest.BenchPut) }
func BenchmarkGet(b *testing.B)         { benchInputs(b, castest.BenchGet) }
func BenchmarkPutExisting(b *testing.B) { benchInputs(b, castest.BenchPutExisting) }

// BenchmarkPutChunkSizes compares the per-chunk cost of chunk size settings
// on 256 MiB of incompressible data, for new content and for content
// already stored (no writes); see TestDedupChunkSizes for their dedup.
func BenchmarkPutChunkSizes(b *testing.B) {
	for _, o := range []cas.Options{
		{MinChunk: 2 << 10, NormalChunk: 4 << 10, MaxChunk: 32 << 10},
		{MinChunk: 2 << 10, NormalChunk: 8 << 10, MaxChunk: 64 << 10},
		{MinChunk: 4 << 10, NormalChunk: 16 << 10, MaxChunk: 64 << 10},
	} {
		name := fmt.Sprintf("%d-%d-%dKiB", o.MinChunk>>10, o.NormalChunk>>10, o.MaxChunk>>10)
		b.Run(name+"/new", func(b *testing.B) { castest.BenchPutWith(b, benchRand(), o) })
		b.Run(name+"/existing", func(b *testing.B) { castest.BenchPutExistingWith(b, benchRand(), o) })
	}
}
