package gate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/witnessing"
	"github.com/transparency-dev/formats/witness"

	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/schemas"
)

// PolicySchema is the JSON Schema of the policy file, in package schemas.
const PolicySchema = "vmm/gate-policy.json"

// ErrPolicy marks a policy file that cannot be used.
var ErrPolicy = errors.New("invalid gate policy")

// Policy is the boot gate's policy file (schemas/vmm/gate-policy.json).
type Policy struct {
	Ledger         string      `json:"ledger,omitempty"`
	LogKey         string      `json:"log_key"`
	Origin         string      `json:"origin,omitempty"`
	Threshold      int         `json:"threshold"`
	Keys           []PolicyKey `json:"keys"`
	PredicateTypes []string    `json:"predicate_types,omitempty"`
	UploaderCounts bool        `json:"uploader_counts,omitempty"`
	// BuiltBy names keys of Keys (build farms) of which one must have
	// attested that it built the image; they do not count towards the
	// threshold.
	BuiltBy []string `json:"built_by,omitempty"`
	// MaxBundleAge bounds how old a cached bundle may be for an offline
	// decision (a Go duration such as "168h"); empty: no bound.
	MaxBundleAge string `json:"max_bundle_age,omitempty"`
	// InToto makes a signed in-toto layout the policy instead of
	// Threshold and Keys (see InTotoPolicy).
	InToto *InTotoPolicy `json:"intoto,omitempty"`
	// WitnessPolicyFile (relative to the policy file) requires every
	// checkpoint, online and in cached bundles, to carry a quorum of the
	// cosignatures of its witnesses (transparency-dev's witness policy
	// format), so that an offline boot is protected against a split view.
	WitnessPolicyFile string `json:"witness_policy_file,omitempty"`

	keys      map[digest.Digest]*trustedKey
	maxAge    time.Duration
	intoto    *intotoPolicy
	witnesses []byte // the witness policy's text
	quorum    *witness.Group
}

// PolicyKey is one trusted rebuilder key.
type PolicyKey struct {
	Name          string `json:"name"`
	PublicKey     string `json:"public_key,omitempty"`
	PublicKeyFile string `json:"public_key_file,omitempty"` // relative to the policy file
	Revoked       bool   `json:"revoked,omitempty"`
}

type trustedKey struct {
	name     string
	verifier *attest.Verifier
	revoked  bool // locally
}

// LoadPolicy reads and checks a policy file.
func LoadPolicy(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := parsePolicy(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// ParsePolicy validates a policy document against its schema, then checks
// what the schema cannot: the log key and every public key parse, names
// and keys are distinct, the origin matches the log key and the threshold
// can be met.
func ParsePolicy(doc []byte) (*Policy, error) { return parsePolicy(doc, ".") }

func parsePolicy(doc []byte, dir string) (*Policy, error) {
	if err := schemas.Validate(PolicySchema, doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	var p Policy
	if err := json.Unmarshal(doc, &p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	if _, err := note.NewVerifier(p.LogKey); err != nil {
		return nil, fmt.Errorf("%w: log_key: %v", ErrPolicy, err)
	}
	name, _, _ := strings.Cut(p.LogKey, "+")
	if p.Origin == "" {
		p.Origin = name
	} else if p.Origin != name {
		return nil, fmt.Errorf("%w: origin %q is not the log key's name %q", ErrPolicy, p.Origin, name)
	}
	if p.WitnessPolicyFile != "" {
		f := p.WitnessPolicyFile
		if !filepath.IsAbs(f) {
			f = filepath.Join(dir, f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%w: witness_policy_file: %v", ErrPolicy, err)
		}
		g, err := witnessing.ParsePolicy(b)
		if err != nil {
			return nil, fmt.Errorf("%w: witness_policy_file %s: %v", ErrPolicy, p.WitnessPolicyFile, err)
		}
		p.witnesses, p.quorum = b, &g
	}
	if p.InToto != nil {
		if err := p.loadInToto(dir); err != nil {
			return nil, err
		}
		return &p, p.parseMaxAge()
	}
	if p.Threshold < 1 || len(p.Keys) == 0 {
		return nil, fmt.Errorf("%w: threshold and keys are required (or intoto, for an in-toto layout as the policy)", ErrPolicy)
	}
	p.keys = map[digest.Digest]*trustedKey{}
	names := map[string]bool{}
	for i, k := range p.Keys {
		if k.PublicKeyFile != "" {
			f := k.PublicKeyFile
			if !filepath.IsAbs(f) {
				f = filepath.Join(dir, f)
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("%w: key %d (%q): %v", ErrPolicy, i, k.Name, err)
			}
			p.Keys[i].PublicKey, k.PublicKey = string(b), string(b)
		}
		v, err := attest.LoadVerifier([]byte(k.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("%w: key %d (%q): %v", ErrPolicy, i, k.Name, err)
		}
		id := v.KeyID()
		if p.keys[id] != nil {
			return nil, fmt.Errorf("%w: key %q is the same key as %q", ErrPolicy, k.Name, p.keys[id].name)
		}
		if names[k.Name] {
			return nil, fmt.Errorf("%w: two keys are named %q", ErrPolicy, k.Name)
		}
		names[k.Name] = true
		p.keys[id] = &trustedKey{name: k.Name, verifier: v, revoked: k.Revoked}
	}
	builders := map[string]bool{}
	for _, b := range p.BuiltBy {
		switch {
		case !names[b]:
			return nil, fmt.Errorf("%w: built_by names %q, which is not one of the keys", ErrPolicy, b)
		case builders[b]:
			return nil, fmt.Errorf("%w: built_by names %q twice", ErrPolicy, b)
		}
		builders[b] = true
	}
	if len(p.BuiltBy) > 0 && p.UploaderCounts {
		// The uploader is the farm: counting it would count a builder.
		return nil, fmt.Errorf("%w: uploader_counts counts the build farm's upload towards k, which built_by excludes; use one or the other", ErrPolicy)
	}
	max := len(p.Keys) - len(p.BuiltBy)
	if p.UploaderCounts {
		max++
	}
	if p.Threshold > max {
		return nil, fmt.Errorf("%w: threshold %d can never be met with %d trusted keys%s%s", ErrPolicy, p.Threshold, len(p.Keys)-len(p.BuiltBy),
			map[bool]string{true: " that are not builders", false: ""}[len(p.BuiltBy) > 0],
			map[bool]string{true: " and the uploader", false: ""}[p.UploaderCounts])
	}
	if err := p.parseMaxAge(); err != nil {
		return nil, err
	}
	if p.UploaderCounts && p.Threshold < 2 {
		return nil, fmt.Errorf("%w: with uploader_counts a threshold of %d would admit any uploaded build without one rebuilder; use 2 or more", ErrPolicy, p.Threshold)
	}
	if len(p.PredicateTypes) == 0 {
		p.PredicateTypes = []string{attest.PredicateType}
	}
	return &p, nil
}

func (p *Policy) parseMaxAge() error {
	if p.MaxBundleAge != "" {
		d, err := time.ParseDuration(p.MaxBundleAge)
		if err != nil || d <= 0 {
			return fmt.Errorf("%w: max_bundle_age %q is not a positive duration such as \"168h\"", ErrPolicy, p.MaxBundleAge)
		}
		p.maxAge = d
	}
	return nil
}
