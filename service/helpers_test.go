package service

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// captureTime is when every shared quote's PCK chain is valid (../shared/dcap/README.md).
var captureTime = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

// quietLog discards the access log in tests (it is checked where it matters).
func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// storeEntries records what the test put in its store, by os_image_hash, so expectations are
// computed from the test's own knowledge rather than the store's answer.
type storeEntries map[string]StoreEntry

// buildStore makes an image store in a temporary directory from data nobody here wrote: the
// bundled sample image, a lite directory (sha256sum.txt from the vm_config's checksum_file, the
// measurement document beside it) for each upstream QEMU 10.2 fixture, and the version-2
// documents of the fixture history (keyed by their SHA-256).
func buildStore(t testing.TB) (string, storeEntries) {
	t.Helper()
	dir := t.TempDir()
	ents := storeEntries{}
	add := func(p, kind string, keyed []byte) {
		s := sha256.Sum256(keyed)
		ents[hex.EncodeToString(s[:])] = StoreEntry{OSImageHash: hex.EncodeToString(s[:]), Path: p, Kind: kind}
	}
	sample := filepath.Join(dir, "sample")
	copyDir(t, filepath.Join(repoRoot(t), "testdata", "sample-image"), sample)
	sums, err := os.ReadFile(filepath.Join(sample, "sha256sum.txt"))
	if err != nil {
		t.Fatal(err)
	}
	add(sample, KindImage, sums)

	for _, n := range []string{"tdx-lite-qemu-10-2-attestation", "tdx-lite-normalized-attestation", "tdx-lite-normalized-qemu-10-2-attestation"} {
		base := "real-attestations/dstack-verifier-qemu-10-2/" + n
		var vm struct {
			TDXMeasurement json.RawMessage `json:"tdx_measurement"`
		}
		mustJSON(t, testvectors.ReadShared(t, base+".vm_config.json"), &vm)
		var tm struct {
			ChecksumFile string `json:"checksum_file"`
		}
		mustJSON(t, vm.TDXMeasurement, &tm)
		sums, err := base64.StdEncoding.DecodeString(tm.ChecksumFile)
		if err != nil {
			t.Fatal(err)
		}
		d := filepath.Join(dir, n)
		writeFile(t, filepath.Join(d, "sha256sum.txt"), sums)
		writeFile(t, filepath.Join(d, "measurement.tdx.cbor"), testvectors.ReadShared(t, base+".measurement.cbor"))
		add(d, KindLiteDir, sums)
	}
	for _, n := range []string{"tdx-lite-getquote.02bb2476", "tdx-lite-getquote.6d26e732", "tdx-lite-getquote.dc11472f", "tdx-measurement-getquote.687c4668"} {
		var g struct {
			VMConfig string `json:"vm_config"`
		}
		mustJSON(t, testvectors.ReadShared(t, "real-attestations/dstack-fixture-history/"+n+".json"), &g)
		var vm struct {
			TDXMeasurement json.RawMessage `json:"tdx_measurement"`
		}
		mustJSON(t, []byte(g.VMConfig), &vm)
		var tm struct {
			Measurement string `json:"measurement"`
		}
		if err := json.Unmarshal(vm.TDXMeasurement, &tm); err != nil {
			var inner string // older captures hold the document as a JSON string
			mustJSON(t, vm.TDXMeasurement, &inner)
			mustJSON(t, []byte(inner), &tm)
		}
		doc, err := hex.DecodeString(tm.Measurement)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, n+".cbor")
		writeFile(t, p, doc)
		add(p, KindDocument, doc)
	}
	return dir, ents
}

func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd) // the service package sits at the repository's top level
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dst, e.Name()), b)
	}
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", truncate(string(b), 80), err)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// newTestServer serves cfg on an httptest server (loopback only).
func newTestServer(t testing.TB, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = quietLog()
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return captureTime }
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

// post sends body to url and returns the status and the body read.
func post(t testing.TB, client *http.Client, url string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// wireResponse is the /verify answer as a client reads it: dstack's field names, and of our
// report only what the tests need.
type wireResponse struct {
	IsValid bool        `json:"is_valid"`
	Reason  *string     `json:"reason"`
	Details wireDetails `json:"details"`
}

type wireDetails struct {
	QuoteVerified       bool             `json:"quote_verified"`
	EventLogVerified    bool             `json:"event_log_verified"`
	OSImageHashVerified bool             `json:"os_image_hash_verified"`
	ACPITablesVerified  bool             `json:"acpi_tables_verified"`
	OSImageIsDev        *bool            `json:"os_image_is_dev"`
	OSImageVersion      *string          `json:"os_image_version"`
	TEEVariant          *string          `json:"tee_variant"`
	ReportData          *string          `json:"report_data"`
	TCBStatus           *string          `json:"tcb_status"`
	AdvisoryIDs         []string         `json:"advisory_ids"`
	KeyProvider         *json.RawMessage `json:"key_provider"`
	AppInfo             *AppInfo         `json:"app_info"`
	BootInfo            *wireBootInfo    `json:"boot_info"`
	Policy              *PolicyAnswer    `json:"policy"`
	Report              *struct {
		Verified          bool `json:"verified"`
		QuoteVerification *struct {
			PPID string `json:"ppid"`
		} `json:"quote_verification"`
	} `json:"report"`
}

type wireBootInfo struct {
	TEEVariant      string   `json:"teeVariant"`
	MRAggregated    string   `json:"mrAggregated"`
	OSImageHash     string   `json:"osImageHash"`
	MRSystem        string   `json:"mrSystem"`
	AppID           string   `json:"appId"`
	ComposeHash     string   `json:"composeHash"`
	InstanceID      string   `json:"instanceId"`
	DeviceID        string   `json:"deviceId"`
	KeyProviderInfo string   `json:"keyProviderInfo"`
	TCBStatus       string   `json:"tcbStatus"`
	AdvisoryIDs     []string `json:"advisoryIds"`
}

// verifyAt posts body to /verify and decodes the answer, which must be HTTP 200.
func verifyAt(t testing.TB, client *http.Client, base string, body []byte) *wireResponse {
	t.Helper()
	code, b, _ := post(t, client, base+"/verify", body)
	if code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", code, truncate(string(b), 300))
	}
	var r wireResponse
	mustJSON(t, b, &r)
	return &r
}

// attestationFiles lists every GetQuote file and every {"attestation"} form of the shared real
// attestations (relative to real-attestations/).
func attestationFiles(t testing.TB) []string {
	t.Helper()
	root := testvectors.Shared(t, "real-attestations")
	var out []string
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) != nil {
			return nil
		}
		_, q := m["quote"]
		_, a := m["attestation"]
		_, el := m["event_log"]
		if a || (q && el) {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func jsonFormatter() logrus.Formatter { return &logrus.JSONFormatter{} }

func hexDecode(s string) ([]byte, error) { return hex.DecodeString(s) }
