package rebuilder

import (
	"fmt"
	"slices"
	"strings"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/event"
)

// Mismatch is a file both builds produced with different contents.
type Mismatch struct {
	Path         string        `json:"path"`
	Expected     digest.Digest `json:"expected"`
	ExpectedSize int64         `json:"expected_size"`
	Actual       digest.Digest `json:"actual"`
	ActualSize   int64         `json:"actual_size"`
}

// Comparison sorts the files of two builds of a job: identical, differing,
// missing from the actual build and extra in it. Each list is sorted by
// path.
type Comparison struct {
	Identical []event.Artifact `json:"identical"`
	Differing []Mismatch       `json:"differing"`
	Missing   []event.Artifact `json:"missing"` // expected, not produced
	Extra     []event.Artifact `json:"extra"`   // produced, not expected
}

// Compare compares the files of an expected build (a recorded one, e.g.
// from ArtifactsOf or the ledger's record) with those of an actual one
// (Result.Artifacts), by path and SHA-256. The input files
// build-environment, system-packages and opam-switch are left out on both
// sides: they describe the build rather than being its product, and
// DiffInputs compares them. Paths should be unique, as the ledger keeps
// them; a repeated path counts once, by its last entry.
func Compare(expected, actual []event.Artifact) Comparison {
	c := Comparison{Identical: []event.Artifact{}, Differing: []Mismatch{}, Missing: []event.Artifact{}, Extra: []event.Artifact{}}
	exp, act := byPath(expected), byPath(actual)
	for p, e := range exp {
		a, ok := act[p]
		switch {
		case !ok:
			c.Missing = append(c.Missing, e)
		case a.SHA256 == e.SHA256 && a.Size == e.Size:
			c.Identical = append(c.Identical, a)
		default:
			c.Differing = append(c.Differing, Mismatch{Path: p, Expected: e.SHA256, ExpectedSize: e.Size, Actual: a.SHA256, ActualSize: a.Size})
		}
	}
	for p, a := range act {
		if _, ok := exp[p]; !ok {
			c.Extra = append(c.Extra, a)
		}
	}
	cmp := func(a, b event.Artifact) int { return strings.Compare(a.Path, b.Path) }
	slices.SortFunc(c.Identical, cmp)
	slices.SortFunc(c.Missing, cmp)
	slices.SortFunc(c.Extra, cmp)
	slices.SortFunc(c.Differing, func(a, b Mismatch) int { return strings.Compare(a.Path, b.Path) })
	return c
}

func byPath(arts []event.Artifact) map[string]event.Artifact {
	m := make(map[string]event.Artifact, len(arts))
	for _, a := range arts {
		if !isInput(a.Path) {
			m[a.Path] = a
		}
	}
	return m
}

// Reproducible reports whether the builds produced the same files with the
// same contents, and at least one: two builds without outputs prove
// nothing.
func (c Comparison) Reproducible() bool {
	return len(c.Identical) > 0 && len(c.Differing) == 0 && len(c.Missing) == 0 && len(c.Extra) == 0
}

// String gives the verdict, "reproducible: 2 files identical", or
// "not reproducible: ..." followed by one entry per differing, missing and
// extra file with the digests.
func (c Comparison) String() string {
	files := func(n int) string {
		if n == 1 {
			return "1 file"
		}
		return fmt.Sprintf("%d files", n)
	}
	if c.Reproducible() {
		return fmt.Sprintf("reproducible: %s identical", files(len(c.Identical)))
	}
	var b strings.Builder
	if len(c.Identical)+len(c.Differing)+len(c.Missing)+len(c.Extra) == 0 {
		return "not reproducible: no files to compare"
	}
	fmt.Fprintf(&b, "not reproducible: %s identical, %d differing, %d missing, %d extra",
		files(len(c.Identical)), len(c.Differing), len(c.Missing), len(c.Extra))
	for _, m := range c.Differing {
		fmt.Fprintf(&b, "\ndiffers: %s\n  expected sha256 %s (%d bytes)\n  actual   sha256 %s (%d bytes)",
			m.Path, m.Expected, m.ExpectedSize, m.Actual, m.ActualSize)
	}
	for _, a := range c.Missing {
		fmt.Fprintf(&b, "\nmissing: %s (expected sha256 %s, %d bytes)", a.Path, a.SHA256, a.Size)
	}
	for _, a := range c.Extra {
		fmt.Fprintf(&b, "\nextra: %s (sha256 %s, %d bytes)", a.Path, a.SHA256, a.Size)
	}
	return b.String()
}
