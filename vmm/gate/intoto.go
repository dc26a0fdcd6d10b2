package gate

import (
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	intoto "github.com/in-toto/in-toto-golang/in_toto"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/event"
)

// InTotoPolicy makes a signed in-toto layout the gate's policy instead of
// threshold and keys: an image boots when in-toto-golang's InTotoVerify
// accepts the layout over the rebuild links the ledger logged for a build
// of the image, beside the link of step "recorded" that the gate makes
// from the build record it proved in the log and signs with the recorder
// key. The layout's step "rebuild" names the keys and the threshold
// (ledger intoto layout --any-build writes such a layout).
//
// Unlike the JSON policy, which counts agreeing keys and reports disputes,
// in-toto requires the links of a step to agree: one key of the layout that
// rebuilt the build and got other bytes vetoes the boot.
type InTotoPolicy struct {
	// LayoutFile is the signed layout (relative to the policy file).
	LayoutFile string `json:"layout_file"`
	// LayoutKeyFiles are the PEM public keys that must all have signed it.
	LayoutKeyFiles []string `json:"layout_key_files"`
	// RecorderKeyFile is the PEM private key the gate signs each
	// "recorded" link with; its public half is the functionary of the
	// layout's step "recorded".
	RecorderKeyFile string `json:"recorder_key_file"`
}

// intotoPolicy is a loaded InTotoPolicy.
type intotoPolicy struct {
	layout     intoto.Metadata
	layoutKeys map[string]intoto.Key
	recorder   intoto.Key
	expires    time.Time
	// inTotoIDs maps a ledger key id to the layout's in-toto key id of
	// the same key (signers compute in-toto ids differently).
	inTotoIDs map[digest.Digest]string
	keys      int // of step rebuild
}

// loadInToto loads and checks p.InToto: the layout is signed by every
// layout key, has not expired, has the steps "recorded" (with the
// recorder's key) and "rebuild" and nothing else, and no inspections (the
// gate runs no commands). The keys of step "rebuild" become the policy's
// trusted keys.
func (p *Policy) loadInToto(dir string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: intoto: %s", ErrPolicy, fmt.Sprintf(format, args...))
	}
	if p.Threshold != 0 || len(p.Keys) > 0 || len(p.BuiltBy) > 0 || p.UploaderCounts || len(p.PredicateTypes) > 0 {
		return bad("an in-toto policy decides by its layout alone: remove threshold, keys, built_by, uploader_counts and predicate_types (the layout's step %q names the keys and the threshold)", attest.LinkStep)
	}
	rel := func(f string) string {
		if filepath.IsAbs(f) {
			return f
		}
		return filepath.Join(dir, f)
	}
	ip := &intotoPolicy{layoutKeys: map[string]intoto.Key{}, inTotoIDs: map[digest.Digest]string{}}
	md, err := intoto.LoadMetadata(rel(p.InToto.LayoutFile))
	if err != nil {
		return bad("layout %s: %v", p.InToto.LayoutFile, err)
	}
	layout, ok := md.GetPayload().(intoto.Layout)
	if !ok {
		return bad("%s is not an in-toto layout", p.InToto.LayoutFile)
	}
	ip.layout = md
	for _, f := range p.InToto.LayoutKeyFiles {
		b, err := os.ReadFile(rel(f))
		if err != nil {
			return bad("layout key: %v", err)
		}
		k, err := attest.LoadInTotoKey(b)
		if err != nil {
			return bad("layout key %s: %v", f, err)
		}
		ip.layoutKeys[k.KeyID] = k
	}
	if err := intoto.VerifyLayoutSignatures(md, ip.layoutKeys); err != nil {
		return bad("the layout %s is not signed by every layout key: %v", p.InToto.LayoutFile, err)
	}
	if ip.expires, err = time.Parse(intoto.ISO8601DateSchema, layout.Expires); err != nil {
		return bad("the layout's expiry %q: %v", layout.Expires, err)
	}
	if time.Now().After(ip.expires) {
		return bad("the layout expired at %s; sign a renewed one", ip.expires.Format(time.RFC3339))
	}
	if len(layout.Inspect) > 0 {
		return bad("the layout has %d inspections; the gate runs no commands, so a layout for it has none", len(layout.Inspect))
	}
	b, err := os.ReadFile(rel(p.InToto.RecorderKeyFile))
	if err != nil {
		return bad("recorder key: %v", err)
	}
	if ip.recorder, err = attest.LoadInTotoKey(b); err != nil || ip.recorder.KeyVal.Private == "" {
		return bad("recorder key %s: an unencrypted PEM private key is needed (%v)", p.InToto.RecorderKeyFile, err)
	}
	var recorded, rebuild *intoto.Step
	for i, s := range layout.Steps {
		if s.Threshold < 1 {
			return bad("step %q has threshold %d; every step needs at least one link", s.Name, s.Threshold)
		}
		switch s.Name {
		case attest.RecordedStep:
			recorded = &layout.Steps[i]
		case attest.LinkStep:
			rebuild = &layout.Steps[i]
		default:
			return bad("the layout has a step %q; the gate has links of the steps %q and %q only", s.Name, attest.RecordedStep, attest.LinkStep)
		}
	}
	switch {
	case recorded == nil || rebuild == nil:
		return bad("the layout needs the steps %q and %q (ledger intoto layout --any-build writes one)", attest.RecordedStep, attest.LinkStep)
	case !slices.Contains(recorded.PubKeys, ip.recorder.KeyID):
		return bad("the layout's step %q does not name the recorder key (in-toto key id %s) as its functionary", attest.RecordedStep, ip.recorder.KeyID)
	}
	p.Threshold, p.PredicateTypes = rebuild.Threshold, []string{attest.LinkPredicateType}
	p.keys = map[digest.Digest]*trustedKey{}
	for _, id := range rebuild.PubKeys {
		k, ok := layout.Keys[id]
		if !ok {
			return bad("the step %q names key %s, which the layout does not hold", attest.LinkStep, id)
		}
		pub, err := inTotoPublicKey(k)
		if err != nil {
			return bad("key %s of step %q: %v", id, attest.LinkStep, err)
		}
		v, err := attest.NewVerifier(pub)
		if err != nil {
			return bad("key %s of step %q: %v", id, attest.LinkStep, err)
		}
		name := "in-toto key " + id[:min(len(id), 8)]
		p.keys[v.KeyID()] = &trustedKey{name: name, verifier: v}
		p.Keys = append(p.Keys, PolicyKey{Name: name})
		ip.inTotoIDs[v.KeyID()] = id
	}
	ip.keys = len(p.keys)
	p.intoto = ip
	return nil
}

// inTotoPublicKey is the public key of an in-toto key: PEM, or (Python
// in-toto's Ed25519 keys) hex.
func inTotoPublicKey(k intoto.Key) (crypto.PublicKey, error) {
	if b, _ := pem.Decode([]byte(k.KeyVal.Public)); b != nil {
		return x509.ParsePKIXPublicKey(b.Bytes)
	}
	if raw, err := hex.DecodeString(k.KeyVal.Public); err == nil && k.KeyType == "ed25519" && len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	return nil, fmt.Errorf("key type %q: the public key is neither PEM nor a hex Ed25519 key", k.KeyType)
}

// loggedLink is a rebuild link from the bundle, verified as logged.
type loggedLink struct {
	index uint64
	key   digest.Digest
	data  []byte
}

// judgeInToto decides by the in-toto layout: for each build of the image
// (newest first), InTotoVerify over the gate's signed recorded link and
// the latest link of each key for that build; the first build it accepts
// admits the image.
func (g *Gate) judgeInToto(dec *Decision, builds []*event.BuildRecorded, links map[uuid.UUID][]loggedLink, problems []string) *Decision {
	for _, br := range builds {
		agreeing, err := g.verifyInToto(br, links[br.UUID])
		if err == nil {
			dec.Admitted, dec.Agreeing = true, agreeing
			break
		}
		problems = append(problems, fmt.Sprintf("in-toto refuses build %s: %v", br.UUID, err))
	}
	dec.Reason = dec.describe(nil, g.cfg.Policy, problems)
	return dec
}

// verifyInToto runs InTotoVerify for one build in a fresh directory of the
// cache and returns the names of the keys whose links it was given.
func (g *Gate) verifyInToto(br *event.BuildRecorded, links []loggedLink) ([]string, error) {
	ip := g.cfg.Policy.intoto
	dir, err := os.MkdirTemp(g.cfg.CacheDir, "intoto-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var outs []attest.Subject
	for _, a := range br.Artifacts {
		if a.Path != attest.InputBuildEnvironment && a.Path != attest.InputSystemPackages && a.Path != attest.InputOpamSwitch {
			outs = append(outs, attest.Subject{Name: a.Path, SHA256: a.SHA256})
		}
	}
	rec := attest.RecordedLink(br.UUID.String(), br.Job, outs)
	if err := rec.Sign(ip.recorder); err != nil {
		return nil, fmt.Errorf("signing the recorded link: %w", err)
	}
	if err := rec.Dump(filepath.Join(dir, fmt.Sprintf(intoto.LinkNameFormat, attest.RecordedStep, ip.recorder.KeyID))); err != nil {
		return nil, err
	}
	// The latest link of each key, under the layout's id of that key.
	latest := map[digest.Digest]loggedLink{}
	for _, l := range links {
		if l.index >= latest[l.key].index {
			latest[l.key] = l
		}
	}
	var names []string
	for key, l := range latest {
		id := ip.inTotoIDs[key]
		var mb map[string]json.RawMessage
		var sigs []intoto.Signature
		if json.Unmarshal(l.data, &mb) != nil || json.Unmarshal(mb["signatures"], &sigs) != nil || len(sigs) != 1 {
			return nil, fmt.Errorf("the link at log index %d is not as the ledger logs links", l.index)
		}
		sigs[0].KeyID = id // unsigned: the signature verifies with the layout's key of that id
		mb["signatures"], _ = json.Marshal(sigs)
		data, _ := json.Marshal(mb)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf(intoto.LinkNameFormat, attest.LinkStep, id)), data, 0o600); err != nil {
			return nil, err
		}
		names = append(names, g.cfg.Policy.keys[key].name)
	}
	slices.Sort(names)
	if err := inTotoVerify(ip, dir); err != nil {
		return nil, fmt.Errorf("%s (links of %s)", strings.TrimSpace(err.Error()), strings.Join(append([]string{"none"}, names...)[min(1, len(names)):], ", "))
	}
	return names, nil
}

// inTotoVerify is intoto.InTotoVerify over the links in dir, which must
// not take the gate down should the library panic on some input.
func inTotoVerify(ip *intotoPolicy, dir string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("in-toto verification failed: %v", r)
		}
	}()
	_, err = intoto.InTotoVerify(ip.layout, ip.layoutKeys, dir, "", nil, nil, false)
	return err
}
