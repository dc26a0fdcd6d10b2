package benchmarks

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Pinned reports whether HTTP load can be generated outside this process on
// a core of its own: wrk and taskset are installed and there are at least
// two CPUs (the caller's process then runs on CPU 0, see PinSelf).
func Pinned(ncpu int) bool {
	if ncpu < 2 {
		return false
	}
	for _, tool := range []string{"wrk", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false
		}
	}
	return true
}

// Wrk sends GET requests for paths (chosen at random, each with the given
// headers) to base from conns connections of one wrk thread pinned to CPU
// cpu, for d, and returns what wrk measured. Any answer other than 200, and
// any socket error, is an error.
func Wrk(cpu, conns int, d time.Duration, base string, paths []string, headers map[string]string) (LoadResult, error) {
	dir, err := os.MkdirTemp("", "wrk")
	if err != nil {
		return LoadResult{}, err
	}
	defer os.RemoveAll(dir)
	list := filepath.Join(dir, "paths")
	if err := os.WriteFile(list, []byte(strings.Join(paths, "\n")+"\n"), 0o644); err != nil {
		return LoadResult{}, err
	}
	var hdr strings.Builder
	for k, v := range headers {
		fmt.Fprintf(&hdr, "[%q] = %q, ", k, v)
	}
	script := fmt.Sprintf(`local paths = {}
for line in io.lines(%q) do paths[#paths + 1] = line end
local headers = { %s }
math.randomseed(9)
request = function()
  return wrk.format("GET", paths[math.random(#paths)], headers)
end
`, list, hdr.String())
	lua := filepath.Join(dir, "load.lua")
	if err := os.WriteFile(lua, []byte(script), 0o644); err != nil {
		return LoadResult{}, err
	}
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	out, err := exec.Command("taskset", "-c", strconv.Itoa(cpu), "wrk", "-t1", "-c"+strconv.Itoa(conns),
		"-d"+strconv.Itoa(secs)+"s", "--latency", "-s", lua, base).CombinedOutput()
	if err != nil {
		return LoadResult{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	return parseWrk(out)
}

// parseWrk reads wrk's --latency report.
func parseWrk(out []byte) (LoadResult, error) {
	var r LoadResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk: %q: %v", sc.Text(), err)
			}
			r.RPS = v
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.Atoi(f[0])
			if err != nil {
				return r, fmt.Errorf("wrk: %q: %v", sc.Text(), err)
			}
			r.Requests = n
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			v, err := time.ParseDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("wrk: %q: %v", sc.Text(), err)
			}
			if f[0] == "50%" {
				r.P50 = v
			} else {
				r.P99 = v
			}
		case strings.HasPrefix(sc.Text(), "  Non-2xx or 3xx responses:"), strings.HasPrefix(sc.Text(), "  Socket errors:"):
			return r, fmt.Errorf("wrk: %s", strings.TrimSpace(sc.Text()))
		}
	}
	if r.RPS == 0 || r.P99 == 0 {
		return r, fmt.Errorf("wrk: no rate or latency in its report:\n%s", out)
	}
	return r, nil
}
