package ledger

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas"
)

// In-toto links are logged as attestation_recorded events whose predicate
// type is attest.LinkPredicateType and whose Envelope is the digest of the
// link in canonical form (attest.VerifiedLink.Canonical). The core checks
// them as it checks DSSE envelopes: signature by the registered key,
// canonical form, and a summary that follows from the signed link and the
// recorded build (LinkAttestation).

// isInputFile reports whether an artifact path is one of the input files
// orb records among a build's outputs (build-environment,
// system-packages, opam-switch: the names of attest's inputs).
func isInputFile(p string) bool {
	return p == attest.InputBuildEnvironment || p == attest.InputSystemPackages || p == attest.InputOpamSwitch
}

// LinkAttestation returns the event that logs a verified rebuild link of
// build b, or says (wrapping ErrRejected) why the link does not describe b
// as recorded:
//
//   - the link's build byproduct is b;
//   - its materials are exactly b's recorded inputs with their digests;
//   - its verdict follows from its products: "reproduced" exactly when
//     they are b's output files (its artifacts other than the input files)
//     with the recorded digests, "differs" otherwise;
//   - its subjects are the products that are artifacts of b (a rebuild's
//     extra files stay in the link, and make it "differs").
func LinkAttestation(v *attest.VerifiedLink, b *BuildRecorded) (*AttestationRecorded, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: the in-toto link does not describe build %s as recorded: %s", ErrRejected, b.UUID, fmt.Sprintf(format, args...))
	}
	if v.Build != b.UUID {
		return nil, bad("it names build %s", v.Build)
	}
	// Exactly the recorded inputs: in-toto requires the links of a step
	// to have the same materials, so honest rebuilders must agree on them.
	materials := v.LinkMaterials()
	if err := checkInputs(materials, b, bad); err != nil {
		return nil, err
	}
	want := 0
	for name, d := range recordedInputs(b) {
		if d == nil {
			continue
		}
		want++
		if !slices.ContainsFunc(materials, func(in attest.Input) bool { return in.Name == name }) {
			return nil, bad("its materials lack the recorded input %s", name)
		}
	}
	if len(materials) != want {
		return nil, bad("its materials are %d files, the recorded inputs %d: a rebuild link's materials are exactly the recorded inputs (script, build-environment, system-packages, opam-switch as recorded)", len(materials), want)
	}
	products := map[string]cas.Digest{}
	for _, s := range v.Subjects {
		products[s.Name] = s.SHA256
	}
	exact := true
	var outputs int
	ev := &AttestationRecorded{Envelope: cas.Sum(v.Canonical()), KeyID: v.KeyID, PredicateType: attest.LinkPredicateType,
		Build: &b.UUID, Verdict: Verdict(v.Verdict)}
	for _, a := range b.Artifacts {
		d, ok := products[a.Path]
		if ok {
			ev.Subjects = append(ev.Subjects, Subject{Name: a.Path, SHA256: d})
		}
		if isInputFile(a.Path) {
			continue
		}
		outputs++
		if !ok || d != a.SHA256 {
			exact = false
		}
	}
	for name := range products {
		if _, ok := b.Artifact(name); !ok || isInputFile(name) {
			exact = false
		}
	}
	exact = exact && outputs > 0
	switch {
	case v.Verdict == attest.Reproduced && !exact:
		return nil, bad("its verdict is %q but its products are not exactly the %d recorded output files with their recorded digests", v.Verdict, outputs)
	case v.Verdict != attest.Reproduced && exact:
		return nil, bad("its verdict is %q but its products are exactly the recorded output files with their recorded digests", v.Verdict)
	case len(ev.Subjects) == 0:
		return nil, bad("none of its %d products is an artifact of the build", len(products))
	}
	slices.SortFunc(ev.Subjects, compareSubjects)
	return ev, nil
}

// checkLink is checkEnvelope for an in-toto link: env (the stored bytes)
// must be a rebuild link whose signature verifies with v, in canonical
// form, and e must be what LinkAttestation makes of it.
func (l *Ledger) checkLink(txn *badger.Txn, e *AttestationRecorded, env []byte, v *attest.Verifier, rejected func(string, ...any) error) error {
	vl, err := attest.VerifyLink(env, v)
	if err != nil {
		return rejected("%s", strings.TrimPrefix(err.Error(), "attest: "))
	}
	if cas.Sum(vl.Canonical()) != e.Envelope {
		return rejected("not in canonical form (one signature under in-toto's key id, as attest.VerifiedLink.Canonical writes it)")
	}
	if e.Build == nil {
		return rejected("the link attests build %s, the event names no build", vl.Build)
	}
	idx, err := getIndex(txn, key(pBuild, e.Build[:]))
	if errors.Is(err, ErrNotFound) {
		return rejected("attested build %s is not recorded", e.Build)
	} else if err != nil {
		return err
	}
	b, err := eventAs[*BuildRecorded](l, txn, idx)
	if err != nil {
		return err
	}
	want, err := LinkAttestation(vl, b)
	if err != nil {
		return err
	}
	switch {
	case want.KeyID != e.KeyID:
		return rejected("signed by key %s, the event says %s", want.KeyID, e.KeyID)
	case want.Verdict != e.Verdict:
		return rejected("the link's verdict is %q, the event says %q", want.Verdict, e.Verdict)
	case !slices.Equal(want.Subjects, e.Subjects):
		return rejected("the link's subjects %v are not the event's %v", want.Subjects, e.Subjects)
	}
	return nil
}
