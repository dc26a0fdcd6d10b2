package attest

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
)

func testRebuild() *Rebuild {
	return &Rebuild{
		Subjects: []Subject{
			{Name: "bin/hello.hvt", SHA256: Sum([]byte("hello.hvt"))},
			{Name: "bin/hello.spt", SHA256: Sum([]byte("hello.spt"))},
		},
		Job:      "hello",
		Build:    uuid.MustParse("6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"),
		Platform: "debian-12-x86_64",
		LogIndex: 42,
		Inputs: []Input{
			{Name: InputOpamSwitch, SHA256: Sum([]byte("opam-switch"))},
			{Name: InputBuildEnvironment, SHA256: Sum([]byte("build-environment"))},
			{Name: InputSystemPackages, SHA256: Sum([]byte("system-packages"))},
			{Name: InputScript, SHA256: Sum([]byte("script"))},
		},
		Verdict:        Reproduced,
		BuilderID:      "https://rebuilder.example/one",
		BuilderVersion: map[string]string{"buildledger": "v0.1.0"},
		StartedOn:      time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		FinishedOn:     time.Date(2026, 11, 22, 10, 3, 7, 500, time.UTC),
	}
}

func TestStatementRoundTrip(t *testing.T) {
	for _, mod := range []func(*Rebuild){
		func(*Rebuild) {},
		func(r *Rebuild) { r.Verdict = Differs },
		func(r *Rebuild) {
			r.Inputs = nil
			r.BuilderVersion = nil
			r.StartedOn, r.FinishedOn = time.Time{}, time.Time{}
		},
		func(r *Rebuild) { r.LogIndex = 0 },
		func(r *Rebuild) { r.LogIndex = 1 << 53 },
	} {
		want := testRebuild()
		mod(want)
		st, err := want.Statement()
		if err != nil {
			t.Fatal(err)
		}
		payload, err := MarshalStatement(st)
		if err != nil {
			t.Fatal(err)
		}
		got, subjects, err := ParseStatement(payload)
		if err != nil {
			t.Fatalf("ParseStatement(%s): %v", payload, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
		}
		if !reflect.DeepEqual(subjects, want.Subjects) {
			t.Errorf("subjects = %v, want %v", subjects, want.Subjects)
		}
	}
}

// TestStatementLayout pins where each field lives in the JSON.
func TestStatementLayout(t *testing.T) {
	st, err := testRebuild().Statement()
	if err != nil {
		t.Fatal(err)
	}
	payload, err := MarshalStatement(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"_type":"https://in-toto.io/Statement/v1"`,
		`"predicateType":"https://slsa.dev/provenance/v1"`,
		`"subject":[{"name":"bin/hello.hvt","digest":{"sha256":"` + Sum([]byte("hello.hvt")).String() + `"}}`,
		`"buildType":"https://buildledger.dev/rebuild/v1"`,
		`"externalParameters":{"build":"6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b","job":"hello","logIndex":42,"platform":"debian-12-x86_64"}`,
		`"resolvedDependencies":[{"digest":{"sha256":"` + Sum([]byte("opam-switch")).String() + `"},"name":"opam-switch"}`,
		`"builder":{"id":"https://rebuilder.example/one","version":{"buildledger":"v0.1.0"}}`,
		`"metadata":{"finishedOn":"2026-11-22T10:03:07.000000500Z","startedOn":"2026-11-22T10:00:00Z"}`,
		`"byproducts":[{"annotations":{"verdict":"reproduced"},"name":"verdict"}]`,
	} {
		if !strings.Contains(string(payload), want) {
			t.Errorf("payload lacks %s\npayload: %s", want, payload)
		}
	}
	again, _ := MarshalStatement(st)
	if string(again) != string(payload) {
		t.Errorf("MarshalStatement is not deterministic")
	}
}

func TestStatementRejects(t *testing.T) {
	for name, mod := range map[string]func(*Rebuild){
		"no subjects":       func(r *Rebuild) { r.Subjects = nil },
		"unnamed subject":   func(r *Rebuild) { r.Subjects[0].Name = "" },
		"duplicate subject": func(r *Rebuild) { r.Subjects[1] = r.Subjects[0] },
		"no job":            func(r *Rebuild) { r.Job = "" },
		"nil build":         func(r *Rebuild) { r.Build = uuid.Nil },
		"no platform":       func(r *Rebuild) { r.Platform = "" },
		"negative index":    func(r *Rebuild) { r.LogIndex = -1 },
		"huge index":        func(r *Rebuild) { r.LogIndex = 1<<53 + 1 },
		"no builder":        func(r *Rebuild) { r.BuilderID = "" },
		"bad verdict":       func(r *Rebuild) { r.Verdict = "maybe" },
		"time travel":       func(r *Rebuild) { r.FinishedOn = r.StartedOn.Add(-time.Second) },
		"duplicate input":   func(r *Rebuild) { r.Inputs[1].Name = r.Inputs[0].Name },
		"unnamed input":     func(r *Rebuild) { r.Inputs[0].Name = "" },
	} {
		r := testRebuild()
		mod(r)
		if _, err := r.Statement(); err == nil {
			t.Errorf("%s: Statement succeeded", name)
		}
	}
}

func TestParseStatementRejects(t *testing.T) {
	st, err := testRebuild().Statement()
	if err != nil {
		t.Fatal(err)
	}
	good, _ := MarshalStatement(st)
	for name, edit := range map[string][2]string{
		"wrong statement type": {`in-toto.io/Statement/v1`, `in-toto.io/Statement/v2`},
		"wrong predicate type": {`"predicateType":"https://slsa.dev/provenance/v1"`, `"predicateType":"https://slsa.dev/provenance/v0.2"`},
		"wrong build type":     {`buildledger.dev/rebuild/v1`, `buildledger.dev/rebuild/v9`},
		"unknown field":        {`"predicateType"`, `"extra":1,"predicateType"`},
		"unknown ext param":    {`"job":"hello"`, `"job":"hello","extra":"x"`},
		"index not integer":    {`"logIndex":42`, `"logIndex":42.5`},
		"index negative":       {`"logIndex":42`, `"logIndex":-1`},
		"index as string":      {`"logIndex":42`, `"logIndex":"42"`},
		"build not uuid":       {`"build":"6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"`, `"build":"yesterday"`},
		"build uppercase":      {`"build":"6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"`, `"build":"6F1E2D3C-4B5A-4978-8A6B-5C4D3E2F1A0B"`},
		"no verdict":           {`"name":"verdict"}`, `"name":"log"}`},
		"unknown verdict":      {`"verdict":"reproduced"`, `"verdict":"probably"`},
		"subject sha512 only":  {`{"name":"bin/hello.hvt","digest":{"sha256"`, `{"name":"bin/hello.hvt","digest":{"sha512"`},
		"subject uppercase":    {Sum([]byte("hello.hvt")).String(), strings.ToUpper(Sum([]byte("hello.hvt")).String())},
		"no subjects":          {`"subject":[`, `"subject":[],"x":[`},
	} {
		bad := strings.Replace(string(good), edit[0], edit[1], 1)
		if bad == string(good) {
			t.Fatalf("%s: edit %q did not apply", name, edit[0])
		}
		if _, _, err := ParseStatement([]byte(bad)); err == nil {
			t.Errorf("%s: ParseStatement accepted %s", name, bad)
		}
	}
}

// TestParseStatementV01 shows a legacy v0.1 statement (what cosign
// attest-blob writes) with our predicate is accepted.
func TestParseStatementV01(t *testing.T) {
	want := testRebuild()
	st, err := want.Statement()
	if err != nil {
		t.Fatal(err)
	}
	st.Type = StatementTypeV01
	b, err := protojson.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := ParseStatement(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestDigestText(t *testing.T) {
	d := Sum([]byte("x"))
	if got, err := ParseDigest(d.String()); err != nil || got != d {
		t.Errorf("ParseDigest(String()) = %v, %v", got, err)
	}
	for _, s := range []string{"", "sha256:" + d.String(), strings.ToUpper(d.String()), d.String()[:63] + "g", d.String() + "0"} {
		if _, err := ParseDigest(s); err == nil {
			t.Errorf("ParseDigest(%q) succeeded", s)
		}
		if _, err := ParseKeyID(s); err == nil {
			t.Errorf("ParseKeyID(%q) succeeded", s)
		}
	}
	k := KeyIDOf([]byte("spki"))
	var k2 KeyID
	if b, _ := k.MarshalText(); k2.UnmarshalText(b) != nil || k2 != k {
		t.Errorf("KeyID text round trip failed")
	}
	if err := k2.UnmarshalText([]byte("zz")); err == nil || k2 != k {
		t.Errorf("UnmarshalText of garbage: err %v, changed %v", err, k2 != k)
	}
}

// A build farm's claim (verdict Built) carries its own buildType, and the
// two kinds cannot be mixed up by editing either.
func TestBuiltStatement(t *testing.T) {
	r := testRebuild()
	r.Verdict = Built
	st, err := r.Statement()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := MarshalStatement(st)
	if !strings.Contains(string(b), `"buildType":"`+BuildTypeBuild+`"`) {
		t.Fatalf("built statement without its buildType: %s", b)
	}
	got, _, err := ParseStatement(b)
	if err != nil || got.Verdict != Built {
		t.Fatalf("ParseStatement: %+v, %v", got, err)
	}
	for name, edit := range map[string][2]string{
		"built as a rebuild":    {BuildTypeBuild, BuildType},
		"reproduced as a build": {`"verdict":"built"`, `"verdict":"reproduced"`},
	} {
		bad := strings.Replace(string(b), edit[0], edit[1], 1)
		if _, _, err := ParseStatement([]byte(bad)); err == nil || !strings.Contains(err.Error(), "does not go with verdict") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestBuilderID(t *testing.T) {
	id, err := BuilderID("", "rebuilder")
	if err != nil || !strings.HasPrefix(id, "https://") || !strings.HasSuffix(id, "/buildledger-rebuilder") {
		t.Fatalf("default: %q %v", id, err)
	}
	for _, ok := range []string{"https://rebuilder.example.org/", "urn:buildledger:rebuilder:a"} {
		if _, err := BuilderID(ok, "x"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"buildledger-rebuilder@host", "/relative", "host:"} {
		if _, err := BuilderID(bad, "x"); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
