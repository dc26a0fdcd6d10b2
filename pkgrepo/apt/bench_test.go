package apt

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/buildledger/buildledger/pkgrepo/deb"
)

// BenchmarkBuildSuite writes and signs a suite of 10,000 packages.
func BenchmarkBuildSuite(b *testing.B) {
	k, err := NewKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	var pkgs []Package
	for i := range 10_000 {
		c, err := deb.ParseControl([]byte(fmt.Sprintf("Package: pkg%05d\nVersion: 1.0-0-g0000000-20261207120000-%064x\nArchitecture: all\nMaintainer: Bench <bench@example.org>\nInstalled-Size: 1\nDescription: a benchmark package\n", i, i)))
		if err != nil {
			b.Fatal(err)
		}
		pkgs = append(pkgs, Package{Control: c, Filename: PoolName(c), Size: 1000 + int64(i), SHA256: sha256.Sum256([]byte{byte(i)})})
	}
	b.ResetTimer()
	for range b.N {
		if _, err := BuildSuite("debian-12", []string{"amd64", "arm64"}, pkgs, k, time.Now(), true); err != nil {
			b.Fatal(err)
		}
	}
}
