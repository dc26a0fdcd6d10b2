package attest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func kid(n int) KeyID { return KeyIDOf([]byte(fmt.Sprint("key", n))) }

func TestPolicyEvaluate(t *testing.T) {
	art := Sum([]byte("artifact"))
	bad := Sum([]byte("other bytes"))
	b1 := uuid.MustParse("11111111-1111-4111-8111-111111111111")
	b2 := uuid.MustParse("22222222-2222-4222-8222-222222222222")
	keys := []TrustedKey{
		{ID: kid(1), Name: "one", AddedAt: 1},
		{ID: kid(2), Name: "two", AddedAt: 2},
		{ID: kid(3), Name: "three", AddedAt: 3, Revoked: true, RevokedAt: 50},
	}
	att := func(k int, idx int64, d Digest, v Verdict) Attestation {
		return Attestation{KeyID: kid(k), PredicateType: PredicateType, Build: b1, Subjects: []Subject{{"img.hvt", d}}, Verdict: v, LogIndex: idx}
	}
	with := func(a Attestation, f func(*Attestation)) Attestation { f(&a); return a }
	type want struct {
		sat         bool
		agree       []int
		disagree    []int
		missing     []int
		ignored     int
		ignoredWhat string
	}
	cases := []struct {
		name  string
		k     int
		types []string
		atts  []Attestation
		want  want
	}{
		{"none", 1, nil, nil, want{missing: []int{1, 2}}},
		{"one of one", 1, nil, []Attestation{att(1, 10, art, Reproduced)}, want{sat: true, agree: []int{1}, missing: []int{2}}},
		{"two of two", 2, nil, []Attestation{att(1, 10, art, Reproduced), att(2, 11, art, Reproduced)}, want{sat: true, agree: []int{1, 2}}},
		{"duplicates count once", 2, nil, []Attestation{att(1, 10, art, Reproduced), att(1, 11, art, Reproduced), att(1, 12, art, Reproduced)},
			want{agree: []int{1}, missing: []int{2}}},
		{"untrusted key", 2, nil, []Attestation{att(1, 10, art, Reproduced), att(9, 11, art, Reproduced)},
			want{agree: []int{1}, missing: []int{2}, ignored: 1, ignoredWhat: "not trusted"}},
		{"revoked key before revocation counts", 2, nil, []Attestation{att(1, 10, art, Reproduced), att(3, 49, art, Reproduced)},
			want{sat: true, agree: []int{1, 3}, missing: []int{2}}},
		{"revoked key at revocation index", 2, nil, []Attestation{att(1, 10, art, Reproduced), att(3, 50, art, Reproduced)},
			want{agree: []int{1}, missing: []int{2}, ignored: 1, ignoredWhat: "revoked at 50"}},
		{"revoked key after revocation", 2, nil, []Attestation{att(1, 10, art, Reproduced), att(3, 51, art, Reproduced)},
			want{agree: []int{1}, missing: []int{2}, ignored: 1, ignoredWhat: "revoked"}},
		{"logged before key added", 1, nil, []Attestation{att(2, 1, art, Reproduced)},
			want{missing: []int{1, 2}, ignored: 1, ignoredWhat: "before key"}},
		{"wrong predicate type", 1, nil, []Attestation{with(att(1, 10, art, Reproduced), func(a *Attestation) { a.PredicateType = "https://slsa.dev/provenance/v0.2" })},
			want{missing: []int{1, 2}, ignored: 1, ignoredWhat: "predicate type"}},
		{"other accepted predicate type", 1, []string{"https://example/p"}, []Attestation{with(att(1, 10, art, Reproduced), func(a *Attestation) { a.PredicateType = "https://example/p" })},
			want{sat: true, agree: []int{1}, missing: []int{2}}},
		{"verdict differs naming the artifact", 1, nil, []Attestation{att(1, 10, art, Differs)},
			want{missing: []int{1, 2}, ignored: 1, ignoredWhat: "verdict"}},
		{"unknown verdict", 1, nil, []Attestation{att(1, 10, art, "maybe")},
			want{missing: []int{1, 2}, ignored: 1, ignoredWhat: "unknown verdict"}},
		{"disagreement", 1, nil, []Attestation{att(1, 10, art, Reproduced), att(2, 11, bad, Differs)},
			want{sat: true, agree: []int{1}, disagree: []int{2}}},
		{"mixed verdicts, disagreement does not veto", 2, nil, []Attestation{att(1, 10, art, Reproduced), att(3, 12, art, Reproduced), att(2, 11, bad, Differs)},
			want{sat: true, agree: []int{1, 3}, disagree: []int{2}}},
		{"self-contradicting key does not count", 1, nil, []Attestation{att(1, 10, art, Reproduced), att(1, 11, bad, Reproduced)},
			want{disagree: []int{1}, missing: []int{2}}},
		{"other build is not a disagreement", 1, nil, []Attestation{att(1, 10, art, Reproduced), with(att(2, 11, bad, Reproduced), func(a *Attestation) { a.Build = b2 })},
			want{sat: true, agree: []int{1}, missing: []int{2}, ignored: 1, ignoredWhat: "does not name"}},
		{"other name is not a disagreement", 1, nil, []Attestation{att(1, 10, art, Reproduced), with(att(2, 11, bad, Reproduced), func(a *Attestation) { a.Subjects[0].Name = "other" })},
			want{sat: true, agree: []int{1}, missing: []int{2}, ignored: 1}},
		{"untrusted disagreement ignored", 1, nil, []Attestation{att(1, 10, art, Reproduced), att(9, 11, bad, Differs)},
			want{sat: true, agree: []int{1}, missing: []int{2}, ignored: 1, ignoredWhat: "not trusted"}},
		{"revoked key not missing", 3, nil, []Attestation{att(1, 10, art, Reproduced)},
			want{agree: []int{1}, missing: []int{2}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := Policy{Keys: keys, Threshold: c.k, PredicateTypes: c.types}
			d, err := p.Evaluate(Target{Digest: art}, c.atts)
			if err != nil {
				t.Fatal(err)
			}
			ids := func(ns []int) []KeyID {
				var out []KeyID
				for _, n := range ns {
					out = append(out, kid(n))
				}
				return sorted(out)
			}
			var dis []KeyID
			for _, x := range d.Disagreeing {
				dis = append(dis, x.KeyID)
				if x.Digest != bad || x.Name != "img.hvt" || x.Build != b1 {
					t.Errorf("disagreement %+v", x)
				}
			}
			if d.Satisfied != c.want.sat || !reflect.DeepEqual(d.Agreeing, ids(c.want.agree)) ||
				!reflect.DeepEqual(sorted(dis), ids(c.want.disagree)) || !reflect.DeepEqual(d.Missing, ids(c.want.missing)) ||
				len(d.Ignored) != c.want.ignored || d.K != c.k {
				t.Errorf("decision:\n%s\nwant %+v", d, c.want)
			}
			if c.want.ignoredWhat != "" && (len(d.Ignored) == 0 || !strings.Contains(d.Ignored[0].Reason, c.want.ignoredWhat)) {
				t.Errorf("ignored %+v, want reason containing %q", d.Ignored, c.want.ignoredWhat)
			}
			if len(d.Disagreeing) > 0 && !strings.Contains(d.String(), "DISAGREES") {
				t.Errorf("String does not show the disagreement:\n%s", d)
			}
		})
	}
}

func sorted(ks []KeyID) []KeyID {
	out := append([]KeyID(nil), ks...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if compareKeyID(out[j], out[i]) < 0 {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestPolicyTargetBuilds: a build known from the ledger to have produced
// the artifact makes a different digest for it a disagreement even when
// no attestation agrees.
func TestPolicyTargetBuilds(t *testing.T) {
	art, bad := Sum([]byte("a")), Sum([]byte("b"))
	b := uuid.New()
	p := Policy{Keys: []TrustedKey{{ID: kid(1), Name: "one"}}, Threshold: 1}
	a := Attestation{KeyID: kid(1), PredicateType: PredicateType, Build: b, Subjects: []Subject{{"img", bad}}, Verdict: Differs, LogIndex: 5}
	d, err := p.Evaluate(Target{Digest: art, Builds: []BuildArtifact{{b, "img"}}}, []Attestation{a, a})
	if err != nil {
		t.Fatal(err)
	}
	if d.Satisfied || len(d.Disagreeing) != 1 || d.Disagreeing[0].Digest != bad || len(d.Missing) != 0 {
		t.Errorf("decision:\n%s", d)
	}
}

func TestPolicyCheck(t *testing.T) {
	one := TrustedKey{ID: kid(1), Name: "one", AddedAt: 1}
	two := TrustedKey{ID: kid(2), Name: "two", AddedAt: 2}
	for name, p := range map[string]Policy{
		"k=0":                  {Keys: []TrustedKey{one}, Threshold: 0},
		"k<0":                  {Keys: []TrustedKey{one}, Threshold: -1},
		"k > keys":             {Keys: []TrustedKey{one, two}, Threshold: 3},
		"no keys":              {Threshold: 1},
		"duplicate key":        {Keys: []TrustedKey{one, one}, Threshold: 1},
		"zero key id":          {Keys: []TrustedKey{{Name: "zero"}}, Threshold: 1},
		"revoked before added": {Keys: []TrustedKey{{ID: kid(1), AddedAt: 5, Revoked: true, RevokedAt: 5}}, Threshold: 1},
		"negative index":       {Keys: []TrustedKey{{ID: kid(1), AddedAt: -1}}, Threshold: 1},
		"empty predicate type": {Keys: []TrustedKey{one}, Threshold: 1, PredicateTypes: []string{""}},
	} {
		if err := p.Check(); !errors.Is(err, ErrPolicy) {
			t.Errorf("%s: Check = %v, want ErrPolicy", name, err)
		}
		if _, err := p.Evaluate(Target{}, nil); !errors.Is(err, ErrPolicy) {
			t.Errorf("%s: Evaluate = %v, want ErrPolicy", name, err)
		}
	}
	if err := (&Policy{Keys: []TrustedKey{one, two}, Threshold: 2}).Check(); err != nil {
		t.Errorf("valid policy: %v", err)
	}
}

// A policy with builders: one of them must attest it built the artifact,
// and builders never count as rebuilders.
func TestPolicyBuiltBy(t *testing.T) {
	art := Sum([]byte("artifact"))
	other := Sum([]byte("other bytes"))
	b1 := uuid.MustParse("11111111-1111-4111-8111-111111111111")
	keys := []TrustedKey{
		{ID: kid(1), Name: "one", AddedAt: 1},
		{ID: kid(2), Name: "two", AddedAt: 2},
		{ID: kid(9), Name: "farm", AddedAt: 3},
	}
	att := func(k int, d Digest, v Verdict) Attestation {
		return Attestation{KeyID: kid(k), PredicateType: PredicateType, Build: b1, Subjects: []Subject{{"img.hvt", d}}, Verdict: v, LogIndex: 10}
	}
	p := Policy{Keys: keys, Threshold: 2, BuiltBy: []KeyID{kid(9)}}
	for _, c := range []struct {
		name    string
		atts    []Attestation
		sat     bool
		builtBy int
		agree   int
		show    string
	}{
		{"reproduced, not built", []Attestation{att(1, art, Reproduced), att(2, art, Reproduced)}, false, 0, 2, "NOT BUILT"},
		{"built and reproduced by two others", []Attestation{att(9, art, Built), att(1, art, Reproduced), att(2, art, Reproduced)}, true, 1, 2, "built by: farm"},
		{"the builder's reproduction does not count", []Attestation{att(9, art, Built), att(9, art, Reproduced), att(1, art, Reproduced)}, false, 1, 1, "is a builder"},
		{"a built claim by a rebuilder is no build", []Attestation{att(1, art, Built), att(1, art, Reproduced), att(2, art, Reproduced)}, false, 0, 2, "verdict is \"built\""},
		{"a builder claiming other bytes", []Attestation{att(9, art, Built), att(9, other, Built), att(1, art, Reproduced), att(2, art, Reproduced)}, false, 0, 2, "DISAGREES"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := p.Evaluate(Target{Digest: art, Builds: []BuildArtifact{{b1, "img.hvt"}}}, c.atts)
			if err != nil {
				t.Fatal(err)
			}
			if d.Satisfied != c.sat || len(d.BuiltBy) != c.builtBy || len(d.Agreeing) != c.agree || !d.BuildRequired {
				t.Errorf("decision:\n%s", d)
			}
			if !strings.Contains(d.String(), c.show) {
				t.Errorf("decision does not say %q:\n%s", c.show, d)
			}
		})
	}
	for _, bad := range []Policy{
		{Keys: keys, Threshold: 3, BuiltBy: []KeyID{kid(9)}},
		{Keys: keys, Threshold: 1, BuiltBy: []KeyID{kid(7)}},
		{Keys: keys, Threshold: 1, BuiltBy: []KeyID{kid(9), kid(9)}},
	} {
		if err := bad.Check(); !errors.Is(err, ErrPolicy) {
			t.Errorf("policy %+v: %v", bad.BuiltBy, err)
		}
	}
}
