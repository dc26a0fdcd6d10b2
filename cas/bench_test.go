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

// Each benchmark runs on 256 MiB of incompressible and of text-like data.
// BenchmarkSHA256 over the same bytes is the baseline for all of them;
// BenchmarkBadgerWrite, badger alone storing the same bytes, is the ceiling
// for Put of new content.
func benchInputs(b *testing.B, f func(*testing.B, []byte)) {
	b.Run("incompressible", func(b *testing.B) { f(b, benchRand()) })
	b.Run("text", func(b *testing.B) { f(b, benchText()) })
}

func BenchmarkSHA256(b *testing.B)      { benchInputs(b, castest.BenchSHA256) }
func BenchmarkBadgerWrite(b *testing.B) { benchInputs(b, castest.BenchBadgerWrite) }
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

// event returns the n-th of a series of distinct ~700-byte JSON events.
func event(n int) []byte {
	return fmt.Appendf(nil, `{"kind":"build-finished","seq":%d,"job":"unipi-%d","builder":"b%d","status":"ok","inputs":"%s","outputs":["%s"],"started":"2026-11-22T04:%02d:00Z","duration_ms":%d,"log":%q}`,
		n, n%97, n%7, cas.Sum(fmt.Append(nil, n)), cas.Sum(fmt.Append(nil, -n)), n%60, n*37%100000, castest.Text(uint64(n), 200))
}

// BenchmarkPutTxn measures PutTxn of distinct ~700-byte events in
// transactions of 1000, commit included (ns/op is per event), as the ledger
// stores events with their log leaves. "lookup-first" adds the existence
// check PutTxn leaves out: it costs more than rewriting the rare duplicate.
func BenchmarkPutTxn(b *testing.B) {
	for _, lookup := range []bool{false, true} {
		name := "put"
		if lookup {
			name = "lookup-first"
		}
		b.Run(name, func(b *testing.B) {
			s, db := castest.Open(b, cas.Options{})
			const batch = 1000
			evs := make([][]byte, batch)
			var logical, stored int64
			n := 0
			for i := 0; i < b.N; i += batch {
				b.StopTimer()
				for j := range evs {
					evs[j] = event(n)
					n++
				}
				b.StartTimer()
				txn := db.NewTransaction(true)
				for _, e := range evs {
					if lookup {
						if ok, _ := s.Has(cas.Sum(e)); ok {
							continue
						}
					}
					if _, err := s.PutTxn(txn, e); err != nil {
						b.Fatal(err)
					}
				}
				if err := txn.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			u, err := s.Usage()
			if err != nil {
				b.Fatal(err)
			}
			logical, stored = u.LogicalBytes, u.RecordBytes
			b.ReportMetric(float64(stored)/float64(logical), "stored/logical")
		})
	}
}
