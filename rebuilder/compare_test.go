package rebuilder

import (
	"reflect"
	"syscall"
	"testing"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/event"
)

func art(p, content string) event.Artifact {
	return event.Artifact{Path: p, SHA256: digest.Sum([]byte(content)), Size: int64(len(content))}
}

func TestCompare(t *testing.T) {
	a, b := art("bin/a", "a"), art("bin/b", "b")
	b2 := art("bin/b", "bb")
	c := art("bin/c", "c")
	env1, env2 := art("build-environment", "X=1\n"), art("build-environment", "X=2\n")
	tests := []struct {
		name             string
		expected, actual []event.Artifact
		want             Comparison
		reproducible     bool
		text             string
	}{
		{
			name: "identical, order and input files ignored", reproducible: true,
			expected: []event.Artifact{b, env1, a}, actual: []event.Artifact{a, b, env2, art("system-packages", "x=1\n")},
			want: Comparison{Identical: []event.Artifact{a, b}, Differing: []Mismatch{}, Missing: []event.Artifact{}, Extra: []event.Artifact{}},
			text: "reproducible: 2 files identical",
		},
		{
			name: "one file", reproducible: true,
			expected: []event.Artifact{a}, actual: []event.Artifact{a},
			want: Comparison{Identical: []event.Artifact{a}, Differing: []Mismatch{}, Missing: []event.Artifact{}, Extra: []event.Artifact{}},
			text: "reproducible: 1 file identical",
		},
		{
			name:     "differing, missing and extra",
			expected: []event.Artifact{a, b, c}, actual: []event.Artifact{b2, a, art("bin/d", "d")},
			want: Comparison{
				Identical: []event.Artifact{a},
				Differing: []Mismatch{{Path: "bin/b", Expected: b.SHA256, ExpectedSize: 1, Actual: b2.SHA256, ActualSize: 2}},
				Missing:   []event.Artifact{c}, Extra: []event.Artifact{art("bin/d", "d")},
			},
			text: "not reproducible: 1 file identical, 1 differing, 1 missing, 1 extra\n" +
				"differs: bin/b\n  expected sha256 " + b.SHA256.String() + " (1 bytes)\n  actual   sha256 " + b2.SHA256.String() + " (2 bytes)\n" +
				"missing: bin/c (expected sha256 " + c.SHA256.String() + ", 1 bytes)\n" +
				"extra: bin/d (sha256 " + art("bin/d", "d").SHA256.String() + ", 1 bytes)",
		},
		{
			name:     "nothing to compare",
			expected: []event.Artifact{env1}, actual: nil,
			want: Comparison{Identical: []event.Artifact{}, Differing: []Mismatch{}, Missing: []event.Artifact{}, Extra: []event.Artifact{}},
			text: "not reproducible: no files to compare",
		},
		{
			name:     "all missing",
			expected: []event.Artifact{a}, actual: []event.Artifact{},
			want: Comparison{Identical: []event.Artifact{}, Differing: []Mismatch{}, Missing: []event.Artifact{a}, Extra: []event.Artifact{}},
			text: "not reproducible: 0 files identical, 0 differing, 1 missing, 0 extra\nmissing: bin/a (expected sha256 " + a.SHA256.String() + ", 1 bytes)",
		},
	}
	for _, tt := range tests {
		got := Compare(tt.expected, tt.actual)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Compare = %+v, want %+v", tt.name, got, tt.want)
		}
		if got.Reproducible() != tt.reproducible {
			t.Errorf("%s: Reproducible() = %v", tt.name, got.Reproducible())
		}
		if got.String() != tt.text {
			t.Errorf("%s: String() =\n%s\nwant\n%s", tt.name, got, tt.text)
		}
	}
}

func TestSignalNumbers(t *testing.T) {
	if got := OCamlSignal(syscall.SIGKILL); got != -7 {
		t.Errorf("OCamlSignal(SIGKILL) = %d, want -7", got)
	}
	if got := OCamlSignal(syscall.SIGABRT); got != -1 {
		t.Errorf("OCamlSignal(SIGABRT) = %d, want -1", got)
	}
	if got := OCamlSignal(syscall.SIGXFSZ); got != -28 {
		t.Errorf("OCamlSignal(SIGXFSZ) = %d, want -28", got)
	}
	for sig := syscall.Signal(1); sig < 65; sig++ {
		code := OCamlSignal(sig)
		if back, ok := Signal(code); !ok || back != sig {
			t.Errorf("Signal(OCamlSignal(%d) = %d) = %d, %v", sig, code, back, ok)
		}
	}
	for _, code := range []int{0, -29, -1000, 256} {
		if s, ok := Signal(code); ok {
			t.Errorf("Signal(%d) = %d, want none", code, s)
		}
	}
}
