// Package client is the Go client of a buildledger server that believes
// nothing it is told without proof: every checkpoint is verified against
// the pinned log key (C2SP signed note), every event against a checkpoint
// by an RFC 6962 inclusion proof it builds itself from the server's C2SP
// tlog-tiles (with transparency-dev/tessera's client), every newer
// checkpoint against the last one seen by a consistency proof, and every
// blob against its SHA-256 as it streams. It links no server or storage
// code, so the VMM gate and the rebuilder use it without badger
// (TestArchitecture in package ledger). Its tests run against real servers
// in package httpapi: TestClientLookupVerifies, TestClientCatchesRewrittenHistory,
// TestHashPaging and TestBuildListPaging.
package client
