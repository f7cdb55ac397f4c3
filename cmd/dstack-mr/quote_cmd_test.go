package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

func TestQuoteVerifyCommand(t *testing.T) {
	bin := testvectors.Shared(t, "dcap/dcap-qvl_tdx_quote_outdated.bin")
	getQuote := testvectors.Shared(t, testvectors.DstackVerifier("quote-report.json"))
	coll := testvectors.Shared(t, "dcap/dcap-qvl_tdx_quote_outdated_collateral.json")
	dir := t.TempDir()
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	hexFile := filepath.Join(dir, "quote.hex")
	os.WriteFile(hexFile, []byte(hex.EncodeToString(raw)+"\n"), 0o644)
	forged := append([]byte{}, raw...)
	forged[48+136] ^= 1 // MRTD
	forgedFile := filepath.Join(dir, "forged.bin")
	os.WriteFile(forgedFile, forged, 0o644)
	notQuote := filepath.Join(dir, "not-a-quote.bin")
	os.WriteFile(notQuote, []byte("hello"), 0o644)

	for _, tc := range []struct {
		name      string
		args      []string
		code      int
		authentic bool
		stderr    string
	}{
		{"binary", []string{bin}, 0, true, ""},
		{"hex", []string{hexFile}, 0, true, ""},
		{"GetQuote JSON", []string{getQuote}, 0, true, ""},
		{"inside the PCK validity", []string{"--time", "2030-01-01T00:00:00Z", bin}, 0, true, ""},
		{"after every certificate expired", []string{"--time", "2060-01-01T00:00:00Z", bin}, exitNotAuthentic, false, "NOT authentic"},
		{"forged MRTD", []string{forgedFile}, exitNotAuthentic, false, "NOT authentic"},
		{"not a quote", []string{notQuote}, 1, false, "not-a-quote.bin"},
		{"missing file", []string{filepath.Join(dir, "nope")}, 1, false, "nope"},
		{"bad time", []string{"--time", "yesterday", bin}, 1, false, "RFC 3339"},
		{"collateral that is not JSON", []string{"--collateral", bin, bin}, 1, false, "QuoteCollateralV3"},
		{"expired collateral", []string{"--collateral", coll, bin}, 1, false, "nextUpdate"},
		{"collateral, no matching TCB level", []string{"--collateral", coll, "--time", "2026-03-05T10:58:51Z", bin}, exitNotAuthentic, true, "NOT acceptable"},
		{"collateral, dstack quote UpToDate", []string{"--collateral", coll, "--time", "2026-03-05T10:58:51Z", getQuote}, 0, true, ""},
		{"bad policy", []string{"--tcb-policy", "Fine", bin}, 1, false, "unknown status"},
		{"no argument", nil, 1, false, "one QUOTE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(append([]string{"quote", "verify", "--json"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, stderr, tc.stderr)
			}
			if code == 1 {
				if stdout != "" {
					t.Errorf("stdout on a usage error: %q", stdout)
				}
				return
			}
			var res struct {
				Authentic   bool            `json:"authentic"`
				TCBStatus   *string         `json:"tcb_status"`
				AdvisoryIDs []string        `json:"advisory_ids"`
				FMSPC       string          `json:"fmspc"`
				Checks      []quoteCheckRow `json:"checks"`
				ToolVersion string          `json:"tool_version"`
				Acceptable  *bool           `json:"acceptable"`
			}
			if err := json.Unmarshal([]byte(stdout), &res); err != nil {
				t.Fatal(err)
			}
			withColl := strings.Contains(strings.Join(tc.args, " "), "--collateral")
			if res.Authentic != tc.authentic || (res.TCBStatus != nil) != withColl || res.AdvisoryIDs == nil || res.ToolVersion == "" || len(res.Checks) < 6 {
				t.Errorf("%+v", res)
			}
			if tc.authentic && res.FMSPC != "90c06f000000" {
				t.Errorf("fmspc %q", res.FMSPC)
			}
			// Authentic without collateral: acceptable is null, never true, since the TCB
			// status was not evaluated.
			switch {
			case tc.authentic && !withColl && res.Acceptable != nil:
				t.Errorf("acceptable %v without collateral, want null", *res.Acceptable)
			case (withColl || !tc.authentic) && (res.Acceptable == nil || *res.Acceptable != (code == 0)):
				t.Errorf("acceptable %v with exit %d", res.Acceptable, code)
			}
		})
	}
}

// The text form prints the registers an auditor copies, full length, and says when the TCB
// status was not evaluated.
func TestQuoteVerifyTextRegisters(t *testing.T) {
	bin := testvectors.Shared(t, "dcap/dcap-qvl_tdx_quote_outdated.bin")
	code, stdout, stderr := runCLI("quote", "verify", bin)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"MRTD ", "RTMR0 ", "RTMR1 ", "RTMR2 ", "RTMR3 ", "REPORTDATA ", "MRCONFIGID ", "TCB status not evaluated"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in\n%s", want, stdout)
		}
	}
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], "RTMR") && len(f[1]) != 96 {
			t.Errorf("%q: want 48 bytes of hex", line)
		}
	}
}

type quoteCheckRow struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}
