package benchmarks

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas/castest"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/ledger/builder"
)

// The memory benchmark runs a real ledger server in a child process (so
// that its memory is its own, not the load generator's) and measures the
// server's anonymous memory while clients move large builds through it:
// concurrent uploads of large incompressible builds to /upload, concurrent
// /exec exports of them and concurrent /compare of builds with large
// inputs. The figure is the peak of RssAnon in /proc/PID/status, sampled
// every 10 ms: the process's heap and stacks, not badger's memory-mapped
// files (which VmHWM also counts, and which the kernel can drop).

// memoryUser is the uploader account of the memory fixture.
const memoryUser, memoryPassword = "bench", "bench-password"

// ServeMemoryFixture is the child's side: a fresh ledger in a temporary
// directory served on loopback with the default httpapi.Config (an
// uploader account aside). It writes the URL as one line to out and serves
// until stop is closed.
func ServeMemoryFixture(out io.Writer, stop <-chan struct{}) error {
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	tl, err := openTempLedger("memorybench", &closers)
	if err != nil {
		return err
	}
	users := auth.New(tl.db)
	if err := users.Add(memoryUser, memoryPassword, true); err != nil {
		return err
	}
	s, err := httpapi.New(httpapi.Config{Ledger: tl.l, VKey: tl.vkey, Users: users})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s}
	go srv.Serve(ln)
	defer srv.Close()
	if _, err := fmt.Fprintf(out, "http://%s\n", ln.Addr()); err != nil {
		return err
	}
	<-stop
	return nil
}

// MemoryOptions size the memory benchmark.
type MemoryOptions struct {
	Uploads    int   // concurrent uploads (and exports)
	UploadSize int64 // bytes of each upload's main binary
	Compares   int   // concurrent comparisons
	InputSize  int   // bytes of the large builds' opam-switch and system-packages
}

// PhaseResult is one phase of the memory benchmark.
type PhaseResult struct {
	Name     string
	Bytes    int64         // bytes moved (request and response bodies)
	Requests int           // requests answered with success
	Busy     int           // requests answered 503 and retried after Retry-After
	Limited  int           // requests answered 429 and retried after Retry-After
	Waited   time.Duration // the Retry-After waits, summed over the clients
	Elapsed  time.Duration
	PeakAnon int64 // the server's peak RssAnon during the phase, bytes
}

// MemoryResult is what the memory benchmark measured.
type MemoryResult struct {
	Phases   []PhaseResult
	IdleAnon int64 // the server's RssAnon before the load, bytes
	PeakAnon int64 // over the whole run, bytes
	VmHWM    int64 // the server's peak resident set, mapped files included
}

// MemoryLoad starts the server (the command cmd with args, which must run
// ServeMemoryFixture), loads it as o says and returns its memory figures.
func MemoryLoad(cmd string, args []string, o MemoryOptions) (MemoryResult, error) {
	var res MemoryResult
	c := exec.Command(cmd, args...)
	c.Stderr = os.Stderr
	stdin, err := c.StdinPipe()
	if err != nil {
		return res, err
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := c.Start(); err != nil {
		return res, err
	}
	defer func() {
		stdin.Close() // the child stops serving and exits
		c.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return res, fmt.Errorf("memory server did not start: %w", err)
	}
	url := strings.TrimSpace(line)
	if res.IdleAnon, _, err = procStatus(c.Process.Pid); err != nil {
		return res, err
	}
	mon := startMonitor(c.Process.Pid)
	defer mon.stop()

	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	phase := func(name string, n int, do func(i int, p *PhaseResult) error) error {
		p := PhaseResult{Name: name}
		mon.resetPhase()
		start := time.Now()
		var mu sync.Mutex
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				var mine PhaseResult
				if err := do(i, &mine); err != nil {
					errs <- err
				}
				mu.Lock()
				p.Bytes += mine.Bytes
				p.Requests += mine.Requests
				p.Busy += mine.Busy
				p.Limited += mine.Limited
				p.Waited += mine.Waited
				mu.Unlock()
			})
		}
		wg.Wait()
		close(errs)
		p.Elapsed = time.Since(start)
		p.PeakAnon = mon.phasePeak()
		res.Phases = append(res.Phases, p)
		return <-errs
	}

	uuids := make([]uuid.UUID, o.Uploads)
	if err := phase(fmt.Sprintf("%d concurrent uploads of %d MB", o.Uploads, o.UploadSize/1e6), o.Uploads, func(i int, p *PhaseResult) error {
		ex := memoryExec(fmt.Sprintf("big-%d", i))
		uuids[i] = ex.UUID
		files := []builder.StreamFile{{Path: "bin/big.hvt", Size: o.UploadSize, Open: func() (io.ReadCloser, error) {
			return io.NopCloser(castest.RandReader(uint64(100+i), o.UploadSize)), nil
		}}}
		return upload(hc, url, ex, files, p)
	}); err != nil {
		return res, err
	}

	if err := phase(fmt.Sprintf("%d concurrent /exec exports", o.Uploads), o.Uploads, func(i int, p *PhaseResult) error {
		n, err := getBody(hc, fmt.Sprintf("%s/job/big-%d/build/%s/exec", url, i, uuids[i]), p)
		if err == nil && n < o.UploadSize {
			err = fmt.Errorf("export %d: %d bytes", i, n)
		}
		return err
	}); err != nil {
		return res, err
	}

	// Builds with large inputs: two pairs, one above the size /compare
	// parses and one just below it, so that the comparisons do real work.
	var pairs [][2]uuid.UUID
	for k, size := range []int{o.InputSize, 3 << 20} {
		var ids [2]uuid.UUID
		for j := range 2 {
			seed := uint64(10*k + j)
			sw := castest.NewSwitch(seed, size)
			pk := castest.NewPackages(seed, size*4/5)
			if j == 1 {
				sw.Change(50)
				pk.Change(50)
			}
			ex := memoryExec("inputs")
			ex.Output = append(ex.Output, builder.File{Path: "opam-switch", Data: sw.Bytes()},
				builder.File{Path: "system-packages", Data: pk.Bytes()},
				builder.File{Path: "build-environment", Data: []byte(fmt.Sprintf("OS=linux\nSEED=%d\n", seed))})
			ids[j] = ex.UUID
			if err := upload(hc, url, ex, nil, &PhaseResult{}); err != nil {
				return res, err
			}
		}
		pairs = append(pairs, ids)
	}
	if err := phase(fmt.Sprintf("%d concurrent /compare (inputs of %d MB and 3 MiB)", o.Compares, o.InputSize/1e6), o.Compares, func(i int, p *PhaseResult) error {
		// Every pair of builds across the pairs, so that none is answered
		// from the cache of an earlier one.
		a, b := pairs[i%2][0], pairs[(i/2)%2][1]
		_, err := getBody(hc, fmt.Sprintf("%s/compare/%s/%s", url, a, b), p)
		return err
	}); err != nil {
		return res, err
	}
	res.PeakAnon, res.VmHWM = mon.stop()
	return res, nil
}

func memoryExec(job string) *builder.Exec {
	t0 := time.Now().UTC().Truncate(time.Second)
	return &builder.Exec{
		Job:  builder.Job{Name: job, Script: "#!/bin/sh\nbuild\n", Platform: "debian-12"},
		UUID: uuid.New(), Started: t0, Finished: t0.Add(time.Minute),
		Console: []builder.Line{{Delta: time.Second, Data: "building"}},
		Result:  builder.Result{Kind: builder.ResultExited},
	}
}

// upload posts ex with files (or ex.Output if files is nil), generated while
// it is sent; a 503 is retried after its Retry-After.
func upload(hc *http.Client, url string, ex *builder.Exec, files []builder.StreamFile, p *PhaseResult) error {
	if files == nil {
		for _, f := range ex.Output {
			files = append(files, builder.StreamFile{Path: f.Path, Size: int64(len(f.Data)), Open: func() (io.ReadCloser, error) {
				return io.NopCloser(strings.NewReader(string(f.Data))), nil
			}})
		}
	}
	for {
		enc, err := builder.NewEncoder(ex, files)
		if err != nil {
			return err
		}
		pr, pw := io.Pipe()
		go func() {
			_, err := enc.WriteTo(pw)
			pw.CloseWithError(err)
		}()
		req, _ := http.NewRequest(http.MethodPost, url+"/upload", pr)
		req.ContentLength = enc.Size()
		req.Header.Set("Content-Type", "application/octet-stream")
		req.SetBasicAuth(memoryUser, memoryPassword)
		resp, err := hc.Do(req)
		pr.Close()
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			p.Bytes += enc.Size()
			p.Requests++
			return nil
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			// The upload slots, or the login guard's budget of logins in
			// flight per client network: pushback, retried as told.
			if resp.StatusCode == http.StatusTooManyRequests {
				p.Limited++
			} else {
				p.Busy++
			}
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			p.Waited += time.Duration(max(wait, 1)) * time.Second
			time.Sleep(time.Duration(max(wait, 1)) * time.Second)
		default:
			return fmt.Errorf("upload %s: %s: %s", ex.Job.Name, resp.Status, body)
		}
	}
}

// getBody reads url to its end; a 503 is retried after its Retry-After.
func getBody(hc *http.Client, url string, p *PhaseResult) (int64, error) {
	for {
		resp, err := hc.Get(url)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode == http.StatusServiceUnavailable {
			resp.Body.Close()
			p.Busy++
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			p.Waited += time.Duration(max(wait, 1)) * time.Second
			time.Sleep(time.Duration(max(wait, 1)) * time.Second)
			continue
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		p.Bytes += n
		p.Requests++
		return n, err
	}
}

// monitor samples a process's RssAnon.
type monitor struct {
	pid    int
	peak   atomic.Int64
	phase  atomic.Int64
	hwm    atomic.Int64
	done   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

func startMonitor(pid int) *monitor {
	m := &monitor{pid: pid, done: make(chan struct{})}
	m.wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			m.sample()
			select {
			case <-m.done:
				return
			case <-t.C:
			}
		}
	})
	return m
}

func (m *monitor) sample() {
	anon, hwm, err := procStatus(m.pid)
	if err != nil {
		return
	}
	for _, v := range []*atomic.Int64{&m.peak, &m.phase} {
		if anon > v.Load() {
			v.Store(anon)
		}
	}
	m.hwm.Store(hwm)
}

func (m *monitor) resetPhase() { m.sample(); m.phase.Store(0); m.sample() }

func (m *monitor) phasePeak() int64 { m.sample(); return m.phase.Load() }

// stop ends sampling and returns the peak RssAnon and the last VmHWM.
func (m *monitor) stop() (peak, hwm int64) {
	m.closed.Do(func() {
		m.sample()
		close(m.done)
		m.wg.Wait()
	})
	return m.peak.Load(), m.hwm.Load()
}

// procStatus reads RssAnon and VmHWM, in bytes, from /proc/PID/status.
func procStatus(pid int) (anon, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "RssAnon":
			anon = n << 10
		case "VmHWM":
			hwm = n << 10
		}
	}
	return anon, hwm, nil
}
