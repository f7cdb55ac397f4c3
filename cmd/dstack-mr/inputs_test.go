package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/schemacheck"
	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// The quotes of the shared samples carry PCK certificates of limited life: checked at a time
// every one was valid (../shared/dcap/README.md).
const sampleTime = "2026-11-30T00:00:00Z"

const nearAIReportPath = "real-attestations/nearai-cloud-report-gpt-oss-120b/nearai_cloud_report_openai_gpt_oss_120b.json"

// verifyMultiSchema is verify.schema.json's $defs/multi_cvm, as a schema of its own.
func verifyMultiSchema(t *testing.T) *schemacheck.Schema {
	b, err := os.ReadFile("../../schemas/verify.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	sub, _ := json.Marshal(map[string]any{"$ref": "#/$defs/multi_cvm", "$defs": root["$defs"]})
	s, err := schemacheck.Parse(sub)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A NEAR AI cloud report: every CVM is verified and reported under its name, the exit status
// is the worst of them, --json prints the multi-CVM object of verify.schema.json, and --cvm
// picks one, reported exactly as a single attestation.
func TestVerifyNearAIReport(t *testing.T) {
	report := testvectors.Shared(t, nearAIReportPath)
	code, stdout, stderr := runCLI("verify", "--attestation", report, "--time", sampleTime)
	if code != exitNotVerified { // no expected image: MRTD and RTMR0-2 are not predicted
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, h := range []string{"== CVM 1 of 3: gateway\n", "== CVM 2 of 3: model[0] (openai/gpt-oss-120b)\n", "== CVM 3 of 3: model[0].compose-manager (openai/gpt-oss-120b)\n"} {
		if !strings.Contains(stdout, h) {
			t.Errorf("no heading %q", h)
		}
	}
	if strings.Count(stdout, "NOT VERIFIED") != 3 || !strings.Contains(stderr, "3 of 3 CVMs NOT verified") {
		t.Errorf("verdicts: %s / %s", stdout, stderr)
	}

	code, stdout, stderr = runCLI("verify", "--attestation", report, "--time", sampleTime, "--json")
	if code != exitNotVerified {
		t.Fatalf("--json: exit %d: %s", code, stderr)
	}
	if errs := verifyMultiSchema(t).Validate([]byte(stdout)); len(errs) > 0 {
		t.Errorf("multi-CVM output does not match $defs/multi_cvm:\n%s", strings.Join(errs, "\n"))
	}
	var multi struct {
		Verified bool `json:"verified"`
		CVMs     []struct {
			Name   string          `json:"name"`
			Report json.RawMessage `json:"report"`
		} `json:"cvms"`
	}
	if err := json.Unmarshal([]byte(stdout), &multi); err != nil {
		t.Fatal(err)
	}
	if multi.Verified || len(multi.CVMs) != 3 {
		t.Fatalf("verified %v, %d CVMs", multi.Verified, len(multi.CVMs))
	}
	single := loadSchema(t, "verify")
	for _, c := range multi.CVMs {
		if errs := single.Validate(c.Report); len(errs) > 0 {
			t.Errorf("%s's report does not match verify.schema.json:\n%s", c.Name, strings.Join(errs, "\n"))
		}
		var rep struct {
			Checks []struct {
				Name string `json:"name"`
				OK   bool   `json:"ok"`
			} `json:"checks"`
		}
		_ = json.Unmarshal(c.Report, &rep)
		for _, ch := range rep.Checks {
			if !ch.OK {
				t.Errorf("%s: check %s failed", c.Name, ch.Name)
			}
		}
	}

	code, stdout, stderr = runCLI("verify", "--attestation", report, "--time", sampleTime, "--json", "--cvm", "gateway")
	if code != exitNotVerified {
		t.Fatalf("--cvm gateway: exit %d: %s", code, stderr)
	}
	if errs := single.Validate([]byte(stdout)); len(errs) > 0 {
		t.Errorf("--cvm output does not match verify.schema.json:\n%s", strings.Join(errs, "\n"))
	}
	code, stdout, _ = runCLI("verify", "--attestation", report, "--time", sampleTime, "--cvm", "openai/gpt-oss-120b")
	if code != exitNotVerified || !strings.HasPrefix(stdout, "== CVM model[0] (openai/gpt-oss-120b)\n") || strings.Count(stdout, "== CVM") != 1 {
		t.Errorf("--cvm by model name: exit %d, %.80q", code, stdout)
	}
	code, stdout, stderr = runCLI("verify", "--attestation", report, "--cvm", "model[7]")
	if code != 1 || stdout != "" || !strings.Contains(stderr, `--cvm "model[7]"`) || !strings.Contains(stderr, "2 model[0] (openai/gpt-oss-120b)") {
		t.Errorf("--cvm model[7]: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	// An expectation applies to every CVM: the gateway's compose hash holds for the gateway only.
	const gatewayCompose = "3a5b9747bc6731c5de6c6d6740c3c37cc4522a935b1655e2b757d81089df31f0"
	code, stdout, stderr = runCLI("verify", "--attestation", report, "--time", sampleTime, "--compose-hash", gatewayCompose, "--json")
	if code != exitNotVerified {
		t.Fatalf("--compose-hash: exit %d: %s", code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), &multi); err != nil {
		t.Fatal(err)
	}
	for _, c := range multi.CVMs {
		var rep struct {
			Checks []struct {
				Name string `json:"name"`
				OK   bool   `json:"ok"`
			} `json:"checks"`
		}
		_ = json.Unmarshal(c.Report, &rep)
		found := false
		for _, ch := range rep.Checks {
			if ch.Name == "expect-compose-hash" {
				found = true
				if ch.OK != (c.Name == "gateway") {
					t.Errorf("%s: expect-compose-hash ok=%v", c.Name, ch.OK)
				}
			}
		}
		if !found {
			t.Errorf("%s: no expect-compose-hash check", c.Name)
		}
	}
}

// A file given to the wrong flag is named (the path the user typed) for what it is, with the
// flag it belongs to; nothing on stdout, exit 1, no parser message.
func TestVerifyWrongInputNamesTheFile(t *testing.T) {
	dir, ok := testvectors.SharedDir()
	if !ok {
		t.Skip("shared reference data not found")
	}
	ra := dir + "/real-attestations/"
	quoteJSON := ra + "near-mpc/quote.dstack-0.5.4.e76f1a38.json"
	tcbInfo := ra + "near-mpc/tcb_info.dstack-0.5.4.e76f1a38.json"
	getQuote := ra + "near-mpc/getquote.dstack-0.5.4.e76f1a38.json"
	cbor := ra + "dstack-verifier-qemu-10-2/tdx-lite-normalized-attestation.measurement.cbor"
	eventLog := ra + "dstack-sdk-simulator/eventlog.json"
	cases := []struct {
		args       []string
		file, want string
	}{
		{[]string{"--attestation", quoteJSON}, quoteJSON, "use --quote"},
		{[]string{"--attestation", cbor}, cbor, "use --measurement"},
		{[]string{"--attestation", "../../testdata/sample-image/metadata.json"}, "metadata.json", "IMAGE argument"},
		{[]string{"--attestation", getQuote, "--measurement", quoteJSON}, quoteJSON, "use --quote"},
		{[]string{"--attestation", getQuote, "--measurement", getQuote}, getQuote, "use --attestation"},
		{[]string{"--quote", getQuote, "--event-log", eventLog}, getQuote, "use --attestation"},
		{[]string{"--quote", quoteJSON, "--event-log", getQuote}, getQuote, "use --attestation"},
		{[]string{"--quote", quoteJSON, "--event-log", eventLog, "--vm-config", tcbInfo}, tcbInfo, "use --info"},
		{[]string{"--info", getQuote}, getQuote, "use --attestation"},
		{[]string{"--attestation", getQuote, cbor}, cbor, "use --measurement"},
	}
	for _, c := range cases {
		code, stdout, stderr := runCLI(append([]string{"verify"}, c.args...)...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, c.file) || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "this looks like") {
			t.Errorf("verify %s: exit %d, stderr %s", strings.Join(c.args, " "), code, stderr)
		}
		for _, parser := range []string{"TEE type", "unmarshal", "Go value", "map with text keys"} {
			if strings.Contains(stderr, parser) {
				t.Errorf("verify %s: parser message: %s", strings.Join(c.args, " "), stderr)
			}
		}
	}
	// near/mpc's own files as they are published.
	code, _, stderr := runCLI("verify", "--quote", quoteJSON, "--event-log", tcbInfo, "--cpu", "8", "--memory", "64G", "--qemu-version", "8.2.2", "--time", sampleTime)
	if code != exitNotVerified {
		t.Errorf("quote.json + tcb_info.json: exit %d: %s", code, stderr)
	}
}

// quote verify reads the quote out of every form that carries one.
func TestQuoteVerifyInputForms(t *testing.T) {
	dir, ok := testvectors.SharedDir()
	if !ok {
		t.Skip("shared reference data not found")
	}
	ra := dir + "/real-attestations/"
	for _, args := range [][]string{
		{ra + "near-mpc/quote.dstack-0.5.4.e76f1a38.json"},
		{ra + "near-mpc/public_data.dstack-dev-0.5.8.50328c65.json"},
		{ra + "dstack-verifier-qemu-10-2/tdx-lite-normalized-attestation.json"}, // {"attestation": hex}, SCALE
		{ra + "dstack-verifier-qemu-10-2/tdx-lite-qemu-10-2-attestation.json"},  // MessagePack
		{ra + "dstack-guest-agent-attestation-bin/attestation.bin"},             // raw SCALE
		{ra + "dstack-sdk-simulator/quote.hex"},
		{dir + "/" + nearAIReportPath, "--cvm", "model[0]"},
	} {
		code, stdout, stderr := runCLI(append([]string{"quote", "verify", "--time", sampleTime}, args...)...)
		if code != 0 || !strings.Contains(stdout, "AUTHENTIC") {
			t.Errorf("quote verify %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
	}
	// A NEAR MPC node publishes Intel's collateral beside its quote: its TCB status is evaluated
	// from it, checked as any collateral is, at a time inside its validity window.
	for file, at := range map[string]string{
		"public_data.dstack-dev-0.5.8.50328c65.json": "2026-08-14T00:00:00Z",
		"public_data.dstack-dev-0.5.7.d8451991.json": "2026-03-24T00:00:00Z",
		"public_data.dstack-0.5.4-dev.f16a2912.json": "2026-03-19T00:00:00Z",
	} {
		p := ra + "near-mpc/" + file
		code, stdout, stderr := runCLI("quote", "verify", "--time", at, "--collateral", p, p)
		if code != 0 || !strings.Contains(stdout, "TCB status UpToDate") || !strings.Contains(stdout, "[ok  ] tcb-info-signature") {
			t.Errorf("quote verify --collateral %s: exit %d: %s%s", file, code, stdout, stderr)
		}
		code, stdout, stderr = runCLI("verify", "--attestation", p, "--collateral", p, "--time", at, "--cpu", "8", "--memory", "64G", "--qemu-version", "8.2.2", "--json")
		if code != exitNotVerified || !strings.Contains(stdout, `"tcb_status": "UpToDate"`) {
			t.Errorf("verify --collateral %s: exit %d: %s", file, code, stderr)
		}
	}
	code, _, stderr := runCLI("quote", "verify", "--collateral", ra+"near-mpc/quote.dstack-0.5.4.e76f1a38.json", ra+"near-mpc/quote.dstack-0.5.4.e76f1a38.json")
	if code != 1 || !strings.Contains(stderr, "this looks like a TDX quote") {
		t.Errorf("a quote as collateral: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLI("quote", "verify", dir+"/"+nearAIReportPath)
	if code != 1 || !strings.Contains(stderr, "--cvm") || !strings.Contains(stderr, "gateway") {
		t.Errorf("a report of 3 quotes: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLI("quote", "verify", ra+"near-mpc/tcb_info.dstack-0.5.4.e76f1a38.json")
	if code != 1 || !strings.Contains(stderr, "carries no TDX quote") || !strings.Contains(stderr, "--info") {
		t.Errorf("a tcb_info: exit %d: %s", code, stderr)
	}
}
