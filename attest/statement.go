package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	prov "github.com/in-toto/attestation/go/predicates/provenance/v1"
	v1 "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// URIs this package writes and accepts.
const (
	// StatementType is the in-toto Statement v1 type written by Statement.
	StatementType = v1.StatementTypeUri
	// StatementTypeV01 is the legacy in-toto Statement type, still written
	// by cosign attest-blob; it is accepted when parsing.
	StatementTypeV01 = "https://in-toto.io/Statement/v0.1"
	// PredicateType is SLSA Provenance v1, the predicate of a rebuild.
	PredicateType = "https://slsa.dev/provenance/v1"
	// BuildType names this kind of build in buildDefinition.buildType:
	// a rebuild of a build recorded in the ledger.
	BuildType = "https://buildledger.dev/rebuild/v1"
	// BuildTypeBuild names the other kind: the build itself, as the
	// build farm that ran it attests it (verdict Built).
	BuildTypeBuild = "https://buildledger.dev/build/v1"
	// VerdictByproduct is the name of the runDetails.byproducts entry
	// that carries the verdict in its annotations.
	VerdictByproduct = "verdict"
)

// Names of the resolved dependencies a rebuild usually has. Others may be
// added; names must be unique within a rebuild.
const (
	InputOpamSwitch       = "opam-switch"
	InputBuildEnvironment = "build-environment"
	InputSystemPackages   = "system-packages"
	InputScript           = "script"
)

// Verdict is what a rebuilder concluded about a rebuild.
type Verdict string

// Verdicts.
const (
	Reproduced Verdict = "reproduced" // every output matched the recorded build
	Differs    Verdict = "differs"    // at least one output differed
	// Built is not a rebuild: the signer (a build farm) ran the recorded
	// build itself and produced exactly its outputs. It is provenance,
	// never a reproduction; policies count it only where they ask who
	// built (Policy.BuiltBy).
	Built Verdict = "built"
)

// BuilderID returns id checked as SLSA v1 asks of runDetails.builder.id
// (an absolute URI), or, for "", the default for this host and role:
// https://HOSTNAME/buildledger-ROLE (e.g. role "rebuilder" or "farm").
func BuilderID(id, role string) (string, error) {
	if id == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		id = "https://" + strings.ToLower(host) + "/buildledger-" + role
	}
	u, err := url.Parse(id)
	if err != nil || !u.IsAbs() || (u.Opaque == "" && u.Host == "" && u.Path == "") {
		return "", fmt.Errorf("builder id %q is not an absolute URI (SLSA v1 asks for one, e.g. https://rebuilder.example.org/)", id)
	}
	return id, nil
}

// buildType is the buildDefinition.buildType of a statement with verdict v.
func buildType(v Verdict) string {
	if v == Built {
		return BuildTypeBuild
	}
	return BuildType
}

// Subject is an attested artifact: its name (a path in the build's
// outputs) and the SHA-256 digest the rebuilder got.
type Subject struct {
	Name   string `json:"name"`
	SHA256 Digest `json:"sha256"`
}

// Input is a resolved dependency of the rebuild: a named input file of the
// recorded build and its SHA-256 digest.
type Input struct {
	Name   string `json:"name"`
	SHA256 Digest `json:"sha256"`
}

// Rebuild is the content of a rebuild attestation in plain Go fields:
// "rebuilding build Build of Job from Inputs gave Subjects; Verdict".
// Statement turns it into an in-toto Statement v1 with a SLSA Provenance
// v1 predicate; ParseStatement turns such a statement back into a Rebuild.
type Rebuild struct {
	Subjects []Subject // output artifacts as rebuilt; at least one

	Job      string    // the job the original build ran
	Build    uuid.UUID // the original build's UUID
	Platform string    // the original build's platform, e.g. "debian-12-x86_64"
	LogIndex int64     // ledger log index of the original build's record, 0 … 2^53

	Inputs []Input // resolved dependencies (opam-switch, build-environment, ...)

	Verdict Verdict

	BuilderID      string            // the rebuilder's id (a URI or name)
	BuilderVersion map[string]string // component → version; may be empty

	StartedOn, FinishedOn time.Time // zero values are omitted
}

// maxExactIndex is the largest integer a JSON number (a float64 in
// structpb) holds exactly.
const maxExactIndex = 1 << 53

// check reports the first reason r cannot be written as a statement.
func (r *Rebuild) check() error {
	if len(r.Subjects) == 0 {
		return errors.New("no subjects")
	}
	// One digest per name: a rebuild got one file per path.
	seen := map[string]bool{}
	for _, s := range r.Subjects {
		if s.Name == "" {
			return fmt.Errorf("subject %s has no name", s.SHA256)
		}
		if seen[s.Name] {
			return fmt.Errorf("subject %q listed twice", s.Name)
		}
		seen[s.Name] = true
	}
	switch {
	case r.Job == "":
		return errors.New("job is empty")
	case r.Build == uuid.Nil:
		return errors.New("build is the nil UUID")
	case r.Platform == "":
		return errors.New("platform is empty")
	case r.LogIndex < 0 || r.LogIndex > maxExactIndex:
		return fmt.Errorf("log index %d is outside 0…2^53", r.LogIndex)
	case r.BuilderID == "":
		return errors.New("builder id is empty")
	case r.Verdict != Reproduced && r.Verdict != Differs && r.Verdict != Built:
		return fmt.Errorf("verdict %q is not %q, %q or %q", r.Verdict, Reproduced, Differs, Built)
	case !r.StartedOn.IsZero() && !r.FinishedOn.IsZero() && r.FinishedOn.Before(r.StartedOn):
		return fmt.Errorf("finished %s before it started %s", r.FinishedOn, r.StartedOn)
	}
	names := map[string]bool{}
	for _, in := range r.Inputs {
		if in.Name == "" {
			return fmt.Errorf("input %s has no name", in.SHA256)
		}
		if names[in.Name] {
			return fmt.Errorf("input %q listed twice", in.Name)
		}
		names[in.Name] = true
	}
	return nil
}

func descriptor(name string, d Digest) *v1.ResourceDescriptor {
	return &v1.ResourceDescriptor{Name: name, Digest: map[string]string{"sha256": d.String()}}
}

// Statement returns r as a validated in-toto Statement v1 with a SLSA
// Provenance v1 predicate; see the package documentation for the layout.
func (r *Rebuild) Statement() (*v1.Statement, error) {
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("attest: rebuild: %v", err)
	}
	ext, err := structpb.NewStruct(map[string]any{
		"job":      r.Job,
		"build":    r.Build.String(),
		"platform": r.Platform,
		"logIndex": float64(r.LogIndex),
	})
	if err != nil {
		return nil, fmt.Errorf("attest: rebuild: external parameters: %v", err)
	}
	verdict, err := structpb.NewStruct(map[string]any{"verdict": string(r.Verdict)})
	if err != nil {
		return nil, fmt.Errorf("attest: rebuild: verdict: %v", err)
	}
	p := &prov.Provenance{
		BuildDefinition: &prov.BuildDefinition{BuildType: buildType(r.Verdict), ExternalParameters: ext},
		RunDetails: &prov.RunDetails{
			Builder:    &prov.Builder{Id: r.BuilderID, Version: r.BuilderVersion},
			Byproducts: []*v1.ResourceDescriptor{{Name: VerdictByproduct, Annotations: verdict}},
		},
	}
	for _, in := range r.Inputs {
		p.BuildDefinition.ResolvedDependencies = append(p.BuildDefinition.ResolvedDependencies, descriptor(in.Name, in.SHA256))
	}
	if !r.StartedOn.IsZero() || !r.FinishedOn.IsZero() {
		p.RunDetails.Metadata = &prov.BuildMetadata{}
		if !r.StartedOn.IsZero() {
			p.RunDetails.Metadata.StartedOn = timestamppb.New(r.StartedOn)
		}
		if !r.FinishedOn.IsZero() {
			p.RunDetails.Metadata.FinishedOn = timestamppb.New(r.FinishedOn)
		}
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("attest: rebuild: predicate: %w", err)
	}
	pj, err := protojson.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("attest: rebuild: predicate: %w", err)
	}
	pred := &structpb.Struct{}
	if err := protojson.Unmarshal(pj, pred); err != nil {
		return nil, fmt.Errorf("attest: rebuild: predicate: %w", err)
	}
	st := &v1.Statement{Type: StatementType, PredicateType: PredicateType, Predicate: pred}
	for _, s := range r.Subjects {
		st.Subject = append(st.Subject, descriptor(s.Name, s.SHA256))
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("attest: rebuild: statement: %w", err)
	}
	return st, nil
}

// MarshalStatement returns the compact protojson encoding of a validated
// statement: the DSSE payload Sign signs.
func MarshalStatement(st *v1.Statement) ([]byte, error) {
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("attest: statement: %w", err)
	}
	b, err := protojson.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("attest: statement: %w", err)
	}
	// protojson deliberately varies its whitespace; compact it so the same
	// statement always has the same payload bytes.
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, fmt.Errorf("attest: statement: %w", err)
	}
	return out.Bytes(), nil
}

// UnmarshalStatement parses an in-toto statement of type v1 or v0.1 and
// validates it. Unknown fields are rejected; every subject must carry a
// sha256 digest, which is returned with the subject's name.
func UnmarshalStatement(payload []byte) (*v1.Statement, []Subject, error) {
	st := &v1.Statement{}
	if err := protojson.Unmarshal(payload, st); err != nil {
		return nil, nil, fmt.Errorf("attest: statement: %v", err)
	}
	if err := st.Validate(); err != nil {
		return nil, nil, fmt.Errorf("attest: statement: %w", err)
	}
	subjects := make([]Subject, 0, len(st.GetSubject()))
	for i, rd := range st.GetSubject() {
		hx, ok := rd.GetDigest()["sha256"]
		if !ok {
			return nil, nil, fmt.Errorf("attest: statement: subject %d (%q) has no sha256 digest", i, rd.GetName())
		}
		d, err := ParseDigest(hx)
		if err != nil {
			return nil, nil, fmt.Errorf("attest: statement: subject %d (%q): %v", i, rd.GetName(), err)
		}
		subjects = append(subjects, Subject{Name: rd.GetName(), SHA256: d})
	}
	return st, subjects, nil
}

// ParseStatement parses the DSSE payload of a rebuild attestation: an
// in-toto statement (v1, or v0.1 as cosign writes) with a SLSA Provenance
// v1 predicate whose buildType is BuildType. It returns the rebuild and
// its subjects (also in Rebuild.Subjects).
func ParseStatement(payload []byte) (*Rebuild, []Subject, error) {
	st, subjects, err := UnmarshalStatement(payload)
	if err != nil {
		return nil, nil, err
	}
	r, err := rebuildFrom(st)
	if err != nil {
		return nil, nil, fmt.Errorf("attest: predicate: %v", err)
	}
	r.Subjects = subjects
	if err := r.check(); err != nil {
		return nil, nil, fmt.Errorf("attest: predicate: %v", err)
	}
	return r, slices.Clone(subjects), nil
}

func rebuildFrom(st *v1.Statement) (*Rebuild, error) {
	if st.GetPredicateType() != PredicateType {
		return nil, fmt.Errorf("predicate type %q is not %q", st.GetPredicateType(), PredicateType)
	}
	pj, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, err
	}
	p := &prov.Provenance{}
	if err := protojson.Unmarshal(pj, p); err != nil {
		return nil, fmt.Errorf("not SLSA Provenance v1: %v", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	bd, rd := p.GetBuildDefinition(), p.GetRunDetails()
	if bt := bd.GetBuildType(); bt != BuildType && bt != BuildTypeBuild {
		return nil, fmt.Errorf("buildType %q is not %q or %q", bt, BuildType, BuildTypeBuild)
	}
	r := &Rebuild{
		BuilderID:      rd.GetBuilder().GetId(),
		BuilderVersion: rd.GetBuilder().GetVersion(),
	}
	ext := bd.GetExternalParameters().GetFields()
	for k := range ext {
		switch k {
		case "job", "build", "platform", "logIndex":
		default:
			return nil, fmt.Errorf("externalParameters has unknown field %q", k)
		}
	}
	str := func(k string) (string, error) {
		v, ok := ext[k].GetKind().(*structpb.Value_StringValue)
		if !ok {
			return "", fmt.Errorf("externalParameters.%s is missing or not a string", k)
		}
		return v.StringValue, nil
	}
	if r.Job, err = str("job"); err != nil {
		return nil, err
	}
	if r.Platform, err = str("platform"); err != nil {
		return nil, err
	}
	b, err := str("build")
	if err != nil {
		return nil, err
	}
	if r.Build, err = uuid.Parse(b); err != nil || r.Build.String() != b {
		return nil, fmt.Errorf("externalParameters.build %q is not a UUID in canonical form", b)
	}
	n, ok := ext["logIndex"].GetKind().(*structpb.Value_NumberValue)
	if !ok {
		return nil, errors.New("externalParameters.logIndex is missing or not a number")
	}
	if x := n.NumberValue; x < 0 || x > maxExactIndex || x != math.Trunc(x) {
		return nil, fmt.Errorf("externalParameters.logIndex %v is not an integer in 0…2^53", x)
	}
	r.LogIndex = int64(n.NumberValue)
	for i, dep := range bd.GetResolvedDependencies() {
		d, err := onlySHA256(dep)
		if err != nil {
			return nil, fmt.Errorf("resolvedDependencies[%d]: %v", i, err)
		}
		r.Inputs = append(r.Inputs, Input{Name: dep.GetName(), SHA256: d})
	}
	var verdicts int
	for _, bp := range rd.GetByproducts() {
		if bp.GetName() != VerdictByproduct {
			continue
		}
		verdicts++
		v, ok := bp.GetAnnotations().GetFields()["verdict"].GetKind().(*structpb.Value_StringValue)
		if !ok {
			return nil, errors.New("verdict byproduct has no string annotation \"verdict\"")
		}
		r.Verdict = Verdict(v.StringValue)
	}
	if verdicts != 1 {
		return nil, fmt.Errorf("want exactly one runDetails.byproducts entry named %q, found %d", VerdictByproduct, verdicts)
	}
	if bt := bd.GetBuildType(); bt != buildType(r.Verdict) {
		return nil, fmt.Errorf("buildType %q does not go with verdict %q (want %q)", bt, r.Verdict, buildType(r.Verdict))
	}
	if md := rd.GetMetadata(); md != nil {
		if md.StartedOn != nil {
			r.StartedOn = md.StartedOn.AsTime()
		}
		if md.FinishedOn != nil {
			r.FinishedOn = md.FinishedOn.AsTime()
		}
	}
	return r, nil
}

func onlySHA256(rd *v1.ResourceDescriptor) (Digest, error) {
	hx, ok := rd.GetDigest()["sha256"]
	if !ok {
		return Digest{}, fmt.Errorf("%q has no sha256 digest", rd.GetName())
	}
	return ParseDigest(hx)
}
