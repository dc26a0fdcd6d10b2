package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
)

// readsLedger records jobs × builds builds over two platforms, every
// build's main binary carrying the same digest (a reverse lookup with
// jobs × builds hits), and returns a server for it.
func readsLedger(b *testing.B, jobs, builds int) (http.Handler, cas.Digest) {
	b.Helper()
	l := ledgertest.Open(b)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for j := range jobs {
		job := fmt.Sprint("job-", j)
		if _, err := l.Append(ctx, &ledger.JobDefined{Job: job}); err != nil {
			b.Fatal(err)
		}
		for i := range builds {
			main := "bin/app.hvt"
			e := &ledger.BuildRecorded{
				Job: job, UUID: uuid.New(), Platform: []string{"debian-12", "freebsd-14"}[i%2],
				Started: t0.Add(time.Duration(i) * time.Hour), Finished: t0.Add(time.Duration(i)*time.Hour + time.Minute),
				Result:     ledger.Result{Kind: ledger.ResultExited},
				Artifacts:  []ledger.Artifact{{Path: main, SHA256: cas.Sum([]byte("image")), Size: 5}},
				MainBinary: &main,
			}
			if _, err := l.Append(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	}
	s, err := httpapi.New(httpapi.Config{Ledger: l.Ledger, VKey: l.VKey})
	if err != nil {
		b.Fatal(err)
	}
	return s, cas.Sum([]byte("image"))
}

func serveGet(b *testing.B, h http.Handler, path, accept string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code/100 != 2 && rec.Code/100 != 3 {
		b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec
}

// BenchmarkFrontPage is GET / over 10 jobs of 2,000 builds: it reads the
// latest-build projection, one key per job and platform (before, it
// decoded all 20,000 builds: about 0.8 s cold).
func BenchmarkFrontPage(b *testing.B) {
	h, _ := readsLedger(b, 10, 2000)
	for b.Loop() {
		serveGet(b, h, "/", "application/json")
	}
}

// BenchmarkLatest is /job/J/build/latest on a job of 2,000 builds.
func BenchmarkLatest(b *testing.B) {
	h, _ := readsLedger(b, 1, 2000)
	for b.Loop() {
		serveGet(b, h, "/job/job-0/build/latest?platform=freebsd-14", "")
	}
}

// BenchmarkHashPage is the first page of the reverse lookup of a digest in
// 5,000 builds; it reports the answer's size (all 5,000 hits at once were
// about 1.1 MB).
func BenchmarkHashPage(b *testing.B) {
	h, d := readsLedger(b, 1, 5000)
	var n int
	for b.Loop() {
		n = serveGet(b, h, "/hash?sha256="+d.String(), "application/json").Body.Len()
	}
	b.ReportMetric(float64(n), "bytes/answer")
}

// BenchmarkHashLookup is the reverse lookup of random digests among 20,000
// builds, each with its own main binary, next to a bare handler writing a
// fixed answer of the same size: the server's own cost per lookup, without
// the network.
func BenchmarkHashLookup(b *testing.B) {
	l := ledgertest.Open(b)
	if _, err := l.Append(ctx, &ledger.JobDefined{Job: "hello"}); err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 20_000
	paths := make([]string, n)
	for i := range n {
		main := "bin/hello.hvt"
		d := cas.Sum(fmt.Appendf(nil, "image %d", i))
		paths[i] = "/hash?sha256=" + d.String()
		e := &ledger.BuildRecorded{
			Job: "hello", UUID: uuid.New(), Platform: "debian-12",
			Started: t0.Add(time.Duration(i) * time.Minute), Finished: t0.Add(time.Duration(i)*time.Minute + time.Second),
			Result:     ledger.Result{Kind: ledger.ResultExited},
			Artifacts:  []ledger.Artifact{{Path: main, SHA256: d, Size: 5 << 20}, {Path: "opam-switch", SHA256: cas.Sum([]byte("switch")), Size: 900}},
			MainBinary: &main,
		}
		if _, err := l.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	s, err := httpapi.New(httpapi.Config{Ledger: l.Ledger, VKey: l.VKey})
	if err != nil {
		b.Fatal(err)
	}
	size := serveGet(b, s, paths[0], "application/json").Body.Len()
	body := make([]byte, size)
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	b.Run("bare", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			serveGet(b, bare, paths[i%n], "application/json")
		}
	})
	b.Run("hash", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			serveGet(b, s, paths[i%n], "application/json")
		}
	})
}
