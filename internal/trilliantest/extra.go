package trilliantest

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"time"
)

// StartLogServer starts another trillian_log_server on the stack's
// database, with the flags of the first one and extra (for example
// --tls_cert_file and --tls_key_file), and returns its gRPC address. Stop
// stops it with the rest of the stack.
func (e *Env) StartLogServer(extra ...string) (string, error) {
	if len(e.procs) < 2 {
		return "", errors.New("trilliantest: the stack is not running")
	}
	first := e.procs[1]
	var args []string
	for _, a := range first.Args[1:] {
		if !strings.HasPrefix(a, "--rpc_endpoint=") && !strings.HasPrefix(a, "--http_endpoint=") {
			args = append(args, a)
		}
	}
	rpc, err := freePort()
	if err != nil {
		return "", err
	}
	web, err := freePort()
	if err != nil {
		return "", err
	}
	args = append(append(args, "--rpc_endpoint="+rpc, "--http_endpoint="+web), extra...)
	name := filepath.Join(e.dir, "log_server_"+strings.ReplaceAll(rpc, ":", "_")+".log")
	if err := e.start(first.Path, name, args...); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := waitTCP(ctx, rpc); err != nil {
		return "", err
	}
	return rpc, nil
}
