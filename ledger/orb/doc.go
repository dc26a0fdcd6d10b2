// Package orb reads and writes the three input files that the orb build tool
// (robur-coop/orb) records next to every build, and compares them between two
// builds:
//
//   - build-environment: the environment of the build, "NAME=VALUE" lines
//     (Environment, ParseEnvironment, DiffEnvironments);
//   - system-packages: the host's packages, as printed by
//     `dpkg-query --showformat='${Package}=${Version}\n' -W` on Debian and
//     derivatives or `pkg query %n-%v` on FreeBSD (Packages,
//     ParseSystemPackages, DiffPackages);
//   - opam-switch: the output of `opam switch export --full --freeze`
//     (Switch, ParseSwitch, DiffSwitches).
//
// The opam-switch file is read with a complete parser of the opam file format
// described in the "Common file format" section of the opam manual
// (https://opam.ocaml.org/doc/Manual.html#Common-file-format), following its
// reference implementation opam-file-format: strings with escapes and
// triple-quoted strings, booleans, integers, identifiers, lists, groups,
// options with filters, comparison, logical and prefix operators,
// environment updates, nested sections and both comment styles, with the
// same token rules and operator precedences. ParseOpamFile and
// FormatOpamFile expose that layer as a value tree (Item, Value) for other
// opam-format files. Only the switch-level fields (opam-version, compiler,
// roots, installed, pinned) and the package overlays are interpreted;
// everything else is kept as a tree and written back.
//
// Every format has a parser and a formatter. Formatting writes a canonical
// form, and parsing that form gives back an equal value, so for any input x
// that parses, Format(Parse(Format(Parse(x)))) equals Format(Parse(x)).
// Byte-exact reproduction of arbitrary input is not a goal: comments,
// layout, a missing final newline and "~" (read as ">=") are normalised.
// Empty lists, groups, filters and sections read back as nil slices.
// Formatters refuse values that cannot be written so as to read back
// unchanged, rather than writing something else.
//
// The parsers take untrusted uploads: they never panic, run in time linear in
// their input, bound nesting by MaxDepth, and report problems as
// *SyntaxError with the file, line and (for opam-switch) column. The
// line-based files are strict: CRLF line endings, empty lines and NUL bytes
// are errors, and a build-environment name may appear only once. See the
// Environment and Packages types for their exact rules, and testdata/README.md
// for the test inputs.
//
// Tests: TestEnvironmentRoundTrip, TestSystemPackagesRoundTrip,
// TestParseOpamFile and TestFormatOpamFile check parsing against expected
// values and the round trip; TestParseSwitchSample reads a real
// `opam switch export`; TestParseSwitchFull reads an export in the
// --full --freeze form of a MirageOS 4 unikernel; the *Errors tests check the
// messages and positions; TestDiff* cover the diffs; FuzzParseBuildEnvironment,
// FuzzParseSystemPackages and FuzzParseSwitch check the round trip and the
// absence of panics on arbitrary input.
package orb
