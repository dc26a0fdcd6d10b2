package rebuilder

import (
	"fmt"
	"os"
	"path/filepath"

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
		Command:     []string{"rebuilder", "rebuild", "--build", o.Build.UUID.String()},
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
