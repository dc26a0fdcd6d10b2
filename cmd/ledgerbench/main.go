// Command ledgerbench runs the project's benchmarks next to their baselines
// in one process and prints a short summary with ratios:
//
//   - durable appends/s with 1 and 64 concurrent appenders, against raw
//     badger writes of the same event bytes (batched and unbatched);
//   - CAS Put and Get MB/s on incompressible and compressible data, against
//     bare crypto/sha256 over the same bytes;
//   - inclusion and consistency proof latency at 1,000,000 leaves, against
//     verifying such a proof;
//   - DSSE attestation verification per key algorithm, against the bare
//     signature check, and a 3-of-5 policy decision;
//   - the VMM boot gate's decision time with k=3 from a warm bundle, against
//     one bare ECDSA check, and image hashing against sha256 in memory;
//   - with -only farm, the build farm's dispatch: trivial jobs per second
//     through the scheduler, 1 and 4 sandboxed workers and the upload to a
//     ledger (and kept on disk instead), against a loop of sandboxed
//     /bin/true with as many goroutines;
//   - with -only pages, the web pages (job, build with visualizations,
//     front page) with -builds builds, their p99 against /hash JSON's;
//   - with -only monitor, the monitor's events verified per second over
//     HTTP against the ledger's own replay;
//   - with -only replay, rebuilding the projections of -builds/5 and
//     -builds events (ledger verify --data), with the peak Go heap of each;
//   - with -only uploads, authenticated 1 KB uploads with 8 and 32
//     clients: with a password (HTTP Basic) against an API token;
//   - with -only apt, the package repositories: the time from a new
//     build to its suite's signed InRelease with -apt-packages packages,
//     against writing and signing the same indexes from memory, and
//     apt-get update against the ledger and against the same files served
//     statically (as root);
//   - with -only memory, a server's peak anonymous memory (RssAnon) while
//     10 clients upload 200 MB builds, 10 export them through /exec and 4
//     compare builds with large inputs, next to the bytes moved.
//
// The benchmark bodies live in internal/benchmarks and cas/castest, shared
// with the `go test -bench` wrappers.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/klog/v2"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas/castest"
	"github.com/buildledger/buildledger/internal/benchmarks"
	"github.com/buildledger/buildledger/internal/trilliantest"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/trillianlog"
)

// pinnedEnv marks a ledgerbench run again under taskset on CPU 0.
const pinnedEnv = "BUILDLEDGER_BENCH_PINNED"

func main() {
	mib := flag.Int("cas-mib", 256, "size of the CAS benchmark blobs in MiB")
	aptPackages := flag.Int("apt-packages", 10_000, "packages in the suite of the package repository benchmark")
	farmJobs := flag.Int("farm-jobs", 100, "jobs per run of the farm benchmark")
	leaves := flag.Uint64("leaves", 1_000_000, "tree size for the proof benchmarks")
	only := flag.String("only", "", "run one group: append, cas, proofs, attest, gate or lookup; or scale (Trillian appends, which need MariaDB and Trillian, and replica catch-up), trillian, replica or memory (the server's peak memory under large uploads, exports and comparisons), or farm (jobs per second through scheduler, sandboxed workers and upload; needs bubblewrap), or pages (the web pages against /hash), or monitor (ledger monitor's rate against the ledger's replay), or apt (publishing a Debian repository and apt-get update against it), or uploads (authenticated uploads: password against API token), or replay (replay rate and heap at two log sizes), or delta (a binary rebuilt daily: bytes stored against xdelta3; needs xdelta3)")
	memUploads := flag.Int("memory-uploads", 10, "concurrent uploads and exports for the memory benchmark")
	memMB := flag.Int64("memory-mb", 200, "size in MB of each upload of the memory benchmark")
	memCompares := flag.Int("memory-compares", 4, "concurrent comparisons for the memory benchmark")
	memServer := flag.Bool("memory-server", false, "internal: serve the memory benchmark's ledger (the child process of -only memory)")
	builds := flag.Int("builds", 100_000, "builds recorded for the lookup benchmark")
	conc := flag.Int("conc", 64, "concurrent HTTP clients for the lookup benchmark")
	dur := flag.Duration("duration", 10*time.Second, "length of each HTTP load run")
	deltaDays := flag.Int("delta-days", 365, "days of daily rebuilds in the delta storage benchmark")
	replicaEvents := flag.Int("replica-events", 20_000, "builds the replica catch-up benchmark replicates")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	testing.Init()
	if *memServer {
		// The child of -only memory: serve until the parent closes stdin.
		stop := make(chan struct{})
		go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
		if err := benchmarks.ServeMemoryFixture(os.Stdout, stop); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *only == "lookup" && os.Getenv(pinnedEnv) == "" && benchmarks.Pinned(runtime.NumCPU()) {
		// Serve from CPU 0 and generate the load with wrk on CPU 1, so
		// neither steals the other's core: run again under taskset.
		self, err := os.Executable()
		if err == nil {
			var taskset string
			if taskset, err = exec.LookPath("taskset"); err == nil {
				err = syscall.Exec(taskset, append([]string{"taskset", "-c", "0", self}, os.Args[1:]...), append(os.Environ(), pinnedEnv+"=1"))
			}
		}
		fmt.Fprintln(os.Stderr, "ledgerbench: cannot pin to CPU 0:", err)
		os.Exit(1)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	fmt.Printf("%-56s %20s %s\n", "benchmark", "result", "vs baseline")

	if *only == "" || *only == "append" {
		rate := func(f func(*testing.B)) float64 {
			r := testing.Benchmark(f)
			return float64(r.N) / r.T.Seconds()
		}
		raw64 := rate(func(b *testing.B) { benchmarks.RawBadgerWrites(b, 64) })
		raw1 := rate(func(b *testing.B) { benchmarks.RawBadgerWrites(b, 1) })
		a1 := rate(func(b *testing.B) { benchmarks.Append(b, 1) })
		a64 := rate(func(b *testing.B) { benchmarks.Append(b, 64) })
		row("raw badger, 1 event per synced txn", raw1, "events/s", "baseline")
		row("raw badger, 64 events per synced txn", raw64, "events/s", "baseline")
		row("ledger append, 1 appender", a1, "events/s", fmt.Sprintf("%.2f× raw batch=1", a1/raw1))
		row("ledger append, 64 appenders", a64, "events/s", fmt.Sprintf("%.2f× raw batch=64 (targets ≥ 0.5×, ≥ 14,000/s)", a64/raw64))
	}

	if *only == "" || *only == "cas" {
		n := *mib << 20
		for _, c := range []struct {
			name string
			data []byte
		}{{"incompressible", castest.RandBytes(1, n)}, {"compressible", castest.Text(2, n)}} {
			mbps := func(f func(*testing.B, []byte)) float64 {
				r := testing.Benchmark(func(b *testing.B) { f(b, c.data) })
				return float64(r.Bytes) * float64(r.N) / r.T.Seconds() / 1e6
			}
			sha := mbps(castest.BenchSHA256)
			disk := mbps(benchmarks.FileWriteSync)
			put := mbps(castest.BenchPut)
			again := mbps(castest.BenchPutExisting)
			get := mbps(castest.BenchGet)
			row(fmt.Sprintf("sha256, %d MiB %s", *mib, c.name), sha, "MB/s", "baseline")
			row("  file write + fsync (disk ceiling)", disk, "MB/s", fmt.Sprintf("%.2f× sha256", disk/sha))
			row("  CAS put, new content", put, "MB/s", fmt.Sprintf("%.2f× sha256, %.2f× disk", put/sha, put/disk))
			row("  CAS put, content already stored", again, "MB/s", fmt.Sprintf("%.2f× sha256", again/sha))
			row("  CAS get (verified)", get, "MB/s", fmt.Sprintf("%.2f× sha256", get/sha))
		}
	}

	if *only == "" || *only == "attest" {
		f, err := benchmarks.NewAttestFixture()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		perSec := func(fn func(*testing.B)) float64 {
			r := testing.Benchmark(fn)
			return float64(r.N) / r.T.Seconds()
		}
		for _, alg := range benchmarks.Algorithms {
			raw := perSec(func(b *testing.B) { benchmarks.VerifyRawSignature(b, f, alg) })
			env := perSec(func(b *testing.B) { benchmarks.VerifyEnvelope(b, f, alg) })
			row("bare "+string(alg)+" signature check", raw, "checks/s", "baseline")
			row("DSSE envelope verify, "+string(alg), env, "envs/s", fmt.Sprintf("%.2f× bare signature", env/raw))
		}
		raw := perSec(func(b *testing.B) { benchmarks.VerifyRawSignature(b, f, attest.ECDSAP256) })
		pol := perSec(func(b *testing.B) { benchmarks.Policy3of5(b, f) })
		row("3-of-5 policy decision (7 attestations)", pol, "decisions/s", fmt.Sprintf("%.1f× a bare ECDSA check (%.1f µs each)", pol/raw, 1e6/pol))
	}

	if *only == "" || *only == "gate" {
		f, err := benchmarks.NewGateFixture()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		r := testing.Benchmark(func(b *testing.B) { benchmarks.GateDecision(b, f) })
		f.Close()
		per := r.T / time.Duration(r.N)
		raw := testing.Benchmark(func(b *testing.B) { benchmarks.VerifyRawSignatureECDSA(b) })
		rawPer := raw.T / time.Duration(raw.N)
		row("gate decision, k=3, warm bundle (µs)", float64(per.Microseconds()), "µs", fmt.Sprintf("%.1f× one bare ECDSA check (target < 5 ms)", float64(per)/float64(rawPer)))
		var closers []func()
		path, data, err := benchmarks.ImageFile(*mib<<20, &closers)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		mbps := func(fn func(*testing.B)) float64 {
			r := testing.Benchmark(fn)
			return float64(r.Bytes) * float64(r.N) / r.T.Seconds() / 1e6
		}
		sha := mbps(func(b *testing.B) { benchmarks.SHA256Memory(b, data) })
		img := mbps(func(b *testing.B) { benchmarks.HashImage(b, path, len(data)) })
		for _, c := range closers {
			c()
		}
		row("sha256 in memory", sha, "MB/s", "baseline")
		row(fmt.Sprintf("image hashing, %d MiB file", *mib), img, "MB/s", fmt.Sprintf("%.2f× sha256 in memory", img/sha))
	}

	if *only == "farm" {
		for _, upload := range []bool{false, true} {
			for _, workers := range []int{1, 4} {
				r, err := benchmarks.FarmDispatch(*farmJobs, workers, upload)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				where := "kept on disk"
				if upload {
					where = "recorded in a ledger"
				}
				row(fmt.Sprintf("sandboxed /bin/true in a loop, %d goroutines", workers), r.SandboxLoop, "runs/s", "baseline")
				row(fmt.Sprintf("farm jobs, %d workers, %s", workers, where), r.PerSecond, "jobs/s", fmt.Sprintf("%.2f× the loop", r.PerSecond/r.SandboxLoop))
			}
		}
	}

	if *only == "scale" || *only == "replica" {
		r, err := benchmarks.ReplicaCatchUp(*replicaEvents)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		rate := float64(r.Events) / r.Elapsed.Seconds()
		row("primary replaying its own log (Replay)", r.ReplayPerSecond, "events/s", "baseline")
		row(fmt.Sprintf("replica catch-up over HTTP, %d builds", r.Events), rate, "events/s", fmt.Sprintf("%.2f× local replay", rate/r.ReplayPerSecond))
	}

	if *only == "scale" || *only == "trillian" {
		// Not in the default set: it needs MariaDB and Trillian installed.
		klog.LogToStderr(false)
		klog.SetOutput(io.Discard)
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/google/trillian").Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		env, err := trilliantest.Start(filepath.Join(strings.TrimSpace(string(out)), "storage/mysql/schema/storage.sql"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		newTree := func() (ledger.Backend, error) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			id, err := trillianlog.CreateTree(ctx, env.Addr, "bench")
			if err != nil {
				return nil, err
			}
			return trillianlog.Dial(ctx, env.Addr, id)
		}
		rate := func(f func(*testing.B)) float64 {
			r := testing.Benchmark(f)
			return float64(r.N) / r.T.Seconds()
		}
		for _, n := range []int{1, 64} {
			emb := rate(func(b *testing.B) { benchmarks.Append(b, n) })
			alone := rate(func(b *testing.B) { benchmarks.TrillianAlone(b, env.Addr, n, 20*time.Millisecond) })
			tri := rate(func(b *testing.B) { benchmarks.AppendOn(b, n, newTree) })
			row(fmt.Sprintf("ledger append, embedded, %d appender(s)", n), emb, "events/s", "")
			row(fmt.Sprintf("Trillian+MariaDB alone (QueueLeaf), %d client(s)", n), alone, "leaves/s", "baseline")
			row(fmt.Sprintf("ledger append, Trillian+MariaDB, %d appender(s)", n), tri, "events/s", fmt.Sprintf("%.2f× Trillian alone (target ≥ 0.9); %.2f× embedded", tri/alone, tri/emb))
		}
		env.Stop()
	}

	if *only == "" || *only == "lookup" || *only == "pages" || *only == "monitor" {
		start := time.Now()
		f, err := benchmarks.NewLookupFixture(*builds)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "(recorded %d builds in %s)\n", *builds, time.Since(start).Round(time.Millisecond))
		jsonHdr := http.Header{"Accept": {"application/json"}}
		rnd := rand.New(rand.NewPCG(9, 9))
		var mu sync.Mutex
		hashURL := func(int) string {
			mu.Lock()
			d := f.Digests[rnd.IntN(len(f.Digests))]
			mu.Unlock()
			return f.LedgerURL + "/hash?sha256=" + d.String()
		}
		// Warm up (connections, caches, badger's compactions after the bulk
		// load) before measuring either side.
		if _, err := benchmarks.Load(hashURL, jsonHdr, *conc, *dur/2); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var bare, hash benchmarks.LoadResult
		if os.Getenv(pinnedEnv) != "" {
			// wrk on CPU 1 against this process on CPU 0: both sides' rate
			// is the server's, not the load generator's.
			paths := make([]string, len(f.Digests))
			for i, d := range f.Digests {
				paths[i] = "/hash?sha256=" + d.String()
			}
			accept := map[string]string{"Accept": "application/json"}
			for _, c := range []int{8, *conc} {
				bare, err = benchmarks.Wrk(1, c, *dur, f.BareURL, []string{"/"}, accept)
				if err == nil {
					hash, err = benchmarks.Wrk(1, c, *dur, f.LedgerURL, paths, accept)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				row(fmt.Sprintf("bare net/http handler, wrk on its own core, %d conns", c), bare.RPS, "req/s", fmt.Sprintf("baseline; p99 %s", bare.P99.Round(10*time.Microsecond)))
				row(fmt.Sprintf("GET /hash JSON, %d builds, %d conns", *builds, c), hash.RPS, "req/s",
					fmt.Sprintf("%.2f× bare (target ≥ 0.8); p99 %.2f× bare's (target ≤ 1.3)", hash.RPS/bare.RPS, float64(hash.P99)/float64(bare.P99)))
			}
		} else {
			if *only == "lookup" {
				fmt.Fprintln(os.Stderr, "(no wrk, taskset or second CPU: the load generator shares the server's cores)")
			} else {
				fmt.Fprintln(os.Stderr, "(the load generator runs in this process; -only lookup measures /hash with wrk on its own core)")
			}
			if bare, err = benchmarks.Load(func(int) string { return f.BareURL + "/" }, jsonHdr, *conc, *dur); err == nil {
				hash, err = benchmarks.Load(hashURL, jsonHdr, *conc, *dur)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			row(fmt.Sprintf("bare net/http handler, %d clients", *conc), bare.RPS, "req/s", fmt.Sprintf("baseline; p99 %s", bare.P99.Round(10*time.Microsecond)))
			row(fmt.Sprintf("GET /hash JSON, %d builds", *builds), hash.RPS, "req/s",
				fmt.Sprintf("%.2f× bare (target ≥ 0.8); p99 %.2f× bare's (target ≤ 1.3)", hash.RPS/bare.RPS, float64(hash.P99)/float64(bare.P99)))
		}
		defer f.Close()
		if *only == "pages" {
			pagesBench(f, hashURL, hash, *conc, *dur)
		}
		if *only == "monitor" {
			mon, rep, err := f.MonitorRate(context.Background(), f.VKey)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			row("ledger replay (ledger verify --data)", rep, "events/s", "baseline")
			row(fmt.Sprintf("monitor over HTTP, %d events", *builds), mon, "events/s", fmt.Sprintf("%.2f× replay (target ≥ 0.5)", mon/rep))
		}
	}

	if *only == "replay" {
		var base float64
		for _, n := range []int{*builds / 5, *builds} {
			r, err := benchmarks.ReplayRun(n)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			ratio := "baseline"
			if base != 0 {
				ratio = fmt.Sprintf("%.2f× the smaller log", r.PerSec/base)
			}
			base = r.PerSec
			row(fmt.Sprintf("replay (ledger verify --data), %d events", r.Events), r.PerSec, "events/s", fmt.Sprintf("%s; peak Go heap %d MiB", ratio, r.PeakHeap>>20))
		}
	}

	if *only == "delta" {
		r, err := benchmarks.DeltaYear(*deltaDays, 5<<20)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		// Every day after the first, which anything stores whole.
		perDay := func(n int64) float64 { return float64(n) / float64(r.Days-1) }
		stored, chunked := r.Stored-r.FirstDay, r.ChunkedOnly-r.ChunkedFirst
		row(fmt.Sprintf("a 5 MiB binary rebuilt daily, %d days, 1%% changed a day", r.Days), float64(r.Logical)/float64(r.Days), "bytes/day", "logical")
		row("xdelta3 -9 between consecutive days", perDay(r.XdeltaSum), "bytes/day", "baseline")
		row("stored by the ledger after the first day", perDay(stored), "bytes/day",
			fmt.Sprintf("%.2f× xdelta3 (target ≤ 2); %d days patched, %d restarted whole", float64(stored)/float64(r.XdeltaSum), r.PatchedDays, r.WholeRestart))
		row("stored by chunks alone (before patches)", perDay(chunked), "bytes/day", fmt.Sprintf("%.2f× xdelta3", float64(chunked)/float64(r.XdeltaSum)))
		row("the first day's binary, stored whole", float64(r.FirstDay), "bytes", "")
		row(fmt.Sprintf("read the last day's binary (%d patches deep)", r.NewestDepth), float64(r.ReadNewest.Microseconds())/1000, "ms", fmt.Sprintf("again: %.1f ms", float64(r.ReadAgain.Microseconds())/1000))
	}

	if *only == "uploads" {
		for _, clients := range []int{8, 32} {
			r, err := benchmarks.AuthenticatedUploads(clients, *dur)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			row(fmt.Sprintf("1 KB uploads with an API token, %d clients", clients), r.Token.RPS, "uploads/s", fmt.Sprintf("baseline; p50 %s", r.Token.P50.Round(100*time.Microsecond)))
			row(fmt.Sprintf("1 KB uploads with a password, %d clients", clients), r.Password.RPS, "uploads/s",
				fmt.Sprintf("%.2f× token (target ≥ 0.8); p50 %s; %d scrypt", r.Password.RPS/r.Token.RPS, r.Password.P50.Round(100*time.Microsecond), r.Hashes))
		}
	}

	if *only == "apt" {
		r, err := benchmarks.AptRepository(*aptPackages, 20)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		row(fmt.Sprintf("indexes written and signed from memory, %d packages", r.Packages), float64(r.BuildSuite.Microseconds())/1000, "ms", "baseline")
		row("publishing one new build (append to signed InRelease)", float64(r.PerBuild.Microseconds())/1000, "ms", fmt.Sprintf("%.2f× the baseline", r.PerBuild.Seconds()/r.BuildSuite.Seconds()))
		row("content store growth per published build", float64(r.StoredPerBuild)/1024, "KiB", fmt.Sprintf("%.3f× the %d KiB of files written", float64(r.StoredPerBuild)/float64(r.LogicalPerBuild), r.LogicalPerBuild/1024))
		row(fmt.Sprintf("publishing %d builds at once", *aptPackages), float64(r.Initial.Milliseconds()), "ms", fmt.Sprintf("%.2f ms per package", float64(r.Initial.Microseconds())/1000/float64(*aptPackages)))
		if r.AptSkipped != "" {
			fmt.Println(r.AptSkipped)
		} else {
			row("apt-get update, the same files served statically", float64(r.UpdateStatic.Milliseconds()), "ms", "baseline")
			row("apt-get update against the ledger", float64(r.UpdateLedger.Milliseconds()), "ms", fmt.Sprintf("%.2f× static", r.UpdateLedger.Seconds()/r.UpdateStatic.Seconds()))
		}
	}

	if *only == "memory" {
		// Not in the default set: it moves several GB through a server in
		// a child process, whose memory is measured alone.
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		res, err := benchmarks.MemoryLoad(self, []string{"-memory-server"}, benchmarks.MemoryOptions{
			Uploads: *memUploads, UploadSize: *memMB * 1e6, Compares: *memCompares, InputSize: 50e6})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		const mib = 1 << 20
		row("server idle, before the load", float64(res.IdleAnon)/mib, "MiB anon", "baseline")
		for _, p := range res.Phases {
			row(p.Name, float64(p.PeakAnon)/mib, "MiB anon", fmt.Sprintf("peak RssAnon; %d requests moved %.0f MB in %s (%.0f MB/s); retried after %d 503s and %d 429s (%s of Retry-After in all)",
				p.Requests, float64(p.Bytes)/1e6, p.Elapsed.Round(100*time.Millisecond), float64(p.Bytes)/1e6/p.Elapsed.Seconds(), p.Busy, p.Limited, p.Waited))
		}
		row("server peak anonymous memory, whole run", float64(res.PeakAnon)/mib, "MiB anon", fmt.Sprintf("target < 512 MiB; VmHWM %.0f MiB (with badger's mapped files)", float64(res.VmHWM)/mib))
	}

	if *only == "" || *only == "proofs" {
		start := time.Now()
		f, err := benchmarks.NewTreeFixture(*leaves)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		fmt.Fprintf(os.Stderr, "(built a %d-leaf tree in %s)\n", *leaves, time.Since(start).Round(time.Millisecond))
		ns := func(fn func(*testing.B, *benchmarks.TreeFixture)) float64 {
			r := testing.Benchmark(func(b *testing.B) { fn(b, f) })
			return float64(r.T.Nanoseconds()) / float64(r.N)
		}
		ver := ns(benchmarks.VerifyInclusion)
		inc := ns(benchmarks.InclusionProof)
		con := ns(benchmarks.ConsistencyProof)
		row(fmt.Sprintf("verify inclusion proof, %d leaves", *leaves), ver/1e3, "µs", "baseline")
		row("build inclusion proof", inc/1e3, "µs", fmt.Sprintf("%.1f× verify (target < 50 µs)", inc/ver))
		row("build consistency proof", con/1e3, "µs", fmt.Sprintf("%.1f× verify", con/ver))
	}
}

// pagesBench measures the web pages a person reads, with 100,000 builds
// (-builds) in the ledger: the job page, build pages with both
// visualizations cached, and the front page, each against /hash JSON
// measured just before in the same run (p99 target: within 2×).
func pagesBench(f *benchmarks.LookupFixture, hashURL func(int) string, hash benchmarks.LoadResult, conc int, dur time.Duration) {
	self, err := os.Executable()
	if err == nil {
		var elf []byte
		if elf, err = os.ReadFile(self); err == nil {
			var pages []string
			if pages, err = f.AddPageBuilds(16, elf); err == nil {
				html := http.Header{"Accept": {"text/html"}}
				for _, p := range []struct {
					name string
					url  func(int) string
				}{
					{"job page (HTML, 100 builds, charts)", func(int) string { return f.LedgerURL + "/job/bench" }},
					{"build page (HTML, treemap and dependency graph cached)", func(i int) string { return pages[i%len(pages)] }},
					{"front page (HTML)", func(int) string { return f.LedgerURL + "/" }},
					// Pages are kept per log size; this one misses the cache
					// (start= varies over 5,000 pages), to show a render's cost.
					{"job page, not cached (start= varies)", func(i int) string { return fmt.Sprintf("%s/job/bench?start=%d", f.LedgerURL, i%5000) }},
				} {
					if _, err = benchmarks.Load(p.url, html, conc, dur/4); err != nil {
						break
					}
					var r benchmarks.LoadResult
					if r, err = benchmarks.Load(p.url, html, conc, dur); err != nil {
						break
					}
					target := " (target ≤ 2)"
					if strings.Contains(p.name, "not cached") {
						target = ""
					}
					row(p.name, r.RPS, "req/s", fmt.Sprintf("p99 %s = %.2f× /hash p99%s", r.P99.Round(10*time.Microsecond), float64(r.P99)/float64(hash.P99), target))
				}
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func row(name string, value float64, unit string, ratio string) {
	fmt.Printf("%-56s %10.0f %-9s %s\n", name, value, unit, ratio)
}
