// Package readmetest runs the repository's README.md as a newcomer would
// paste it: every ```sh block in order, in one shell, in a fresh copy of
// the repository, against the commands built from it. It has no API; see
// TestREADME.
//
// A block is run as written, with two kinds of marker, an HTML comment on
// the line before its fence (blank lines allowed between):
//
//	<!-- readme-test: skip (REASON) -->
//	<!-- readme-test: stop once URL answers -->
//
// The first does not run the block and says why. The second is for a
// command that serves in the foreground until stopped: the block runs on
// its own until URL answers 200, then gets SIGINT (Ctrl-C) and must exit
// with status 0. The only substitution is ports: every 127.0.0.1:PORT
// (other than :0) becomes a free port of this machine, the same one for
// the same PORT throughout.
package readmetest
