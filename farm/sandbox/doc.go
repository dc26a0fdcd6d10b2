// Package sandbox confines build jobs: it turns a job's command line into
// one that runs it under bubblewrap (bwrap) with resource limits set by
// prlimit, and checks that the host can do so.
//
// # What a confined job gets
//
//   - The host's root file system, read-only (bwrap --ro-bind / /), with a
//     fresh /dev (the usual device nodes only), a fresh /proc for its own
//     PID namespace and an empty tmpfs on /tmp. The host's /tmp is not
//     visible, and what the job writes to /tmp is gone when it ends.
//   - Read-write, only the directories the caller names (the job's working
//     directory and HOME), bound after the tmpfs on /tmp so that they may
//     lie under /tmp; then, read-only on top, the paths the caller names as
//     such (the job's script).
//   - New user, IPC, PID, UTS and cgroup namespaces, and a new network
//     namespace with only a loopback interface unless Config.Network is
//     set: the job cannot reach the host's or any other network service,
//     including ones listening on the host's 127.0.0.1.
//   - No capabilities (--cap-drop ALL), a session of its own
//     (--new-session, so it cannot inject input into a terminal), and
//     --die-with-parent: when bwrap is killed, as the caller does when the
//     job times out, the job's PID namespace goes with it, so none of its
//     processes survives, not even those that left its process group or
//     session with setsid.
//   - Resource limits per process, set by `prlimit ... --` in front of bwrap
//     and inherited by everything the job starts: RLIMIT_AS (address space,
//     DefaultMemory), RLIMIT_FSIZE (largest file written, DefaultFileBytes),
//     RLIMIT_NPROC (processes of the user, DefaultProcesses), RLIMIT_NOFILE
//     (open files, DefaultOpenFiles) and optionally RLIMIT_CPU (CPU seconds).
//     A process that writes beyond RLIMIT_FSIZE gets SIGXFSZ (or EFBIG if it
//     handles that signal); an allocation beyond RLIMIT_AS fails.
//
// # What it does not do
//
//   - No disk quota: a job can fill the writable directories. The output
//     collected from it is bounded by the caller (the rebuilder's
//     MaxOutputSize) and every single file by RLIMIT_FSIZE, but not the
//     number of files.
//   - RLIMIT_NPROC is not enforced by the kernel for uid 0. A job run as
//     root (in its user namespace, mapped to the host's root) may start any
//     number of processes; run jobs as another user (the rebuilder's RunAs)
//     for the limit to hold.
//   - RLIMIT_CPU and RLIMIT_AS limit each process, not the job as a whole.
//     There are no cgroup limits (total memory, CPU share, I/O), because
//     hosts differ in what they offer (this package's development host has
//     cgroup v1 only, others have v2 with or without delegation).
//   - The job can read whatever its user can read on the host's root file
//     system. Running it as an unprivileged user keeps secrets readable
//     only by the operator out of its reach.
//
// # Without bubblewrap
//
// Check fails, naming the fix, when bwrap is missing or cannot create the
// namespaces (for example where unprivileged user namespaces are
// disabled), and callers must then refuse to run jobs. Jobs run without
// bubblewrap only when the operator chose so explicitly with
// Config.Unsandboxed: the job then gets only the resource limits and its
// caller's process group; it sees and can change everything its user can.
// The package never falls back to that by itself.
//
// bubblewrap runs on Linux only.
package sandbox
