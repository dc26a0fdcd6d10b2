package httpapi_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/buildledger/buildledger/cas/castest"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger/builder"
)

// bodyCounter counts the request body bytes the server's handlers read, and
// tells when the first arrive.
type bodyCounter struct {
	n     atomic.Int64
	once  sync.Once
	first chan struct{}
}

func newBodyCounter() *bodyCounter { return &bodyCounter{first: make(chan struct{})} }

func (c *bodyCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &countedBody{ReadCloser: r.Body, c: c}
		h.ServeHTTP(w, r)
	})
}

type countedBody struct {
	io.ReadCloser
	c *bodyCounter
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.c.n.Add(int64(n))
		b.c.once.Do(func() { close(b.c.first) })
	}
	return n, err
}

// bigExec is sampleExec(job) whose main binary is size bytes of
// incompressible data, encoded on the fly: the reader yields the DER
// record, which is never in memory.
func bigExec(t *testing.T, job string, size int64) (*builder.Exec, []builder.StreamFile, io.Reader, int64) {
	t.Helper()
	ex := sampleExec(job)
	var files []builder.StreamFile
	for i, f := range ex.Output {
		data := f.Data
		files = append(files, builder.StreamFile{Path: f.Path, Size: int64(len(data)), Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}})
		if i == 0 {
			files[0].Size = size
			files[0].Open = func() (io.ReadCloser, error) { return io.NopCloser(castest.RandReader(9, size)), nil }
		}
	}
	enc, err := builder.NewEncoder(ex, files)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := enc.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	return ex, files, pr, enc.Size()
}

// postStream posts body (of length bytes, -1 if unknown) and returns the
// response with its body read.
func postStream(t *testing.T, u, user, pw string, body io.Reader, length int64, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, body)
	req.ContentLength = length
	req.Header.Set("Content-Type", "application/octet-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.SetBasicAuth(user, pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestUploadReadsOnlyAPrefixWhenForbidden sends 64 MiB records from a user
// who may not write to their job: the answer is 403 having read only the
// first bytes of /upload's body (the job name is the record's first field)
// and none of the manual upload's.
func TestUploadReadsOnlyAPrefixWhenForbidden(t *testing.T) {
	c := newBodyCounter()
	l, srv := uploadServerWith(t, httpapi.Config{}, c.wrap)
	_, _, body, n := bigExec(t, "other", 64<<20)
	resp, msg := postStream(t, srv.URL+"/upload", "alice", "alice-password", body, n, nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(msg, `may not upload to job "other"`) {
		t.Fatalf("/upload: %d %s", resp.StatusCode, msg)
	}
	if read := c.n.Load(); read > 256<<10 {
		t.Errorf("/upload read %d bytes of a %d-byte body before its 403", read, n)
	}
	c.n.Store(0)
	resp, msg = postStream(t, srv.URL+"/job/other/platform/debian-12/upload", "alice", "alice-password", castest.RandReader(1, 64<<20), 64<<20, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("manual upload: %d %s", resp.StatusCode, msg)
	}
	if read := c.n.Load(); read != 0 {
		t.Errorf("manual upload read %d bytes before its 403", read)
	}
	if l.Size() != 0 {
		t.Fatalf("refused uploads changed the log (size %d)", l.Size())
	}
}

// TestUploadEarly413 checks that a Content-Length over MaxBody is refused
// before any of the body is read, on both upload routes, and before the
// credentials are checked (no password is hashed for it).
func TestUploadEarly413(t *testing.T) {
	c := newBodyCounter()
	_, srv := uploadServerWith(t, httpapi.Config{MaxBody: 1 << 20}, c.wrap)
	for _, u := range []string{srv.URL + "/upload", srv.URL + "/job/hello/platform/debian-12/upload"} {
		resp, msg := postStream(t, u, "farm", "not-the-password", castest.RandReader(2, 8<<20), 8<<20, nil)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "request body of 8388608 bytes exceeds the server's limit of 1048576 bytes") {
			t.Errorf("%s: %d %s", u, resp.StatusCode, msg)
		}
		if read := c.n.Load(); read != 0 {
			t.Errorf("%s: read %d bytes before the 413", u, read)
		}
	}
}

// gated yields r's bytes once open is closed.
type gated struct {
	open <-chan struct{}
	r    io.Reader
}

func (g gated) Read(p []byte) (int, error) {
	<-g.open
	return g.r.Read(p)
}

// TestUploadSlots fills the only upload slot with an upload whose body is
// held back: another upload is answered 503 with Retry-After at once, and
// once the first completes the next is accepted.
func TestUploadSlots(t *testing.T) {
	c := newBodyCounter()
	l, srv := uploadServerWith(t, httpapi.Config{MaxUploads: 1}, c.wrap)
	der, err := sampleExec("hello").Marshal()
	if err != nil {
		t.Fatal(err)
	}
	open := make(chan struct{})
	release := sync.OnceFunc(func() { close(open) })
	t.Cleanup(release) // before the server's Close, which waits for the upload
	first := make(chan int, 1)
	go func() {
		body := io.MultiReader(bytes.NewReader(der[:20]), gated{open, bytes.NewReader(der[20:])})
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload", body)
		req.ContentLength = int64(len(der))
		req.SetBasicAuth("farm", "farm-password")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-c.first // the first upload holds the slot and is reading its body

	resp, msg := post(t, srv.URL+"/job/hello/platform/debian-12/upload", "farm", "farm-password", []byte("image"), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(msg, "retry") {
		t.Fatalf("second upload: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), msg)
	}
	release()
	if status := <-first; status != http.StatusCreated {
		t.Fatalf("first upload: %d", status)
	}
	resp, msg = post(t, srv.URL+"/job/hello/platform/debian-12/upload", "farm", "farm-password", []byte("image"), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload after the slot was freed: %d %s", resp.StatusCode, msg)
	}
	if l.Size() != 3 { // job_defined and two builds
		t.Fatalf("log size %d", l.Size())
	}
}

// peakHeap samples the heap in use until stop is called and returns the
// largest value seen, with the collector at GOGC=10 meanwhile so that the
// heap in use tracks live memory rather than garbage awaiting collection.
func peakHeap(t *testing.T) (base uint64, stop func() uint64) {
	old := debug.SetGCPercent(10)
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base = m.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return base, func() uint64 {
		close(done)
		wg.Wait()
		debug.SetGCPercent(old)
		return peak.Load()
	}
}

const mib = 1 << 20

// uploadHeapBound is what one large upload may add to the heap: the CAS
// Put pipeline's segments and transactions (about 45 MiB at most, whatever
// the size: cas.TestLargeBlobMemory), a decoder's window and the read
// buffers; exportHeapBound what an export may add: the CAS read-ahead (2
// MiB) and the buffers of the connection. Both are independent of the
// size of the transfer, here 64 MiB, which the code before
// streaming held in memory two or three times over.
const (
	uploadHeapBound = 56 * mib
	exportHeapBound = 16 * mib
)

// TestUploadBombsBounded sends compression bombs to both routes with
// MaxBody 16 MiB: 64 MiB of zeros in a few tens of KiB of zstd or gzip to
// the manual upload, which decodes them as a stream and stops after 16 MiB;
// a record claiming a 64 MiB file to /upload, which stops at the claim;
// and a zstd frame whose window is 64 MiB, which stops at the frame header.
// Each gets 413, and the heap never grows by more than uploadHeapBound.
func TestUploadBombsBounded(t *testing.T) {
	// The limit is above the heap bound, so a server that buffered the
	// decoded body up to the limit would fail here too, not only one that
	// decoded without a limit.
	l, srv := uploadServer(t, 96*mib)
	zeros := func() io.Reader { return io.LimitReader(zeroReader{}, 128*mib) }
	var zbomb, gzbomb, execBomb bytes.Buffer
	zw, _ := zstd.NewWriter(&zbomb, zstd.WithWindowSize(1<<20))
	io.Copy(zw, zeros())
	zw.Close()
	gw, _ := gzip.NewWriterLevel(&gzbomb, gzip.BestCompression)
	io.Copy(gw, zeros())
	gw.Close()
	ex := sampleExec("hello")
	enc, err := builder.NewEncoder(ex, []builder.StreamFile{{Path: "bin/hello.hvt", Size: 128 * mib, Open: func() (io.ReadCloser, error) {
		return io.NopCloser(zeros()), nil
	}}})
	if err != nil {
		t.Fatal(err)
	}
	zw, _ = zstd.NewWriter(&execBomb, zstd.WithWindowSize(1<<20))
	enc.WriteTo(zw)
	zw.Close()
	var window bytes.Buffer
	zw, _ = zstd.NewWriter(&window, zstd.WithWindowSize(64*mib))
	io.Copy(zw, io.LimitReader(zeroReader{}, 64*mib))
	zw.Close()

	manual := srv.URL + "/job/hello/platform/debian-12/upload"
	for _, c := range []struct {
		name, url, enc string
		body           []byte
		want           string
	}{
		{"zstd zeros", manual, "zstd", zbomb.Bytes(), "decoded zstd body exceeds the server's limit of 100663296 bytes"},
		{"gzip zeros", manual, "gzip", gzbomb.Bytes(), "decoded gzip body exceeds the server's limit of 100663296 bytes"},
		{"zstd exec", srv.URL + "/upload", "zstd", execBomb.Bytes(), "larger than the limit of 100663296"},
		{"zstd window", manual, "zstd", window.Bytes(), "window of more than 8 MiB"},
	} {
		base, stop := peakHeap(t)
		resp, msg := postStream(t, c.url, "farm", "farm-password", bytes.NewReader(c.body), int64(len(c.body)), map[string]string{"Content-Encoding": c.enc})
		peak := stop()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(msg, c.want) {
			t.Errorf("%s (%d bytes): %d %s", c.name, len(c.body), resp.StatusCode, msg)
		}
		t.Logf("%s: %d bytes, heap in use +%.1f MiB", c.name, len(c.body), float64(peak-base)/mib)
		if peak > base+uploadHeapBound {
			t.Errorf("%s: heap in use grew by %.1f MiB, bound %d MiB", c.name, float64(peak-base)/mib, uploadHeapBound/mib)
		}
	}
	if l.Size() != 0 {
		t.Fatalf("refused uploads changed the log (size %d)", l.Size())
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestLargeUploadAndExportMemoryBounded uploads a 64 MiB build through
// /upload and exports it again through /exec, measuring the heap in use:
// neither grows it by more than its bound (uploadHeapBound,
// exportHeapBound), where holding the build as before took 64 MiB and
// more. The export is checked byte for byte
// against the record the encoder writes, and its Content-Length.
func TestLargeUploadAndExportMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 128 MiB")
	}
	const size = 64 * mib
	l, srv := uploadServer(t, 0)
	ex, files, body, n := bigExec(t, "hello", size)

	base, stop := peakHeap(t)
	resp, msg := postStream(t, srv.URL+"/upload", "farm", "farm-password", body, n, nil)
	peak := stop()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, msg)
	}
	t.Logf("upload of %d bytes: heap in use +%.1f MiB", n, float64(peak-base)/mib)
	if peak > base+uploadHeapBound {
		t.Errorf("upload: heap in use grew by %.1f MiB, bound %d MiB", float64(peak-base)/mib, uploadHeapBound/mib)
	}
	b, err := l.Build(ex.UUID)
	if err != nil || b.Event.Artifacts[0].Size != size {
		t.Fatalf("recorded: %+v %v", b.Event.Artifacts, err)
	}

	// The ledger records artifacts in path order.
	slices.SortFunc(files, func(a, b builder.StreamFile) int { return strings.Compare(a.Path, b.Path) })
	enc, _ := builder.NewEncoder(ex, files)
	want := sha256.New()
	enc.WriteTo(want)

	base, stop = peakHeap(t)
	r, err := http.Get(srv.URL + "/job/hello/build/" + ex.UUID.String() + "/exec")
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	m, err := io.Copy(got, r.Body)
	r.Body.Close()
	peak = stop()
	if err != nil || r.StatusCode != 200 || m != n || r.ContentLength != n {
		t.Fatalf("export: %d, %d bytes (Content-Length %d), want %d: %v", r.StatusCode, m, r.ContentLength, n, err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("exported record differs from the uploaded one")
	}
	t.Logf("export of %d bytes: heap in use +%.1f MiB", m, float64(peak-base)/mib)
	if peak > base+exportHeapBound {
		t.Errorf("export: heap in use grew by %.1f MiB, bound %d MiB", float64(peak-base)/mib, exportHeapBound/mib)
	}
}

// TestExecExportMatchesMarshal uploads a build of several files and checks
// that the streamed /exec is, byte for byte, what the in-memory encoder
// (Exec.Marshal) writes for the same build: the uploaded record with its
// files in path order, the order the ledger records them in (console and
// times are at millisecond precision already).
func TestExecExportMatchesMarshal(t *testing.T) {
	_, srv := uploadServer(t, 1<<20)
	ex := sampleExec("hello")
	ex.Output = append(ex.Output, builder.File{Path: "bin/hello.hvt.debug", Data: castest.RandBytes(3, 300<<10)},
		builder.File{Path: "empty"}, builder.File{Path: "share/doc/README", Data: []byte("read me\n")})
	ex.Result = builder.Result{Kind: builder.ResultSignalled, Code: -7}
	der, err := ex.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := postDER(t, srv.URL+"/upload", "farm", "farm-password", der, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	// The ledger records artifacts in path order.
	slices.SortFunc(ex.Output, func(a, b builder.File) int { return strings.Compare(a.Path, b.Path) })
	want, err := ex.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, srv.URL+"/job/hello/build/"+ex.UUID.String()+"/exec", "")
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(want)) {
		t.Fatalf("export: %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	if !bytes.Equal([]byte(body), want) {
		back, err := builder.Parse([]byte(body), builder.Limits{})
		if err == nil {
			for _, f := range back.Output {
				t.Logf("exported %s: %d bytes", f.Path, len(f.Data))
			}
		}
		t.Fatalf("export differs from Marshal's record (%d bytes, want %d): %v", len(body), len(want), err)
	}
}

// TestUploadTruncatedBody sends less than its Content-Length and closes its
// side of the connection: both routes answer 400 saying so (the manual
// upload's failed Put was an internal error before), and nothing is logged.
func TestUploadTruncatedBody(t *testing.T) {
	l, srv := uploadServer(t, 0)
	der, _ := sampleExec("hello").Marshal()
	for _, u := range []string{"/upload", "/job/hello/platform/debian-12/upload"} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
			u, base64.StdEncoding.EncodeToString([]byte("farm:farm-password")), len(der))
		conn.Write(der[:len(der)/2])
		conn.(*net.TCPConn).CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "reading the request body failed after") {
			t.Errorf("%s: %d %s", u, resp.StatusCode, body)
		}
	}
	if l.Size() != 0 {
		t.Fatalf("truncated uploads changed the log (size %d)", l.Size())
	}
}

// TestExecExportLargeConsoleTakesSlot checks that an export holding a large
// console takes a heavy-read slot: with every slot taken it is answered 503
// with Retry-After, while an export of a build with a small console is
// served; once a slot is free the large one is served too.
func TestExecExportLargeConsoleTakesSlot(t *testing.T) {
	var s *httpapi.Server
	_, srv := uploadServerWith(t, httpapi.Config{MaxHeavyReads: 1}, func(h http.Handler) http.Handler {
		s = h.(*httpapi.Server)
		return h
	})
	small := sampleExec("hello")
	large := sampleExec("hello")
	large.Console = nil
	for i := range 30000 {
		large.Console = append(large.Console, builder.Line{Delta: time.Duration(i) * time.Millisecond, Data: fmt.Sprintf("[%05d] building a package with a long name", i)})
	}
	for _, ex := range []*builder.Exec{small, large} {
		der, err := ex.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if resp, body := postDER(t, srv.URL+"/upload", "farm", "farm-password", der, nil); resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload: %d %s", resp.StatusCode, body)
		}
	}
	release := httpapi.HoldHeavyReads(s)
	resp, body := get(t, srv.URL+"/job/hello/build/"+large.UUID.String()+"/exec", "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "console") {
		t.Fatalf("large console, no slot: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, _ := get(t, srv.URL+"/job/hello/build/"+small.UUID.String()+"/exec", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("small console, no slot: %d", resp.StatusCode)
	}
	release()
	resp, body = get(t, srv.URL+"/job/hello/build/"+large.UUID.String()+"/exec", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("large console with a slot: %d", resp.StatusCode)
	}
	back, err := builder.Parse([]byte(body), builder.Limits{})
	if err != nil || len(back.Console) != len(large.Console) || back.Console[29999] != large.Console[29999] {
		t.Fatalf("exported console: %v", err)
	}
}
