package ledger_test

import (
	"testing"

	"github.com/buildledger/buildledger/internal/benchmarks"
)

// BenchmarkAppend measures durable appends of build events; the raw badger
// sub-benchmarks write the same bytes in synced transactions as a baseline.
func BenchmarkAppend(b *testing.B) {
	b.Run("appenders=1", func(b *testing.B) { benchmarks.Append(b, 1) })
	b.Run("appenders=64", func(b *testing.B) { benchmarks.Append(b, 64) })
	b.Run("raw-badger-batch=1", func(b *testing.B) { benchmarks.RawBadgerWrites(b, 1) })
	b.Run("raw-badger-batch=64", func(b *testing.B) { benchmarks.RawBadgerWrites(b, 64) })
}

// BenchmarkReplay measures rebuilding the projections of 20,000 builds.
func BenchmarkReplay(b *testing.B) { benchmarks.Replay(b, 20_000) }
