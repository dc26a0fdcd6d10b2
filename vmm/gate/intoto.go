package gate

import (
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
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
	if mb, ok := md.(*intoto.Metablock); ok {
		if err := intoto.ValidateMetablock(*mb); err != nil {
			return bad("layout %s: %v", p.InToto.LayoutFile, err)
		}
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
	prefixes := map[string]string{}
	for _, id := range rebuild.PubKeys {
		// Link files are named by a key id's first 8 digits.
		if other, ok := prefixes[id[:min(len(id), 8)]]; ok && other != id {
			return bad("the keys %s and %s of step %q share the first 8 digits that name their link files", other, id, attest.LinkStep)
		}
		prefixes[id[:min(len(id), 8)]] = id
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
	index   uint64
	key     digest.Digest
	data    []byte
	differs bool // its rebuild got other bytes for the image
}

// seenLink is the latest link of a key for a build that a gate has seen
// proven (vetoes.json), so that a bundle leaving out a disagreeing link
// cannot lift its veto.
type seenLink struct {
	Index   uint64 `json:"index"`
	Differs bool   `json:"differs"`
}

// judgeInToto decides by the in-toto layout. Every build of the image
// (as an output file, not an input file) is considered: if the latest
// link of any non-revoked key of the layout for any of them, in this
// bundle or in one seen before, got other bytes, that key vetoes.
// Otherwise, newest build first, InTotoVerify runs over the gate's signed
// recorded link and the latest link of each key for that build, and the
// first build it accepts, with the image among the agreeing products,
// admits the image.
func (g *Gate) judgeInToto(dec *Decision, builds []*event.BuildRecorded, links map[uuid.UUID][]loggedLink, revoked map[digest.Digest]uint64, problems []string) *Decision {
	p := g.cfg.Policy
	d := dec.Image
	var outputs []*event.BuildRecorded
	imagePath := map[uuid.UUID]string{}
	for _, br := range builds {
		for _, a := range br.Artifacts {
			if a.SHA256 == d && !isInputFile(a.Path) {
				outputs = append(outputs, br)
				imagePath[br.UUID] = a.Path
				break
			}
		}
	}
	if len(outputs) == 0 {
		problems = append(problems, "no build has the image among its output files (only as an input file)")
	}
	// The latest link of each (key, build), merged with those seen before.
	latest := map[string]seenLink{}
	for _, br := range outputs {
		for _, l := range links[br.UUID] {
			k := l.key.String() + " " + br.UUID.String()
			if cur, ok := latest[k]; !ok || l.index >= cur.Index {
				latest[k] = seenLink{Index: l.index, Differs: l.differs}
			}
		}
	}
	seen, err := g.seenLinks(d)
	if err != nil {
		return g.refuse(d, true, "%v", err)
	}
	changed := false
	for k, v := range seen {
		if cur, ok := latest[k]; !ok || v.Index > cur.Index {
			latest[k] = v
		}
	}
	for k, v := range latest {
		if old, ok := seen[k]; !ok || old != v {
			changed = true
		}
	}
	if changed {
		if err := g.learnLinks(d, latest); err != nil {
			return g.refuse(d, true, "%v", err)
		}
	}
	var vetoes []string
	for k, v := range latest {
		key, build, _ := strings.Cut(k, " ")
		id, err := digest.ParseDigest(key)
		tk := p.keys[id]
		if _, gone := revoked[id]; err != nil || tk == nil || tk.revoked || gone || !v.Differs {
			continue
		}
		vetoes = append(vetoes, fmt.Sprintf("%s rebuilt build %s and got other bytes (its latest link, log index %d)", tk.name, build, v.Index))
	}
	slices.Sort(vetoes)
	if len(vetoes) > 0 {
		problems = append(problems, "in-toto: the links of a step must agree, and a key of the layout disagrees: "+strings.Join(vetoes, "; "))
		dec.Reason = dec.describe(nil, p, problems)
		return dec
	}
	for _, br := range outputs {
		agreeing, err := g.verifyInToto(br, imagePath[br.UUID], links[br.UUID])
		if err == nil {
			dec.Admitted, dec.Agreeing = true, agreeing
			break
		}
		problems = append(problems, fmt.Sprintf("in-toto refuses build %s: %v", br.UUID, err))
	}
	dec.Reason = dec.describe(nil, p, problems)
	return dec
}

func isInputFile(p string) bool {
	return p == attest.InputBuildEnvironment || p == attest.InputSystemPackages || p == attest.InputOpamSwitch
}

func (g *Gate) vetoesPath() string { return filepath.Join(g.cfg.CacheDir, "vetoes.json") }

// seenLinks returns the latest links seen for image d, by "KEY BUILD".
func (g *Gate) seenLinks(d digest.Digest) (map[string]seenLink, error) {
	all, err := g.allSeenLinks()
	if err != nil {
		return nil, err
	}
	out := all[d.String()]
	if out == nil {
		out = map[string]seenLink{}
	}
	return out, nil
}

func (g *Gate) allSeenLinks() (map[string]map[string]seenLink, error) {
	all := map[string]map[string]seenLink{}
	b, err := os.ReadFile(g.vetoesPath())
	if errors.Is(err, fs.ErrNotExist) {
		return all, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("gate state %s is damaged: %w", g.vetoesPath(), err)
	}
	return all, nil
}

// learnLinks remembers the latest links seen for image d.
func (g *Gate) learnLinks(d digest.Digest, latest map[string]seenLink) error {
	unlock, err := g.lockState()
	if err != nil {
		return err
	}
	defer unlock()
	all, err := g.allSeenLinks()
	if err != nil {
		return err
	}
	cur := all[d.String()]
	if cur == nil {
		cur = map[string]seenLink{}
	}
	for k, v := range latest {
		if old, ok := cur[k]; !ok || v.Index >= old.Index {
			cur[k] = v
		}
	}
	all[d.String()] = cur
	data, err := json.Marshal(all)
	if err != nil {
		return err
	}
	return g.writeFile(g.vetoesPath(), data)
}

// verifyInToto runs InTotoVerify for one build in a fresh directory of the
// cache and returns the names of the keys whose links it was given.
func (g *Gate) verifyInToto(br *event.BuildRecorded, imagePath string, links []loggedLink) ([]string, error) {
	ip := g.cfg.Policy.intoto
	dir, err := os.MkdirTemp(g.cfg.CacheDir, "intoto-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var outs []attest.Subject
	var image digest.Digest
	for _, a := range br.Artifacts {
		if !isInputFile(a.Path) {
			outs = append(outs, attest.Subject{Name: a.Path, SHA256: a.SHA256})
		}
		if a.Path == imagePath {
			image = a.SHA256
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
		// Whatever the layout's rules, what admits is k agreeing keys
		// that got the image's exact bytes (in-toto makes the links
		// agree; each must have the image among its products).
		md, err := attest.ParseLink(l.data)
		if err != nil {
			return nil, fmt.Errorf("the link at log index %d: %v", l.index, err)
		}
		if h := md.Signed.(intoto.Link).Products[imagePath]; h["sha256"] != image.String() {
			continue
		}
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
