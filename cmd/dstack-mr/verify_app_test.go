package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

type appReport struct {
	Checks []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
	App struct {
		AppCompose *struct {
			Matched bool   `json:"matched"`
			Form    string `json:"form"`
			Facts   *struct {
				Name string `json:"name"`
			} `json:"facts"`
		} `json:"app_compose"`
		MRConfig *struct {
			Version int `json:"version"`
		} `json:"mr_config"`
	} `json:"app"`
}

func (r *appReport) check(name string) (ok, found bool, detail string) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c.OK, true, c.Detail
		}
	}
	return false, false, ""
}

// --app-compose checks the reviewed file against the attested compose hash (a file or stdin),
// names the form that matched, and shows the app's facts in text and JSON; the JSON validates.
func TestVerifyAppCompose(t *testing.T) {
	att := testvectors.Shared(t, "real-attestations/dstack-examples-attestation-2025/report.json")
	compose := testvectors.Shared(t, "real-attestations/dstack-examples-attestation-2025/app-compose.json")
	other := testvectors.Shared(t, "real-attestations/dstack-sdk-simulator/app-compose.c65b8991.json")
	doc, err := os.ReadFile(compose)
	if err != nil {
		t.Fatal(err)
	}
	var want struct{ Name string }
	_ = json.Unmarshal(doc, &want)
	schema := loadSchema(t, "verify")
	for _, tc := range []struct {
		name    string
		args    []string
		stdin   []byte
		matched bool
	}{
		{"file", []string{"--app-compose", compose}, nil, true},
		{"stdin", []string{"--app-compose", "-"}, doc, true},
		{"another app's compose", []string{"--app-compose", other}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"dstack-mr", "verify", "--attestation", att, "--json"}, tc.args...)
			var out, errb bytes.Buffer
			code := runWithInput(args, bytes.NewReader(tc.stdin), &out, &errb)
			if code != exitNotVerified { // no expected image
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if errs := schema.Validate(out.Bytes()); len(errs) > 0 {
				t.Errorf("schema: %s", strings.Join(errs, "\n"))
			}
			var r appReport
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			ok, found, detail := r.check("app-compose")
			c := r.App.AppCompose
			if !found || ok != tc.matched || c == nil || c.Matched != tc.matched || (c.Facts != nil) != tc.matched {
				t.Fatalf("check %v %v %s; report %+v", found, ok, detail, c)
			}
			if tc.matched && (c.Form != "exact" || c.Facts.Name != want.Name) {
				t.Errorf("form %s, facts %+v", c.Form, c.Facts)
			}
		})
	}
	code, stdout, stderr := runCLI("verify", "--attestation", att, "--app-compose", compose)
	if code != exitNotVerified || !strings.Contains(stdout, "app compose (--app-compose): matches the attested compose hash (exact form)") ||
		!strings.Contains(stdout, want.Name) || !strings.Contains(stdout, "MRCONFIGID unset") {
		t.Errorf("text report (exit %d, %s):\n%s", code, stderr, stdout)
	}
	code, stdout, _ = runCLI("verify", "--attestation", att, "--app-compose", other)
	if code != exitNotVerified || !strings.Contains(stdout, "does NOT hash to the attested compose hash") || strings.Contains(stdout, "kvin-nb\n") {
		t.Errorf("another app's compose, text (exit %d):\n%s", code, stdout)
	}
}

// A value that cannot be what a flag wants is a usage error (exit 1, nothing on stdout) that
// names the flag and the expected form; a path given to --compose-hash points to --app-compose.
func TestVerifyPinnedValueUsageErrors(t *testing.T) {
	att := testvectors.Shared(t, "real-attestations/dstack-examples-attestation-2025/report.json")
	dir := t.TempDir()
	compose := filepath.Join(dir, "app-compose.json")
	if err := os.WriteFile(compose, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--compose-hash", "app-compose.json"}, []string{"--compose-hash", "64 hex digits", "file path", "--app-compose app-compose.json"}},
		{[]string{"--compose-hash", strings.Repeat("ab", 31)}, []string{"--compose-hash", "32 bytes", "got 31 bytes"}},
		{[]string{"--compose-hash", strings.Repeat("a", 63)}, []string{"--compose-hash", "odd number"}},
		{[]string{"--app-id", strings.Repeat("ab", 32)}, []string{"--app-id", "20 bytes as 40 hex digits"}},
		{[]string{"--instance-id", "xyz"}, []string{"--instance-id", "20 bytes"}},
		{[]string{"--os-image-hash", "./sha256sum.txt"}, []string{"--os-image-hash", "file path"}},
		{[]string{"--key-provider-id", "kms"}, []string{"--key-provider-id", "hex"}},
		{[]string{"--app-id", ""}, []string{"--app-id is empty"}},
		{[]string{"--app-compose", dir}, []string{"--app-compose", "not a regular file"}},
		{[]string{"--app-compose", "-", "-"}, []string{"--app-compose - and IMAGE - both read stdin"}},
		{[]string{"--app-compose", filepath.Join(dir, "missing.json")}, []string{"--app-compose", "missing.json"}},
	} {
		code, stdout, stderr := runCLI(append([]string{"verify", "--attestation", att}, tc.args...)...)
		if code != 1 || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q", tc.args, code, stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr %q lacks %q", tc.args, stderr, w)
			}
		}
	}
	// Pins of the right length are compared (0x prefix allowed): a wrong one is a mismatch.
	code, _, stderr := runCLI("verify", "--attestation", att, "--app-id", "0x"+strings.Repeat("00", 20), "--key-provider-id", "0x3059")
	if code != exitNotVerified {
		t.Errorf("wrong pins: exit %d: %s", code, stderr)
	}
}

// --key-provider prints the provider in words on pass and fail, in text and JSON.
func TestVerifyKeyProviderDetail(t *testing.T) {
	att := testvectors.Shared(t, "real-attestations/dstack-examples-attestation-2025/report.json")
	for _, kp := range []string{"kms", "local-sgx"} {
		for _, format := range []string{"--json", "--log-level=error"} {
			_, stdout, _ := runCLI("verify", "--attestation", att, "--key-provider", kp, format)
			if !strings.Contains(stdout, "expect-key-provider") || strings.Contains(stdout, "&{") || !strings.Contains(stdout, "attested key provider kms with key provider id 3059") {
				t.Errorf("--key-provider %s %s:\n%s", kp, format, stdout)
			}
		}
	}
}

// A guest agent Info's own app_compose is checked and its facts shown; the JSON validates.
func TestVerifyInfoAppCompose(t *testing.T) {
	info := testvectors.Shared(t, "real-attestations/phala-trust-center/kmsInfo/prod6-eth.78684baf.json")
	_, stdout, stderr := runCLI("verify", "--info", info, "--json")
	if errs := loadSchema(t, "verify").Validate([]byte(stdout)); len(errs) > 0 {
		t.Errorf("schema: %s (%s)", strings.Join(errs, "\n"), stderr)
	}
	if ok, found, detail := (func() (bool, bool, string) {
		var r appReport
		_ = json.Unmarshal([]byte(stdout), &r)
		return r.check("input-app-compose")
	})(); !found || !ok {
		t.Errorf("input-app-compose %v %v %s", found, ok, detail)
	}
	_, text, _ := runCLI("verify", "--info", info)
	if !strings.Contains(text, "app compose carried by the input (tcb_info.app_compose): matches") || !strings.Contains(text, "eth-kms") {
		t.Errorf("text:\n%s", text)
	}
}
