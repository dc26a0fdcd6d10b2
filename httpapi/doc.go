// Package httpapi will serve the ledger over HTTP (gorilla/mux routes in the
// style of builder-web, reverse hash lookup, C2SP tlog-tiles, proofs) and
// provide the Go client the other parts use.
//
// Nothing is implemented here yet.
package httpapi
