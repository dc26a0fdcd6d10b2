// Package sandboxtest holds what tests of confined jobs share: the rule
// for a host without bubblewrap (skip, or fail when CI requires it) and a
// listener on the host's loopback that a sandboxed job must not reach.
package sandboxtest

import (
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
)

// RequireEnv, set to 1, makes tests fail rather than skip when bubblewrap
// cannot run (.ci/run sets it).
const RequireEnv = "BUILDLEDGER_REQUIRE_BWRAP"

// Require skips the test, or fails it when RequireEnv is 1, if checkErr
// (the result of sandbox.Config{}.Check) says bubblewrap cannot run. The
// skip message starts with SKIPPED so that `go test -v | grep` finds it.
func Require(tb testing.TB, checkErr error) {
	tb.Helper()
	if checkErr == nil {
		return
	}
	if os.Getenv(RequireEnv) == "1" {
		tb.Fatalf("%s=1 and bubblewrap cannot run: %v", RequireEnv, checkErr)
	}
	tb.Skipf("SKIPPED: bubblewrap cannot run here (set %s=1 to fail instead): %v", RequireEnv, checkErr)
}

// Greeting is what Listener writes to every connection.
const Greeting = "hello from the host"

// Listener accepts TCP connections on the host's 127.0.0.1, greets them
// and counts them, until the test ends.
type Listener struct {
	Port     string // the port, for a job's /dev/tcp/127.0.0.1/PORT
	accepted atomic.Int32
}

// Listen starts a Listener.
func Listen(tb testing.TB) *Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	l := &Listener{Port: strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1)
			c.Write([]byte(Greeting + "\n"))
			c.Close()
		}
	}()
	return l
}

// Accepted is the number of connections accepted so far.
func (l *Listener) Accepted() int { return int(l.accepted.Load()) }
