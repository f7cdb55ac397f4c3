package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/quote"
)

// Every real quote's MRCONFIGID is checked in its own form against its RTMR3: v1 and v2 (the
// NEAR MPC 0.5.4 node binds its local-sgx key provider) all pass; all-zero ones are unset.
func TestMRConfigIDOfRealQuotes(t *testing.T) {
	dir := testvectors.Shared(t, "real-attestations")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.json"))
	versions := map[int]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Verify(Options{Attestation: b})
		if err != nil || r.Quote == nil {
			continue // not an attestation (Info, report, public data, ...)
		}
		m := r.App.MRConfig
		if m == nil {
			t.Errorf("%s: no MRCONFIGID form reported", f)
			continue
		}
		versions[m.Version]++
		c := findCheck(r, "mr-config-id")
		switch m.Version {
		case 0:
			if c != nil {
				t.Errorf("%s: unset MRCONFIGID checked: %+v", f, c)
			}
		case 1, 2:
			if c == nil || !c.OK {
				t.Errorf("%s: MRCONFIGID v%d: %+v", f, m.Version, c)
			}
		default:
			t.Errorf("%s: MRCONFIGID version %d", f, m.Version)
		}
	}
	t.Logf("MRCONFIGID forms of the real quotes: %v", versions)
	if versions[1] < 10 || versions[2] < 1 || versions[0] < 1 {
		t.Errorf("forms %v: want v1, v2 and unset ones among the real quotes", versions)
	}
}

// A v2 MRCONFIGID fails when any of its inputs differs from what it was computed from.
func TestMRConfigIDv2Tampered(t *testing.T) {
	b, err := os.ReadFile(testvectors.Shared(t, "real-attestations/near-mpc/getquote.dstack-0.5.4.e76f1a38.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Verify(Options{Attestation: b})
	if err != nil {
		t.Fatal(err)
	}
	var a struct{ Quote string }
	_ = json.Unmarshal(b, &a)
	q, err := quote.ParseAuto([]byte(a.Quote))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(h Hex) Hex { c := append(Hex(nil), h...); c[len(c)-1] ^= 1; return c }
	kp := *r.App.KeyProvider
	for name, mutate := range map[string]func(a *AppInfo){
		"none":          func(*AppInfo) {},
		"compose hash":  func(a *AppInfo) { a.ComposeHash = flip(a.ComposeHash) },
		"app id":        func(a *AppInfo) { a.AppID = flip(a.AppID) },
		"provider kind": func(a *AppInfo) { a.KeyProvider = &eventlog.KeyProvider{Name: "kms", ID: kp.ID} },
		"provider id":   func(a *AppInfo) { a.KeyProvider = &eventlog.KeyProvider{Name: kp.Name, ID: kp.ID[:len(kp.ID)-2]} },
		"no provider":   func(a *AppInfo) { a.KeyProvider = nil },
	} {
		app := *r.App
		app.MRConfig = nil
		mutate(&app)
		rr := &Report{Quote: r.Quote, App: &app}
		checkMRConfigID(rr, q)
		c := findCheck(rr, "mr-config-id")
		if c == nil || c.OK != (name == "none") || rr.App.MRConfig.Version != 2 {
			t.Errorf("%s: %+v", name, c)
		}
	}
}

// MRCONFIGID v3 binds the exact mr_config document; its fields must agree with RTMR3. The
// document below is the JCS form dstack-types' own test prints.
func TestMRConfigIDv3(t *testing.T) {
	const doc = `{"app_id":"1111111111111111111111111111111111111111",` +
		`"compose_hash":"2222222222222222222222222222222222222222222222222222222222222222",` +
		`"gpu_policy_hash":"5555555555555555555555555555555555555555555555555555555555555555",` +
		`"instance_id":"4444444444444444444444444444444444444444","key_provider":"kms",` +
		`"key_provider_id":"3333333333333333333333333333333333333333333333333333333333333333","version":3}`
	rep := func(b string, n int) Hex { h, _ := hex.DecodeString(strings.Repeat(b, n)); return h }
	idOf := func(document string) quote.Hex {
		sum := sha256.Sum256(append([]byte("dstack-mr-config-v3:\x00"), document...))
		return append(append(quote.Hex{3}, sum[:]...), make([]byte, 15)...)
	}
	pretty := strings.ReplaceAll(doc, ",", ", ")
	for _, tc := range []struct {
		name      string
		vmConfig  string // "" = no document
		id        quote.Hex
		mutate    func(a *AppInfo, f *eventlog.RTMR3Facts)
		idOK, doc string // "ok", "fail", "" (absent), "skip"
	}{
		{"matches", doc, idOf(doc), nil, "ok", "ok"},
		{"no document", "", idOf(doc), nil, "skip", ""},
		{"reformatted document", pretty, idOf(doc), nil, "fail", "ok"},
		{"other compose hash", doc, idOf(doc), func(a *AppInfo, _ *eventlog.RTMR3Facts) { a.ComposeHash = rep("23", 32) }, "ok", "fail"},
		{"other key provider", doc, idOf(doc), func(a *AppInfo, _ *eventlog.RTMR3Facts) {
			a.KeyProvider = &eventlog.KeyProvider{Name: "local-sgx", ID: strings.Repeat("33", 32)}
		}, "ok", "fail"},
		{"other gpu policy", doc, idOf(doc), func(_ *AppInfo, f *eventlog.RTMR3Facts) { f.GPUPolicyHash = rep("56", 32) }, "ok", "fail"},
		{"init scripts pinned", strings.Replace(doc, `"version"`, `"init_script_hashes":["aa"],"version"`, 1),
			idOf(strings.Replace(doc, `"version"`, `"init_script_hashes":["aa"],"version"`, 1)), nil, "ok", "fail"},
		{"unknown field", strings.Replace(doc, `"version"`, `"extra":1,"version"`, 1),
			idOf(strings.Replace(doc, `"version"`, `"extra":1,"version"`, 1)), nil, "ok", "fail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			facts := &eventlog.RTMR3Facts{GPUPolicyHash: rep("55", 32)}
			app := &AppInfo{AppID: rep("11", 20), ComposeHash: rep("22", 32), InstanceID: rep("44", 20),
				KeyProvider: &eventlog.KeyProvider{Name: "kms", ID: strings.Repeat("33", 32)}}
			if tc.mutate != nil {
				tc.mutate(app, facts)
			}
			r := &Report{Quote: &QuoteInfo{}, App: app, RTMR3: facts}
			in := &inputs{}
			if tc.vmConfig != "" {
				vm, _ := json.Marshal(map[string]any{"cpu_count": 1, "mr_config": tc.vmConfig})
				in.vmConfig = vm
			}
			checkAppCompose(r, &Options{}, in)
			checkMRConfigID(r, &quote.Quote{Report: quote.TDReport{MRConfigID: tc.id}})
			state := func(name string) string {
				if c := findCheck(r, name); c != nil {
					return map[bool]string{true: "ok", false: "fail"}[c.OK]
				}
				if findSkip(r, name) != nil {
					return "skip"
				}
				return ""
			}
			if got := state("mr-config-id"); got != tc.idOK {
				t.Errorf("mr-config-id %s, want %s: %+v %+v", got, tc.idOK, r.Checks, r.NotChecked)
			}
			if got := state("mr-config-document"); got != tc.doc {
				t.Errorf("mr-config-document %s, want %s: %+v", got, tc.doc, r.Checks)
			}
			if r.App.MRConfig == nil || r.App.MRConfig.Version != 3 {
				t.Errorf("form %+v", r.App.MRConfig)
			}
		})
	}
}

// The expect-key-provider detail names the provider in the user's terms, never a Go value.
func TestExpectKeyProviderDetail(t *testing.T) {
	b, err := os.ReadFile(testvectors.Shared(t, "real-attestations/dstack-examples-attestation-2025/report.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kms", "local-sgx"} {
		r, err := Verify(Options{Attestation: b, Expect: Expectations{KeyProviderName: name}})
		if err != nil {
			t.Fatal(err)
		}
		c := findCheck(r, "expect-key-provider")
		if c == nil || c.OK != (name == "kms") || strings.ContainsAny(c.Detail, "&{}") || !strings.Contains(c.Detail, "key provider kms with key provider id 3059") {
			t.Errorf("%s: %+v", name, c)
		}
	}
}

// FuzzMRConfigDocument: any vm_config and document yield checks, never a panic, and a v3
// MRCONFIGID is never reported as passed unless it is the document's hash.
func FuzzMRConfigDocument(f *testing.F) {
	f.Add([]byte(`{"cpu_count":1,"mr_config":"{\"compose_hash\":\"22\",\"key_provider\":\"none\"}"}`), []byte{3})
	f.Add([]byte(`{"vm_config":"{\"mr_config\":\"{}\"}"}`), []byte{3, 1})
	f.Add([]byte(`"{\"mr_config\":\"x\"}"`), []byte{2})
	f.Fuzz(func(t *testing.T, vmConfig, id []byte) {
		r := &Report{Quote: &QuoteInfo{}, App: &AppInfo{ComposeHash: make(Hex, 32), AppID: make(Hex, 20),
			KeyProvider: &eventlog.KeyProvider{Name: "none"}}}
		checkAppCompose(r, &Options{}, &inputs{vmConfig: vmConfig})
		mrID := make(quote.Hex, 48)
		copy(mrID, id)
		checkMRConfigID(r, &quote.Quote{Report: quote.TDReport{MRConfigID: mrID}})
		if c := findCheck(r, "mr-config-id"); c != nil && c.OK && mrID[0] == 3 && !bytesEqual(mrConfigV3ID(r.App.MRConfig.Document), mrID) {
			t.Fatalf("v3 passed without its document: %+v", c)
		}
	})
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }
