// Package gate is the VMM's boot gate: it admits an image only when enough
// distinct trusted rebuilders attested, in the ledger's transparency log,
// that rebuilding it reproduced its exact SHA-256 (k of n).
//
// The policy (schemas/vmm/gate-policy.json, LoadPolicy) names the log's
// verifier key, the trusted keys (PEM public keys, optionally marked
// revoked), the threshold k, the accepted predicate types and whether
// the uploader's own build counts as one party.
//
// Check works on a Bundle: a C2SP checkpoint signed by the log key and,
// with RFC 6962 inclusion proofs in it, the build records carrying the
// image's digest, the attestation records naming it or disputing it with
// their DSSE envelopes, and the trusted keys' key_added and key_revoked
// records. Online, the bundle is fetched fresh (every piece proven with
// proofs the client builds from the ledger's C2SP tiles) after proving the
// new checkpoint consistent with the newest one this gate accepted before
// (kept in CacheDir); a log that rewrote its history is refused with both
// checkpoints, and an INCONSISTENT marker makes every later decision
// refuse until an operator removes it; a marker that cannot be written or
// read is an error, which callers treat as a refusal
// (TestGateRemembersFork, TestGateMarkerWriteFails). The bundle is cached
// per image, so a restart or a boot without network decides from it;
// without network and without a bundle the gate refuses. A cached bundle
// whose checkpoint is older than the newest one the gate accepted counts
// only with an RFC 6962 consistency proof from its checkpoint to that one,
// which the gate adds to every cached bundle whenever it accepts a newer
// checkpoint (TestGateOlderBundleNeedsConsistency). Nothing in a bundle is trusted: every decision
// re-verifies the checkpoint signature, every inclusion proof, every
// envelope's digest against its logged record and its signature against
// the policy key, and only then evaluates the policy with attest.Policy.
// FuzzCheckBundle mutates a cached bundle and checks that a decision
// admits only while the valid bundle's build record and trusted
// attestation are present byte for byte.
// Each attestation gets a status (valid, untrusted key, revoked, bad
// signature, different digest, not in log, ...) that the decision's Reason
// lists, with the build found and k.
//
// A revoked key counts for nothing, whatever the index of its attestations:
// keys are revoked when compromised, and when that happened is not known.
// A revocation is seen when the policy says so or when the bundle holds the
// ledger's key_revoked record (the ledger lists trusted keys' revocations
// when the bundle is fetched); a revocation the ledger hides cannot be seen.
//
// The policy may instead be a signed in-toto layout (InTotoPolicy, the
// policy's "intoto" member): for a build of the image, the gate makes the
// link of step "recorded" from the build record it proved (its output
// files and digests), signs it with the policy's recorder key, and runs
// in-toto-golang's InTotoVerify over the layout, that link and the latest
// logged rebuild link of each key of the layout (links that passed the
// same checks as envelopes: in the log, as logged, signed, key not
// revoked). in-toto requires a step's links to agree, so one key of the
// layout that rebuilt other bytes vetoes the boot, where the JSON policy
// counts agreement and reports the dispute (TestGateInTotoLayout). The
// gate runs no inspections (a layout with any is refused).
//
// Newer and Download implement albatross's update lookup against the
// ledger (running digest → /hash → job → newest successful build on the
// same platform), with both records proven; the downloaded image must then
// pass Check like any other.
package gate
