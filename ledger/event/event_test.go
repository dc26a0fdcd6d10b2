package event

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/schemas"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func dig(s string) digest.Digest { return digest.Sum([]byte(s)) }
func pdig(s string) *digest.Digest {
	d := dig(s)
	return &d
}
func str(s string) *string { return &s }

// fixedKey is a deterministic Ed25519 public key for golden files.
func fixedKey() []byte {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return der
}

func goldenBuild() *BuildRecorded {
	return &BuildRecorded{
		Job:      "hello-unikernel",
		UUID:     uuid.MustParse("7b2c0c44-2f5e-4a8a-9c1e-0d6f3a2b9e11"),
		Platform: "debian-12",
		Started:  time.Date(2026, 11, 20, 3, 0, 0, 120_000_000, time.UTC),
		Finished: time.Date(2026, 11, 20, 3, 4, 31, 0, time.UTC),
		Result:   Result{Kind: ResultExited},
		Script:   dig("script"),
		Console:  dig("console"),
		Inputs: Inputs{
			OpamSwitch:       pdig("opam-switch"),
			BuildEnvironment: pdig("build-environment"),
			SystemPackages:   pdig("system-packages"),
		},
		Artifacts: []Artifact{
			{Path: "bin/hello.hvt", SHA256: dig("hello.hvt"), Size: 3_145_728},
			{Path: "build-environment", SHA256: dig("build-environment"), Size: 812},
			{Path: "opam-switch", SHA256: dig("opam-switch"), Size: 48_211},
			{Path: "system-packages", SHA256: dig("system-packages"), Size: 20_310},
		},
		MainBinary: str("bin/hello.hvt"),
	}
}

func goldenEvents() map[string]Event {
	failed := goldenBuild()
	failed.UUID = uuid.MustParse("0d8e7c55-1b44-4c0e-8f3b-6a9a3e6c2d70")
	failed.Result = Result{Kind: ResultMessage, Message: "timeout"}
	failed.Inputs.OpamSwitch = nil
	failed.Artifacts = []Artifact{}
	failed.MainBinary = nil
	key := fixedKey()
	b := uuid.MustParse("7b2c0c44-2f5e-4a8a-9c1e-0d6f3a2b9e11")
	return map[string]Event{
		"job_defined":                &JobDefined{Job: "hello-unikernel", Synopsis: "A MirageOS hello world", Section: "Unikernels", Readme: pdig("readme")},
		"build_recorded":             goldenBuild(),
		"build_recorded_failed":      failed,
		"key_added":                  &KeyAdded{Name: "rebuilder-a", PublicKey: key},
		"key_revoked":                &KeyRevoked{KeyID: KeyID(key), Reason: "key file leaked"},
		"attestation_recorded":       &AttestationRecorded{Envelope: dig("envelope"), KeyID: KeyID(key), PredicateType: "https://slsa.dev/provenance/v1", Build: &b, Subjects: []Subject{{Name: "bin/hello.hvt", SHA256: dig("hello.hvt")}}, Verdict: VerdictReproduced},
		"attestation_recorded_nobld": &AttestationRecorded{Envelope: dig("envelope2"), KeyID: KeyID(key), PredicateType: "https://slsa.dev/provenance/v1", Subjects: []Subject{{Name: "b", SHA256: dig("2")}, {Name: "a", SHA256: dig("1")}}, Verdict: VerdictDiffers},
	}
}

// TestGoldenEvents checks that every event kind encodes to its golden bytes,
// that those bytes decode back to the same value, and that they validate
// against the kind's JSON Schema and the combined event schema.
func TestGoldenEvents(t *testing.T) {
	seen := map[Kind]bool{}
	for name, ev := range goldenEvents() {
		t.Run(name, func(t *testing.T) {
			seen[ev.Kind()] = true
			got, err := Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "events", name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./ledger -run TestGoldenEvents -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding changed:\n got %s\nwant %s", got, want)
			}
			dec, err := Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Encode(dec)
			if err != nil || !bytes.Equal(again, want) {
				t.Fatalf("decode/encode round trip: %v\n%s", err, again)
			}
			for _, s := range []string{"event/" + string(ev.Kind()) + ".json", "event.json"} {
				if err := schemas.Validate(s, want); err != nil {
					t.Errorf("schema %s rejects golden %s: %v", s, name, err)
				}
			}
		})
	}
	for _, k := range Kinds {
		if !seen[k] {
			t.Errorf("no golden example for kind %s", k)
		}
	}
}

// TestInvalidEvents feeds near-misses of the golden encodings to Decode,
// which must reject all of them, and to the JSON Schema, which must reject
// those marked schema (the rest break rules a schema cannot express, such
// as sorting, derived fields and the single byte encoding).
func TestInvalidEvents(t *testing.T) {
	build, err := os.ReadFile("testdata/events/build_recorded.json")
	if err != nil {
		t.Fatal(err)
	}
	b := string(build)
	cases := []struct {
		name   string
		doc    string
		schema bool // the schema rejects it too
		want   string
	}{
		{"not json", "{", true, "not a JSON object"},
		{"unknown kind", `{"kind":"build_deleted","v":1}`, true, "unknown kind"},
		{"version 2", strings.Replace(b, `"v":1`, `"v":2`, 1), true, "encoding version 2"},
		{"unknown member", strings.Replace(b, `"job":`, `"extra":1,"job":`, 1), true, "unknown field"},
		{"missing member", strings.Replace(b, `"main_binary":"bin/hello.hvt"`, `"x":null`, 1), true, ""},
		{"whitespace", strings.Replace(b, `,"job"`, `, "job"`, 1), false, "canonical"},
		{"member order", strings.Replace(strings.Replace(b, `"job":"hello-unikernel",`, ``, 1), `"platform"`, `"job":"hello-unikernel","platform"`, 1), false, "canonical"},
		{"uppercase digest", strings.Replace(b, dig("script").String(), strings.ToUpper(dig("script").String()), 1), true, ""},
		{"offset time", strings.Replace(b, `"2026-11-20T03:04:31Z"`, `"2026-11-20T04:04:31+01:00"`, 1), true, "UTC"},
		{"trailing zero", strings.Replace(b, `03:00:00.12Z`, `03:00:00.120Z`, 1), true, "canonical"},
		{"two results", strings.Replace(b, `{"exited":0}`, `{"exited":0,"signalled":9}`, 1), true, "exactly one"},
		{"code 256", strings.Replace(b, `{"exited":0}`, `{"exited":256}`, 1), true, "0…255"},
		{"bad input id", strings.Replace(b, goldenBuild().Inputs.ID().String(), dig("x").String(), 1), false, "input_id"},
		{"absolute path", strings.Replace(b, `"bin/hello.hvt","sha256"`, `"/bin/hello.hvt","sha256"`, 1), true, "absolute"},
		{"dotdot path", strings.Replace(b, `"bin/hello.hvt","sha256"`, `"bin/../../etc/passwd","sha256"`, 1), true, ".."},
		{"nul path", strings.Replace(b, `"bin/hello.hvt","sha256"`, `"bin/a\u0000b","sha256"`, 1), true, "control"},
		{"unsorted artifacts", strings.Replace(b, `"build-environment"`, `"zz"`, 1), false, "sorted"},
		{"main binary not an artifact", strings.Replace(b, `"main_binary":"bin/hello.hvt"`, `"main_binary":"bin/other"`, 1), false, "not one of the artifacts"},
		{"nil uuid", strings.Replace(b, "7b2c0c44-2f5e-4a8a-9c1e-0d6f3a2b9e11", "00000000-0000-0000-0000-000000000000", 1), true, "nil UUID"},
		{"uuid braces", strings.Replace(b, `"7b2c0c44-2f5e-4a8a-9c1e-0d6f3a2b9e11"`, `"{7b2c0c44-2f5e-4a8a-9c1e-0d6f3a2b9e11}"`, 1), true, "canonical"},
		{"bad job name", strings.Replace(b, `"hello-unikernel"`, `"../x"`, 1), true, "not allowed"},
		{"trailing data", b + "{}", true, "trailing data after the event object"},
		{"finished before started", strings.Replace(b, `"2026-11-20T03:04:31Z"`, `"2026-11-19T03:04:31Z"`, 1), false, "before started"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode([]byte(c.doc))
			var ie *InvalidEventError
			if !errors.As(err, &ie) {
				t.Fatalf("Decode accepted or gave a non-InvalidEventError: %v", err)
			}
			if c.want != "" && !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
			serr := schemas.Validate("event.json", []byte(c.doc))
			if c.schema && serr == nil {
				t.Errorf("schema accepted it")
			}
		})
	}
}

func TestKeyEvents(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&p256.PublicKey)
	b, err := Encode(&KeyAdded{Name: "r1", PublicKey: der})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	ka := ev.(*KeyAdded)
	if ka.Algorithm != "ecdsa-p256" || ka.KeyID != KeyID(der) {
		t.Fatalf("got %+v", ka)
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	der224, _ := x509.MarshalPKIXPublicKey(&p224.PublicKey)
	if _, err := Encode(&KeyAdded{Name: "r1", PublicKey: der224}); err == nil || !strings.Contains(err.Error(), "P-224") {
		t.Fatalf("P-224 accepted: %v", err)
	}
	if _, err := Encode(&KeyAdded{Name: "r1", PublicKey: []byte("junk")}); err == nil {
		t.Fatal("junk key accepted")
	}
}

func TestEncodeDoesNotModifyArgument(t *testing.T) {
	b := goldenBuild()
	b.Artifacts[0], b.Artifacts[3] = b.Artifacts[3], b.Artifacts[0]
	loc := time.FixedZone("X", 3600)
	b.Started = b.Started.In(loc)
	before := *b
	if _, err := Encode(b); err != nil {
		t.Fatal(err)
	}
	if b.Artifacts[0].Path != "system-packages" || b.Started.Location() != loc || b.InputID != before.InputID {
		t.Fatal("Encode changed its argument")
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/events/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(ev)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted non-canonical bytes:\n%s\n%s", b, again)
		}
	})
}

// TestDecodeStored checks the fast path for the ledger's own stored events
// against Decode on every golden event.
func TestDecodeStored(t *testing.T) {
	files, _ := filepath.Glob("testdata/events/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		want, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeStored(b)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := Encode(want)
		g, _ := Encode(got)
		if !bytes.Equal(w, g) {
			t.Fatalf("%s: decodeStored differs from Decode", p)
		}
	}
}
