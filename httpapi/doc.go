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
// Reads are bounded per request, also for anonymous clients: lists page
// (/hash by log index with after= and limit=, job pages and
// /failed-builds with start= and count=; TestHashPaging,
// TestBuildListPaging), the front page and latest links read the ledger's
// latest-build projection, /compare caps the input it parses and the diff
// it shows and caches its results (TestCompareBounded), work that grows
// with stored data runs in a few slots and downloads of large files in a
// larger pool, with 503 and Retry-After past them (TestHeavyReadLimit,
// TestStreamLimit), and a client that stops sending its body or
// reading the response loses the connection after an idle timeout while
// transfers that keep moving run to the end (TestStalledReaderIsDropped,
// TestSlowDownloadCompletes, TestStalledBodyIsDropped).
//
// Uploads and the /exec re-export hold buffers, not builds (limits.go):
// POST /upload decodes builder's record as a stream with every file copied
// into the CAS as it arrives, the manual upload puts its body into the CAS
// as it arrives, and /exec streams the artifacts from the CAS under a
// Content-Length computed from the recorded sizes (TestUploadBombsBounded,
// TestLargeUploadAndExportMemoryBounded, TestExecExportMatchesMarshal).
// Before a body is read, a Content-Length over Config.MaxBody is 413
// (TestUploadEarly413) and an upload takes one of Config.MaxUploads slots
// or is answered 503 with Retry-After (TestUploadSlots); the job's access
// list is checked once the record's first field, the job name, has been
// read (TestUploadReadsOnlyAPrefixWhenForbidden). gzip and zstd bodies are
// decoded as streams, zstd with a window of at most 8 MiB, and the decoded
// bytes are capped at MaxBody, so a compression bomb is 413 after bounded
// work. ledgerbench -only memory measures a server's peak memory under
// concurrent 200 MB uploads, exports and comparisons.
//
// Uploader logins go through auth.Guard: a client network that keeps
// failing is answered 429, and a login that finds the hashing slots busy
// 503, both with Retry-After and before any password is hashed; recent
// successful logins are not hashed again (TestLoginFlood,
// BenchmarkLoginFlood). GET /metrics serves Prometheus metrics from a
// registry per Server: requests by route template, method and status,
// their durations, append latency, commit batch size and queue depth, the
// store's size, login failures and refusals, a replica's lag
// (TestMetrics). /healthz says the process serves; /readyz answers 503
// while the ledger refuses appends after a failure, or while a replica
// has no checkpoint or lags more than Config.MaxReplicaLag (TestReadyz,
// TestReplicaState). Config.AccessLog gets one line per request, without
// credentials or query strings (TestAccessLog).
//
// Every error goes through one table (errorStatus) that maps the ledger's
// sentinel errors to HTTP statuses; internal error text never reaches a
// client.
package httpapi
