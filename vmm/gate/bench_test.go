package gate_test

import (
	"testing"

	"github.com/buildledger/buildledger/internal/benchmarks"
)

// BenchmarkDecisionWarmBundle is one k=3 decision from a cached bundle
// (target: under 5 ms); `go run ./cmd/ledgerbench -only gate` prints it
// next to its baseline.
func BenchmarkDecisionWarmBundle(b *testing.B) {
	f, err := benchmarks.NewGateFixture()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	benchmarks.GateDecision(b, f)
}

// BenchmarkHashImage is image hashing throughput on a 64 MiB file.
func BenchmarkHashImage(b *testing.B) {
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	path, data, err := benchmarks.ImageFile(64<<20, &closers)
	if err != nil {
		b.Fatal(err)
	}
	benchmarks.HashImage(b, path, len(data))
}
