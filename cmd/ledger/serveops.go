package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/httpapi"
)

// opsFlags are serve's logging and monitoring flags.
type opsFlags struct {
	logFormat      string
	accessLog      bool
	clientIPHeader string
	maxReplicaLag  uint64
	userFailures   int
}

func addOpsFlags(cmd *cobra.Command, f *opsFlags) {
	cmd.Flags().StringVar(&f.logFormat, "log-format", "text", "log line format on standard error: text or json")
	cmd.Flags().BoolVar(&f.accessLog, "access-log", true, "log one line per request (method, route, path, status, bytes, duration, client address; never credentials or query strings)")
	cmd.Flags().StringVar(&f.clientIPHeader, "client-ip-header", "", "header naming the client address, set by a reverse proxy in front of the server (X-Forwarded-For, X-Real-IP); only with such a proxy, since clients can send it themselves")
	cmd.Flags().IntVar(&f.userFailures, "user-login-failures", 0, "failed logins one user name may have over all addresses before its logins are refused (429), then one a minute; 0: no limit per name (each address is limited regardless). Logins remembered from a recent success are never refused")
	cmd.Flags().Uint64Var(&f.maxReplicaLag, "max-replica-lag", 1024, "a replica more entries behind its primary than this answers /readyz with 503")
}

// setLogger makes g.log write the chosen format to the command's
// standard error.
func (f *opsFlags) setLogger(cmd *cobra.Command, g *globals) error {
	w := cmd.ErrOrStderr()
	switch f.logFormat {
	case "text":
		g.log = slog.New(slog.NewTextHandler(w, nil))
	case "json":
		g.log = slog.New(slog.NewJSONHandler(w, nil))
	default:
		return fmt.Errorf("--log-format %q: want text or json", f.logFormat)
	}
	return nil
}

// configure sets cfg's logging and monitoring fields.
func (f *opsFlags) configure(cfg *httpapi.Config, g *globals) {
	if f.accessLog {
		cfg.AccessLog = g.log
	}
	cfg.ClientIPHeader = f.clientIPHeader
	cfg.MaxReplicaLag = f.maxReplicaLag
	cfg.Logins.UserBurst = f.userFailures
}
