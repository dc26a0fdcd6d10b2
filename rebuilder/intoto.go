package rebuilder

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/ledger/event"
	intoto "github.com/in-toto/in-toto-golang/in_toto"
)

// LinkStep is the in-toto step name of a rebuild.
const LinkStep = attest.LinkStep

// Link returns the in-toto link (in-toto-golang's Metablock) of a rebuild,
// signed with key: step "rebuild"; as materials the inputs the recorded
// build names (AttestedInputs: script, build-environment,
// system-packages, opam-switch: the rebuild ran in that recorded
// environment), as products every file the rebuild produced with the
// digest it got, and the command that rebuilt it. With Layout's layout,
// in-toto's own verifiers check that K such links reproduce the recorded
// digests.
func Link(o *Outcome, key intoto.Key) (*intoto.Metablock, error) {
	if o == nil || o.Build == nil || o.Result == nil {
		return nil, fmt.Errorf("rebuilder: no rebuild to link")
	}
	l := intoto.Link{
		Type:        "link",
		Name:        LinkStep,
		Materials:   map[string]intoto.HashObj{},
		Products:    map[string]intoto.HashObj{},
		ByProducts:  map[string]interface{}{attest.LinkVerdictByproduct: string(o.Verdict), attest.LinkBuildByproduct: o.Build.UUID.String()},
		Command:     linkCommand(),
		Environment: map[string]interface{}{},
	}
	for _, in := range AttestedInputs(o.Build) {
		l.Materials[in.Name] = intoto.HashObj{"sha256": in.SHA256.String()}
	}
	for _, a := range o.Comparison.Identical {
		l.Products[a.Path] = intoto.HashObj{"sha256": a.SHA256.String()}
	}
	for _, m := range o.Comparison.Differing {
		l.Products[m.Path] = intoto.HashObj{"sha256": m.Actual.String()}
	}
	for _, a := range o.Comparison.Extra {
		l.Products[a.Path] = intoto.HashObj{"sha256": a.SHA256.String()}
	}
	mb := &intoto.Metablock{Signed: l}
	if err := mb.Sign(key); err != nil {
		return nil, fmt.Errorf("rebuilder: signing the in-toto link: %w", err)
	}
	return mb, nil
}

// WriteLink writes a signed rebuild link into dir under in-toto's file
// name for it (LinkNameFormat: step name and the signing key id's first 8
// hex digits) and returns the path.
func WriteLink(mb *intoto.Metablock, dir string, key intoto.Key) (string, error) {
	return WriteLinkAs(mb, dir, LinkStep, key)
}

// WriteLinkAs is WriteLink for the link of step, (to be) signed by key.
func WriteLinkAs(mb *intoto.Metablock, dir, step string, key intoto.Key) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("rebuilder: %w", err)
	}
	p := filepath.Join(dir, fmt.Sprintf(intoto.LinkNameFormat, step, key.KeyID))
	if err := mb.Dump(p); err != nil {
		return "", fmt.Errorf("rebuilder: writing the in-toto link: %w", err)
	}
	return p, nil
}

// LayoutKey is a functionary of a layout: a name for people and a PEM
// public key.
type LayoutKey struct {
	Name string
	PEM  string
}

// RecordedStep is attest.RecordedStep.
const RecordedStep = attest.RecordedStep

// pattern escapes a path for an in-toto artifact rule (fnmatch): *, ? and
// [ stand for themselves.
func pattern(p string) string {
	var b strings.Builder
	for _, r := range p {
		switch r {
		case '*', '?', '[':
			b.WriteString("[" + string(r) + "]")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// outputs are b's output files (not its input files).
func outputs(b *event.BuildRecorded) []event.Artifact {
	var out []event.Artifact
	for _, a := range b.Artifacts {
		if !isInput(a.Path) {
			out = append(out, a)
		}
	}
	return out
}

// RecordedLink returns the unsigned in-toto link of the step "recorded"
// of b (attest.RecordedLink over b's output files). The layout's recorder
// (LayoutKey given to Layout) signs it (in-toto-sign), vouching that these
// are the digests the ledger holds.
func RecordedLink(b *event.BuildRecorded) *intoto.Metablock {
	var outs []attest.Subject
	for _, a := range outputs(b) {
		outs = append(outs, attest.Subject{Name: a.Path, SHA256: a.SHA256})
	}
	return attest.RecordedLink(b.UUID.String(), b.Job, outs)
}

// Layout returns an unsigned in-toto layout template for rebuilds of the
// recorded build b, expiring at expires, for an operator to sign
// (in-toto-sign) with the layout key:
//
//   - step "recorded": one link, signed by recorder, whose products are
//     b's output files and their recorded digests (RecordedLink);
//   - step "rebuild": links of k distinct keys among keys, each with every
//     output file (REQUIRE) with the digest the recorded link states
//     (MATCH … FROM recorded) and nothing else (DISALLOW *).
//
// So in-toto-verify passes only when k rebuilders reproduced exactly the
// recorded bytes. It returns the rebuild keys' in-toto key ids.
func Layout(b *event.BuildRecorded, keys []LayoutKey, k int, recorder LayoutKey, expires time.Time) (*intoto.Metablock, []string, error) {
	outs := outputs(b)
	if len(outs) == 0 {
		return nil, nil, fmt.Errorf("rebuilder: build %s has no output files to reproduce", b.UUID)
	}
	l, ids, err := layoutSteps(keys, k, recorder, expires)
	if err != nil {
		return nil, nil, err
	}
	recorded, rebuild := &l.Steps[0], &l.Steps[1]
	for _, a := range outs {
		p := pattern(a.Path)
		recorded.ExpectedProducts = append(recorded.ExpectedProducts, []string{"ALLOW", p})
		rebuild.ExpectedProducts = append(rebuild.ExpectedProducts, []string{"REQUIRE", p},
			[]string{"MATCH", p, "WITH", "PRODUCTS", "FROM", RecordedStep})
	}
	recorded.ExpectedProducts = append(recorded.ExpectedProducts, []string{"DISALLOW", "*"})
	rebuild.ExpectedProducts = append(rebuild.ExpectedProducts, []string{"DISALLOW", "*"})
	l.Readme = fmt.Sprintf("Rebuilds of job %s (build %s, %s): %d of %d rebuilders must reproduce the %d recorded output files exactly.",
		b.Job, b.UUID, b.Platform, k, len(ids), len(outs))
	return &intoto.Metablock{Signed: l, Signatures: []intoto.Signature{}}, ids, nil
}

// StandingLayout returns an unsigned in-toto layout for rebuilds of any
// recorded build, as the VMM gate takes it for its policy: the link of
// step "recorded" (made per build from the log and signed by recorder,
// the VMM's key) and the links of k distinct keys among keys of step
// "rebuild" must have exactly the same products, name for name and digest
// for digest: each step's products MATCH the other's, and nothing else is
// allowed. It returns the rebuild keys' in-toto key ids.
func StandingLayout(keys []LayoutKey, k int, recorder LayoutKey, expires time.Time) (*intoto.Metablock, []string, error) {
	l, ids, err := layoutSteps(keys, k, recorder, expires)
	if err != nil {
		return nil, nil, err
	}
	l.Steps[0].ExpectedProducts = [][]string{{"MATCH", "*", "WITH", "PRODUCTS", "FROM", LinkStep}, {"DISALLOW", "*"}}
	l.Steps[1].ExpectedProducts = [][]string{{"MATCH", "*", "WITH", "PRODUCTS", "FROM", RecordedStep}, {"DISALLOW", "*"}}
	l.Readme = fmt.Sprintf("Rebuilds of any recorded build: %d of %d rebuilders must reproduce exactly the recorded output files that the recorder states.", k, len(ids))
	return &intoto.Metablock{Signed: l, Signatures: []intoto.Signature{}}, ids, nil
}

// layoutSteps is a layout with the keys, expiring at expires, and its two
// steps without product rules: "recorded" (one link, by recorder, no
// materials) and "rebuild" (links of k distinct keys among keys).
func layoutSteps(keys []LayoutKey, k int, recorder LayoutKey, expires time.Time) (intoto.Layout, []string, error) {
	l := intoto.Layout{Type: "layout", Expires: expires.UTC().Format(time.RFC3339), Keys: map[string]intoto.Key{},
		Inspect: []intoto.Inspection{}}
	load := func(key LayoutKey) (intoto.Key, error) {
		ik, err := attest.LoadInTotoKey([]byte(key.PEM))
		if err != nil {
			return ik, fmt.Errorf("rebuilder: key %s: %w", key.Name, err)
		}
		ik.KeyVal.Private = ""
		l.Keys[ik.KeyID] = ik
		return ik, nil
	}
	rk, err := load(recorder)
	if err != nil {
		return l, nil, err
	}
	recorded := intoto.Step{Type: "step", Threshold: 1, PubKeys: []string{rk.KeyID}, ExpectedCommand: []string{},
		SupplyChainItem: intoto.SupplyChainItem{Name: RecordedStep, ExpectedMaterials: [][]string{{"DISALLOW", "*"}}}}
	rebuild := intoto.Step{Type: "step", Threshold: k, ExpectedCommand: linkCommand(),
		SupplyChainItem: intoto.SupplyChainItem{Name: LinkStep, ExpectedMaterials: [][]string{{"ALLOW", "*"}}}}
	var ids []string
	seen := map[string]bool{}
	for _, key := range keys {
		ik, err := load(key)
		if err != nil {
			return l, nil, err
		}
		if !seen[ik.KeyID] {
			seen[ik.KeyID] = true
			rebuild.PubKeys = append(rebuild.PubKeys, ik.KeyID)
			ids = append(ids, ik.KeyID)
		}
	}
	if k < 1 || k > len(ids) {
		return l, nil, fmt.Errorf("rebuilder: threshold %d with %d distinct keys can never be met", k, len(ids))
	}
	l.Steps = []intoto.Step{recorded, rebuild}
	return l, ids, nil
}

// linkCommand is the command a rebuild link reports and its layouts
// expect: the same for every build (the link's byproduct "build" names the
// build), so that a standing layout can expect it too and in-toto's
// verifiers have no command mismatch to warn about.
func linkCommand() []string {
	return []string{"rebuilder", "rebuild"}
}
