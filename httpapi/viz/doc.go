// Package viz computes and draws the visualizations of the web pages,
// server-side and without external resources:
//
//   - the composition of a binary from its ELF symbol table (bytes per
//     OCaml compilation unit and library, as Robur's modulectomy measures
//     a MirageOS unikernel; per package for Go binaries), drawn as a
//     squarified treemap (Bruls, Huizing and van Wijk, 2000) in SVG;
//   - the opam dependency graph of a build from its recorded opam-switch
//     (package ledger/orb), drawn as builder-web's opam-graph does: the
//     root package in the centre, its direct dependencies around it, then
//     theirs, lighter the more packages share a dependency.
package viz
