package service

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/verify"
)

// gate holds verifications inside verify until released, counting those that entered.
type gate struct {
	entered atomic.Int32
	release chan struct{}
}

func newGate() *gate { return &gate{release: make(chan struct{})} }

func (g *gate) hook(*verify.Options) {
	g.entered.Add(1)
	<-g.release
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConcurrencyBound: beyond MaxConcurrent verifications the answer is 503 with Retry-After,
// at once; the held ones finish normally.
func TestConcurrencyBound(t *testing.T) {
	g := newGate()
	_, base, c := liteServer(t, Config{MaxConcurrent: 2, verifyHook: g.hook})
	body := testvectors.ReadShared(t, liteGetQuote)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _ = post(t, c, base+"/verify", body)
		}()
	}
	waitFor(t, "two verifications to start", func() bool { return g.entered.Load() == 2 })
	start := time.Now()
	code, b, h := post(t, c, base+"/verify", body)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(string(b), "busy") {
		t.Fatalf("third request: HTTP %d Retry-After %q: %s", code, h.Get("Retry-After"), b)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("the refusal took %s: it must not wait for a slot", time.Since(start))
	}
	close(g.release)
	wg.Wait()
	for i, code := range codes {
		if code != http.StatusOK {
			t.Errorf("held request %d: HTTP %d", i, code)
		}
	}
}

// TestRequestDeadline: a verification past the deadline is answered 503 and its slot is freed
// only when it ends.
func TestRequestDeadline(t *testing.T) {
	g := newGate()
	s, base, c := liteServer(t, Config{MaxConcurrent: 1, RequestTimeout: 200 * time.Millisecond, verifyHook: g.hook})
	code, b, _ := post(t, c, base+"/verify", testvectors.ReadShared(t, liteGetQuote))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "deadline") {
		t.Fatalf("HTTP %d: %s", code, b)
	}
	if len(s.sem) != 1 {
		t.Fatalf("the stalled verification's slot was released early (%d held)", len(s.sem))
	}
	close(g.release)
	waitFor(t, "the slot to be released", func() bool { return len(s.sem) == 0 })
}

// TestPanicRecovered: a panic inside one verification is answered 500 and logged; the process
// and the next request are unaffected.
func TestPanicRecovered(t *testing.T) {
	var n atomic.Int32
	_, base, c := liteServer(t, Config{verifyHook: func(*verify.Options) {
		if n.Add(1) == 1 {
			panic("injected")
		}
	}})
	body := testvectors.ReadShared(t, liteGetQuote)
	code, b, _ := post(t, c, base+"/verify", body)
	if code != http.StatusInternalServerError || !strings.Contains(string(b), "internal error") {
		t.Fatalf("HTTP %d: %s", code, b)
	}
	if r := verifyAt(t, c, base, body); !r.IsValid {
		t.Fatalf("after the panic: %s", deref(r.Reason))
	}
}

// listen serves s on a loopback listener with its own http.Server (the timeouts under test).
// The returned channel is closed when Serve returns, *serveErr then holding its result.
func listen(t *testing.T, s *Server) (string, context.CancelFunc, chan struct{}, *error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var serveErr error
	go func() {
		serveErr = Serve(ctx, s.HTTPServer(), l, "", "", 5*time.Second)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	})
	return "http://" + l.Addr().String(), cancel, done, &serveErr
}

// TestSlowClient: a client that sends its headers or body too slowly loses the connection after
// the read timeouts; it holds no verification slot and others are served meanwhile.
func TestSlowClient(t *testing.T) {
	dir, _ := buildStore(t)
	st, err := OpenStore(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Images: st, Log: quietLog(), Now: func() time.Time { return captureTime }, MaxConcurrent: 1,
		ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	base, _, _, _ := listen(t, s)
	addr := strings.TrimPrefix(base, "http://")
	for _, c := range []struct {
		name string
		send string
	}{
		{"headers never finished", "POST /verify HTTP/1.1\r\nHost: x\r\n"},
		{"body never finished", "POST /verify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"quote\":"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, c.send); err != nil {
				t.Fatal(err)
			}
			// Meanwhile a well-behaved client is served (the single slot is free).
			if r := verifyAt(t, http.DefaultClient, base, testvectors.ReadShared(t, liteGetQuote)); !r.IsValid {
				t.Fatalf("other client: %s", deref(r.Reason))
			}
			start := time.Now()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, _ := io.ReadAll(bufio.NewReader(conn)) // the server answers 408 or closes
			if el := time.Since(start); el > 4*time.Second {
				t.Fatalf("the server held the slow connection for %s", el)
			}
			if len(resp) > 0 && !strings.HasPrefix(string(resp), "HTTP/1.1 408") && !strings.HasPrefix(string(resp), "HTTP/1.1 400") {
				t.Fatalf("answer to a slow client: %q", truncate(string(resp), 80))
			}
		})
	}
}

// TestDrainUnderLoad: with verifications in flight, shutting down (what SIGTERM triggers in
// serve) stops accepting, answers every request in flight, and Serve returns nil (exit 0).
func TestDrainUnderLoad(t *testing.T) {
	dir, _ := buildStore(t)
	st, err := OpenStore(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	g := newGate()
	s, err := New(Config{Images: st, Log: quietLog(), Now: func() time.Time { return captureTime }, verifyHook: g.hook})
	if err != nil {
		t.Fatal(err)
	}
	base, cancel, done, serveErr := listen(t, s)
	body := testvectors.ReadShared(t, liteGetQuote)
	const inFlight = 8
	var wg sync.WaitGroup
	results := make(chan string, inFlight)
	for i := 0; i < inFlight; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Post(base+"/verify", "application/json", strings.NewReader(string(body)))
			if err != nil {
				results <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"is_valid":true`) {
				results <- fmt.Sprintf("HTTP %d %s", resp.StatusCode, truncate(string(b), 100))
				return
			}
			results <- ""
		}()
	}
	waitFor(t, "the verifications to be in flight", func() bool { return g.entered.Load() == inFlight })
	cancel() // SIGTERM
	// New connections are refused while the in-flight ones drain.
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case <-done:
		t.Fatalf("Serve returned (%v) with requests in flight", *serveErr)
	default:
	}
	close(g.release)
	wg.Wait()
	close(results)
	for r := range results {
		if r != "" {
			t.Errorf("in-flight request: %s", r)
		}
	}
	select {
	case <-done:
		if *serveErr != nil {
			t.Fatalf("Serve: %v, want nil (exit 0)", *serveErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
}

// TestAccessLog: one JSON line per request with the request id, outcome, duration, image hash
// and app id, and nothing of the evidence itself.
func TestAccessLog(t *testing.T) {
	var buf syncBuffer
	l := quietLog()
	l.SetOutput(&buf)
	l.SetFormatter(jsonFormatter())
	_, base, c := liteServer(t, Config{Log: l})
	body := testvectors.ReadShared(t, liteGetQuote)
	req, _ := http.NewRequest("POST", base+"/verify", strings.NewReader(string(body)))
	req.Header.Set("X-Request-Id", "abc-123")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Request-Id") != "abc-123" {
		t.Errorf("X-Request-Id not echoed")
	}
	// The line is written once the answer is sent: wait for it.
	waitFor(t, "the access log line", func() bool { return strings.HasSuffix(buf.String(), "\n") })
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1: %q", len(lines), buf.String())
	}
	for _, want := range []string{`"request_id":"abc-123"`, `"outcome":"valid"`, `"os_image_hash":"a3a493f0`, `"app_id":"`, `"duration_ms":`, `"status":200`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line lacks %s: %s", want, lines[0])
		}
	}
	if strings.Contains(lines[0], "040002") || len(lines[0]) > 1000 {
		t.Errorf("the log line carries evidence: %s", truncate(lines[0], 200))
	}
}
