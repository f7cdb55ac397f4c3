package verify

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/policy"
	"github.com/dstack-mr/dstack-mr/quote"
)

// quotesValidAt is when every PCK chain of the shared real attestations is valid
// (../shared/real-attestations/README.md).
var quotesValidAt = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

// nearAIInfo is the guest agent's Info each NEAR AI CVM published next to its quote: the app
// facts and the mr_aggregated the CVM computed for itself with dstack's code.
type nearAIInfo struct {
	AppID           string `json:"app_id"`
	ComposeHash     string `json:"compose_hash"`
	InstanceID      string `json:"instance_id"`
	OSImageHash     string `json:"os_image_hash"`
	MRAggregated    string `json:"mr_aggregated"`
	KeyProviderInfo string `json:"key_provider_info"`
}

// tdReportFields cuts MRTD and RTMR0-2 out of a v4 quote by their offsets in Intel's TD report
// 1.0 layout (after the 48-byte header), independently of package quote.
func tdReportFields(t *testing.T, raw []byte) (mrtd []byte, rtmr [3][]byte) {
	t.Helper()
	const body = 48
	const mrtdOff = body + 16 + 48 + 48 + 8 + 8 + 8
	const rtmrOff = mrtdOff + 48*4
	if len(raw) < rtmrOff+48*3 {
		t.Fatalf("quote of %d bytes", len(raw))
	}
	for i := range rtmr {
		rtmr[i] = raw[rtmrOff+48*i : rtmrOff+48*(i+1)]
	}
	return raw[mrtdOff : mrtdOff+48], rtmr
}

// ppidFromQuote reads the PPID out of the PCK leaf certificate embedded in the quote with only
// the standard library: the first PEM certificate in the quote, its Intel SGX extension
// (1.2.840.113741.1.13.1), the PPID item (…1.1).
func ppidFromQuote(t *testing.T, raw []byte) []byte {
	t.Helper()
	i := bytes.Index(raw, []byte("-----BEGIN CERTIFICATE-----"))
	if i < 0 {
		t.Fatal("no PEM certificate in the quote")
	}
	blk, _ := pem.Decode(raw[i:])
	if blk == nil {
		t.Fatal("PEM certificate does not decode")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sgx := asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	ppidOID := asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 1}
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(sgx) {
			continue
		}
		var items []struct {
			OID   asn1.ObjectIdentifier
			Value asn1.RawValue
		}
		if _, err := asn1.Unmarshal(ext.Value, &items); err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.OID.Equal(ppidOID) {
				return it.Value.Bytes
			}
		}
	}
	t.Fatal("no PPID in the PCK certificate")
	return nil
}

func sha256OfParts(parts ...[]byte) string {
	s := sha256.Sum256(bytes.Join(parts, nil))
	return hex.EncodeToString(s[:])
}

// TestBootInfoNEARAI checks the BootInfo of two real NEAR AI CVMs (a gateway, a GPU model server;
// both with a non-zero MRCONFIGID) against the values those CVMs published: mrAggregated as the
// CVM computed it with dstack's code, and the app facts; mrSystem and deviceId are recomputed from
// the quote's bytes with the standard library.
func TestBootInfoNEARAI(t *testing.T) {
	var report struct {
		Gateway struct {
			Info nearAIInfo `json:"info"`
		} `json:"gateway_attestation"`
		Models []struct {
			Info nearAIInfo `json:"info"`
		} `json:"model_attestations"`
	}
	if err := json.Unmarshal(testvectors.ReadShared(t, nearAIDir+"nearai_cloud_report_openai_gpt_oss_120b.json"), &report); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		info nearAIInfo
	}{{"gateway.getquote.json", report.Gateway.Info}, {"model-gpu8.getquote.json", report.Models[0].Info}} {
		t.Run(tc.file, func(t *testing.T) {
			raw := testvectors.ReadShared(t, nearAIDir+tc.file)
			r := mustVerify(t, Options{Attestation: raw, QuoteTime: quotesValidAt})
			b := r.BootInfo
			if b == nil {
				t.Fatalf("no boot_info: %+v", findSkip(r, "boot-info"))
			}
			var ga struct {
				Quote string `json:"quote"`
			}
			if err := json.Unmarshal(raw, &ga); err != nil {
				t.Fatal(err)
			}
			q, err := hex.DecodeString(ga.Quote)
			if err != nil {
				t.Fatal(err)
			}
			mrtd, rtmr := tdReportFields(t, q)
			kp := sha256.Sum256([]byte(tc.info.KeyProviderInfo))
			i := tc.info
			for _, f := range []struct{ name, got, want string }{
				{"teeVariant", b.TEEVariant, "dstack-tdx"},
				{"mrAggregated", b.MRAggregated, i.MRAggregated},
				{"mrSystem", b.MRSystem, sha256OfParts(mrtd, rtmr[0], rtmr[1], rtmr[2], kp[:])},
				{"deviceId", b.DeviceID, sha256OfParts(ppidFromQuote(t, q))},
				{"appId", b.AppID, i.AppID},
				{"composeHash", b.ComposeHash, i.ComposeHash},
				{"instanceId", b.InstanceID, i.InstanceID},
				{"osImageHash", b.OSImageHash, i.OSImageHash},
				{"keyProviderInfo", b.KeyProviderInfo, hex.EncodeToString([]byte(i.KeyProviderInfo))},
				{"tcbStatus (no collateral)", b.TCBStatus, ""},
			} {
				if f.got != f.want {
					t.Errorf("%s: got %s, want %s", f.name, f.got, f.want)
				}
			}
			if b.AdvisoryIDs == nil {
				t.Error("advisoryIds is null")
			}
		})
	}
}

// TestBootInfoFleet: every real GetQuote response whose facts are attested gets a BootInfo whose
// mrAggregated is recomputed here from the quote's bytes; the others say why not.
func TestBootInfoFleet(t *testing.T) {
	with, without := 0, 0
	for _, c := range fleetCases(t) {
		raw := testvectors.ReadShared(t, "real-attestations/"+c.file)
		r, err := Verify(Options{Attestation: raw, QuoteTime: quotesValidAt})
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if r.BootInfo == nil {
			without++
			if s := findSkip(r, "boot-info"); s == nil || s.Reason == "" {
				t.Errorf("%s: no boot_info and no boot-info not_checked entry", c.file)
			} else {
				t.Logf("%s: %s", c.file, s.Reason)
			}
			continue
		}
		with++
		q := r.Quote
		mrtd, rtmr := []byte(r.Registers["mrtd"].Actual), r.Registers
		agg := [][]byte{mrtd, rtmr["rtmr0"].Actual, rtmr["rtmr1"].Actual, rtmr["rtmr2"].Actual, rtmr["rtmr3"].Actual}
		if !bytes.Equal(append(append(append([]byte{}, q.MRConfigID...), q.MROwner...), q.MROwnerConfig...), make([]byte, 144)) {
			agg = append(agg, q.MRConfigID, q.MROwner, q.MROwnerConfig)
		}
		if want := sha256OfParts(agg...); r.BootInfo.MRAggregated != want {
			t.Errorf("%s: mrAggregated %s, want %s", c.file, r.BootInfo.MRAggregated, want)
		}
		if !bytes.Equal(mustDecodeHex(t, r.BootInfo.OSImageHash), bootOSImageHash(r)) {
			t.Errorf("%s: osImageHash %s is not the report's identity %x", c.file, r.BootInfo.OSImageHash, bootOSImageHash(r))
		}
	}
	t.Logf("boot_info for %d real attestations, refused with a reason for %d", with, without)
	if with == 0 {
		t.Error("no real attestation got a boot_info")
	}
}

func mustDecodeHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBootInfoRefused: no BootInfo from what the CVM did not attest.
func TestBootInfoRefused(t *testing.T) {
	gateway := testvectors.ReadShared(t, nearAIDir+"gateway.getquote.json")
	for _, tc := range []struct {
		name string
		opts func() Options
		want string
	}{
		{"certificates expired", func() Options {
			return Options{Attestation: gateway, QuoteTime: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)}
		}, "not authentic"},
		{"RTMR3 payload tampered", func() Options {
			return Options{Attestation: mutateGetQuote(t, gateway, func(ev []map[string]any) {
				for _, e := range ev {
					if e["event"] == "compose-hash" {
						e["event_payload"] = strings.Repeat("00", 32)
					}
				}
			}), QuoteTime: quotesValidAt}
		}, "does not replay"},
		// A NEAR MPC node of dstack 0.5.4: no os-image-hash event, no vm_config, no image given.
		{"no os_image_hash attested", func() Options {
			return Options{Attestation: testvectors.ReadShared(t, "real-attestations/near-mpc/getquote.dstack-0.5.4.e76f1a38.json"), QuoteTime: quotesValidAt}
		}, "no attested os_image_hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustVerify(t, tc.opts())
			if r.BootInfo != nil {
				t.Fatalf("boot_info %+v", r.BootInfo)
			}
			if s := findSkip(r, "boot-info"); s == nil || !strings.Contains(s.Reason, tc.want) {
				t.Errorf("boot-info not_checked %+v, want %q", s, tc.want)
			}
		})
	}
}

// mutateGetQuote edits the event log of a GetQuote response.
func mutateGetQuote(t *testing.T, raw []byte, edit func([]map[string]any)) []byte {
	t.Helper()
	var ga map[string]any
	if err := json.Unmarshal(raw, &ga); err != nil {
		t.Fatal(err)
	}
	var ev []map[string]any
	if err := json.Unmarshal([]byte(ga["event_log"].(string)), &ev); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(ev)
	}
	b, _ := json.Marshal(ev)
	ga["event_log"] = string(b)
	out, _ := json.Marshal(ga)
	return out
}

// TestPolicyOnReport: the policy's answer is reported next to the verdict, never folded into it.
func TestPolicyOnReport(t *testing.T) {
	raw := testvectors.ReadShared(t, nearAIDir+"gateway.getquote.json")
	// Values from the NEAR AI gateway's published Info (not from our report).
	const (
		osImage = "0xDA9A3D5CC196A1A76D953FB27069BE428DDF60A1CE10B0534C3CF968D3053FDE"
		appID   = "f550fdfb4eb8ad787c1bcd423f091cbb4a4431ae"
		compose = "3a5b9747bc6731c5de6c6d6740c3c37cc4522a935b1655e2b757d81089df31f0"
		mrAgg   = "68da5759806d28032db6191b04e587c6cd750b29b369cfd863ce849bd6b62821"
	)
	mk := func(statuses string) *policy.Policy {
		p, err := policy.ParseAuthSimple([]byte(fmt.Sprintf(`{"osImages": [%q], "allowedTcbStatuses": %s,
			"kms": {"mrAggregated": [%q]}, "apps": {%q: {"composeHashes": [%q]}}}`, osImage, statuses, mrAgg, appID, compose)))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := mustVerify(t, Options{Attestation: raw, QuoteTime: quotesValidAt})
	for _, tc := range []struct {
		name     string
		p        *policy.Policy
		role     policy.Role
		allowed  bool
		reason   string
		verified bool
	}{
		// Without collateral the TCB status is not evaluated: the default policy refuses.
		{"default TCB statuses", mk(`["UpToDate"]`), policy.RoleApp, false, "TCB status is not allowed (TCB status not evaluated)", base.Verified},
		{"app allowed", mk(`[""]`), policy.RoleApp, true, "", base.Verified},
		{"kms allowed", mk(`[""]`), policy.RoleKMS, true, "", base.Verified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustVerify(t, Options{Attestation: raw, QuoteTime: quotesValidAt, Policy: tc.p, PolicyRole: tc.role})
			if r.Policy == nil || r.Policy.Allowed != tc.allowed || r.Policy.Reason != tc.reason || r.Policy.Role != tc.role {
				t.Fatalf("policy %+v", r.Policy)
			}
			if c := findCheck(r, "policy"); c == nil || c.OK != tc.allowed {
				t.Errorf("policy check %+v", c)
			}
			if r.Verified != tc.verified {
				t.Errorf("verified %v, without a policy %v", r.Verified, tc.verified)
			}
		})
	}
	// No BootInfo, no answer: the policy is listed as not evaluated.
	r := mustVerify(t, Options{Attestation: raw, QuoteTime: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC), Policy: mk(`[""]`)})
	if r.Policy != nil || findSkip(r, "policy") == nil || findCheck(r, "policy") != nil {
		t.Errorf("policy on an unauthentic quote: %+v %+v", r.Policy, findSkip(r, "policy"))
	}
}

// With Intel's collateral the BootInfo carries the evaluated TCB status. The only real dstack
// quote with matching collateral has no attested os_image_hash without its (unavailable) image,
// so the identity is granted here to reach the mapping.
func TestBootInfoTCBStatus(t *testing.T) {
	raw, g := loadFixture(t, fullFixture)
	coll := testvectors.ReadShared(t, "dcap/dcap-qvl_tdx_quote_outdated_collateral.json")
	at := time.Date(2026, 3, 5, 10, 58, 51, 0, time.UTC)
	r := mustVerify(t, Options{Attestation: raw, Collateral: coll, QuoteTime: at})
	if r.BootInfo != nil || !strings.Contains(findSkip(r, "boot-info").Reason, "no attested os_image_hash") {
		t.Fatalf("boot_info without an attested image: %+v", r.BootInfo)
	}
	q, err := quote.ParseAuto(mustDecodeHex(t, g.Quote))
	if err != nil {
		t.Fatal(err)
	}
	events, err := eventlog.Parse([]byte(g.EventLog))
	if err != nil {
		t.Fatal(err)
	}
	r.App.OSImageHash, r.App.OSImageHashSource = Hex(bytes.Repeat([]byte{1}, 32)), IdentityImage
	b, why := bootInfo(r, q, events)
	if b == nil {
		t.Fatal(why)
	}
	if b.TCBStatus != "UpToDate" || b.TCBStatus != *r.QuoteVerification.TCBStatus {
		t.Errorf("tcbStatus %q, quote verification %q", b.TCBStatus, *r.QuoteVerification.TCBStatus)
	}
	if fmt.Sprint(b.AdvisoryIDs) != fmt.Sprint(r.QuoteVerification.AdvisoryIDs) {
		t.Errorf("advisoryIds %v, quote verification %v", b.AdvisoryIDs, r.QuoteVerification.AdvisoryIDs)
	}
}
