package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func loadPolicy(t *testing.T, name string) *Policy {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseAuthSimple(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

const (
	imgA   = "0b327bcd642788b0517de3ff46d31ebd3847b6c64ea40bacde268bb9f1c8ec83"
	mrA    = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	devD   = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
	devE   = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
	appGW  = "f550fdfb4eb8ad787c1bcd423f091cbb4a4431ae"
	chGW   = "3a5b9747bc6731c5de6c6d6740c3c37cc4522a935b1655e2b757d81089df31f0"
	appAny = "2c0a0c96cb6dbd659bf1446e2f3fce58172ff91b"
	chAny  = "242a62724303cc32f364da0fc92738706b0078e7587821b7ba3e75488223797b"
)

// good is a BootInfo full.json allows for the gateway app and as a KMS.
func good() BootInfo {
	return BootInfo{TEEVariant: TEEVariantTDX, MRAggregated: mrA, OSImageHash: imgA, AppID: appGW, ComposeHash: chGW,
		DeviceID: devD, TCBStatus: "UpToDate", AdvisoryIDs: []string{}}
}

func TestDecisions(t *testing.T) {
	full := loadPolicy(t, "full.json")
	minimal := loadPolicy(t, "minimal.json")
	empty := loadPolicy(t, "empty.json")
	for _, tc := range []struct {
		name   string
		p      *Policy
		role   Role
		edit   func(*BootInfo)
		reason string // "" = allowed
	}{
		{"app allowed", full, RoleApp, nil, ""},
		{"kms allowed", full, RoleKMS, nil, ""},
		{"hex compared case-insensitively with 0x", full, RoleApp, func(b *BootInfo) {
			b.OSImageHash, b.AppID, b.ComposeHash, b.DeviceID = "0x"+strings.ToUpper(imgA), "0X"+strings.ToUpper(appGW), strings.ToUpper(chGW), "0x"+devD
		}, ""},
		{"second allowed TCB status", full, RoleApp, func(b *BootInfo) { b.TCBStatus = "SWHardeningNeeded" }, ""},
		{"TCB status out of date", full, RoleApp, func(b *BootInfo) { b.TCBStatus = "OutOfDate" }, "TCB status is not allowed"},
		{"TCB status compared exactly", full, RoleKMS, func(b *BootInfo) { b.TCBStatus = "uptodate" }, "TCB status is not allowed"},
		{"TCB status not evaluated", full, RoleApp, func(b *BootInfo) { b.TCBStatus = "" }, "TCB status is not allowed (TCB status not evaluated)"},
		{"default allows only UpToDate", minimal, RoleKMS, func(b *BootInfo) { b.TCBStatus = "SWHardeningNeeded" }, "TCB status is not allowed"},
		{"listed advisory", full, RoleApp, func(b *BootInfo) { b.AdvisoryIDs = []string{"INTEL-SA-00837"} }, ""},
		{"unlisted advisory", full, RoleApp, func(b *BootInfo) { b.AdvisoryIDs = []string{"INTEL-SA-00837", "INTEL-SA-01036"} }, "advisory ID is not allowed"},
		{"advisories checked before the OS image", full, RoleApp, func(b *BootInfo) { b.AdvisoryIDs, b.OSImageHash = []string{"X"}, devE }, "advisory ID is not allowed"},
		{"default allows no advisory", minimal, RoleKMS, func(b *BootInfo) { b.AdvisoryIDs = []string{"INTEL-SA-00837"} }, "advisory ID is not allowed"},
		{"OS image not listed", full, RoleKMS, func(b *BootInfo) { b.OSImageHash = devE }, "OS image is not allowed"},
		{"empty os image hash", full, RoleApp, func(b *BootInfo) { b.OSImageHash = "" }, "OS image is not allowed"},
		{"empty policy denies all", empty, RoleKMS, nil, "OS image is not allowed"},
		{"empty policy: TCB first", empty, RoleApp, func(b *BootInfo) { b.TCBStatus = "OutOfDate" }, "TCB status is not allowed"},
		{"kms: mrAggregated not listed", full, RoleKMS, func(b *BootInfo) { b.MRAggregated = devE }, "aggregated MR not allowed"},
		{"kms: device not listed", full, RoleKMS, func(b *BootInfo) { b.DeviceID = devE }, "KMS is not allowed to boot on this device"},
		{"kms: any device", minimal, RoleKMS, func(b *BootInfo) { b.DeviceID = devE }, ""},
		{"kms question ignores the app", full, RoleKMS, func(b *BootInfo) { b.AppID = devE }, ""},
		{"app not registered", full, RoleApp, func(b *BootInfo) { b.AppID = "4444444444444444444444444444444444444444" }, "app not registered"},
		{"no app registered", minimal, RoleApp, nil, "app not registered"},
		{"compose hash not listed", full, RoleApp, func(b *BootInfo) { b.ComposeHash = devE }, "compose hash not allowed"},
		{"app without compose hashes", full, RoleApp, func(b *BootInfo) { b.AppID = "3333333333333333333333333333333333333333" }, "compose hash not allowed"},
		{"app device not listed", full, RoleApp, func(b *BootInfo) { b.DeviceID = devE }, "app is not allowed to boot on this device"},
		{"app on any device", full, RoleApp, func(b *BootInfo) { b.AppID, b.ComposeHash, b.DeviceID = appAny, chAny, devE }, ""},
		{"app question ignores mrAggregated", full, RoleApp, func(b *BootInfo) { b.MRAggregated = devE }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := good()
			if tc.edit != nil {
				tc.edit(&b)
			}
			d := tc.p.Decide(b, tc.role)
			if d.Allowed != (tc.reason == "") || d.Reason != tc.reason || d.Role != tc.role {
				t.Errorf("got %+v, want reason %q", d, tc.reason)
			}
			if d.Allowed != (d.Detail == "") {
				t.Errorf("detail %q on allowed=%v", d.Detail, d.Allowed)
			}
			if d.GatewayAppID != tc.p.GatewayAppID {
				t.Errorf("gateway app id %q, policy has %q", d.GatewayAppID, tc.p.GatewayAppID)
			}
		})
	}
}

func TestWebhookResponseJSON(t *testing.T) {
	d := loadPolicy(t, "full.json").AllowApp(BootInfo{TCBStatus: "OutOfDate"})
	b, _ := json.Marshal(d.Response())
	want := `{"isAllowed":false,"reason":"TCB status is not allowed","gatewayAppId":"0xGATEWAY-not-checked"}`
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

func TestParseAuthSimple(t *testing.T) {
	p := loadPolicy(t, "full.json")
	if len(p.Apps) != 3 || p.Apps[0].AppID != "0x"+appGW || p.Apps[2].AppID != "0x3333333333333333333333333333333333333333" {
		t.Errorf("apps not kept in file order, normalized: %+v", p.Apps)
	}
	if p.OSImages[0] != "0x"+imgA || p.OSImages[1] != "0x"+strings.Repeat("1", 64) {
		t.Errorf("osImages not normalized: %v", p.OSImages)
	}
	m := loadPolicy(t, "minimal.json")
	if len(m.AllowedTCBStatuses) != 1 || m.AllowedTCBStatuses[0] != "UpToDate" || len(m.AllowedAdvisoryIDs) != 0 || len(m.KMS.Devices) != 0 {
		t.Errorf("defaults: %+v", m)
	}

	for _, tc := range []struct{ name, in, want string }{
		{"not JSON", `osImages: []`, "policy: invalid character"},
		{"not an object", `[]`, "policy: want an object, got a list"},
		{"null", `null`, "policy: want an object, got null"},
		{"truncated", `{"osImages": ["ab"`, "osImages: unexpected end of the policy"},
		{"trailing data", `{} {}`, "data after the top-level object"},
		{"unknown key", `{"osImage": []}`, `osImage: unknown field`},
		{"repeated key", `{"osImages": [], "osImages": []}`, "osImages: key given twice"},
		{"null list", `{"osImages": null}`, "osImages: want a list of strings, got null"},
		{"number in list", `{"osImages": ["ab", 1]}`, "osImages[1]: want a string, got a number"},
		{"placeholder", `{"osImages": ["0x<kms-early-mr-aggregated>"]}`, `osImages[0]: "0x<kms-early-mr-aggregated>" is not hex`},
		{"odd hex", `{"kms": {"devices": ["abc"]}}`, `kms.devices[0]: "abc" has an odd number of hex digits`},
		{"empty hex", `{"kms": {"mrAggregated": ["0x"]}}`, `kms.mrAggregated[0]: empty hex value`},
		{"kms unknown", `{"kms": {"mrAggregate": []}}`, `kms.mrAggregate: unknown field`},
		{"allowAnyDevice as string", `{"kms": {"allowAnyDevice": "true"}}`, `kms.allowAnyDevice: want true or false, got a string`},
		{"tcb statuses nested", `{"allowedTcbStatuses": [["UpToDate"]]}`, `allowedTcbStatuses[0]: want a string, got a list`},
		{"app id not hex", `{"apps": {"0xYourAppId": {}}}`, `apps["0xYourAppId"] (the app id): "0xYourAppId" is not hex`},
		{"same app twice", `{"apps": {"0xAB": {}, "ab": {}}}`, `apps["ab"]: names the same app as an earlier key`},
		{"app not an object", `{"apps": {"ab": []}}`, `apps["ab"]: want an object, got a list`},
		{"app unknown field", `{"apps": {"ab": {"composeHash": []}}}`, `apps["ab"].composeHash: unknown field`},
		{"app compose not hex", `{"apps": {"ab": {"composeHashes": ["0xYourComposeHash"]}}}`, `apps["ab"].composeHashes[0]: "0xYourComposeHash" is not hex`},
		{"chainId string", `{"chainId": "1"}`, `chainId: want a number, got a string`},
		{"gateway not a string", `{"gatewayAppId": {}}`, `gatewayAppId: want a string, got an object`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAuthSimple([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := ParseAuthSimple(make([]byte, MaxPolicyBytes+1)); err == nil {
		t.Error("oversized policy accepted")
	}
}

func TestParseRole(t *testing.T) {
	for in, want := range map[string]Role{"": RoleApp, "app": RoleApp, "kms": RoleKMS} {
		if r, err := ParseRole(in); err != nil || r != want {
			t.Errorf("%q: %v %v", in, r, err)
		}
	}
	if _, err := ParseRole("KMS"); err == nil {
		t.Error("KMS accepted")
	}
}

// FuzzParseAuthSimple: any input is parsed or refused with an error, never a panic; a parsed
// policy answers both questions.
func FuzzParseAuthSimple(f *testing.F) {
	for _, n := range []string{"full.json", "minimal.json", "empty.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"apps": {"0xAB": {}, "ab": {}}}`))
	f.Add([]byte(`{"kms": {"allowAnyDevice": null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseAuthSimple(data)
		if err != nil {
			if p != nil {
				t.Fatal("policy and error")
			}
			return
		}
		for _, l := range [][]string{p.OSImages, p.KMS.MRAggregated, p.KMS.Devices} {
			for _, s := range l {
				if s != NormalizeHex(s) {
					t.Fatalf("%q not normalized", s)
				}
			}
		}
		b := good()
		p.AllowApp(b)
		p.AllowKMS(b)
	})
}
