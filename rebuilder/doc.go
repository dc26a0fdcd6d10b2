// Package rebuilder will run build jobs in a normalised environment (the orb
// part), capture their inputs and outputs, rebuild recorded builds and submit
// signed attestations of the result.
//
// Nothing is implemented here yet; the formats it captures (build-environment,
// system-packages, opam-switch) are parsed by package ledger/orb.
package rebuilder
