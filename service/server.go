// Package service is dstack-mr's verification service: dstack's verifier API (POST /verify),
// dstack KMS's auth webhooks (POST /bootAuth/app, /bootAuth/kms) over an auth-simple policy,
// GET /health and GET /metrics, with the limits and lifecycle a long-running service needs.
//
// It verifies with package verify, on the request's bytes; expected images come from a local
// content-addressed store (Store), never from the network on the request path.
package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dstack-mr/dstack-mr/acpi"
	"github.com/dstack-mr/dstack-mr/policy"
	"github.com/dstack-mr/dstack-mr/verify"
)

// Defaults of Config.
const (
	DefaultMaxBodyBytes   = 1 << 20
	DefaultRequestTimeout = 30 * time.Second
	DefaultACPICache      = 256
)

// DefaultMaxConcurrent is the default bound on verifications running at once.
func DefaultMaxConcurrent() int { return 16 * runtime.GOMAXPROCS(0) }

// Config configures a Server. The zero value serves /verify without images, collateral or
// policy.
type Config struct {
	// Images is the store of expected images (nil: none; lite attestations whose document is
	// bound to a hash the store names, and nothing else, can verify).
	Images *Store
	// Collateral is Intel's collateral by FMSPC (nil: the TCB status is not evaluated).
	Collateral *CollateralSet
	// TCBPolicy is the acceptable TCB statuses when collateral is present ("" = default).
	TCBPolicy string
	// Policy is dstack's auth-simple configuration: it enables /bootAuth/app and /bootAuth/kms
	// and adds details.policy to /verify.
	Policy *policy.Policy

	MaxBodyBytes   int64         // request body limit (default DefaultMaxBodyBytes)
	MaxConcurrent  int           // verifications at once; beyond it 503 (default DefaultMaxConcurrent)
	RequestTimeout time.Duration // per-request deadline (default DefaultRequestTimeout)

	// ReadHeaderTimeout, ReadTimeout and IdleTimeout bound how long a client may take to send
	// its headers, its whole request, and keep an idle connection (defaults 5 s, 30 s, 60 s):
	// a slow client cannot hold a connection.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration

	// Now is the time certificates and collateral must be valid at (nil: time.Now).
	Now func() time.Time
	// Log receives one line per request (nil: logrus's standard logger).
	Log *logrus.Logger
	// ToolVersion and SchemaVersion stamp /health and the embedded report.
	ToolVersion   string
	SchemaVersion int

	// verifyHook, in tests, runs inside each verification (a panic or a stall on demand).
	verifyHook func(*verify.Options)
}

// Server answers the API. Create it with New.
type Server struct {
	cfg     Config
	sem     chan struct{}
	metrics *metrics
	acpi    *acpiCache
	mux     *http.ServeMux
	log     *logrus.Logger
}

// New checks cfg and builds the server.
func New(cfg Config) (*Server, error) {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent()
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.ReadHeaderTimeout, 5 * time.Second}, {&cfg.ReadTimeout, 30 * time.Second}, {&cfg.IdleTimeout, 60 * time.Second}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	s := &Server{cfg: cfg, sem: make(chan struct{}, cfg.MaxConcurrent), metrics: newMetrics(), acpi: newACPICache(DefaultACPICache), log: cfg.Log}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /verify", s.handleVerify)
	s.mux.HandleFunc("GET /health", s.handleHealth)
	s.mux.Handle("GET /metrics", s.metrics.handler())
	if cfg.Policy != nil {
		s.mux.HandleFunc("POST /bootAuth/app", s.handleBootAuth(policy.RoleApp))
		s.mux.HandleFunc("POST /bootAuth/kms", s.handleBootAuth(policy.RoleKMS))
	}
	return s, nil
}

// Handler is the whole API with its per-request limits, panic recovery and logging.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

// HTTPServer is an http.Server for the API with timeouts that keep a slow client from holding
// a connection (Config's), the answer written within the request deadline plus 10 s.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.ReadTimeout + s.cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		// The server's own complaints (TLS handshakes, broken connections) as log records.
		ErrorLog: log.New(s.log.WriterLevel(logrus.WarnLevel), "", 0),
	}
}

// Serve runs hs on l until ctx is done, then stops accepting, waits up to drain for the
// requests in flight and returns. A clean drain returns nil.
func Serve(ctx context.Context, hs *http.Server, l net.Listener, tlsCert, tlsKey string, drain time.Duration) error {
	errc := make(chan error, 1)
	go func() {
		var err error
		if tlsCert != "" {
			err = hs.ServeTLS(l, tlsCert, tlsKey)
		} else {
			err = hs.Serve(l)
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
		return fmt.Errorf("requests still in flight after %s: %w", drain, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// reqState is what the access log says of one request.
type reqState struct {
	id          string
	outcome     string
	osImageHash string
	appID       string
	imageStore  string
}

type stateKey struct{}

func stateOf(r *http.Request) *reqState {
	if st, ok := r.Context().Value(stateKey{}).(*reqState); ok {
		return st
	}
	return &reqState{}
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// statusWriter records the status for the log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := &reqState{id: r.Header.Get("X-Request-Id")}
	if !requestIDPattern.MatchString(st.id) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		st.id = hex.EncodeToString(b[:])
	}
	w.Header().Set("X-Request-Id", st.id)
	sw := &statusWriter{ResponseWriter: w}
	route := routeName(r)
	s.metrics.inFlight.Inc()
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			st.outcome = "panic"
			s.log.WithFields(logrus.Fields{"request_id": st.id, "panic": fmt.Sprint(p), "stack": string(debug.Stack())}).Error("request handler panicked")
			if sw.status == 0 {
				writeJSON(sw, http.StatusInternalServerError, errorBody{Error: "internal error (request " + st.id + ")"})
			}
		}
		s.metrics.inFlight.Dec()
		d := time.Since(start)
		if st.outcome == "" {
			st.outcome = outcomeOfStatus(sw.status)
		}
		s.metrics.requests.WithLabelValues(route, st.outcome).Inc()
		s.metrics.latency.WithLabelValues(route).Observe(d.Seconds())
		f := logrus.Fields{"request_id": st.id, "method": r.Method, "path": r.URL.Path, "status": sw.status,
			"duration_ms": float64(d.Microseconds()) / 1000, "outcome": st.outcome, "remote": r.RemoteAddr}
		if st.osImageHash != "" {
			f["os_image_hash"] = st.osImageHash
		}
		if st.appID != "" {
			f["app_id"] = st.appID
		}
		if st.imageStore != "" {
			f["image_store"] = st.imageStore
		}
		s.log.WithFields(f).Info("request")
	}()
	s.mux.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
}

func routeName(r *http.Request) string {
	switch r.URL.Path {
	case "/verify", "/health", "/metrics", "/bootAuth/app", "/bootAuth/kms":
		return r.URL.Path
	}
	return "other"
}

func outcomeOfStatus(code int) string {
	switch {
	case code == 0, code < 300:
		return "ok"
	case code == http.StatusServiceUnavailable:
		return "busy"
	case code < 500:
		return "bad_request"
	}
	return "error"
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error: response not encodable"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// readBody reads at most MaxBodyBytes; a longer body is 413, a body not sent in time 408.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err == nil {
		return b, true
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("request body over %d bytes", s.cfg.MaxBodyBytes)})
	case isTimeout(err):
		writeJSON(w, http.StatusRequestTimeout, errorBody{Error: "request body not received in time"})
	default:
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "reading the request body: " + err.Error()})
	}
	return nil, false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"status": "ok", "service": "dstack-mr", "version": s.cfg.ToolVersion}
	if s.cfg.Images != nil {
		body["images"] = s.cfg.Images.Len()
	}
	if s.cfg.Collateral != nil {
		body["collateral_fmspcs"] = s.cfg.Collateral.FMSPCs()
	}
	body["policy"] = s.cfg.Policy != nil
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) handleBootAuth(role policy.Role) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := s.readBody(w, r)
		if !ok {
			return
		}
		b, err := policy.ParseBootInfo(body)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
		d := s.cfg.Policy.Decide(*b, role)
		st := stateOf(r)
		st.osImageHash, st.appID = b.OSImageHash, b.AppID
		st.outcome = "denied"
		if d.Allowed {
			st.outcome = "allowed"
		}
		writeJSON(w, http.StatusOK, d.Response())
	}
}

func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	st := stateOf(r)
	att, missing, err := parseVerifyRequest(body)
	if err != nil {
		var br *badRequest
		if errors.As(err, &br) {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: br.msg})
		} else {
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: err.Error()})
		}
		return
	}
	if missing != "" {
		st.outcome = "invalid"
		writeJSON(w, http.StatusOK, internalError(missing))
		return
	}
	select {
	case s.sem <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: fmt.Sprintf("busy: %d verifications in progress; retry shortly", cap(s.sem))})
		return
	}
	type result struct {
		resp *VerifyResponse
		err  error
	}
	done := make(chan result, 1)
	// The verification runs on its own goroutine so the deadline can answer the client; its
	// slot is released only when it ends, so the bound on concurrent work holds either way.
	go func() {
		defer func() { <-s.sem }()
		defer func() {
			if p := recover(); p != nil {
				s.log.WithFields(logrus.Fields{"request_id": st.id, "panic": fmt.Sprint(p), "stack": string(debug.Stack())}).Error("verification panicked")
				done <- result{err: fmt.Errorf("panic: %v", p)}
			}
		}()
		resp, err := s.verify(att, st)
		done <- result{resp, err}
	}()
	timer := time.NewTimer(s.cfg.RequestTimeout)
	defer timer.Stop()
	select {
	case res := <-done:
		if res.err != nil {
			if st.outcome == "" {
				st.outcome = "panic"
			}
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error (request " + st.id + ")"})
			return
		}
		if st.outcome == "" {
			st.outcome = "invalid"
			if res.resp.IsValid {
				st.outcome = "valid"
			}
		}
		writeJSON(w, http.StatusOK, res.resp)
	case <-timer.C:
		st.outcome = "timeout"
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: errTimeout.Error()})
	case <-r.Context().Done():
		st.outcome = "client_gone"
	}
}

// verify runs verify.Verify on the request's attestation with the store, collateral and
// policy, and maps the report.
func (s *Server) verify(att []byte, st *reqState) (*VerifyResponse, error) {
	var img *imageFacts
	var miss string
	opts := verify.Options{
		Attestation: att,
		QuoteTime:   s.cfg.Now(),
		TCBPolicy:   s.cfg.TCBPolicy,
		Policy:      s.cfg.Policy,
		ACPI:        s.acpi.build,
	}
	if s.cfg.Collateral != nil {
		opts.CollateralFor = s.cfg.Collateral.For
	}
	opts.ResolveImage = func(h []byte, o *verify.Options) error {
		if h == nil {
			return nil
		}
		hash := hex.EncodeToString(h)
		st.osImageHash = hash
		if s.cfg.Images == nil {
			miss = "no image store (--images) holds os_image_hash " + hash
			return nil
		}
		e, downloaded, err := s.cfg.Images.fetch(hash)
		switch {
		case errors.Is(err, errNotStored):
			s.metrics.store.WithLabelValues("miss").Inc()
			st.imageStore = "miss"
			miss = "os_image_hash " + hash + " is not in the image store"
			return nil
		case err != nil:
			s.metrics.store.WithLabelValues("download_error").Inc()
			st.imageStore = "download_error"
			miss = err.Error()
			return nil
		case downloaded:
			s.metrics.store.WithLabelValues("download").Inc()
			st.imageStore = "download"
		}
		li, cached, err := s.cfg.Images.load(hash)
		if err != nil {
			s.metrics.store.WithLabelValues("error").Inc()
			st.imageStore = "error"
			miss = err.Error()
			return nil
		}
		switch {
		case downloaded:
		case cached:
			s.metrics.store.WithLabelValues("hit").Inc()
			st.imageStore = "hit"
		default:
			s.metrics.store.WithLabelValues("load").Inc()
			st.imageStore = "load"
		}
		img = &imageFacts{hash: hash, isDev: li.isDev, version: li.name.Version}
		return li.apply(e, o)
	}
	if s.cfg.verifyHook != nil {
		s.cfg.verifyHook(&opts)
	}
	rep, err := verify.Verify(opts)
	if err != nil {
		return internalError(err.Error()), nil
	}
	rep.ToolVersion, rep.SchemaVersion = s.cfg.ToolVersion, s.cfg.SchemaVersion
	if rep.App != nil && rep.App.AppID != nil {
		st.appID = hex.EncodeToString(rep.App.AppID)
	}
	if rep.App != nil && rep.App.OSImageHash != nil {
		st.osImageHash = hex.EncodeToString(rep.App.OSImageHash)
	}
	resp := respond(rep, img)
	if !resp.IsValid && miss != "" && !resp.Details.OSImageHashVerified && resp.Details.QuoteVerified &&
		resp.Reason != nil && len(*resp.Reason) >= len(reasonOSImage) && (*resp.Reason)[:len(reasonOSImage)] == reasonOSImage {
		r := reasonOSImage + miss + " (details.report names every check)"
		resp.Reason = &r
	}
	return resp, nil
}

// acpiCache keeps the ACPI blobs of recent VM shapes: a fleet runs a handful of shapes, and
// building the tables is the costliest per-request step after the quote's signatures.
type acpiCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*acpi.Blobs
}

func newACPICache(max int) *acpiCache { return &acpiCache{max: max, m: map[string]*acpi.Blobs{}} }

func (c *acpiCache) build(cfg acpi.MachineConfig) (*acpi.Blobs, error) {
	key := shapeKey(cfg)
	c.mu.Lock()
	b, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := acpi.Build(cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		for k := range c.m { // any one: shapes are few, eviction rare
			delete(c.m, k)
			break
		}
	}
	c.m[key] = b
	c.mu.Unlock()
	return b, nil
}

// shapeKey names a machine by every field, unexported ones included (%#v), with the PIC
// pointer replaced by its value.
func shapeKey(cfg acpi.MachineConfig) string {
	pic := "default"
	if cfg.PIC != nil {
		pic = strconv.FormatBool(*cfg.PIC)
	}
	cfg.PIC = nil
	return fmt.Sprintf("%#v|pic=%s", cfg, pic)
}
