package attest

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestCanonical: Sign writes canonical envelopes; re-encodings, keyid hints
// and extra signatures all reduce to the same canonical bytes.
func TestCanonical(t *testing.T) {
	s1, err := NewSigner(mustPriv(t))
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := NewSigner(mustPriv(t))
	r := &Rebuild{Subjects: []Subject{{Name: "bin/a", SHA256: Sum([]byte("a"))}}, Job: "j", Build: uuid.New(), Platform: "p",
		Verdict: Reproduced, BuilderID: "b", StartedOn: time.Unix(1, 0)}
	st, err := r.Statement()
	if err != nil {
		t.Fatal(err)
	}
	env, err := Sign(context.Background(), st, s1)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(env, s1.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.Canonical(), env) {
		t.Fatalf("Sign's output is not canonical:\n%s\n%s", env, v.Canonical())
	}
	var m map[string]any
	json.Unmarshal(env, &m)
	sigs := m["signatures"].([]any)
	sigs[0].(map[string]any)["keyid"] = "SHA256:some-hint"
	other := signRaw(t, s2, PayloadType, v.Payload)
	var om map[string]any
	json.Unmarshal(other, &om)
	m["signatures"] = append([]any{om["signatures"].([]any)[0]}, sigs...)
	variant, _ := json.MarshalIndent(m, "", "   ")
	got, err := Verify(variant, s1.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Canonical(), env) {
		t.Fatalf("re-encoded envelope with a hint and another signature has another canonical form:\n%s", got.Canonical())
	}
	forms, err := CanonicalForms(variant)
	if err != nil || len(forms) != 2 || !bytes.Equal(forms[1], env) {
		t.Fatalf("canonical forms: %d %v", len(forms), err)
	}
	// At most MaxSignatures signatures.
	m["signatures"] = make([]any, MaxSignatures+1)
	for i := range m["signatures"].([]any) {
		m["signatures"].([]any)[i] = sigs[0]
	}
	many, _ := json.Marshal(m)
	if _, err := ParseEnvelope(many); err == nil {
		t.Fatal("too many signatures accepted")
	}
}

// TestSubjectNamesUnique: one digest per artifact name.
func TestSubjectNamesUnique(t *testing.T) {
	r := &Rebuild{Subjects: []Subject{{Name: "bin/a", SHA256: Sum([]byte("a"))}, {Name: "bin/a", SHA256: Sum([]byte("b"))}},
		Job: "j", Build: uuid.New(), Platform: "p", Verdict: Differs, BuilderID: "b"}
	if _, err := r.Statement(); err == nil {
		t.Fatal("two digests for one name accepted")
	}
}
