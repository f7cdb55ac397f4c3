package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// liteFacts reads the app id and compose hash the real lite CVM logged in RTMR3, straight from
// its GetQuote response.
func liteFacts(t *testing.T, path string) (appID, composeHash string) {
	t.Helper()
	var ga struct {
		EventLog string `json:"event_log"`
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ga); err != nil {
		t.Fatal(err)
	}
	var events []struct {
		Event   string `json:"event"`
		Payload string `json:"event_payload"`
	}
	if err := json.Unmarshal([]byte(ga.EventLog), &events); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		switch e.Event {
		case "app-id":
			appID = e.Payload
		case "compose-hash":
			composeHash = e.Payload
		}
	}
	if appID == "" || composeHash == "" {
		t.Fatal("no app-id or compose-hash event in the fixture")
	}
	return appID, composeHash
}

// TestVerifyPolicy: --policy answers whether dstack's KMS would release keys; a denial exits 3
// while the JSON's verified stays the attestation's verdict.
func TestVerifyPolicy(t *testing.T) {
	lite := testvectors.Shared(t, "real-attestations/dstack-fixture-history/tdx-lite-getquote.02bb2476.json")
	const osImageHash = "07a2388c7a6a1b6a646d443f1517990a4ec294471d63146cda9d56972765051d"
	appID, compose := liteFacts(t, lite)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// No collateral here, so the TCB status is not evaluated: only a policy admitting "" allows.
	allow := write("allow.json", fmt.Sprintf(`{"osImages": ["0x%s"], "allowedTcbStatuses": [""], "gatewayAppId": "0xabcd",
		"kms": {"mrAggregated": ["%s"]}, "apps": {"0x%s": {"composeHashes": ["0x%s"]}}}`,
		strings.ToUpper(osImageHash), strings.Repeat("00", 32), appID, compose))
	strictTCB := write("default-tcb.json", fmt.Sprintf(`{"osImages": ["%s"], "apps": {"%s": {"composeHashes": ["%s"]}}}`, osImageHash, appID, compose))
	bad := write("bad.json", `{"osImages": ["0x<os-image-hash>"]}`)
	base := []string{"verify", "--attestation", lite, "--os-image-hash", osImageHash}

	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		verified bool
	}{
		{"app allowed", []string{"--policy", allow}, 0, "policy: ALLOWED (/bootAuth/app)", "", true},
		{"TCB status not evaluated", []string{"--policy", strictTCB}, exitNotVerified,
			"policy: DENIED (/bootAuth/app): TCB status is not allowed (TCB status not evaluated)", "the policy denies it", true},
		{"kms: aggregated MR not listed", []string{"--policy", allow, "--policy-role", "kms"}, exitNotVerified,
			"policy: DENIED (/bootAuth/kms): aggregated MR not allowed", "the policy denies it", true},
		{"attestation not verified", []string{"--policy", allow, "--compose-hash", strings.Repeat("11", 32)}, exitNotVerified,
			"policy: ALLOWED (/bootAuth/app)", "attestation NOT verified", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{}, base...), tc.args...)
			code, stdout, stderr := runCLI(args...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout %s\nstderr %s", code, tc.code, stdout, stderr)
			}
			_, js, _ := runCLI(append(args, "--json")...)
			var rep struct {
				Verified bool `json:"verified"`
				BootInfo *struct {
					AppID       string `json:"appId"`
					ComposeHash string `json:"composeHash"`
					OSImageHash string `json:"osImageHash"`
				} `json:"boot_info"`
				Policy *struct {
					Allowed bool `json:"allowed"`
				} `json:"policy"`
			}
			if err := json.Unmarshal([]byte(js), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Verified != tc.verified || rep.Policy == nil || rep.Policy.Allowed != (tc.stdout == "policy: ALLOWED (/bootAuth/app)") {
				t.Errorf("verified %v policy %+v", rep.Verified, rep.Policy)
			}
			if b := rep.BootInfo; b == nil || b.AppID != appID || b.ComposeHash != compose || b.OSImageHash != osImageHash {
				t.Errorf("boot_info %+v", b)
			}
			if errs := loadSchema(t, "verify").Validate([]byte(js)); len(errs) > 0 {
				t.Errorf("schema: %s", strings.Join(errs, "\n"))
			}
		})
	}

	for _, tc := range []struct{ name, want string }{
		{bad, `--policy ` + bad + `: osImages[0]: "0x<os-image-hash>" is not hex`},
		{filepath.Join(dir, "missing.json"), "missing.json: open"},
		{dir, "not a regular file"},
	} {
		code, stdout, stderr := runCLI(append(append([]string{}, base...), "--policy", tc.name)...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("--policy %s: exit %d, stdout %q, stderr %q (want %q)", tc.name, code, stdout, stderr, tc.want)
		}
	}
	if code, stdout, stderr := runCLI(append(append([]string{}, base...), "--policy", allow, "--policy-role", "gateway")...); code != 1 || stdout != "" || !strings.Contains(stderr, "want app or kms") {
		t.Errorf("--policy-role gateway: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
