package ledger

import (
	"crypto/sha256"

	"github.com/buildledger/buildledger/cas"
)

// reproKeyDomain separates reproducibility keys from every other SHA-256
// the ledger computes (builder-web's input_id among them).
const reproKeyDomain = "buildledger reproducibility key v1\x00"

// ReproKey returns the key on which builds are compared for
// reproducibility: two builds with the same key had the same inputs, so
// different outputs mean the build is not reproducible. It is SHA-256 over
// a domain tag, then for each of opam-switch, build-environment and
// system-packages (in that order) a byte 0 when the file was not recorded
// or a byte 1 and its 32-byte digest, then the 32-byte digest of the job
// script. So builds with different scripts never share a key, and a
// missing file differs from every present one (unlike Inputs.ID, where it
// counts as 32 zero bytes).
//
// The job name and the platform are labels, not inputs: two jobs running
// the same script in the same environment are the same build and are
// compared. A build that recorded none of the three files has no key
// (ok false): nothing says what it was built in, so it is compared with
// nothing.
//
// This is not builder-web's input_id (BuildRecorded.InputID, kept in the
// event and shown as it is): that hashes the three digests alone and
// made builds of different jobs on one host look alike when they had no
// opam-switch.
func ReproKey(b *BuildRecorded) (k cas.Digest, ok bool) {
	if !b.Inputs.Known() {
		return cas.Digest{}, false
	}
	h := sha256.New()
	h.Write([]byte(reproKeyDomain))
	for _, d := range []*cas.Digest{b.Inputs.OpamSwitch, b.Inputs.BuildEnvironment, b.Inputs.SystemPackages} {
		if d == nil {
			h.Write([]byte{0})
			continue
		}
		h.Write([]byte{1})
		h.Write(d[:])
	}
	h.Write(b.Script[:])
	h.Sum(k[:0])
	return k, true
}

// SameInputs reports whether builds a and b had the same inputs by the
// definition of ReproKey (both recorded some input file, and their keys
// are equal): different outputs of such builds are a reproducibility
// failure.
func SameInputs(a, b *BuildRecorded) bool {
	ka, ok := ReproKey(a)
	kb, okb := ReproKey(b)
	return ok && okb && ka == kb
}
