// Package event is the vocabulary of the ledger's log: the five event kinds
// (job_defined, build_recorded, key_added, key_revoked,
// attestation_recorded), their one canonical JSON encoding (Encode,
// Canonical) and the strict decoder that accepts nothing else (Decode),
// with the validity rules every logged event satisfies. The JSON Schemas in
// schemas/event/ describe the same encoding; golden files in
// testdata/events are checked against both (TestGoldenEvents, FuzzDecode).
//
// It depends on no storage, so the VMM gate, the rebuilder and clients
// read and check events without linking the store; package ledger logs
// them and re-exports these names.
package event
