package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/buildledger/buildledger/vmm"
)

func client(cmd *cobra.Command) *vmm.Client {
	sock, _ := cmd.Flags().GetString("socket")
	return &vmm.Client{Socket: sock}
}

func createCmd() *cobra.Command {
	var (
		spec          vmm.Spec
		nets, blocks  []string
		exitCodes     []int
		restartOnFail bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME IMAGE",
		Short: "Create a unikernel from an image file, if the boot gate admits it",
		Long: `Create a unikernel. The image is sent to the daemon, checked against the
resource policy and the tender (a solo5 image's manifest must declare exactly
the --net and --block devices given), and booted only if the boot gate admits
it; otherwise nothing is started and the gate's reason is printed.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.Name = args[0]
			spec.RestartOnFail, spec.ExitCodes = restartOnFail, exitCodes
			for _, n := range nets {
				net, err := vmm.ParseNet(n)
				if err != nil {
					return err
				}
				spec.Nets = append(spec.Nets, net)
			}
			for _, b := range blocks {
				blk, err := vmm.ParseBlock(b)
				if err != nil {
					return err
				}
				if blk.File, err = filepath.Abs(blk.File); err != nil {
					return err
				}
				spec.Blocks = append(spec.Blocks, blk)
			}
			info, err := client(cmd).Create(cmd.Context(), spec, args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s\n", info.Name)
			printInfo(cmd.OutOrStdout(), info)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&spec.MemMB, "mem", 32, "memory in MB")
	f.IntVar(&spec.CPU, "cpu", 0, "the host CPU id to pin the unikernel to (an id, not a count)")
	f.StringArrayVar(&spec.Args, "arg", nil, "an argument for the unikernel (repeat)")
	f.StringArrayVar(&nets, "net", nil, "NAME:BRIDGE: attach the image's network device NAME to the host bridge (repeat)")
	f.StringArrayVar(&blocks, "block", nil, "NAME:FILE: attach FILE as the image's block device NAME (repeat)")
	f.BoolVar(&restartOnFail, "restart-on-fail", false, "restart when it exits (not on exit 1 and 60-64, never on a signal)")
	f.IntSliceVar(&exitCodes, "exit-code", nil, "with --restart-on-fail: restart only on these exit codes (repeat)")
	f.IntVar(&spec.Startup, "startup", vmm.DefaultStartup, "startup priority when the daemon starts: 0 boots first")
	f.StringVar(&spec.Tender, "tender", "", "solo5-hvt, solo5-spt, qemu or process (default: the daemon's --default-tender)")
	return cmd
}

func destroyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "destroy NAME",
		Short: "Stop a unikernel, whatever it is doing, and remove it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := client(cmd).Destroy(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "destroyed %s\n", args[0])
			return nil
		},
	}
}

func restartCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restart NAME",
		Short: "Boot a unikernel again (the gate decides again; a refusal keeps it running)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := client(cmd).Restart(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restarted %s\n", info.Name)
			printInfo(cmd.OutOrStdout(), info)
			return nil
		},
	}
}

func infoCmd() *cobra.Command {
	var asJSON, noRecheck bool
	cmd := &cobra.Command{
		Use:   "info [NAME]",
		Short: "Show unikernels: state, image, the build it came from, who attested it when admitted and whether the gate admits it now, uptime",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			c := client(cmd)
			info := c.Recheck
			if noRecheck {
				info = c.Info
			}
			infos, err := info(cmd.Context(), name)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(infos)
			}
			if len(infos) == 0 {
				fmt.Fprintln(w, "no unikernels; create one with vmm create NAME IMAGE")
			}
			for _, i := range infos {
				printInfo(w, &i)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&noRecheck, "no-recheck", false, "show only the decision recorded at admission; do not ask the gate what it decides now")
	return cmd
}

func printInfo(w io.Writer, i *vmm.Info) {
	head := fmt.Sprintf("%s  %s", i.Name, i.State)
	if i.PID != 0 {
		head += fmt.Sprintf("  pid %d  up %v", i.PID, i.Uptime.Round(time.Second))
	}
	fmt.Fprintln(w, head)
	row := func(k, v string) { fmt.Fprintf(w, "  %-9s %s\n", k, v) }
	row("image", "sha256 "+i.Image.String())
	if a := i.Admission; a != nil {
		if b := a.Build; b != nil {
			row("build", fmt.Sprintf("job %s on %s, build %s (log index %d)", b.Job, b.Platform, b.UUID, b.LogIndex))
		} else {
			row("build", "none in the ledger")
		}
		if i.Recheck != nil {
			// The recorded decision is history: say so, and what the
			// gate says now.
			row("attested", "when admitted: "+a.Summary())
		} else {
			row("attested", a.Summary())
		}
		row("admitted", fmt.Sprintf("at %s, %s", a.Time.Format(time.RFC3339), a.Op))
	}
	if r := i.Recheck; r != nil {
		at := r.Time.Format(time.RFC3339)
		switch {
		case r.Admitted && r.Decision != nil:
			row("now", fmt.Sprintf("admissible (gate asked at %s): %s", at, r.Decision.Summary()))
		default:
			what := "a restart or the daemon's next start would refuse it"
			if i.State == vmm.StateRunning {
				what = "it keeps running, but " + what
			}
			row("now", fmt.Sprintf("NOT ADMISSIBLE (gate asked at %s): %s", at, what))
			row("", strings.ReplaceAll(r.Reason, "\n", "\n            "))
		}
	}
	s := i.Spec
	cfg := fmt.Sprintf("%s, %d MB, cpu %d, startup %d", s.Tender, s.MemMB, s.CPU, s.Startup)
	if s.RestartOnFail {
		cfg += ", restart on fail"
		if len(s.ExitCodes) > 0 {
			cfg += fmt.Sprintf(" on exit codes %v", s.ExitCodes)
		}
	}
	row("config", cfg)
	if len(s.Args) > 0 {
		row("args", strings.Join(s.Args, " "))
	}
	for _, n := range s.Nets {
		row("net", n.Name+" on bridge "+n.Bridge)
	}
	for _, b := range s.Blocks {
		row("block", b.Name+" = "+b.File)
	}
	if i.Restarts > 0 || i.LastExit != nil {
		r := fmt.Sprintf("%d", i.Restarts)
		if i.LastExit != nil {
			r += ", last " + i.LastExit.String()
		}
		row("restarts", r)
	}
	if i.Reason != "" {
		row("why", strings.ReplaceAll(i.Reason, "\n", "\n            "))
	}
}

func consoleCmd() *cobra.Command {
	var (
		since  string
		q      vmm.ConsoleQuery
		noTime bool
	)
	cmd := &cobra.Command{
		Use:   "console NAME",
		Short: "Print a unikernel's console output from its ring buffer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				q.Since = t
			}
			w := cmd.OutOrStdout()
			err := client(cmd).Console(cmd.Context(), args[0], q, func(l vmm.Line) error {
				if noTime {
					_, err := fmt.Fprintln(w, l.Text)
					return err
				}
				_, err := fmt.Fprintf(w, "%s %s\n", l.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"), l.Text)
				return err
			})
			if q.Follow && errors.Is(err, cmd.Context().Err()) {
				return nil // interrupted
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "only lines from this time on (RFC 3339, or a duration ago such as 10m)")
	f.IntVar(&q.Count, "count", 0, "only the last N lines")
	f.BoolVar(&q.Follow, "follow", false, "then print new lines as they come, until interrupted")
	f.BoolVar(&noTime, "no-time", false, "leave out the timestamps")
	return cmd
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: give a time such as 2026-07-01T12:00:00Z or a duration ago such as 10m", s)
}

func updateCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Swap in the newest attested build of the job the running image came from",
		Long: `Update a unikernel: look up, by the running image's sha256, the newest
successful build of the same job and platform in the ledger, print where to
compare the two builds, and (unless --dryrun) download it, have the boot gate
admit it and swap it in with the same configuration. A refused or failed
download keeps the old image running; a new image that exits at once is
replaced by the old one again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			_, err := client(cmd).Update(cmd.Context(), args[0], dryRun, func(s string) { fmt.Fprintln(w, s) })
			return err
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dryrun", false, "only say whether there is a newer build and where to compare it")
	return cmd
}

func policyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Show or change the resource policy checked at every create",
	}
	var asJSON bool
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the resource policy and what is in use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, u, err := client(cmd).Policy(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"policy": p, "usage": u})
			}
			fmt.Fprint(w, p.String())
			fmt.Fprintf(w, "in use:     %d unikernels, %d MB memory, cpus %s, bridges %s, %d MB block storage\n",
				u.Unikernels, u.MemoryMB, ints(u.CPUs), orNone(strings.Join(u.Bridges, ",")), u.BlockMB)
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var (
		unikernels, mem, block int
		cpus                   []int
		bridges, lift          []string
		clear                  bool
	)
	set := &cobra.Command{
		Use:   "set",
		Short: "Change limits: each flag given replaces that limit, --lift removes one",
		Long: `Change the resource policy. Each flag given replaces that limit and the
others stay, unless --clear starts from no limits. --lift LIMIT removes a limit
(unikernels, mem, cpus, bridges, block). --cpus "" and --bridges "" allow none.
Unikernels already over a new limit keep running; new creates are refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := client(cmd)
			p := &vmm.Policy{}
			if !clear {
				var err error
				if p, _, err = c.Policy(cmd.Context()); err != nil {
					return err
				}
			}
			f := cmd.Flags()
			if f.Changed("unikernels") {
				p.Unikernels = &unikernels
			}
			if f.Changed("mem") {
				p.MemoryMB = &mem
			}
			if f.Changed("block") {
				p.BlockMB = &block
			}
			if f.Changed("cpus") {
				p.CPUs = append([]int{}, cpus...)
			}
			if f.Changed("bridges") {
				p.Bridges = []string{}
				for _, b := range bridges {
					if b != "" {
						p.Bridges = append(p.Bridges, b)
					}
				}
			}
			for _, l := range lift {
				switch l {
				case "unikernels":
					p.Unikernels = nil
				case "mem", "memory":
					p.MemoryMB = nil
				case "cpus":
					p.CPUs = nil
				case "bridges":
					p.Bridges = nil
				case "block":
					p.BlockMB = nil
				default:
					return fmt.Errorf("--lift %q: the limits are unikernels, mem, cpus, bridges and block", l)
				}
			}
			warnings, err := c.SetPolicy(cmd.Context(), *p)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprint(w, p.String())
			for _, warn := range warnings {
				fmt.Fprintf(w, "note: %s; those unikernels keep running, new creates are refused\n", warn)
			}
			return nil
		},
	}
	f := set.Flags()
	f.IntVar(&unikernels, "unikernels", 0, "how many unikernels may exist")
	f.IntVar(&mem, "mem", 0, "total memory in MB")
	f.IntSliceVar(&cpus, "cpus", nil, "the CPU ids unikernels may use, e.g. 0,1")
	f.StringSliceVar(&bridges, "bridges", nil, "the bridges network devices may use, e.g. br0,br1")
	f.IntVar(&block, "block", 0, "total block storage in MB")
	f.StringArrayVar(&lift, "lift", nil, "remove a limit: unikernels, mem, cpus, bridges or block (repeat)")
	f.BoolVar(&clear, "clear", false, "start from no limits instead of the current policy")
	cmd.AddCommand(show, set)
	return cmd
}

func ints(s []int) string {
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = strconv.Itoa(n)
	}
	return orNone(strings.Join(parts, ","))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
