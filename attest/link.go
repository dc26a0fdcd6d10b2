package attest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"
	intoto "github.com/in-toto/in-toto-golang/in_toto"
	"github.com/secure-systems-lab/go-securesystemslib/signerverifier"
)

// LinkPredicateType is the predicate type under which the ledger logs an
// in-toto link (in-toto specification v0.9, signed in its own "signed" /
// "signatures" wrapper rather than DSSE): in-toto-golang's name for an
// in-toto 0.9 link.
const LinkPredicateType = intoto.PredicateLinkV1

// LinkStep is the in-toto step name of a rebuild link.
const LinkStep = "rebuild"

// Byproducts of a rebuild link naming what it rebuilt and concluded; both
// are signed with the rest of the link.
const (
	LinkBuildByproduct   = "build"
	LinkVerdictByproduct = "verdict"
)

// IsLink reports whether data looks like in-toto link metadata (a JSON
// object with a "signed" member) rather than a DSSE envelope or a
// Sigstore bundle. It does not validate anything.
func IsLink(data []byte) bool {
	var probe struct {
		Signed json.RawMessage `json:"signed"`
	}
	return len(data) <= MaxEnvelopeSize && json.Unmarshal(data, &probe) == nil && len(probe.Signed) > 0
}

// ParseLink decodes in-toto link metadata strictly: at most
// MaxEnvelopeSize bytes, a JSON object of exactly "signed" and
// "signatures", a link (_type "link") with every field of the
// specification and no others, hex digests, 1 to MaxSignatures
// signatures. Every error is a *VerifyError refining ErrMalformed.
func ParseLink(data []byte) (*intoto.Metablock, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, malformed("larger than %d bytes", MaxEnvelopeSize)
	}
	if err := uniqueKeys(data); err != nil {
		return nil, malformed("in-toto link: %v", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, malformed("in-toto link: not a JSON object: %v", err)
	}
	for k := range top {
		if k != "signed" && k != "signatures" {
			return nil, malformed("in-toto link: unknown member %.100q (a link has only \"signed\" and \"signatures\")", k)
		}
	}
	if len(top["signed"]) == 0 || string(top["signed"]) == "null" || len(top["signatures"]) == 0 || string(top["signatures"]) == "null" {
		return nil, malformed("in-toto link: \"signed\" and \"signatures\" are both required")
	}
	var typ struct {
		Type string `json:"_type"`
	}
	if err := json.Unmarshal(top["signed"], &typ); err != nil {
		return nil, malformed("in-toto link: \"signed\" is not an object: %v", err)
	}
	if typ.Type != "link" {
		return nil, malformed("in-toto metadata of _type %.50q; only links are accepted", typ.Type)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(top["signed"], &fields); err != nil {
		return nil, malformed("in-toto link: %v", err)
	}
	linkFields := []string{"_type", "name", "materials", "products", "byproducts", "command", "environment"}
	for _, f := range linkFields {
		if _, ok := fields[f]; !ok {
			return nil, malformed("in-toto link: field %q is missing", f)
		}
	}
	for f := range fields {
		if !slices.Contains(linkFields, f) {
			// Go's decoder would match it to a field case-insensitively.
			return nil, malformed("in-toto link: unknown field %.100q", f)
		}
	}
	var link intoto.Link
	dec := json.NewDecoder(bytes.NewReader(top["signed"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&link); err != nil {
		return nil, malformed("in-toto link: %v", err)
	}
	var rawSigs []map[string]json.RawMessage
	if err := json.Unmarshal(top["signatures"], &rawSigs); err != nil {
		return nil, malformed("in-toto link signatures: %v", err)
	}
	for i, rs := range rawSigs {
		for f := range rs {
			if f != "keyid" && f != "sig" && f != "cert" {
				return nil, malformed("in-toto link: signature %d has an unknown field %.100q", i, f)
			}
		}
	}
	var sigs []intoto.Signature
	dec = json.NewDecoder(bytes.NewReader(top["signatures"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sigs); err != nil {
		return nil, malformed("in-toto link signatures: %v", err)
	}
	if len(sigs) == 0 || len(sigs) > MaxSignatures {
		return nil, malformed("in-toto link: %d signatures; 1 to %d are accepted", len(sigs), MaxSignatures)
	}
	for i, s := range sigs {
		if raw, err := hex.DecodeString(s.Sig); err != nil || len(raw) == 0 || len(raw) > 1024 {
			return nil, malformed("in-toto link: signature %d is not hex of at most 1024 bytes", i)
		}
	}
	mb := &intoto.Metablock{Signed: link, Signatures: sigs}
	if err := intoto.ValidateMetablock(*mb); err != nil {
		return nil, malformed("in-toto link: %v", err)
	}
	return mb, nil
}

// LoadInTotoKey reads a PEM key (private or public) for in-toto, with the
// signing scheme the key's curve needs: in-toto-golang's defaults give
// every ECDSA key "ecdsa-sha2-nistp256", which Python in-toto refuses for
// a P-384 or P-521 key. Key ids are in-toto's (over the key's canonical
// JSON), not the ledger's KeyID.
func LoadInTotoKey(pemBytes []byte) (intoto.Key, error) {
	var k intoto.Key
	if err := k.LoadKeyReaderDefaults(bytes.NewReader(pemBytes)); err != nil {
		return k, err
	}
	if k.KeyType != "ecdsa" {
		return k, nil
	}
	scheme := "ecdsa-sha2-nistp256"
	if b, _ := pem.Decode(pemBytes); b != nil {
		var pub any
		if priv, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
			if e, ok := priv.(*ecdsa.PrivateKey); ok {
				pub = &e.PublicKey
			}
		} else if e, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
			pub = &e.PublicKey
		} else if p, err := x509.ParsePKIXPublicKey(b.Bytes); err == nil {
			pub = p
		}
		if e, ok := pub.(*ecdsa.PublicKey); ok {
			switch e.Curve {
			case elliptic.P384():
				scheme = "ecdsa-sha2-nistp384"
			case elliptic.P521():
				scheme = "ecdsa-sha2-nistp521"
			}
		}
	}
	var k2 intoto.Key
	err := k2.LoadKeyReader(bytes.NewReader(pemBytes), scheme, k.KeyIDHashAlgorithms)
	return k2, err
}

// InTotoKey returns the in-toto public key of pub (see LoadInTotoKey).
func InTotoKey(pub crypto.PublicKey) (intoto.Key, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return intoto.Key{}, fmt.Errorf("attest: in-toto key: %w", err)
	}
	return LoadInTotoKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// VerifiedLink is a rebuild link whose signature verified with a key.
type VerifiedLink struct {
	Link        intoto.Link
	KeyID       KeyID  // the ledger's id of the key that verified
	InTotoKeyID string // in-toto's id of that key
	Build       uuid.UUID
	Verdict     Verdict   // Reproduced or Differs, as the rebuilder signed it
	Subjects    []Subject // the products, sorted by name
	signature   string
}

// Canonical returns the link in the one form the ledger stores and
// serves: the signed link and only the signature that verified (in
// lower-case hex, an ECDSA signature with its low S), under
// in-toto-golang's key id of the ledger's registered key, as compact JSON
// without HTML escapes. Resubmissions of the same signed link and
// signature have the same bytes, however they were encoded.
func (v *VerifiedLink) Canonical() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(&intoto.Metablock{Signed: v.Link, Signatures: []intoto.Signature{{KeyID: v.InTotoKeyID, Sig: v.signature}}})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// FileName is the link's file name as in-toto's verifiers look for it
// (intoto.LinkNameFormat: step name and the in-toto key id's first 8 hex
// digits).
func (v *VerifiedLink) FileName() string {
	return fmt.Sprintf(intoto.LinkNameFormat, v.Link.Name, v.InTotoKeyID)
}

// Attestation summarises the link for policy evaluation, given the log
// index at which it was logged.
func (v *VerifiedLink) Attestation(logIndex int64) Attestation {
	return Attestation{KeyID: v.KeyID, PredicateType: LinkPredicateType, Build: v.Build,
		Subjects: slices.Clone(v.Subjects), Verdict: v.Verdict, LogIndex: logIndex}
}

// linkCanonicalForms is CanonicalForms for an in-toto link.
func linkCanonicalForms(data []byte) ([][]byte, error) {
	mb, err := ParseLink(data)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, s := range mb.Signatures {
		v := &VerifiedLink{Link: mb.Signed.(intoto.Link), InTotoKeyID: s.KeyID, signature: strings.ToLower(s.Sig)}
		out = append(out, v.Canonical())
	}
	return out, nil
}

// VerifyLink is VerifyLinkAny with one key.
func VerifyLink(data []byte, key *Verifier) (*VerifiedLink, error) {
	return VerifyLinkAny(data, []*Verifier{key})
}

// VerifyLinkAny parses a rebuild link strictly (ParseLink) and checks that
// one of its signatures verifies, over in-toto's canonical JSON of the
// link, with one of keys (tried in order; a signature's keyid is a hint
// only, since signers compute key ids differently). The link must be of
// step LinkStep, carry a sha256 digest for each product and material, and
// name the rebuilt build and the verdict ("reproduced" or "differs") in
// its byproducts. Every error is a *VerifyError.
func VerifyLinkAny(data []byte, keys []*Verifier) (*VerifiedLink, error) {
	mb, err := ParseLink(data)
	if err != nil {
		return nil, err
	}
	link := mb.Signed.(intoto.Link)
	payload, err := mb.GetSignableRepresentation()
	if err != nil {
		return nil, malformed("in-toto link: no canonical JSON form: %v", err)
	}
	sigs := make([][]byte, len(mb.Signatures))
	hinted := map[string]bool{}
	for i, s := range mb.Signatures {
		sigs[i], _ = hex.DecodeString(s.Sig)
		hinted[strings.ToLower(s.KeyID)] = true
	}
	// Keys whose in-toto id a signature names first, then the others:
	// one canonical payload, one verifier per key, each signature tried.
	type candidate struct {
		k  *Verifier
		ik linkKey
	}
	var first, rest []candidate
	for _, k := range keys {
		ik, err := linkKeyOf(k)
		if err != nil {
			continue // a key in-toto cannot use verifies no link
		}
		if hinted[ik.key.KeyID] {
			first = append(first, candidate{k, ik})
		} else {
			rest = append(rest, candidate{k, ik})
		}
	}
	var found *Verifier
	var ik intoto.Key
	var sig []byte
search:
	for _, c := range append(first, rest...) {
		for _, raw := range sigs {
			if len(raw) > 0 && c.ik.sv.Verify(context.Background(), payload, raw) == nil {
				found, ik, sig = c.k, c.ik.key, raw
				break search
			}
		}
	}
	if found == nil {
		return nil, &VerifyError{Err: ErrBadSignature, Reason: fmt.Sprintf("none of the link's %d signatures verifies with the %d key(s) tried", len(mb.Signatures), len(keys))}
	}
	if pub, ok := found.pub.(*ecdsa.PublicKey); ok {
		sig = lowS(pub, sig)
	}
	v := &VerifiedLink{Link: link, KeyID: found.id, InTotoKeyID: ik.KeyID, signature: hex.EncodeToString(sig)}
	if n := len(v.Canonical()); n > MaxEnvelopeSize {
		return nil, malformed("in-toto link: its stored form would take %d bytes, more than %d", n, MaxEnvelopeSize)
	}
	if link.Name != LinkStep {
		return nil, malformed("in-toto link of step %.100q; rebuild links are of step %q", link.Name, LinkStep)
	}
	for _, set := range []struct {
		what string
		m    map[string]intoto.HashObj
	}{{"material", link.Materials}, {"product", link.Products}} {
		for name, h := range set.m {
			d, err := linkDigest(h)
			if err != nil {
				return nil, malformed("in-toto link: %s %.200q: %v", set.what, name, err)
			}
			if set.what == "product" {
				v.Subjects = append(v.Subjects, Subject{Name: name, SHA256: d})
			}
		}
	}
	if len(v.Subjects) == 0 {
		return nil, malformed("in-toto link: no products; a rebuild link names the files the rebuild produced")
	}
	slices.SortFunc(v.Subjects, func(a, b Subject) int { return strings.Compare(a.Name, b.Name) })
	build, _ := link.ByProducts[LinkBuildByproduct].(string)
	if v.Build, err = uuid.Parse(build); err != nil || v.Build == uuid.Nil || v.Build.String() != build {
		return nil, malformed("in-toto link: byproduct %q must be the rebuilt build's UUID (lower-case, hyphenated), is %.100q", LinkBuildByproduct, build)
	}
	verdict, _ := link.ByProducts[LinkVerdictByproduct].(string)
	switch Verdict(verdict) {
	case Reproduced, Differs:
		v.Verdict = Verdict(verdict)
	default:
		return nil, malformed("in-toto link: byproduct %q must be %q or %q, is %.100q", LinkVerdictByproduct, Reproduced, Differs, verdict)
	}
	return v, nil
}

// LinkMaterials returns the link's materials as inputs (name and sha256).
func (v *VerifiedLink) LinkMaterials() []Input {
	var out []Input
	for name, h := range v.Link.Materials {
		d, _ := linkDigest(h) // checked by VerifyLinkAny
		out = append(out, Input{Name: name, SHA256: d})
	}
	slices.SortFunc(out, func(a, b Input) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// linkDigest is the sha256 digest of an in-toto hash object, which must
// carry one.
func linkDigest(h intoto.HashObj) (Digest, error) {
	s, ok := h["sha256"]
	if !ok {
		return Digest{}, errors.New("no sha256 digest")
	}
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != len(Digest{}) || strings.ToLower(s) != s {
		return Digest{}, fmt.Errorf("sha256 %.80q is not 64 lower-case hex digits", s)
	}
	var d Digest
	copy(d[:], raw)
	return d, nil
}

// VerifyLogged verifies a logged attestation in either form the ledger
// logs — an in-toto rebuild link when predicateType (the logged event's)
// is LinkPredicateType, a DSSE envelope of a rebuild statement otherwise —
// with key, and summarises it for policy evaluation.
func VerifyLogged(data []byte, predicateType string, key *Verifier, logIndex int64) (Attestation, error) {
	if predicateType == LinkPredicateType {
		v, err := VerifyLink(data, key)
		if err != nil {
			return Attestation{}, err
		}
		return v.Attestation(logIndex), nil
	}
	ver, err := Verify(data, key)
	if err != nil {
		return Attestation{}, err
	}
	a, err := ver.Attestation(logIndex)
	if err != nil {
		return Attestation{}, fmt.Errorf("the signed statement is not a rebuild attestation: %w", err)
	}
	return a, nil
}

// RecordedStep is the in-toto step whose link states a recorded build's
// output files and digests (RecordedLink), so that a layout can require
// the rebuilds' products to MATCH them.
const RecordedStep = "recorded"

// RecordedLink returns the unsigned in-toto link of the step "recorded" of
// a build: as products its output files with their recorded digests, as
// byproducts the build's UUID and job. Whoever signs it vouches that these
// are the digests the ledger's log records for the build.
func RecordedLink(build, job string, outputs []Subject) *intoto.Metablock {
	l := intoto.Link{Type: "link", Name: RecordedStep, Materials: map[string]intoto.HashObj{}, Products: map[string]intoto.HashObj{},
		ByProducts: map[string]interface{}{LinkBuildByproduct: build, "job": job}, Command: []string{}, Environment: map[string]interface{}{}}
	for _, o := range outputs {
		l.Products[o.Name] = intoto.HashObj{"sha256": o.SHA256.String()}
	}
	return &intoto.Metablock{Signed: l, Signatures: []intoto.Signature{}}
}

// linkKey is a key as in-toto verifies with it.
type linkKey struct {
	key intoto.Key
	sv  interface {
		Verify(ctx context.Context, data, sig []byte) error
	}
}

var linkKeys sync.Map // KeyID → linkKey

// linkKeyOf returns the in-toto key of v and its verifier (as
// in-toto-golang builds it, through go-securesystemslib), cached.
func linkKeyOf(v *Verifier) (linkKey, error) {
	if lk, ok := linkKeys.Load(v.id); ok {
		return lk.(linkKey), nil
	}
	ik, err := InTotoKey(v.pub)
	if err != nil {
		return linkKey{}, err
	}
	sk := signerverifier.SSLibKey{KeyType: ik.KeyType, KeyIDHashAlgorithms: ik.KeyIDHashAlgorithms, KeyID: ik.KeyID, Scheme: ik.Scheme,
		KeyVal: signerverifier.KeyVal{Public: ik.KeyVal.Public}}
	lk := linkKey{key: ik}
	switch ik.KeyType {
	case signerverifier.RSAKeyType:
		lk.sv, err = signerverifier.NewRSAPSSSignerVerifierFromSSLibKey(&sk)
	case signerverifier.ED25519KeyType:
		lk.sv, err = signerverifier.NewED25519SignerVerifierFromSSLibKey(&sk)
	case signerverifier.ECDSAKeyType:
		lk.sv, err = signerverifier.NewECDSASignerVerifierFromSSLibKey(&sk)
	default:
		err = fmt.Errorf("in-toto has no verifier for key type %q", ik.KeyType)
	}
	if err != nil {
		return linkKey{}, err
	}
	linkKeys.Store(v.id, lk)
	return lk, nil
}

// lowS returns an ASN.1 ECDSA signature with S in the lower half of the
// curve order: (r, s) and (r, n-s) both verify, and the ledger keeps one.
func lowS(pub *ecdsa.PublicKey, sig []byte) []byte {
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(sig, &rs); err != nil || len(rest) > 0 || rs.S == nil {
		return sig
	}
	n := pub.Curve.Params().N
	if rs.S.Cmp(new(big.Int).Rsh(n, 1)) <= 0 {
		return sig
	}
	rs.S.Sub(n, rs.S)
	out, err := asn1.Marshal(rs)
	if err != nil {
		return sig
	}
	return out
}

// uniqueKeys checks that no JSON object in data has a key twice (Go's
// decoder would keep the last; other parsers may keep the first).
func uniqueKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var walk func(depth int) error
	walk = func(depth int) error {
		if depth > 64 {
			return errors.New("nested more than 64 deep")
		}
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := k.(string)
				if seen[key] {
					return fmt.Errorf("the key %.100q appears twice in one object", key)
				}
				seen[key] = true
				if err := walk(depth + 1); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(depth + 1); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	return walk(0)
}

// SameLink reports whether logged (a link as the ledger stores it) is
// submitted as the ledger would have stored it: the same signed link,
// and the stored signature one of the submitted ones, up to what the
// stored form normalises (hex case; an ECDSA signature's S).
func SameLink(logged, submitted []byte) bool {
	a, err := ParseLink(logged)
	if err != nil || len(a.Signatures) != 1 {
		return false
	}
	b, err := ParseLink(submitted)
	if err != nil {
		return false
	}
	pa, err1 := a.GetSignableRepresentation()
	pb, err2 := b.GetSignableRepresentation()
	if err1 != nil || err2 != nil || !bytes.Equal(pa, pb) {
		return false
	}
	stored, _ := hex.DecodeString(a.Signatures[0].Sig)
	for _, s := range b.Signatures {
		raw, _ := hex.DecodeString(s.Sig)
		if bytes.Equal(raw, stored) {
			return true
		}
		var x, y struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(raw, &x); err == nil && x.R != nil {
			if _, err := asn1.Unmarshal(stored, &y); err == nil && y.R != nil && x.R.Cmp(y.R) == 0 {
				return true // the same ECDSA signature with the other S
			}
		}
	}
	return false
}
