package tree_test

import (
	"testing"

	"github.com/buildledger/buildledger/internal/benchmarks"
)

// BenchmarkProofs1M measures proof construction at 1,000,000 leaves, with
// client-side verification of the same proof as the baseline.
func BenchmarkProofs1M(b *testing.B) {
	f, err := benchmarks.NewTreeFixture(1_000_000)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.Run("inclusion", func(b *testing.B) { benchmarks.InclusionProof(b, f) })
	b.Run("consistency", func(b *testing.B) { benchmarks.ConsistencyProof(b, f) })
	b.Run("verify-inclusion-baseline", func(b *testing.B) { benchmarks.VerifyInclusion(b, f) })
}
