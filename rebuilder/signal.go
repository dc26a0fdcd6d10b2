package rebuilder

import "syscall"

// ocamlSignals lists the signals OCaml's Sys module names, in the order of
// their portable numbers: Sys.sigabrt is -1, Sys.sigalrm -2, and so on to
// Sys.sigxfsz -28 (Sys.sigpoll is SIGIO). builder's worker reports a
// signal by these numbers, as Unix.waitpid gives them.
var ocamlSignals = [...]syscall.Signal{
	syscall.SIGABRT, syscall.SIGALRM, syscall.SIGFPE, syscall.SIGHUP, syscall.SIGILL,
	syscall.SIGINT, syscall.SIGKILL, syscall.SIGPIPE, syscall.SIGQUIT, syscall.SIGSEGV,
	syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGCHLD, syscall.SIGCONT,
	syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGVTALRM,
	syscall.SIGPROF, syscall.SIGBUS, syscall.SIGIO, syscall.SIGSYS, syscall.SIGTRAP,
	syscall.SIGURG, syscall.SIGXCPU, syscall.SIGXFSZ,
}

// OCamlSignal returns the number builder records for sig in a signalled
// or stopped result (builder.Result.Code): OCaml's negative portable
// number for the signals OCaml names (-7 for SIGKILL), and the host's
// number for the others (e.g. real-time signals), as OCaml passes them
// through.
func OCamlSignal(sig syscall.Signal) int {
	for i, s := range ocamlSignals {
		if s == sig {
			return -(i + 1)
		}
	}
	return int(sig)
}

// Signal is the inverse of OCamlSignal: the host's signal for a code of a
// builder result. It reports false for a negative code OCaml does not
// define and for codes that are not signal numbers.
func Signal(code int) (syscall.Signal, bool) {
	switch {
	case code < 0 && -code <= len(ocamlSignals):
		return ocamlSignals[-code-1], true
	case code > 0 && code < 256:
		return syscall.Signal(code), true
	}
	return 0, false
}
