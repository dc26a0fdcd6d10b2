package attest_test

import (
	"testing"

	"github.com/buildledger/buildledger/internal/benchmarks"
)

// BenchmarkVerify measures envelope verification per key algorithm next to
// its baseline, the bare signature check; `go run ./cmd/ledgerbench -only
// attest` prints the ratios.
func BenchmarkVerify(b *testing.B) {
	f, err := benchmarks.NewAttestFixture()
	if err != nil {
		b.Fatal(err)
	}
	for _, alg := range benchmarks.Algorithms {
		b.Run(string(alg)+"/envelope", func(b *testing.B) { benchmarks.VerifyEnvelope(b, f, alg) })
		b.Run(string(alg)+"/raw-signature", func(b *testing.B) { benchmarks.VerifyRawSignature(b, f, alg) })
	}
}

// BenchmarkPolicy3of5 measures one 3-of-5 decision over seven attestations.
func BenchmarkPolicy3of5(b *testing.B) {
	f, err := benchmarks.NewAttestFixture()
	if err != nil {
		b.Fatal(err)
	}
	benchmarks.Policy3of5(b, f)
}
