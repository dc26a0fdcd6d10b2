package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/vmm"
	"github.com/buildledger/buildledger/vmm/gate"
)

func daemonCmd() *cobra.Command {
	var (
		state, policy, hvt, spt, qemu, taskset, tender string
		offline                                        bool
		cfg                                            vmm.Config
	)
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the daemon: restore the unikernels of --state and serve --socket",
		Long: `Run the daemon. It keeps its state in --state (records, images, the
resource policy, the audit log of every gate decision, the gate's cache),
boots the unikernels recorded there in startup priority order, each admitted
by the boot gate again, and answers the client commands on --socket (0600,
in a directory only the daemon's user may enter).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			if state == "" {
				return errors.New("--state is required: the directory the daemon keeps its unikernels in")
			}
			if policy == "" {
				return errors.New("--gate-policy is required: the daemon boots nothing the boot gate has not admitted (see schemas/vmm/gate-policy.json)")
			}
			p, err := gate.LoadPolicy(policy)
			if err != nil {
				return fmt.Errorf("gate policy: %w", err)
			}
			g, err := gate.New(gate.Config{Policy: p, CacheDir: filepath.Join(state, "gate"), Offline: offline})
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("taskset") {
				if taskset, err = exec.LookPath("taskset"); err != nil {
					log.Warn("taskset not found: unikernels are not pinned to their --cpu (install util-linux or pass --taskset PATH)")
					taskset = ""
				}
			}
			sock, _ := cmd.Flags().GetString("socket")
			cfg.StateDir, cfg.Gate, cfg.Taskset, cfg.DefaultTender, cfg.Logger = state, g, taskset, tender, log
			cfg.Path = os.Getenv("PATH")
			cfg.Tenders = map[string]vmm.Tender{
				"solo5-hvt": &vmm.Solo5{Target: "hvt", Binary: hvt},
				"solo5-spt": &vmm.Solo5{Target: "spt", Binary: spt},
				"qemu":      &vmm.QEMU{Binary: qemu},
				"process":   vmm.Process{},
			}
			ln, err := vmm.Listen(sock)
			if err != nil {
				return err
			}
			d, err := vmm.Open(cfg)
			if err != nil {
				ln.Close()
				return err
			}
			log.Info("serving", "socket", sock, "state", state, "gate_policy", policy, "offline", offline)
			served := make(chan error, 1)
			go func() { served <- d.Serve(ln) }()
			select {
			case <-cmd.Context().Done():
				log.Info("stopping: the unikernels are stopped and boot again at the next start")
				ln.Close()
				<-served
			case err = <-served:
			}
			return errors.Join(err, d.Close())
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "state directory (created 0700)")
	f.StringVar(&policy, "gate-policy", "", "the boot gate's policy file (log key, trusted rebuilder keys, k)")
	f.BoolVar(&offline, "offline", false, "never contact the ledger: decide from the gate's cached bundles only")
	f.StringVar(&hvt, "solo5-hvt", "solo5-hvt", "the solo5 hvt tender")
	f.StringVar(&spt, "solo5-spt", "solo5-spt", "the solo5 spt tender")
	f.StringVar(&qemu, "qemu", "qemu-system-x86_64", "qemu for solo5 virtio images")
	f.StringVar(&taskset, "taskset", "", `taskset(1), which pins each tender to its --cpu (default: taskset in $PATH; "" disables pinning)`)
	f.StringVar(&tender, "default-tender", "solo5-hvt", "the tender of a create without --tender")
	f.DurationVar(&cfg.Backoff.Initial, "backoff", 0, "the first restart-on-fail delay, doubling after each failed run (default 1s)")
	f.DurationVar(&cfg.Backoff.Max, "backoff-max", 0, "the longest restart-on-fail delay (default 1m); a run this long resets the delay")
	f.DurationVar(&cfg.UpdateGrace, "update-grace", 0, "how long an updated image must keep running, else the old one is booted again (default 2s)")
	f.DurationVar(&cfg.StopTimeout, "stop-timeout", 0, "how long a tender has after SIGTERM before SIGKILL (default 10s)")
	f.IntVar(&cfg.ConsoleLines, "console-lines", 0, "lines kept in each unikernel's console ring buffer (default 1000)")
	return cmd
}
