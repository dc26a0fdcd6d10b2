// Package attest holds rebuild attestations: in-toto statements saying "I
// rebuilt build B from inputs I and got these digests", their DSSE
// envelopes signed and verified with sigstore signers, and the k-of-n
// policy evaluation over them. It is pure: no storage, no HTTP, no clock.
//
// # Statement and predicate
//
// Rebuild is the attestation in plain Go fields; Rebuild.Statement writes
// it as an in-toto Statement v1 (github.com/in-toto/attestation/go/v1,
// https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md)
// whose predicate is SLSA Provenance v1
// (github.com/in-toto/attestation/go/predicates/provenance/v1,
// https://slsa.dev/spec/v1.0/provenance), validated with the types'
// Validate methods and serialized with protojson (MarshalStatement
// compacts it, so a statement always has the same bytes). ParseStatement
// goes back. The layout, with the Rebuild field each item comes from:
//
//	_type                                   "https://in-toto.io/Statement/v1" (v0.1 accepted when parsing)
//	subject[]  {name, digest.sha256}        Subjects: output artifacts as rebuilt
//	predicateType                           "https://slsa.dev/provenance/v1"
//	predicate.buildDefinition
//	  buildType                             "https://buildledger.dev/rebuild/v1" (BuildType), or
//	                                        "https://buildledger.dev/build/v1" (BuildTypeBuild) with verdict "built"
//	  externalParameters.job                Job       (string)
//	  externalParameters.build              Build     (canonical lowercase UUID string)
//	  externalParameters.platform           Platform  (string)
//	  externalParameters.logIndex           LogIndex  (JSON integer, 0 … 2^53: the original build's record)
//	  resolvedDependencies[] {name, digest.sha256}
//	                                        Inputs: "opam-switch", "build-environment",
//	                                        "system-packages", "script" (names unique)
//	predicate.runDetails
//	  builder.id                            BuilderID
//	  builder.version                       BuilderVersion (map, may be absent)
//	  metadata.startedOn / finishedOn       StartedOn / FinishedOn (RFC 3339; absent when zero)
//	  byproducts[] {name:"verdict",         Verdict: "reproduced", "differs" or "built"; exactly one
//	    annotations:{verdict:"…"}}          byproduct named "verdict" (VerdictByproduct)
//
// The verdict is an outcome of the run, not a parameter, so it lives in
// runDetails.byproducts rather than in internalParameters. Parsing is
// strict: unknown statement or provenance fields, unknown
// externalParameters, a non-canonical UUID, a fractional log index, a
// subject or dependency without a lowercase sha256 digest, or anything but
// one verdict byproduct are errors. TestStatementRoundTrip,
// TestStatementLayout, TestParseStatementRejects and TestParseStatementV01
// prove it.
//
// # Keys and DSSE envelopes
//
// LoadSigner reads a PEM private key (PKCS #8, SEC 1, PKCS #1, or cosign's
// "ENCRYPTED SIGSTORE PRIVATE KEY" with a password) and signs through
// sigstore's signature package with the algorithm cosign picks for the
// key: ECDSA P-256/SHA-256, Ed25519, RSA PKCS #1 v1.5/SHA-256.
// LoadVerifier reads a PEM "PUBLIC KEY". A key's KeyID is the lowercase hex
// SHA-256 of its DER SubjectPublicKeyInfo, the id the ledger registers.
// GenerateKey makes keys for tests and set-up.
//
// Sign wraps the statement in a DSSE v1 envelope
// (https://github.com/secure-systems-lab/dsse/blob/v1.0.0/envelope.md,
// built with go-securesystemslib/dsse and sigstore's dsse adapters) of
// payload type "application/vnd.in-toto+json", with an empty keyid as
// cosign writes. ParseEnvelope is strict: at most MaxEnvelopeSize bytes of
// UTF-8 JSON, exactly the members payloadType, payload and signatures
// (each once), signatures of only keyid and sig, padded standard or
// URL-safe base64 without line breaks, at least one signature, nothing
// after the object. Verify parses, checks the payload type, checks that a
// signature verifies over the DSSE pre-authentication encoding (the keyid
// hint is ignored), and parses the statement (v1 or v0.1, subjects with
// sha256 digests). Every rejection is a *VerifyError refining
// ErrMalformed, ErrWrongPayloadType or ErrBadSignature. TestSignVerify
// (all three algorithms), TestLoadSignerEncrypted, TestVerifyRejects
// (flipped payload byte, another key's signature, wrong payload type,
// truncated and garbage JSON, ...), TestVerifyKeyIDHint,
// TestVerifyNotAStatement and FuzzVerify prove it.
//
// Whether cosign verify-blob-attestation accepts these envelopes is not
// tested in this package (cosign is not a dependency); the envelope shape
// is the one recorded as accepted by cosign v2.6.5 and v3.1.3.
//
// # Policy
//
// Policy.Evaluate judges an artifact digest against signature-verified
// Attestations, trusted keys with the log index they were added at and
// optionally revoked at, a threshold k (1 ≤ k ≤ number of keys, else
// ErrPolicy) and the accepted predicate types (default SLSA Provenance
// v1). An attestation counts when its key is trusted, it was logged at or
// after the key was added and before any revocation, its predicate type
// is accepted, its verdict is "reproduced" and it names the digest among
// its subjects. Each key counts once. A trusted key that attested a
// different digest for the same build and artifact name is listed in
// Decision.Disagreeing, and does not count as agreeing even if it also
// agreed; disagreements are reported, not a veto. Missing lists unrevoked
// trusted keys that neither agreed nor disagreed; Ignored says why every
// other attestation did not count. TestPolicyEvaluate,
// TestPolicyTargetBuilds, TestPolicyCheck and Example prove it.
//
// # Sigstore bundles
//
// Bundle wraps an envelope in a Sigstore bundle v0.3 (protobuf-specs
// bundle/v1) for cosign verify-blob-attestation --bundle; EnvelopeOfBundle
// takes the envelope out of one (as cosign attest-blob --bundle writes it).
// Package attest/rekorv2 adds the entry of a Rekor v2 style log with its
// inclusion proof.
package attest
