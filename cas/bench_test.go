package cas_test

import (
	"sync"
	"testing"

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
