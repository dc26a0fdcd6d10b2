// Package attest will hold in-toto Statement v1 attestations of rebuilds,
// their DSSE envelopes signed with sigstore signers, and the k-of-n policy
// evaluation over them. It is pure: no storage, no HTTP.
//
// Nothing is implemented here yet; the ledger core records attestation
// events whose fields (envelope digest, subjects, key id, predicate type,
// verdict) are defined in package ledger.
package attest
