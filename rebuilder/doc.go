// Package rebuilder runs build jobs the way Robur's orb and builder do: a
// shell script in a fresh directory with a normalised environment, with
// everything needed to judge a rebuild captured as it runs. Run returns the
// builder "exec" record (package ledger/builder) ready to upload, the
// parsed input files and the digests of the outputs; Compare and
// DiffInputs set a rebuild against the recorded build, and CheckHost says
// whether this host is the recorded one.
//
// # What the job sees
//
//   - Its working directory is Root/build and its HOME Root/home, both
//     wiped and created afresh by every run, under a build root that is the
//     same path on every run (DefaultRoot, /tmp/buildledger-build), so paths
//     compiled into outputs do not vary. The script is Root/script: run
//     directly if it starts with "#!", else as `/bin/sh -e Root/script`.
//     Standard input is /dev/null.
//   - Exactly these variables, in this order, and nothing of the caller's
//     environment: HOME; PATH, fixed to DefaultPath (orb's allow-list of
//     /usr/local, /usr and / bin and sbin directories, preceded by
//     /usr/local/go/bin); SOURCE_DATE_EPOCH, which the Spec must give; the
//     host facts OS, OS_DISTRIBUTION, OS_VERSION, OS_FAMILY and ARCH, as
//     opam's sys-poll reports them and orb records them (linux, debian, 12,
//     debian, x86_64 on Debian 12 on amd64); then the job's declared
//     variables sorted by name. A job may not redeclare the variables above.
//     Locale variables are unset, so tools use the POSIX locale. Tools that
//     need a writable cache find one in HOME; a job can declare GOCACHE,
//     GOFLAGS=-trimpath, GOTOOLCHAIN=local and the like.
//   - Its own process group, killed entirely when the script exits (nothing
//     it started outlives it), when Options.Timeout expires (result message
//     "timeout", as builder records it) or when the context ends (Run then
//     returns the context's error).
//   - With Options.Sandbox, a confinement by bubblewrap and resource
//     limits (package farm/sandbox): the host's root read-only, fresh /dev,
//     /proc and /tmp, only Root/build and Root/home writable, the script
//     read-only, new user, PID, IPC, UTS, cgroup and (unless
//     Sandbox.Network) network namespaces, no capabilities, and
//     RLIMIT_AS, FSIZE, NPROC, NOFILE and optionally CPU. Killing bwrap
//     ends the job's PID namespace, so at the timeout nothing the job
//     started survives, not even processes that called setsid. Run checks
//     first that bwrap works on this host and otherwise fails with
//     ErrSandbox; only Sandbox.Unsandboxed, the operator's explicit
//     choice, runs jobs without it (limits only). The console's first line
//     is a note describing the confinement. bwrap reports a job killed by
//     signal n as exit status 128+n; Run records such a status as that
//     signal, with a console note. Without Options.Sandbox (nil) the job
//     is not confined: it can do whatever its user can, network included.
//
// For a rebuild, Options.Env gives the recorded build-environment instead:
// the script runs with exactly those variables, under the build root its
// HOME names.
//
// # What is recorded
//
// The files orb writes (robur-coop/orb, src/orb.ml), in the formats of
// package ledger/orb and written by its formatters:
//
//   - build-environment: the variables above, "NAME=VALUE" lines. orb's
//     ORB_DATA and SWITCH_PATH are not written: no opam switch is built by
//     this package.
//   - system-packages: `dpkg-query --showformat='${Package}=${Version}\n' -W`
//     on the Debian family, `pkg query %n-%v` on FreeBSD, sorted by name,
//     listed after the script ran. Other hosts need Options.SkipSystem, or
//     Run fails with ErrUnsupportedHost.
//   - opam-switch: `opam switch export --full --freeze`, run like the job,
//     per Spec.Opam: OpamAuto captures it if opam is on the job's PATH and
//     the job created its opam root, OpamAlways requires it, OpamNever
//     skips it. The export is parsed and written back in canonical form.
//
// The exec record (builder's lib/builder.ml) holds the job's name, script
// and platform ("<OS_DISTRIBUTION>-<OS_VERSION>" unless given, like
// builder-web's "debian-12"), a new random UUID, the console, the start and
// finish times, the result and as output these files followed by every
// regular file under bin/ of the working directory. Signals are recorded by
// OCaml's numbers, as builder's worker reports them (OCamlSignal). Failed
// builds are recorded like successful ones.
//
// The console is standard output and error through one pipe, so in the
// order written, line by line, each line stamped with its time since the
// start. It keeps at most Options.MaxConsoleLines lines and
// MaxConsoleBytes bytes: the first and the last half, with a note of what
// was left out between them; lines longer than MaxLineBytes are split.
// Notes of the rebuilder itself start with "buildledger: ".
//
// Outputs are read into memory (the exec record holds them), up to
// Options.MaxOutputSize bytes (DefaultMaxOutputSize, 256 MiB, ample for
// unikernels) and MaxOutputFiles files, beyond which Run fails with
// ErrOutputLimit. Symlinks under bin/ are never followed: they, devices,
// pipes and sockets, and files whose names the ledger cannot record are
// left out with a console note.
//
// Result.WriteDir writes the whole as orb's output directory.
//
// The package runs processes and uses process groups and flock: it is for
// Linux and the BSDs.
//
// # Rebuilding from a ledger, and what a rebuild trusts
//
// Rebuilder.Rebuild fetches a recorded build (its record and its exec,
// each proven against the log), checks this host against the recorded
// host facts (CheckHost), reruns the job with exactly the recorded
// environment, compares every output (Compare, DiffInputs) and signs and
// submits an attestation of the verdict: "reproduced", or "differs" with
// the digests it got. Follower runs that for every new build of its
// platforms, with bounded concurrency, saving its progress after each
// build, retrying failures (MaxAttempts) and locking its state file.
//
// A rebuild runs a script that came from the ledger, that is from whoever
// could upload a build. Unconfined, the script can do whatever the user
// running it can. So: Options.Sandbox (rebuilder --sandbox) confines it and
// the opam export as above; rebuilds use one configured build root (Options.Root; a record
// whose HOME lies elsewhere is refused, so a record cannot make the
// rebuilder create or wipe directories of its choosing); capture commands
// run in their own process group under a timeout; and Options.RunAs
// (rebuilder --run-as) runs the job and the opam export as an unprivileged
// user that cannot read the signing key or the rebuilder's environment.
// A rebuilder that follows a ledger with untrusted uploaders should use
// Sandbox and RunAs together (RLIMIT_NPROC does not hold for root), or run
// in a VM or container of its own, with the signing key outside it.
//
// # in-toto links and layouts
//
// Link writes a rebuild as an in-toto link (github.com/in-toto/in-toto-golang)
// of the step "rebuild": the recorded inputs as materials, the rebuilt files
// as products, signed with the rebuilder's key; WriteLink names it as in-toto
// does (rebuild.KEYID8.link). Layout writes the unsigned layout template in
// which K of N registered keys must sign links whose products are the
// recorded build's output files with exactly the digests that the link of
// the step "recorded" (RecordedLink, signed by the layout's recorder)
// states. in-toto-golang's InTotoVerify and Python in-toto's
// in-toto-verify accept such layouts over such links and refuse altered,
// missing or disagreeing links and rebuilds of other bytes
// (TestLinkVerifiesWithInToto, TestLinkVerifiesWithPythonInToto).
//
// # Tests
//
// All tests run real processes in t.TempDir() roots. TestRunCTwice and
// TestRunGoTwice build a C program with gcc and a Go program twice and get
// identical inputs and artifact digests; TestRunTimestamp shows Compare
// naming a file that embeds the time. TestRunEnvironment checks that
// nothing of the caller's environment leaks in and what build-environment
// holds; TestRebuild restores a recorded environment. TestRunShebang and
// TestRunResults cover how the script is run, exit statuses, signals and
// the timeout, TestRunCancel the killing of the process group,
// TestRunEscapedWriter a process that leaves it holding the output open,
// TestRunOutputs symlinks and other non-regular outputs,
// TestRunOutputLimits the limits, TestRunConsole and TestConsoleBound the
// console, TestRunRoot the safety of the build root, TestRunInvalid the
// refused specs, TestRunOpam the opam modes with stand-ins for opam,
// TestRunOpamSwitch a real opam switch (an OCaml package built offline from
// a local repository; skipped without opam and ocamlopt), TestCheckHost and
// TestParseOSRelease the host facts, TestCompare the verdicts and
// TestWriteDir the output directory, TestRunAs a job run as another user
// that cannot read the rebuilder's files. With real bubblewrap (skipped
// without it unless BUILDLEDGER_REQUIRE_BWRAP=1, which makes them fail):
// TestRunSandboxNetwork a job that cannot reach a listener on the host's
// 127.0.0.1 unless Network is set, TestRunSandboxFiles the writes it
// cannot make (/etc, the repository, its script, the host's /tmp),
// TestRunSandboxTimeout a setsid process that dies at the timeout,
// TestRunSandboxLimits RLIMIT_FSIZE and RLIMIT_AS, TestRunSandboxMissing
// the refusal without bwrap and the unsandboxed choice,
// TestRunSandboxRunAs the sandbox as another user and TestRunSandboxOpam a
// confined opam export. cmd/rebuilder's
// TestRebuildEndToEnd rebuilds against a real ledger server.
package rebuilder
