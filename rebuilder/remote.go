package rebuilder

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/buildledger/buildledger/httpapi/api"
	"github.com/buildledger/buildledger/httpapi/client"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/event"

	"github.com/google/uuid"
	v1 "github.com/in-toto/attestation/go/v1"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/ledger/builder"
)

// Rebuilder rebuilds builds recorded in a ledger and attests the outcome.
type Rebuilder struct {
	// Client reads the ledger, proving every record it is given, and
	// submits attestations.
	Client *client.Client
	// Signer signs the attestations; nil rebuilds and compares without
	// attesting.
	Signer *attest.Signer
	// BuilderID names this rebuilder in its attestations
	// (runDetails.builder.id), e.g. "https://rebuilder.example.org/a".
	BuilderID string
	// IgnoreEnvDifferences rebuilds on a host whose OS, distribution,
	// version or architecture differ from the recorded ones; the
	// differences are reported in the outcome.
	IgnoreEnvDifferences bool
	// Options are passed to Run, with Env set to the recorded environment.
	// Options.Root ("" means DefaultRoot) is the only build root rebuilds
	// use: a record whose HOME lies elsewhere is refused, so a ledger
	// cannot make the rebuilder create or wipe directories of its choosing.
	// Set Options.RunAs to run recorded jobs as an unprivileged user.
	Options Options

	locks rootLocks
}

// ErrForeignRoot: the build ran under another build root than the one this
// rebuilder uses, so it cannot be rebuilt here as recorded; trying again
// does not help.
var ErrForeignRoot = errors.New("recorded in another build root")

// rootLocks serialises the rebuilds that must use the same build root (a
// rebuild runs in the recorded paths), so that concurrent Rebuild calls
// wait for each other instead of failing with ErrRootBusy.
type rootLocks struct {
	mu sync.Mutex
	m  map[string]*sync.Mutex
}

func (l *rootLocks) lock(root string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*sync.Mutex{}
	}
	m := l.m[root]
	if m == nil {
		m = &sync.Mutex{}
		l.m[root] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// ErrHostMismatch: the host is not the one the build was recorded on.
var ErrHostMismatch = errors.New("this host differs from the recorded build's")

// ErrNothingToAttest: the rebuild produced none of the recorded files, so
// there is no subject an attestation could name.
var ErrNothingToAttest = errors.New("the rebuild produced none of the recorded files")

// Outcome is one rebuild of a recorded build.
type Outcome struct {
	Build    *event.BuildRecorded
	LogIndex uint64 // of the build's record
	// HostDifferences are the recorded host facts this host does not share
	// (only with IgnoreEnvDifferences).
	HostDifferences []HostDifference
	Result          *Result    // the rebuild
	Comparison      Comparison // recorded (expected) against rebuilt (actual) files
	InputsDiff      InputsDiff // recorded against rebuilt inputs
	Verdict         attest.Verdict
	Envelope        []byte                  // the signed attestation (nil without Signer)
	Receipt         *api.AttestationReceipt // the ledger's proven receipt (nil if not submitted)
}

// String is the verdict for a person: "reproducible", or which files
// differ with both digests, then how the inputs differ.
func (o *Outcome) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "build %s of job %s (%s, log index %d)\n", o.Build.UUID, o.Build.Job, o.Build.Platform, o.LogIndex)
	for _, d := range o.HostDifferences {
		fmt.Fprintf(&b, "host differs (ignored): %s\n", d)
	}
	if o.Result != nil && o.Result.Exec != nil {
		if r := o.Result.Exec.Result; r.Kind != builder.ResultExited || r.Code != 0 {
			fmt.Fprintf(&b, "the rebuild's job ended with %s\n", r)
		}
	}
	if o.Verdict == attest.Reproduced {
		fmt.Fprintf(&b, "verdict: REPRODUCIBLE\n%s\n", strings.TrimSuffix(o.Comparison.String(), "\n"))
	} else {
		fmt.Fprintf(&b, "verdict: NOT REPRODUCIBLE\n%s\n", strings.TrimSuffix(o.Comparison.String(), "\n"))
	}
	if !o.InputsDiff.Empty() {
		fmt.Fprintf(&b, "inputs differ from the recorded ones:\n%s", o.InputsDiff)
	}
	if o.Receipt != nil {
		fmt.Fprintf(&b, "attested as %q by key %s (%s) at log index %d\n", o.Verdict, o.Receipt.KeyID, o.Receipt.KeyName, o.Receipt.LogIndex)
	}
	return b.String()
}

// Rebuild fetches build id and its inputs from the ledger (each proven
// against the log), checks this host, reruns the job in the recorded
// environment, compares every output file and, with a Signer, signs an
// attestation of the verdict (a mismatch too) and submits it. The outcome
// is returned with an error when only the attestation failed.
func (r *Rebuilder) Rebuild(ctx context.Context, id uuid.UUID) (*Outcome, error) {
	b, index, _, err := r.Client.Build(ctx, id)
	if err != nil {
		return nil, err
	}
	o := &Outcome{Build: b, LogIndex: index}
	ex, err := r.Client.Exec(ctx, b)
	if err != nil {
		return o, err
	}
	recorded, err := InputsOf(ex)
	if err != nil {
		return o, err
	}
	diffs, err := CheckHost(recorded.Environment)
	if err != nil {
		return o, err
	}
	if len(diffs) > 0 && !r.IgnoreEnvDifferences {
		var lines []string
		for _, d := range diffs {
			lines = append(lines, "  "+d.String())
		}
		return o, fmt.Errorf("rebuilder: %w (pass --ignore-env-differences to rebuild anyway):\n%s", ErrHostMismatch, strings.Join(lines, "\n"))
	}
	o.HostDifferences = diffs
	opam := OpamNever
	if recorded.Switch != nil {
		opam = OpamAlways
	}
	opts := r.Options
	opts.Env = &recorded.Environment
	if opts.Root == "" {
		opts.Root = DefaultRoot
	}
	home, _ := recorded.Environment.Get("HOME")
	if filepath.Dir(home) != opts.Root {
		return o, fmt.Errorf("rebuilder: %w: build %s ran in the build root %s (HOME=%s); this rebuilder rebuilds only in %s: pass --root %s if that path is meant for rebuilds here",
			ErrForeignRoot, b.UUID, filepath.Dir(home), home, opts.Root, filepath.Dir(home))
	}
	unlock := r.locks.lock(opts.Root)
	res, err := Run(ctx, Spec{Job: b.Job, Script: []byte(ex.Job.Script), Platform: b.Platform, Opam: opam}, opts)
	unlock()
	if err != nil {
		return o, err
	}
	o.Result = res
	o.Comparison = Compare(ArtifactsOf(ex), res.Artifacts)
	o.InputsDiff = DiffInputs(recorded, res.Inputs)
	o.Verdict = attest.Differs
	if o.Comparison.Reproducible() {
		o.Verdict = attest.Reproduced
	}
	if r.Signer == nil {
		return o, nil
	}
	st, err := r.statement(o, ex)
	if err != nil {
		return o, err
	}
	if o.Envelope, err = attest.Sign(ctx, st, r.Signer); err != nil {
		return o, err
	}
	if o.Receipt, err = r.Client.SubmitAttestation(ctx, o.Envelope); err != nil {
		return o, fmt.Errorf("submitting the attestation: %w", err)
	}
	return o, nil
}

// statement describes the rebuild: as subjects the recorded output files
// the rebuild produced, with the digests it got; as inputs the recorded
// build's input files and script.
func (r *Rebuilder) statement(o *Outcome, ex *builder.Exec) (*v1.Statement, error) {
	rb := &attest.Rebuild{
		Job: o.Build.Job, Build: o.Build.UUID, Platform: o.Build.Platform, LogIndex: int64(o.LogIndex),
		Verdict: o.Verdict, BuilderID: r.BuilderID, BuilderVersion: versions(),
		StartedOn: o.Result.Exec.Started, FinishedOn: o.Result.Exec.Finished,
	}
	for _, a := range o.Comparison.Identical {
		rb.Subjects = append(rb.Subjects, attest.Subject{Name: a.Path, SHA256: a.SHA256})
	}
	for _, m := range o.Comparison.Differing {
		rb.Subjects = append(rb.Subjects, attest.Subject{Name: m.Path, SHA256: m.Actual})
	}
	if len(rb.Subjects) == 0 {
		return nil, fmt.Errorf("rebuilder: cannot attest build %s: %w", o.Build.UUID, ErrNothingToAttest)
	}
	rb.Inputs = AttestedInputs(o.Build)
	return rb.Statement()
}

// AttestedInputs lists the input files and script a build recorded, as an
// attestation about it names them (its resolved dependencies).
func AttestedInputs(b *event.BuildRecorded) []attest.Input {
	var out []attest.Input
	in := b.Inputs
	for _, x := range []struct {
		name string
		d    *digest.Digest
	}{{attest.InputOpamSwitch, in.OpamSwitch}, {attest.InputBuildEnvironment, in.BuildEnvironment}, {attest.InputSystemPackages, in.SystemPackages}, {attest.InputScript, &b.Script}} {
		if x.d != nil {
			out = append(out, attest.Input{Name: x.name, SHA256: *x.d})
		}
	}
	return out
}

// versions names what did the rebuild, for runDetails.builder.version.
func versions() map[string]string {
	v := map[string]string{"go": runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v["buildledger"] = bi.Main.Version
	}
	return v
}
