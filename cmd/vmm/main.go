// Command vmm runs unikernels the way albatross does, booting only
// images the boot gate admits: enough trusted rebuilders must have
// attested, in the ledger, that they reproduced the image's exact sha256.
//
//	vmm daemon  --state DIR --socket PATH --gate-policy FILE [--offline] [--solo5-hvt PATH] [--solo5-spt PATH] [--qemu PATH] [--taskset PATH]
//	vmm create  NAME IMAGE [--mem MB] [--cpu ID] [--arg S]... [--net NAME:BRIDGE]... [--block NAME:FILE]...
//	            [--restart-on-fail [--exit-code N]...] [--startup PRIO] [--tender solo5-hvt|solo5-spt|qemu|process]
//	vmm destroy NAME
//	vmm restart NAME
//	vmm info    [NAME] [--json]
//	vmm console NAME [--since RFC3339|DURATION | --count N] [--follow]
//	vmm update  NAME [--dryrun]
//	vmm policy  show [--json]
//	vmm policy  set [--unikernels N] [--mem MB] [--cpus LIST] [--bridges LIST] [--block MB] [--lift LIMIT]... [--clear]
//	vmm bundle  IMAGE... --state DIR --gate-policy FILE
//
// The client commands reach the daemon at --socket (default $VMM_SOCKET,
// else /run/vmm/vmm.sock).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

const defaultSocket = "/run/vmm/vmm.sock"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "vmm:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "vmm",
		Short:         "Run unikernels that trusted rebuilders reproduced",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	sock := os.Getenv("VMM_SOCKET")
	if sock == "" {
		sock = defaultSocket
	}
	root.PersistentFlags().String("socket", sock, "the daemon's Unix socket ($VMM_SOCKET)")
	root.AddCommand(daemonCmd(), createCmd(), destroyCmd(), restartCmd(), infoCmd(), consoleCmd(), updateCmd(), policyCmd(), bundleCmd())
	return root
}
