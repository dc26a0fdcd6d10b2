package benchmarks

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/internal/debtest"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/pkgrepo/apt"
	"github.com/buildledger/buildledger/pkgrepo/deb"
	"github.com/buildledger/buildledger/pkgrepo/publish"
)

// MakeDeb writes a Debian binary package (deb(5): ar of debian-binary,
// control.tar.gz, data.tar.gz) of package name at version, installing
// content as /usr/bin/NAME, as dpkg-deb would.
func MakeDeb(name, version string, content []byte) []byte {
	tgz := func(files map[string][]byte) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		tw := tar.NewWriter(zw)
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
			tw.Write(files[n])
		}
		tw.Close()
		zw.Close()
		return b.Bytes()
	}
	control := tgz(map[string][]byte{"./control": []byte("Package: " + name + "\nVersion: " + version +
		"\nArchitecture: all\nMaintainer: Bench <bench@example.org>\nInstalled-Size: 1\nDescription: a benchmark package\n")})
	data := tgz(map[string][]byte{"./usr/bin/" + name: content})
	var out bytes.Buffer
	out.WriteString("!<arch>\n")
	for _, m := range []struct {
		name string
		b    []byte
	}{{"debian-binary", []byte("2.0\n")}, {"control.tar.gz", control}, {"data.tar.gz", data}} {
		fmt.Fprintf(&out, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m.name, 0, 0, 0, "100644", len(m.b))
		out.Write(m.b)
		if len(m.b)%2 == 1 {
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

// AptResult is what the package repository benchmark measured.
type AptResult struct {
	Packages int
	// Initial is the time to publish the suites of all packages at once.
	Initial time.Duration
	// PerBuild is the mean time from a new build's append to its suite's
	// new signed InRelease; BuildSuite is the mean time of writing and
	// signing the same suite's indexes from packages in memory.
	PerBuild, BuildSuite time.Duration
	// StoredPerBuild and LogicalPerBuild are what the content store grew
	// by per published build (the package, its rewrite, two suites'
	// indexes), stored and before deduplication and compression.
	StoredPerBuild, LogicalPerBuild int64
	// UpdateLedger and UpdateStatic are apt-get update's median time
	// against the ledger and against the same files served by
	// http.FileServer from a directory (zero without root or apt-get).
	UpdateLedger, UpdateStatic time.Duration
	// AptSkipped says why apt-get update was not measured.
	AptSkipped string
}

// AptRepository publishes n packages in one suite, then measures adding
// builds one at a time, and apt-get update against the ledger and against
// the same files served statically.
func AptRepository(n, rounds int) (AptResult, error) {
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	tl, err := openTempLedger("aptbench", &closers)
	if err != nil {
		return AptResult{}, err
	}
	ctx := context.Background()
	key, err := apt.NewKey("bench repository")
	if err != nil {
		return AptResult{}, err
	}
	p, err := publish.New(publish.Config{Ledger: tl.l, DB: tl.db, Key: key, Reproduced: 2})
	if err != nil {
		return AptResult{}, err
	}
	t0 := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	build := func(i int) (*ledger.BuildRecorded, error) {
		b := MakeDeb(fmt.Sprintf("pkg%05d", i), "1.0", []byte(fmt.Sprintf("#!/bin/sh\necho %d\n", i)))
		info, err := tl.store.PutBytes(ctx, b)
		if err != nil {
			return nil, err
		}
		main := fmt.Sprintf("bin/pkg%05d_1.0_all.deb", i)
		return &ledger.BuildRecorded{Job: "bench", UUID: uuid.New(), Platform: "debian-12", Started: t0.Add(time.Duration(i) * time.Second),
			Finished: t0.Add(time.Duration(i)*time.Second + time.Minute), Result: ledger.Result{Kind: ledger.ResultExited},
			Script: cas.Sum([]byte("s")), Console: cas.Sum(nil), Artifacts: []ledger.Artifact{{Path: main, SHA256: info.Digest, Size: info.Size}}, MainBinary: &main}, nil
	}
	if _, err := tl.l.DefineJob(ctx, "bench"); err != nil {
		return AptResult{}, err
	}
	if err := appendConcurrently(ctx, tl.l, n, build); err != nil {
		return AptResult{}, err
	}
	r := AptResult{Packages: n}
	start := time.Now()
	if err := p.Sync(ctx); err != nil {
		return r, err
	}
	r.Initial = time.Since(start)

	before, err := tl.store.Usage()
	if err != nil {
		return r, err
	}
	for i := range rounds {
		b, err := build(n + i)
		if err != nil {
			return r, err
		}
		start := time.Now()
		if _, err := tl.l.Append(ctx, b); err != nil {
			return r, err
		}
		if err := p.Sync(ctx); err != nil {
			return r, err
		}
		r.PerBuild += time.Since(start)
	}
	r.PerBuild /= time.Duration(rounds)
	r.Packages += rounds
	after, err := tl.store.Usage()
	if err != nil {
		return r, err
	}
	r.StoredPerBuild = (after.StoredBytes - before.StoredBytes) / int64(rounds)
	r.LogicalPerBuild = (after.LogicalBytes - before.LogicalBytes) / int64(rounds)

	// The baseline: the same suite's indexes from packages in memory.
	recs, err := p.Published("debian-12", cas.Digest{}, r.Packages+1)
	if err != nil {
		return r, err
	}
	var pkgs []apt.Package
	for _, rec := range recs {
		c, err := deb.ParseControl([]byte(rec.Control))
		if err != nil {
			return r, err
		}
		pkgs = append(pkgs, apt.Package{Control: c, Filename: rec.Filename, Size: rec.Size, SHA256: rec.Served})
	}
	for range rounds {
		start := time.Now()
		if _, err := apt.BuildSuite("debian-12", []string{"amd64", "arm64"}, pkgs, key, time.Now(), true); err != nil {
			return r, err
		}
		r.BuildSuite += time.Since(start)
	}
	r.BuildSuite /= time.Duration(rounds)

	aptBin, err := exec.LookPath("apt-get")
	switch {
	case os.Geteuid() != 0:
		r.AptSkipped = "apt-get update not measured: it needs root here"
		return r, nil
	case err != nil:
		r.AptSkipped = "apt-get update not measured: no apt-get"
		return r, nil
	}
	pub, err := key.Public()
	if err != nil {
		return r, err
	}
	srv, err := httpapi.New(httpapi.Config{Ledger: tl.l, VKey: tl.vkey, Packages: p})
	if err != nil {
		return r, err
	}
	ledgerURL, err := serve(srv, &closers)
	if err != nil {
		return r, err
	}
	// The same files, by the same names, in a directory.
	static, err := os.MkdirTemp("", "aptstatic")
	if err != nil {
		return r, err
	}
	closers = append(closers, func() { os.RemoveAll(static) })
	for _, suite := range p.Suites() {
		rel, err := fetch(ledgerURL + "/apt/dists/" + suite + "/Release")
		if err != nil {
			return r, err
		}
		files := []string{"Release", "InRelease", "Release.gpg"}
		for _, line := range strings.Split(string(rel), "\n") {
			if f := strings.Fields(line); len(f) == 3 && strings.HasPrefix(line, " ") {
				files = append(files, f[2], filepath.Join(filepath.Dir(f[2]), "by-hash/SHA256", f[0]))
			}
		}
		for _, f := range files {
			b, err := fetch(ledgerURL + "/apt/dists/" + suite + "/" + f)
			if err != nil {
				return r, err
			}
			path := filepath.Join(static, "apt/dists", suite, f)
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				return r, err
			}
		}
	}
	staticURL, err := serve(http.FileServer(http.Dir(static)), &closers)
	if err != nil {
		return r, err
	}
	update := func(url string) (time.Duration, error) {
		var times []time.Duration
		for range 5 {
			dir, err := os.MkdirTemp("", "aptbench")
			if err != nil {
				return 0, err
			}
			a, err := debtest.NewAptIn(dir)
			if err == nil {
				err = a.SetSource(pub, "deb [signed-by=KEY] "+url+"/apt debian-12 main")
			}
			start := time.Now()
			var out string
			if err == nil {
				out, err = a.Run(aptBin, "update")
			}
			times = append(times, time.Since(start))
			os.RemoveAll(dir)
			if err != nil || strings.Contains(out, "E: ") {
				return 0, errors.Join(err, fmt.Errorf("apt-get update against %s:\n%s", url, out))
			}
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		return times[len(times)/2], nil
	}
	if r.UpdateStatic, err = update(staticURL); err != nil {
		return r, err
	}
	if r.UpdateLedger, err = update(ledgerURL); err != nil {
		return r, err
	}
	return r, nil
}

func fetch(url string) ([]byte, error) {
	res, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return io.ReadAll(res.Body)
}
