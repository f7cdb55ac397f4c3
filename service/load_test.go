package service

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/verify"
)

// loadResult summarises a load run.
type loadResult struct {
	n, errors    int
	elapsed      time.Duration
	cpu          time.Duration // user+system CPU of the whole test process (clients too)
	p50, p99     time.Duration
	peakRSSBytes int64
}

func (r loadResult) String() string {
	return fmt.Sprintf("%d requests in %s (%.0f/s), p50 %s, p99 %s, %d errors, peak RSS %d MiB, %.2f ms CPU per request (clients included)",
		r.n, r.elapsed.Round(time.Millisecond), float64(r.n)/r.elapsed.Seconds(), r.p50.Round(10*time.Microsecond),
		r.p99.Round(10*time.Microsecond), r.errors, r.peakRSSBytes>>20, float64(r.cpu.Microseconds())/1000/float64(r.n))
}

// runLoad sends n copies of body from clients concurrent clients over keep-alive connections;
// every answer must be HTTP 200 with is_valid true.
func runLoad(tb testing.TB, url string, body []byte, n, clients int) loadResult {
	tb.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	lat := make([]time.Duration, n)
	var mu sync.Mutex
	errs := 0
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				resp, err := c.Post(url, "application/json", bytes.NewReader(body))
				ok := err == nil
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					ok = resp.StatusCode == 200 && bytes.Contains(b, []byte(`"is_valid":true`))
				}
				lat[i] = time.Since(t0)
				if !ok {
					mu.Lock()
					errs++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return loadResult{n: n, errors: errs, elapsed: el, cpu: cpuTime() - cpu0, p50: lat[n/2], p99: lat[n*99/100], peakRSSBytes: peakRSS()}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is the process's high-water resident set (Linux VmHWM), 0 elsewhere.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// TestLoadLite: a few hundred warm lite verifications from 32 concurrent clients over loopback,
// zero errors. Short enough for CI on a contended machine; BenchmarkLoadLite is the long run.
func TestLoadLite(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped in -short mode")
	}
	_, base, _ := liteServer(t, Config{MaxConcurrent: 64})
	body := testvectors.ReadShared(t, liteGetQuote)
	r := runLoad(t, base+"/verify", body, 320, 32)
	t.Logf("warm lite, 32 clients: %s", r)
	if r.errors != 0 {
		t.Fatalf("%d errors", r.errors)
	}
}

// BenchmarkLoadLite: b.N warm lite verifications from 32 concurrent clients; reports requests
// per second, p50/p99 latency and the peak RSS of the test process (client and server).
func BenchmarkLoadLite(b *testing.B) {
	_, base, _ := liteServer(b, Config{MaxConcurrent: 64})
	body := testvectors.ReadShared(b, liteGetQuote)
	runLoad(b, base+"/verify", body, 64, 32) // warm the store and connections
	b.ResetTimer()
	r := runLoad(b, base+"/verify", body, max(b.N, 32), 32)
	b.StopTimer()
	if r.errors != 0 {
		b.Fatalf("%d errors", r.errors)
	}
	b.ReportMetric(float64(r.n)/r.elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(r.peakRSSBytes>>20), "peak-RSS-MiB")
	b.ReportMetric(float64(r.cpu.Microseconds())/1000/float64(r.n), "CPU-ms/req")
}

// BenchmarkWarmLite is one lite verification at a time over HTTP, the store warm.
func BenchmarkWarmLite(b *testing.B) {
	_, base, c := liteServer(b, Config{})
	body := testvectors.ReadShared(b, liteGetQuote)
	verifyAt(b, c, base, body)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := verifyAt(b, c, base, body); !r.IsValid {
			b.Fatal(deref(r.Reason))
		}
	}
}

// sampleAsExpected redirects the store lookup to the bundled sample image, so a real quote is
// predicted in full mode: no public attestation comes from an image this repository holds,
// so the verdict is "not valid" (other registers), but the work is that of a full verification:
// the prepared image from the cache, the shape's tables, the registers' prediction.
func sampleAsExpected(st *Store) func(*verify.Options) {
	var sample string
	for _, e := range st.Entries() {
		if e.Kind == KindImage {
			sample = e.OSImageHash
		}
	}
	return func(o *verify.Options) {
		resolve := o.ResolveImage
		o.ResolveImage = func(_ []byte, o *verify.Options) error {
			h, _ := hexDecode(sample)
			return resolve(h, o)
		}
	}
}

func fullServer(b *testing.B) (string, *http.Client, []byte) {
	dir, _ := buildStore(b)
	st, err := OpenStore(dir, 4)
	if err != nil {
		b.Fatal(err)
	}
	_, ts := newTestServer(b, Config{Images: st, verifyHook: sampleAsExpected(st)})
	return ts.URL, ts.Client(), testvectors.ReadShared(b, "real-attestations/phala-trust-center/debug-data.set1.app.getquote.json")
}

// BenchmarkWarmFull is one full-mode verification at a time over HTTP, the image prepared.
func BenchmarkWarmFull(b *testing.B) {
	base, c, body := fullServer(b)
	r := verifyAt(b, c, base, body)
	if r.Details.Report == nil || r.Details.ACPITablesVerified != true {
		b.Fatalf("full mode did not run: %s", deref(r.Reason))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		verifyAt(b, c, base, body)
	}
}

// BenchmarkFirstRequestStoredImage is a full-mode request whose image is in the store but not
// in memory: read and checked against sha256sum.txt, prepared, then the verification.
func BenchmarkFirstRequestStoredImage(b *testing.B) {
	dir, _ := buildStore(b)
	body := testvectors.ReadShared(b, "real-attestations/phala-trust-center/debug-data.set1.app.getquote.json")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := OpenStore(dir, 4)
		if err != nil {
			b.Fatal(err)
		}
		s, err := New(Config{Images: st, Log: quietLog(), Now: func() time.Time { return captureTime }, verifyHook: sampleAsExpected(st)})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		resp, err := s.verify(sameInputs(b, body), &reqState{})
		if err != nil || resp.Details.Report == nil || !resp.Details.ACPITablesVerified {
			b.Fatalf("full mode did not run: %v", err)
		}
	}
}
