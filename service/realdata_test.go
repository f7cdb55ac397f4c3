package service

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/images"
	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/quote"
	"github.com/dstack-mr/dstack-mr/verify"
)

// sameInputs is what dstack's verifier reads of a request body: {"attestation"} alone when the
// body has one (the rest is ignored), else the GetQuote fields.
func sameInputs(t testing.TB, body []byte) []byte {
	var m map[string]json.RawMessage
	mustJSON(t, body, &m)
	if a, ok := m["attestation"]; ok {
		b, _ := json.Marshal(map[string]json.RawMessage{"attestation": a})
		return b
	}
	out := map[string]json.RawMessage{}
	for _, k := range []string{"quote", "event_log", "vm_config"} {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	b, _ := json.Marshal(out)
	return b
}

// cliVerdict is `dstack-mr verify` on the same inputs, with what the test put in the store given
// as the CLI takes it: the image as IMAGE, a lite directory as --measurement plus
// --os-image-hash, a document as --os-image-hash.
func cliVerdict(t testing.TB, inputs []byte, ents storeEntries) *verify.Report {
	t.Helper()
	base := verify.Options{Attestation: inputs, QuoteTime: captureTime}
	first, err := verify.Verify(base)
	if err != nil {
		return nil
	}
	named := first.App.OSImageHash
	if named == nil && first.RTMR3 != nil {
		named = first.RTMR3.OSImageHash
	}
	if named == nil {
		named = first.App.VMConfigOSImageHash
	}
	e, ok := ents[hex.EncodeToString(named)]
	if !ok {
		return first
	}
	opts := base
	switch e.Kind {
	case KindImage:
		img, err := images.Open(e.Path, images.Options{VerifyChecksums: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := opts.UseImage(img); err != nil {
			t.Fatal(err)
		}
	case KindLiteDir:
		opts.LiteMeasurement = readFile(t, e.Path+"/measurement.tdx.cbor")
		opts.Expect.OSImageHash = named
	case KindDocument:
		opts.Expect.OSImageHash = named
	}
	rep, err := verify.Verify(opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestRealAttestations posts every GetQuote file and {"attestation"} form of the shared real
// attestations, unchanged, and holds is_valid to verify's verdict on the same inputs, and each
// valid answer's boot_info to values the test computes from dstack's formulas.
func TestRealAttestations(t *testing.T) {
	dir, ents := buildStore(t)
	st, err := OpenStore(dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Entries()) != len(ents) {
		t.Fatalf("store indexed %d entries, the test wrote %d", len(st.Entries()), len(ents))
	}
	_, ts := newTestServer(t, Config{Images: st, ToolVersion: "test"})
	files := attestationFiles(t)
	var valid, invalid, internal, bootChecked int
	boots := map[string]*wireBootInfo{}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			body := testvectors.ReadShared(t, "real-attestations/"+f)
			resp := verifyAt(t, ts.Client(), ts.URL, body)
			want := cliVerdict(t, sameInputs(t, body), ents)
			if want == nil {
				// verify refuses the input as unreadable: the service says so as dstack does.
				if resp.IsValid || resp.Reason == nil || !strings.HasPrefix(*resp.Reason, reasonInternal) {
					t.Fatalf("verify cannot read it; the service answered valid=%v reason=%v", resp.IsValid, resp.Reason)
				}
				internal++
				return
			}
			if resp.IsValid != want.Verified {
				t.Fatalf("is_valid %v, verify's verdict %v; reason %v", resp.IsValid, want.Verified, deref(resp.Reason))
			}
			if resp.Details.Report == nil || resp.Details.Report.Verified != want.Verified {
				t.Fatalf("details.report missing or disagreeing")
			}
			if !resp.IsValid {
				invalid++
				if resp.Reason == nil || !hasDstackPrefix(*resp.Reason) {
					t.Fatalf("reason %v does not start as dstack's do", deref(resp.Reason))
				}
				return
			}
			valid++
			if resp.Reason != nil {
				t.Fatalf("valid with reason %q", *resp.Reason)
			}
			d := resp.Details
			if !d.QuoteVerified || !d.EventLogVerified || !d.OSImageHashVerified || d.TEEVariant == nil || *d.TEEVariant != "dstack-tdx" {
				t.Fatalf("valid, but details say otherwise: %+v", d)
			}
			if d.TCBStatus == nil || *d.TCBStatus != tcbNotEvaluated {
				t.Fatalf("tcb_status %v without collateral, want %q", d.TCBStatus, tcbNotEvaluated)
			}
			if d.BootInfo == nil || d.AppInfo == nil {
				t.Fatal("valid without boot_info/app_info")
			}
			if checkBootInfoFormulas(t, body, d) {
				bootChecked++
			}
			boots[f] = d.BootInfo
		})
	}
	// A binary {"attestation"} and its GetQuote reshaping carry one quote and one log: one
	// boot_info, which the reshaping's was recomputed from the formulas.
	pairs := 0
	for f, b := range boots {
		other := strings.Replace(strings.Replace(f, "-attestation.json", "-attestation.getquote.json", 1), "tdx-lite-attestation.", "tdx-lite-getquote.", 1)
		if ob, ok := boots[other]; ok && other != f {
			pairs++
			if !reflect.DeepEqual(ob, b) {
				t.Errorf("%s and %s: boot_info differs: %+v vs %+v", f, other, b, ob)
			}
		}
	}
	t.Logf("%d {\"attestation\"} forms gave the boot_info of their GetQuote reshaping", pairs)
	t.Logf("%d files: %d valid, %d not valid (reason given), %d unreadable (Internal error); boot_info recomputed from the formulas for %d",
		len(files), valid, invalid, internal, bootChecked)
	if valid == 0 {
		t.Fatal("no attestation verified: the store is not being used")
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func hasDstackPrefix(r string) bool {
	for _, p := range []string{reasonQuote, reasonOSImage, reasonEventLog, reasonInternal} {
		if strings.HasPrefix(r, p) {
			return true
		}
	}
	return false
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkBootInfoFormulas recomputes the KMS values from the quote's registers and the event
// log's runtime events with dstack's formulas (attestation.rs), independently of package
// policy. It returns false when the body has no GetQuote event log to read (the binary
// {"attestation"} forms; their GetQuote reshapings carry the same quote and are checked).
func checkBootInfoFormulas(t *testing.T, body []byte, d wireDetails) bool {
	t.Helper()
	var g struct {
		Quote    string          `json:"quote"`
		EventLog json.RawMessage `json:"event_log"`
	}
	mustJSON(t, body, &g)
	var m map[string]json.RawMessage
	mustJSON(t, body, &m)
	if _, att := m["attestation"]; att || g.Quote == "" || len(g.EventLog) == 0 {
		return false
	}
	evlog := []byte(g.EventLog)
	var inner string
	if json.Unmarshal(evlog, &inner) == nil {
		evlog = []byte(inner) // dstack's form: a string holding the list
	}
	q, err := quote.ParseAuto([]byte(g.Quote))
	if err != nil {
		t.Fatal(err)
	}
	var events []struct {
		EventType uint32 `json:"event_type"`
		Event     string `json:"event"`
		Payload   string `json:"event_payload"`
	}
	mustJSON(t, evlog, &events)
	payload := func(name string) []byte {
		for _, e := range events {
			if e.EventType != 0x08000001 {
				continue
			}
			if e.Event == "system-ready" {
				break
			}
			if e.Event == name {
				b, err := hex.DecodeString(e.Payload)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
		}
		return nil
	}
	sum := func(parts ...[]byte) string {
		h := sha256.New()
		for _, p := range parts {
			h.Write(p)
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	r := q.Report
	kp := payload("key-provider")
	mrKP := make([]byte, 32)
	if len(kp) > 0 {
		s := sha256.Sum256(kp)
		mrKP = s[:]
	}
	agg := [][]byte{r.MRTD, r.RTMR[0], r.RTMR[1], r.RTMR[2], r.RTMR[3]}
	zero := make([]byte, 48)
	if !bytes.Equal(r.MRConfigID, zero) || !bytes.Equal(r.MROwner, zero) || !bytes.Equal(r.MROwnerConfig, zero) {
		agg = append(agg, r.MRConfigID, r.MROwner, r.MROwnerConfig)
	}
	ppid, err := hex.DecodeString(d.Report.QuoteVerification.PPID)
	if err != nil || len(ppid) == 0 {
		t.Fatalf("PPID %q", d.Report.QuoteVerification.PPID)
	}
	b := d.BootInfo
	for _, c := range []struct{ name, got, want string }{
		{"mrSystem", b.MRSystem, sum(r.MRTD, r.RTMR[0], r.RTMR[1], r.RTMR[2], mrKP)},
		{"mrAggregated", b.MRAggregated, sum(agg...)},
		{"deviceId", b.DeviceID, sum(ppid)},
		{"appId", b.AppID, hex.EncodeToString(payload("app-id"))},
		{"composeHash", b.ComposeHash, hex.EncodeToString(payload("compose-hash"))},
		{"instanceId", b.InstanceID, hex.EncodeToString(payload("instance-id"))},
		{"keyProviderInfo", b.KeyProviderInfo, hex.EncodeToString(kp)},
		{"app_info.mr_system", d.AppInfo.MRSystem, b.MRSystem},
		{"app_info.mr_aggregated", d.AppInfo.MRAggregated, b.MRAggregated},
		{"app_info.os_image_hash", d.AppInfo.OSImageHash, b.OSImageHash},
		{"teeVariant", b.TEEVariant, "dstack-tdx"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, the formula gives %s", c.name, c.got, c.want)
		}
	}
	if oh := payload("os-image-hash"); oh != nil && b.OSImageHash != hex.EncodeToString(oh) {
		t.Errorf("osImageHash %s, the CVM attested %x", b.OSImageHash, oh)
	}
	if b.TCBStatus != "" {
		t.Errorf("tcbStatus %q without collateral, want empty as dstack's KMS sends it", b.TCBStatus)
	}
	return true
}
