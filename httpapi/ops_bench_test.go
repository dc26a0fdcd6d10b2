package httpapi_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// BenchmarkLoginFlood times an uploader's upload (ns/op) while 200 clients,
// each from its own address, send wrong passwords without pause, with the
// default login limits. "cached" is an uploader whose login verified
// before the flood; "first" logs in for the first time during it and
// retries on 503 (busy). It reports the passwords hashed (all clients)
// and the busy answers per upload.
func BenchmarkLoginFlood(b *testing.B) {
	for _, warm := range []bool{true, false} {
		name := "first"
		if warm {
			name = "cached"
		}
		b.Run(name, func(b *testing.B) {
			l := ledgertest.Open(b)
			users, srv := opsServer(b, l, httpapi.Config{ClientIPHeader: "X-Real-IP"})
			if warm {
				if st, _, err := manualUpload(srv, "192.0.2.1", "farm", "farm-password"); err != nil || st != http.StatusCreated {
					b.Fatalf("upload before the flood: %d %v", st, err)
				}
			}
			var stop atomic.Bool
			var wg sync.WaitGroup
			var flooded atomic.Int64
			started := make(chan struct{})
			var once sync.Once
			for i := range 200 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					client := fmt.Sprintf("198.51.%d.%d", i/250, i%250+1)
					for !stop.Load() {
						once.Do(func() { close(started) })
						if _, _, err := manualUpload(srv, client, "farm", fmt.Sprint("guess-", i)); err != nil {
							return
						}
						flooded.Add(1)
					}
				}()
			}
			<-started
			hashes := users.Hashes()
			busy := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				user := "farm"
				if !warm {
					// A new account each time, so each login is a first one.
					user = fmt.Sprint("new-", i)
					b.StopTimer()
					if err := users.Add(user, user+"-password", true); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				for {
					st, _, err := manualUpload(srv, "192.0.2.1", user, user+"-password")
					if err != nil {
						b.Fatal(err)
					}
					if st == http.StatusServiceUnavailable {
						busy++
						continue
					}
					if st != http.StatusCreated {
						b.Fatalf("upload during the flood: %d", st)
					}
					break
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(users.Hashes()-hashes)/float64(b.N), "flood-hashes/op")
			b.ReportMetric(float64(busy)/float64(b.N), "busy/op")
			stop.Store(true)
			wg.Wait()
		})
	}
}
