package rebuilder

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/buildledger/buildledger/ledger/event"
	intoto "github.com/in-toto/in-toto-golang/in_toto"
)

// LinkStep is the in-toto step name of a rebuild.
const LinkStep = "rebuild"

// Link returns the in-toto link (in-toto-golang's Metablock) of a rebuild,
// signed with key: step "rebuild"; as materials the inputs the recorded
// build names (AttestedInputs: script, build-environment,
// system-packages, opam-switch), as products every file the rebuild
// produced with the digest it got, and the command that rebuilt it. A
// layout whose step "rebuild" requires K such links with products
// matching the recorded artifacts is a K-of-N reproducibility policy that
// in-toto's own verifiers check.
func Link(o *Outcome, key intoto.Key) (*intoto.Metablock, error) {
	if o == nil || o.Build == nil || o.Result == nil {
		return nil, fmt.Errorf("rebuilder: no rebuild to link")
	}
	l := intoto.Link{
		Type:        "link",
		Name:        LinkStep,
		Materials:   map[string]intoto.HashObj{},
		Products:    map[string]intoto.HashObj{},
		ByProducts:  map[string]interface{}{"verdict": string(o.Verdict), "build": o.Build.UUID.String()},
		Command:     linkCommand(o.Build),
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

// WriteLink writes a signed link into dir under in-toto's file name for
// it (LinkNameFormat: step name and the signing key id's first 8 hex
// digits) and returns the path.
func WriteLink(mb *intoto.Metablock, dir string, key intoto.Key) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("rebuilder: %w", err)
	}
	p := filepath.Join(dir, fmt.Sprintf(intoto.LinkNameFormat, LinkStep, key.KeyID))
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

// Layout returns an unsigned in-toto layout template for rebuilds of the
// recorded build b: one step "rebuild" whose links k of the keys must
// sign, with the same products; products limited to b's artifacts (its
// output files, not its input files), materials unrestricted; expiring at
// expires. An operator signs it (in-toto-sign) with the layout key. The
// digests the k links agree on are theirs: that they equal the recorded
// ones is what the ledger's attestations and the VMM gate check.
func Layout(b *event.BuildRecorded, keys []LayoutKey, k int, expires time.Time) (*intoto.Metablock, []string, error) {
	if k < 1 || k > len(keys) {
		return nil, nil, fmt.Errorf("rebuilder: threshold %d with %d keys can never be met", k, len(keys))
	}
	l := intoto.Layout{Type: "layout", Expires: expires.UTC().Format(time.RFC3339), Keys: map[string]intoto.Key{},
		Inspect: []intoto.Inspection{}, Readme: fmt.Sprintf("Rebuilds of job %s (build %s, %s): %d of %d rebuilders must agree.", b.Job, b.UUID, b.Platform, k, len(keys))}
	step := intoto.Step{Type: "step", Threshold: k, ExpectedCommand: linkCommand(b),
		SupplyChainItem: intoto.SupplyChainItem{Name: LinkStep, ExpectedMaterials: [][]string{{"ALLOW", "*"}}}}
	var ids []string
	for _, key := range keys {
		var ik intoto.Key
		if err := ik.LoadKeyReaderDefaults(strings.NewReader(key.PEM)); err != nil {
			return nil, nil, fmt.Errorf("rebuilder: key %s: %w", key.Name, err)
		}
		l.Keys[ik.KeyID] = ik
		step.PubKeys = append(step.PubKeys, ik.KeyID)
		ids = append(ids, ik.KeyID)
	}
	for _, a := range b.Artifacts {
		if !isInput(a.Path) {
			step.ExpectedProducts = append(step.ExpectedProducts, []string{"ALLOW", a.Path})
		}
	}
	step.ExpectedProducts = append(step.ExpectedProducts, []string{"DISALLOW", "*"})
	l.Steps = []intoto.Step{step}
	return &intoto.Metablock{Signed: l, Signatures: []intoto.Signature{}}, ids, nil
}

// linkCommand is the command a rebuild link reports and its layout
// expects.
func linkCommand(b *event.BuildRecorded) []string {
	return []string{"rebuilder", "rebuild", "--build", b.UUID.String()}
}
