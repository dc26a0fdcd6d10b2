package benchmarks

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/buildledger/buildledger/farm/client"
	"github.com/buildledger/buildledger/farm/proto"
	"github.com/buildledger/buildledger/farm/sandbox"
	"github.com/buildledger/buildledger/farm/scheduler"
	"github.com/buildledger/buildledger/farm/worker"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/auth"
	httpclient "github.com/buildledger/buildledger/httpapi/client"
	"github.com/buildledger/buildledger/ledger"
)

// FarmResult is one dispatch run: jobs per second through the farm and,
// as its baseline, the same number of sandboxed /bin/true spawned in a
// loop by as many goroutines as there were workers.
type FarmResult struct {
	Jobs, Workers int
	Upload        bool    // builds were recorded in a ledger (else kept on disk)
	PerSecond     float64 // jobs scheduled, run, reported and recorded, per second
	SandboxLoop   float64 // sandboxed /bin/true per second
}

func (r FarmResult) String() string {
	return fmt.Sprintf("%.1f jobs/s, %.2f× a loop of sandboxed true (%.1f/s)", r.PerSecond, r.PerSecond/r.SandboxLoop, r.SandboxLoop)
}

// SandboxLoop spawns n sandboxed /bin/true, spread over workers
// goroutines, and returns the rate.
func SandboxLoop(n, workers int) (float64, error) {
	dir, err := os.MkdirTemp("", "sandboxloop")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	argv, err := sandbox.Config{}.Command([]string{"/bin/true"}, dir, []string{dir}, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
					errs <- fmt.Errorf("sandboxed true: %v: %s", err, out)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// FarmDispatch schedules n trivial jobs (the script `true`, the same
// work as the baseline's) on one platform, starts workers sandboxed workers and measures
// until every build is recorded: in a ledger served on loopback (through
// the verifying client, one scrypt-checked upload per build) when upload
// is set, else kept on the scheduler's disk. Workers record no
// system-packages (a dpkg query per job would dominate).
func FarmDispatch(n, workers int, upload bool) (FarmResult, error) {
	res := FarmResult{Jobs: n, Workers: workers, Upload: upload}
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	dir, err := os.MkdirTemp("", "farmbench")
	if err != nil {
		return res, err
	}
	closers = append(closers, func() { os.RemoveAll(dir) })
	cfg := scheduler.Config{Dir: filepath.Join(dir, "scheduler"), Tick: time.Hour, RetryUpload: 100 * time.Millisecond}
	var recorded func() (int, error)
	if upload {
		p, err := openTempLedger("farmbench-ledger", &closers)
		if err != nil {
			return res, err
		}
		users := auth.New(p.db)
		if err := users.Add("farm", "farm-password", true); err != nil {
			return res, err
		}
		h, err := httpapi.New(httpapi.Config{Ledger: p.l, VKey: p.vkey, Users: users})
		if err != nil {
			return res, err
		}
		url, err := serve(h, &closers)
		if err != nil {
			return res, err
		}
		c, err := httpclient.New(url, p.vkey, nil)
		if err != nil {
			return res, err
		}
		cfg.Upload = &scheduler.LedgerUploader{Client: c, Cred: httpclient.Credentials{User: "farm", Password: "farm-password"}}
		recorded = func() (int, error) {
			n := 0
			for i := 0; ; i++ {
				bs, err := p.l.JobBuilds(fmt.Sprintf("bench-%d", i), ledger.BuildFilter{})
				if err != nil || len(bs) == 0 {
					return n, nil
				}
				n++
			}
		}
	} else {
		recorded = func() (int, error) {
			m, err := filepath.Glob(filepath.Join(cfg.Dir, "builds", "*", "*", "full"))
			return len(m), err
		}
	}
	s, err := scheduler.New(cfg)
	if err != nil {
		return res, err
	}
	closers = append(closers, func() { s.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); s.Serve(ctx, ln) }()
	closers = append(closers, func() { cancel(); <-served })
	d := client.Dialer{Addr: ln.Addr().String()}
	platform := "bench"
	for i := 0; i < n; i++ {
		if err := client.Do(ctx, d, proto.Schedule{Period: proto.Never, Job: proto.ScriptJob{
			Name: fmt.Sprintf("bench-%d", i), Script: "true\n", Platform: &platform}}); err != nil {
			return res, err
		}
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			_ = worker.Run(wctx, worker.Config{Scheduler: d, Platform: platform, Sandbox: &sandbox.Config{},
				Root: filepath.Join(dir, fmt.Sprintf("root-%d", w)), SkipSystem: true})
		}(w)
	}
	defer func() { stop(); wg.Wait() }()
	for deadline := start.Add(10 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		got, err := recorded()
		if err != nil {
			return res, err
		}
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("farm benchmark: %d of %d builds recorded after 10 minutes", got, n)
		}
	}
	res.PerSecond = float64(n) / time.Since(start).Seconds()
	res.SandboxLoop, err = SandboxLoop(n, workers)
	return res, err
}
