package attest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/buildledger/buildledger/attest"
	"github.com/google/uuid"
)

// Sign a rebuild statement, verify the envelope, and evaluate a 2-of-3
// policy over the attestations of two rebuilders.
func Example() {
	image := attest.Sum([]byte("unikernel image bytes"))
	build := uuid.MustParse("0b6c5f4e-3d2c-4b1a-9f8e-7d6c5b4a3f2e")

	var signers []*attest.Signer
	for range 3 {
		pemKey, err := attest.GenerateKey(attest.Ed25519)
		if err != nil {
			panic(err)
		}
		s, err := attest.LoadSigner(pemKey, nil)
		if err != nil {
			panic(err)
		}
		signers = append(signers, s)
	}

	r := attest.Rebuild{
		Subjects:  []attest.Subject{{Name: "dist/hello.hvt", SHA256: image}},
		Job:       "hello",
		Build:     build,
		Platform:  "debian-12-x86_64",
		LogIndex:  3,
		Inputs:    []attest.Input{{Name: attest.InputScript, SHA256: attest.Sum([]byte("#!/bin/sh\nmake\n"))}},
		Verdict:   attest.Reproduced,
		BuilderID: "https://rebuilder.example/a",
		StartedOn: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), FinishedOn: time.Date(2026, 11, 22, 10, 2, 0, 0, time.UTC),
	}
	st, err := r.Statement()
	if err != nil {
		panic(err)
	}

	// Rebuilders 0 and 1 attest; rebuilder 2 has not yet.
	var atts []attest.Attestation
	for i, s := range signers[:2] {
		envelope, err := attest.Sign(context.Background(), st, s)
		if err != nil {
			panic(err)
		}
		pub, err := attest.LoadVerifier(s.PublicKeyPEM())
		if err != nil {
			panic(err)
		}
		v, err := attest.Verify(envelope, pub)
		if err != nil {
			panic(err)
		}
		a, err := v.Attestation(int64(10 + i)) // the log index it was recorded at
		if err != nil {
			panic(err)
		}
		atts = append(atts, a)
		fmt.Println("verified:", v.PredicateType, v.Subjects[0].Name, a.Verdict)
	}

	p := attest.Policy{Threshold: 2}
	for i, s := range signers {
		p.Keys = append(p.Keys, attest.TrustedKey{ID: s.KeyID(), Name: fmt.Sprint("rebuilder-", i), AddedAt: int64(i)})
	}
	d, err := p.Evaluate(attest.Target{Digest: image}, atts)
	if err != nil {
		panic(err)
	}
	fmt.Println("satisfied:", d.Satisfied, "agreeing:", len(d.Agreeing), "missing:", len(d.Missing))
	// Output:
	// verified: https://slsa.dev/provenance/v1 dist/hello.hvt reproduced
	// verified: https://slsa.dev/provenance/v1 dist/hello.hvt reproduced
	// satisfied: true agreeing: 2 missing: 1
}
