// Package vmm is an albatross-style unikernel orchestrator (robur-coop/
// albatross's albatrossd and albatross-client) whose every boot must
// first pass a boot gate (Gate; package vmm/gate decides k-of-n from the
// ledger's attestations). Linux only.
//
// A Daemon keeps its state in a directory it locks (see store.go):
// JSON records written atomically, images by sha256, the resource
// policy, and audit.log, where every gate decision is appended and
// fsynced before the boot it allows goes on (TestAuditRoundTrip).
// Create, Restart, Update, the restarts of restart-on-fail and Open's
// restore all ask the gate; a refusal or a failure of the gate starts
// nothing and returns a *RefusedError with the gate's reason
// (TestCreateRefusedStartsNothing, TestRestartCommand,
// TestRestoreInStartupOrder, TestUpdateRefusedKeepsOld).
//
// Open boots the recorded unikernels in startup priority order, 0 first
// (albatross's --startup, default 50). Close stops them, keeping their
// records (TestRestoreInStartupOrder).
//
// Tenders: Solo5 (hvt, spt) with solo5's command line, QEMU for virtio
// images, and Process, which runs the image as a plain program. For the
// solo5 tenders the image's manifest, read from its ELF note in-process
// (ReadImage, ParseManifestNote), must declare exactly the requested
// devices, as albatross's manifest_devices_match demands
// (TestSolo5CommandLine, TestQEMUCommandLine, TestSolo5ThroughDaemon,
// FuzzParseManifestNote).
//
// Restart-on-fail follows albatross's should_restart (ShouldRestart,
// TestRestartOnFail) with an exponential Backoff (TestBackoff). A session
// owns a unikernel's process and pending restart; cancelling it under the
// unikernel's lock guarantees nothing of it starts again, so destroy
// always wins over a boot loop (TestDestroyDuringBootLoop).
//
// Update is albatross's update with the gate in the middle: running
// sha256 → Gate.Newer → "compare at URL" → Gate.Download → Admit → swap
// with the same Spec; a new image that exits within Config.UpdateGrace is
// replaced by the old one again (TestUpdate, TestUpdateRollsBack). The
// new image and its record are durable before the old image is removed,
// and a record that cannot be saved stops the new image and boots the old
// one again, so a failure at any step leaves a state directory that boots
// (TestUpdateSaveFailsKeepsOld). Files are replaced through
// internal/atomicfile.
//
// Resource policies (Policy, schemas/vmm/resource-policy.json) limit
// unikernels, memory, CPU ids, bridges and block storage at create
// (TestPolicyRefusals, FuzzParsePolicy).
//
// The daemon serves a Unix socket (Listen: 0600 in a 0700 directory; a
// live socket is never taken over) with the framed JSON protocol of
// proto.go, checking the peer's uid with SO_PEERCRED (TestListen,
// TestPeerCredentials, FuzzReadFrame); Client speaks it.
package vmm
