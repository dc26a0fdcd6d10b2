// Package httpapi serves a ledger over HTTP with gorilla/mux and provides
// the Go client the other parts use.
//
// Verifiable reads follow C2SP: GET /checkpoint is the latest
// tlog-checkpoint signed note; /tile/<L>/<N>[.p/<W>] and
// /tile/entries/<N>[.p/<W>] are tlog-tiles hash tiles and entry bundles
// (an entry is an event's exact bytes); /event/<index> is one leaf's data;
// /proof/inclusion and /proof/consistency return RFC 6962 proofs as JSON;
// /log/key is the checkpoint verifier key. TestTilesWithTesseraClient reads
// the log through transparency-dev/tessera's client, an independent
// implementation, and verifies its proofs.
//
// Every error goes through one table (errorStatus) that maps the ledger's
// sentinel errors to HTTP statuses; internal error text never reaches a
// client.
package httpapi
