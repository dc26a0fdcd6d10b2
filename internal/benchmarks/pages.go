package benchmarks

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/httpapi/client"
	ledgermonitor "github.com/buildledger/buildledger/httpapi/monitor"
	"github.com/buildledger/buildledger/internal/kv"
	"github.com/buildledger/buildledger/ledger"
)

// pageSwitch is a small opam switch export for the pages' dependency
// graphs.
const pageSwitch = `opam-version: "2.0"
compiler: ["ocaml.4.14.2"]
roots: ["ocaml.4.14.2" "bench.1"]
installed: ["bench.1" "dune.3.0" "lib.2.0" "ocaml.4.14.2"]
package "bench" {
  opam-version: "2.0"
  depends: [ "ocaml" "dune" "lib" ]
}
package "lib" {
  opam-version: "2.0"
  depends: [ "ocaml" "dune" ]
}
`

// AddPageBuilds records n more builds of job "bench" whose main binary is
// elf (an ELF file, for the treemap) and whose opam-switch is stored, and
// returns their page URLs once both visualizations are computed and
// cached (the pages are then measured as readers see them most of the
// time).
func (f *LookupFixture) AddPageBuilds(n int, elf []byte) ([]string, error) {
	ctx := context.Background()
	bin, err := f.store.PutBytes(ctx, elf)
	if err != nil {
		return nil, err
	}
	sw, err := f.store.PutBytes(ctx, []byte(pageSwitch))
	if err != nil {
		return nil, err
	}
	var urls []string
	for i := range n {
		main := "bin/bench.hvt"
		start := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
		swd := sw.Digest
		b := &ledger.BuildRecorded{Job: "bench", UUID: uuid.New(), Platform: "debian-12", Started: start, Finished: start.Add(90 * time.Second),
			Result: ledger.Result{Kind: ledger.ResultExited}, Script: sw.Digest, Console: sw.Digest, Inputs: ledger.Inputs{OpamSwitch: &swd},
			Artifacts:  []ledger.Artifact{{Path: main, SHA256: bin.Digest, Size: int64(len(elf))}, {Path: "opam-switch", SHA256: sw.Digest, Size: int64(len(pageSwitch))}},
			MainBinary: &main}
		if _, err := f.l.Append(ctx, b); err != nil {
			return nil, err
		}
		urls = append(urls, f.LedgerURL+"/job/bench/build/"+b.UUID.String())
	}
	// Both visualizations depend on the content only: the first page's
	// computation serves them all.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := http.Get(urls[0])
		if err != nil {
			return nil, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", urls[0], resp.Status)
		}
		if strings.Contains(string(body), `class="treemap"`) && strings.Contains(string(body), `class="depgraph"`) {
			return urls, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the visualizations of %s were not computed in 5 minutes", urls[0])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// MonitorRate verifies the whole fixture log with a monitor (package
// httpapi/monitor, no blobs fetched) over HTTP, and replays the ledger
// itself (re-hashing and re-projecting every event), returning both in
// events per second.
func (f *LookupFixture) MonitorRate(ctx context.Context, vkey string) (monitorRate, replayRate float64, err error) {
	dir, err := os.MkdirTemp("", "monitorbench")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	db, err := kv.Open(dir, kv.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	c, err := client.New(f.LedgerURL, vkey, nil)
	if err != nil {
		return 0, 0, err
	}
	m := ledgermonitor.New(ledgermonitor.Config{Client: c, DB: db, Blobs: ledgermonitor.BlobsNone, Chunk: 4096})
	start := time.Now()
	var n uint64
	for {
		res, err := m.Step(ctx)
		if err != nil {
			return 0, 0, err
		}
		if len(res.Findings) > 0 {
			return 0, 0, fmt.Errorf("the monitor found %d violations in an honest log: %v", len(res.Findings), res.Findings[0])
		}
		n = res.To
		if res.To == res.Checkpoint.Size {
			break
		}
	}
	monitorRate = float64(n) / time.Since(start).Seconds()
	start = time.Now()
	if err := f.l.Replay(ctx); err != nil {
		return 0, 0, err
	}
	replayRate = float64(f.l.Size()) / time.Since(start).Seconds()
	return monitorRate, replayRate, nil
}
