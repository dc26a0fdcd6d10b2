package benchmarks

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/auth"
)

// UploadsResult compares authenticated uploads by the way they log in.
type UploadsResult struct {
	Clients int
	// Token: an API token (a hash lookup per request, the check that is
	// all but free); Password: HTTP Basic with a password (scrypt once,
	// then the guard's cache of verified logins).
	Token, Password LoadResult
	Hashes          uint64 // scrypt evaluations during the password run
}

// AuthenticatedUploads sends 1 KB manual uploads (builder-web's
// /job/J/platform/P/upload) from clients concurrent clients for d, first
// with an API token, then with the same account's password.
func AuthenticatedUploads(clients int, d time.Duration) (UploadsResult, error) {
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	tl, err := openTempLedger("uploadbench", &closers)
	if err != nil {
		return UploadsResult{}, err
	}
	users := auth.New(tl.db)
	if err := users.Add("farm", "farm-password", true); err != nil {
		return UploadsResult{}, err
	}
	token, _, err := users.AddToken("farm", "bench", nil, false)
	if err != nil {
		return UploadsResult{}, err
	}
	srv, err := httpapi.New(httpapi.Config{Ledger: tl.l, VKey: tl.vkey, Users: users, MaxUploads: 64})
	if err != nil {
		return UploadsResult{}, err
	}
	url, err := serve(srv, &closers)
	if err != nil {
		return UploadsResult{}, err
	}
	var seq atomic.Int64
	run := func(set func(*http.Request)) (LoadResult, error) {
		tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		lat := make([][]time.Duration, clients)
		errc := make(chan error, clients)
		deadline := time.Now().Add(d)
		start := time.Now()
		var wg sync.WaitGroup
		for w := range clients {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					i := seq.Add(1)
					body := bytes.Repeat([]byte{byte(i)}, 1000)
					body = fmt.Appendf(body, "%d", i) // each upload distinct
					req, _ := http.NewRequest(http.MethodPost, url+"/job/bench/platform/debian-12/upload?binary_name=b.bin", bytes.NewReader(body))
					set(req)
					t0 := time.Now()
					resp, err := c.Do(req)
					if err != nil {
						errc <- err
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						errc <- fmt.Errorf("upload: %s", resp.Status)
						return
					}
					lat[w] = append(lat[w], time.Since(t0))
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		close(errc)
		if err := <-errc; err != nil {
			return LoadResult{}, err
		}
		all := slices.Concat(lat...)
		slices.Sort(all)
		if len(all) == 0 {
			return LoadResult{}, fmt.Errorf("no upload finished")
		}
		return LoadResult{Requests: len(all), RPS: float64(len(all)) / elapsed.Seconds(), P50: all[len(all)/2], P99: all[len(all)*99/100]}, nil
	}
	// Alternating runs, each half as long, summed: the ledger grows as
	// they go, which neither side should pay alone.
	r := UploadsResult{Clients: clients}
	bearer := func(req *http.Request) { req.Header.Set("Authorization", "Bearer "+token) }
	basic := func(req *http.Request) { req.SetBasicAuth("farm", "farm-password") }
	before := users.Hashes()
	d /= 2
	for _, side := range []struct {
		set func(*http.Request)
		out *LoadResult
	}{{bearer, &r.Token}, {basic, &r.Password}, {basic, &r.Password}, {bearer, &r.Token}} {
		lr, err := run(side.set)
		if err != nil {
			return r, err
		}
		if side.out.Requests == 0 {
			*side.out = lr
			continue
		}
		// Two runs of equal length: their mean rate, the worse latencies.
		side.out.RPS = (side.out.RPS + lr.RPS) / 2
		side.out.Requests += lr.Requests
		side.out.P50, side.out.P99 = max(side.out.P50, lr.P50), max(side.out.P99, lr.P99)
	}
	r.Hashes = users.Hashes() - before
	return r, nil
}
