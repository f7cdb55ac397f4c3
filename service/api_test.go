package service

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/policy"
)

const liteGetQuote = "real-attestations/dstack-verifier-qemu-10-2/tdx-lite-qemu-10-2-attestation.getquote.json"
const liteAttestation = "real-attestations/dstack-verifier-qemu-10-2/tdx-lite-qemu-10-2-attestation.json"

func liteServer(t testing.TB, cfg Config) (*Server, string, *http.Client) {
	t.Helper()
	dir, _ := buildStore(t)
	st, err := OpenStore(dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Images = st
	s, ts := newTestServer(t, cfg)
	return s, ts.URL, ts.Client()
}

// TestRequestShapes posts one CVM's evidence in every shape clients send: dstack verifier
// README's {quote, event_log, vm_config} (event_log and vm_config as JSON strings, as Phala's
// private-ai-verifier sends them), a raw GetQuote response, {"attestation": hex}, and an
// attestation next to conflicting top-level fields (ignored, as dstack ignores them).
func TestRequestShapes(t *testing.T) {
	_, base, c := liteServer(t, Config{})
	var g map[string]json.RawMessage
	mustJSON(t, testvectors.ReadShared(t, liteGetQuote), &g)
	asString := func(raw json.RawMessage) json.RawMessage {
		if len(raw) > 0 && raw[0] == '"' {
			return raw
		}
		b, _ := json.Marshal(string(raw))
		return b
	}
	readme, _ := json.Marshal(map[string]json.RawMessage{"quote": g["quote"], "event_log": asString(g["event_log"]), "vm_config": asString(g["vm_config"])})
	att := testvectors.ReadShared(t, liteAttestation)
	var a map[string]json.RawMessage
	mustJSON(t, att, &a)
	conflicting, _ := json.Marshal(map[string]any{"attestation": a["attestation"], "quote": "00", "event_log": "[]", "vm_config": "not-json", "debug": true})
	unknown, _ := json.Marshal(map[string]any{"attestation": a["attestation"], "some_future_field": map[string]int{"x": 1}})
	for _, c2 := range []struct {
		name string
		body []byte
	}{
		{"dstack README / private-ai-verifier", readme},
		{"raw GetQuote response", testvectors.ReadShared(t, liteGetQuote)},
		{"attestation", att},
		{"attestation with conflicting top-level fields", conflicting},
		{"unknown fields", unknown},
	} {
		t.Run(c2.name, func(t *testing.T) {
			code, b, _ := post(t, c, base+"/verify", c2.body)
			if code != http.StatusOK {
				t.Fatalf("HTTP %d: %s", code, b)
			}
			checkDstackShape(t, b)
			var r wireResponse
			mustJSON(t, b, &r)
			if !r.IsValid {
				t.Fatalf("not valid: %s", deref(r.Reason))
			}
		})
	}
}

// checkDstackShape holds an answer to dstack's VerificationResponse: every key its types.rs
// serializes, with its JSON type.
func checkDstackShape(t *testing.T, body []byte) {
	t.Helper()
	var top map[string]json.RawMessage
	mustJSON(t, body, &top)
	for _, k := range []string{"is_valid", "reason", "details"} {
		if _, ok := top[k]; !ok {
			t.Errorf("response lacks %q", k)
		}
	}
	var d map[string]any
	mustJSON(t, top["details"], &d)
	kinds := map[string]string{
		"quote_verified": "bool", "event_log_verified": "bool", "os_image_hash_verified": "bool", "acpi_tables_verified": "bool",
		"os_image_is_dev": "bool|null", "os_image_version": "string|null", "tee_variant": "string|null", "report_data": "string|null",
		"tcb_status": "string|null", "advisory_ids": "array", "key_provider": "object|null", "app_info": "object|null",
	}
	for k, want := range kinds {
		v, ok := d[k]
		if !ok {
			t.Errorf("details lacks %q", k)
			continue
		}
		if got := jsonKind(v); !strings.Contains(want, got) {
			t.Errorf("details.%s is %s, dstack's is %s", k, got, want)
		}
	}
	if ai, ok := d["app_info"].(map[string]any); ok {
		for _, k := range []string{"app_id", "compose_hash", "instance_id", "device_id", "mr_system", "mr_aggregated", "os_image_hash", "key_provider_info", "init_script_hashes"} {
			if _, ok := ai[k]; !ok {
				t.Errorf("app_info lacks %q", k)
			}
		}
	}
	if bi, ok := d["boot_info"].(map[string]any); ok {
		for _, k := range []string{"teeVariant", "mrAggregated", "osImageHash", "mrSystem", "appId", "composeHash", "instanceId", "deviceId", "keyProviderInfo", "tcbStatus", "advisoryIds"} {
			if _, ok := bi[k]; !ok {
				t.Errorf("boot_info lacks %q", k)
			}
		}
		for k, v := range bi {
			if s, ok := v.(string); ok && (strings.HasPrefix(s, "0x") || strings.ToLower(s) != s) && k != "tcbStatus" && k != "teeVariant" {
				t.Errorf("boot_info.%s = %q: want lowercase hex without 0x", k, s)
			}
		}
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "number"
}

// TestMissingInputs: dstack's verifier answers HTTP 200 with its reason when the quote or the
// event log is missing.
func TestMissingInputs(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	var g map[string]json.RawMessage
	mustJSON(t, testvectors.ReadShared(t, liteGetQuote), &g)
	noLog, _ := json.Marshal(map[string]json.RawMessage{"quote": g["quote"]})
	for _, c := range []struct {
		body   string
		reason string
	}{
		{string(noLog), "Internal error: Event log is required"},
		{`{}`, "Internal error: Quote is required"},
		{`{"event_log": "[]"}`, "Internal error: Quote is required"},
		{`{"quote": null, "attestation": null}`, "Internal error: Quote is required"},
	} {
		r := verifyAt(t, ts.Client(), ts.URL, []byte(c.body))
		if r.IsValid || deref(r.Reason) != c.reason {
			t.Errorf("%s: valid=%v reason %q, want %q", truncate(c.body, 40), r.IsValid, deref(r.Reason), c.reason)
		}
	}
	// A quote that cannot be read is verify's error, answered as dstack answers one.
	r := verifyAt(t, ts.Client(), ts.URL, []byte(`{"quote": "00", "event_log": "[]"}`))
	if r.IsValid || !strings.HasPrefix(deref(r.Reason), reasonInternal) {
		t.Errorf("unreadable quote: valid=%v reason %q", r.IsValid, deref(r.Reason))
	}
}

// TestMalformedBodies: anything that is not a verification request is HTTP 400 (413 when over
// the limit) with {"error"}, and the server keeps serving.
func TestMalformedBodies(t *testing.T) {
	_, base, c := liteServer(t, Config{MaxBodyBytes: 64 << 10})
	full := testvectors.ReadShared(t, liteGetQuote)
	deep := strings.Repeat(`{"a":`, 10500) + "1" + strings.Repeat("}", 10500)
	deepArr := `{"quote": ` + strings.Repeat("[", 30000) + strings.Repeat("]", 30000) + `}`
	for _, c2 := range []struct {
		name string
		body []byte
		code int
	}{
		{"empty", nil, 400},
		{"truncated", full[:len(full)/2], 400},
		{"not JSON", []byte("quote=00&event_log=[]"), 400},
		{"JSON list", []byte(`[{"quote": "00"}]`), 400},
		{"JSON string", []byte(`"hello"`), 400},
		{"deeply nested object", []byte(deep), 400},
		{"deeply nested field", []byte(deepArr), 400},
		{"quote not hex", []byte(`{"quote": "zz", "event_log": "[]"}`), 400},
		{"quote a number", []byte(`{"quote": 12, "event_log": "[]"}`), 400},
		{"attestation not hex", []byte(`{"attestation": "0xqq"}`), 400},
		{"event_log a number", []byte(`{"quote": "00", "event_log": 3}`), 400},
		{"debug a string", []byte(`{"quote": "00", "event_log": "[]", "debug": "yes"}`), 400},
		{"oversized", append(append([]byte(`{"quote": "`), bytes.Repeat([]byte("0"), 70<<10)...), `"}`...), 413},
	} {
		t.Run(c2.name, func(t *testing.T) {
			code, b, _ := post(t, c, base+"/verify", c2.body)
			if code != c2.code {
				t.Fatalf("HTTP %d, want %d: %s", code, c2.code, truncate(string(b), 200))
			}
			var e errorBody
			mustJSON(t, b, &e)
			if e.Error == "" {
				t.Fatalf("no error text: %s", b)
			}
		})
	}
	if r := verifyAt(t, c, base, full); !r.IsValid {
		t.Fatalf("after the faults, a good request is not valid: %s", deref(r.Reason))
	}
	resp, err := c.Get(base + "/verify")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /verify: HTTP %d, want 405", resp.StatusCode)
	}
}

// TestHealthAndMetrics: /health names the version; /metrics counts requests by outcome, the
// image store's loads and hits, and has the latency histogram and in-flight gauge.
func TestHealthAndMetrics(t *testing.T) {
	_, base, c := liteServer(t, Config{ToolVersion: "v-test"})
	resp, err := c.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h["status"] != "ok" || h["version"] != "v-test" {
		t.Fatalf("health: %v", h)
	}
	body := testvectors.ReadShared(t, liteGetQuote)
	for i := 0; i < 3; i++ {
		verifyAt(t, c, base, body)
	}
	post(t, c, base+"/verify", []byte("nope"))
	resp, err = c.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	text := buf.String()
	for _, want := range []string{
		`dstack_mr_requests_total{outcome="valid",route="/verify"} 3`,
		`dstack_mr_requests_total{outcome="bad_request",route="/verify"} 1`,
		`dstack_mr_image_store_lookups_total{result="load"} 1`,
		`dstack_mr_image_store_lookups_total{result="hit"} 2`,
		`dstack_mr_request_duration_seconds_bucket{route="/verify",le="+Inf"} 4`,
		`dstack_mr_requests_in_flight 1`, // this /metrics request
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestBootAuth: with a policy, /bootAuth/app and /bootAuth/kms answer dstack KMS's webhook as
// auth-simple does, on the boot_info /verify reported; /verify carries the same answer.
func TestBootAuth(t *testing.T) {
	var g map[string]json.RawMessage
	body := testvectors.ReadShared(t, liteGetQuote)
	mustJSON(t, body, &g)
	// First learn the CVM's values without a policy, then write a policy that admits it.
	_, base, c := liteServer(t, Config{})
	r := verifyAt(t, c, base, body)
	if r.Details.BootInfo == nil {
		t.Fatal("no boot_info")
	}
	b := r.Details.BootInfo
	pol := map[string]any{
		"osImages":           []string{"0x" + strings.ToUpper(b.OSImageHash)},
		"allowedTcbStatuses": []string{"UpToDate"},
		"gatewayAppId":       "0xgw",
		"kms":                map[string]any{"mrAggregated": []string{b.MRAggregated}, "allowAnyDevice": true},
		"apps":               map[string]any{b.AppID: map[string]any{"composeHashes": []string{b.ComposeHash}, "allowAnyDevice": true}},
	}
	pb, _ := json.Marshal(pol)
	p, err := policy.ParseAuthSimple(pb)
	if err != nil {
		t.Fatal(err)
	}
	_, base, c = liteServer(t, Config{Policy: p})
	bootBody, _ := json.Marshal(b)
	// Without collateral the TCB status is not evaluated: the default list refuses, saying so.
	for _, route := range []string{"/bootAuth/app", "/bootAuth/kms"} {
		code, out, _ := post(t, c, base+route, bootBody)
		var br policy.BootResponse
		mustJSON(t, out, &br)
		if code != 200 || br.IsAllowed || !strings.Contains(br.Reason, "not evaluated") || br.GatewayAppID != "0xgw" {
			t.Errorf("%s: HTTP %d %s", route, code, out)
		}
	}
	r = verifyAt(t, c, base, body)
	if r.Details.Policy == nil || r.Details.Policy.Allowed || !strings.Contains(r.Details.Policy.Reason, "not evaluated") {
		t.Errorf("/verify policy: %+v", r.Details.Policy)
	}
	if !r.IsValid {
		t.Errorf("a policy denial changed is_valid")
	}
	// With the status a KMS would have evaluated, both routes allow.
	b.TCBStatus = "UpToDate"
	bootBody, _ = json.Marshal(b)
	for _, route := range []string{"/bootAuth/app", "/bootAuth/kms"} {
		code, out, _ := post(t, c, base+route, bootBody)
		var br policy.BootResponse
		mustJSON(t, out, &br)
		if code != 200 || !br.IsAllowed {
			t.Errorf("%s: HTTP %d %s", route, code, out)
		}
	}
	// Another compose hash is refused by /bootAuth/app with auth-simple's reason.
	b.ComposeHash = strings.Repeat("ab", 32)
	bootBody, _ = json.Marshal(b)
	_, out, _ := post(t, c, base+"/bootAuth/app", bootBody)
	if !strings.Contains(string(out), `"isAllowed":false`) {
		t.Errorf("other compose hash allowed: %s", out)
	}
	for _, bad := range []string{`{}`, `not json`, `{"mrAggregated": 1}`} {
		if code, out, _ := post(t, c, base+"/bootAuth/app", []byte(bad)); code != 400 {
			t.Errorf("%q: HTTP %d %s", bad, code, out)
		}
	}
	// Without a policy the routes do not exist.
	_, base, c = liteServer(t, Config{})
	if code, _, _ := post(t, c, base+"/bootAuth/app", bootBody); code != http.StatusNotFound {
		t.Errorf("without --policy /bootAuth/app: HTTP %d, want 404", code)
	}
}

// TestStoreRefusals: entries that cannot be what they claim are refused by name, when indexed
// or when first used; nothing unverified is ever used.
func TestStoreRefusals(t *testing.T) {
	sample := filepath.Join(repoRoot(t), "testdata", "sample-image")
	t.Run("two entries with one hash", func(t *testing.T) {
		dir := t.TempDir()
		copyDir(t, sample, filepath.Join(dir, "a"))
		copyDir(t, sample, filepath.Join(dir, "b"))
		if _, err := OpenStore(dir, 2); err == nil || !strings.Contains(err.Error(), "both have os_image_hash") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("directory without sha256sum.txt", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "x", "metadata.json"), []byte("{}"))
		if _, err := OpenStore(dir, 2); err == nil || !strings.Contains(err.Error(), "sha256sum.txt") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("tarball named for another hash", func(t *testing.T) {
		dir := t.TempDir()
		name := strings.Repeat("ab", 32)
		writeFile(t, filepath.Join(dir, "mr_"+name+".tar.gz"), []byte("not a tarball"))
		st, err := OpenStore(dir, 2)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.load(name); err == nil {
			t.Fatal("a broken tarball loaded")
		}
	})
	t.Run("image whose file does not match sha256sum.txt", func(t *testing.T) {
		dir := t.TempDir()
		copyDir(t, sample, filepath.Join(dir, "s"))
		st, err := OpenStore(dir, 2)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "s", "metadata.json"), append(readFile(t, filepath.Join(sample, "metadata.json")), ' '))
		e := st.Entries()[0]
		if _, _, err := st.load(e.OSImageHash); err == nil {
			t.Fatal("a tampered image loaded")
		}
	})
	t.Run("lite directory not listing its document", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "l", "sha256sum.txt"), []byte(strings.Repeat("0", 64)+"  other\n"))
		writeFile(t, filepath.Join(dir, "l", "measurement.tdx.cbor"), []byte{0xa0})
		st, err := OpenStore(dir, 2)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.load(st.Entries()[0].OSImageHash); err == nil || !strings.Contains(err.Error(), "does not list") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("other directories are not images", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "lost+found", "x"), nil)
		writeFile(t, filepath.Join(dir, "README.md"), []byte("images"))
		st, err := OpenStore(dir, 2)
		if err != nil || len(st.Entries()) != 0 {
			t.Fatalf("entries %v, err %v", st, err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		if _, err := OpenStore(filepath.Join(t.TempDir(), "none"), 2); err == nil || !strings.Contains(err.Error(), "--images") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestTamperedQuote: a quote whose TD report was changed after signing is answered "Quote
// verification failed", and nothing it says (report data, TCB status, key provider, boot info)
// is reported as the CVM's.
func TestTamperedQuote(t *testing.T) {
	_, base, c := liteServer(t, Config{})
	var g map[string]json.RawMessage
	mustJSON(t, testvectors.ReadShared(t, liteGetQuote), &g)
	var q string
	mustJSON(t, g["quote"], &q)
	i := 2 * (48 + 200) // inside the TD report, which the attestation key signs
	flipped := "0"
	if q[i] == '0' {
		flipped = "1"
	}
	g["quote"], _ = json.Marshal(q[:i] + flipped + q[i+1:])
	body, _ := json.Marshal(g)
	r := verifyAt(t, c, base, body)
	d := r.Details
	if r.IsValid || !strings.HasPrefix(deref(r.Reason), reasonQuote) || d.QuoteVerified || d.EventLogVerified {
		t.Fatalf("valid=%v reason %q quote_verified %v event_log_verified %v", r.IsValid, deref(r.Reason), d.QuoteVerified, d.EventLogVerified)
	}
	if d.ReportData != nil || d.TCBStatus != nil || d.TEEVariant != nil || d.KeyProvider != nil || d.BootInfo != nil || d.AppInfo != nil {
		t.Fatalf("a forged quote's claims are reported: %+v", d)
	}
}
