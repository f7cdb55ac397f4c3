package main

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/schemacheck"
	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

func loadSchema(t *testing.T, name string) *schemacheck.Schema {
	t.Helper()
	b, err := os.ReadFile("../../schemas/" + name + ".schema.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := schemacheck.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every command's real JSON output conforms to the schema published for it under schemas/.
func TestJSONOutputsMatchSchemas(t *testing.T) {
	out := t.TempDir() + "/m.cbor"
	type run struct {
		schema string
		args   []string
	}
	cases := []run{
		{"measure", []string{"measure", "../../testdata/sample-image", "--json", "--qemu-version", "10.2.1"}},
		{"measure", []string{"measure", "--firmware", "../../testdata/sample-image/ovmf-debian-2025.02-8+deb13u1.fd", "--kernel", "../../testdata/sample-image/bzImage-6.1.0-56-amd64", "--json"}},
		{"acpi", []string{"acpi", "--json", "--num-gpus", "2", "--hotplug-off"}},
		{"image-inspect", []string{"image", "inspect", "../../testdata/sample-image", "--json"}},
		{"image-measurement", []string{"image", "measurement", "../../testdata/sample-image", "--out", out, "--json"}},
		{"firmware-inspect", []string{"firmware", "inspect", "../../testdata/sample-image/ovmf-debian-2025.02-8+deb13u1.fd", "--json"}},
	}
	if dir, ok := testvectors.SharedDir(); ok {
		cases = append(cases,
			run{"quote-verify", []string{"quote", "verify", "--json", dir + "/dcap/dcap-qvl_tdx_quote.bin", "--time", "2025-07-04T10:16:03Z", "--collateral", dir + "/dcap/dcap-qvl_tdx_quote_collateral.json"}},
			run{"quote-verify", []string{"quote", "verify", "--json", dir + "/dcap/dcap-qvl_tdx_quote.bin"}},
			run{"verify", []string{"verify", "--json", "--attestation", dir + "/" + testvectors.DstackVerifier("quote-report.json")}},
			run{"verify", []string{"verify", "--json", "--attestation", dir + "/real-attestations/dstack-fixture-history/tdx-lite-getquote.02bb2476.json"}},
			// Pinned lite identity, a stripped log against another document (divergences), a
			// stable202505 CVM, a GPU CVM's vm_config, a full-mode mismatch without vm_config.
			run{"verify", []string{"verify", "--json", "--attestation", dir + "/real-attestations/dstack-verifier-qemu-10-2/tdx-lite-normalized-qemu-10-2-attestation.getquote.json",
				"--os-image-hash", "a73f9b203c3ef8c175636e1741f8aef01d42695ca638b35cd1e82597cbee01d7"}},
			run{"verify", []string{"verify", "--json", "--attestation", dir + "/real-attestations/dstack-verifier-qemu-10-2/tdx-lite-qemu-10-2-attestation.getquote.json",
				"--measurement", dir + "/real-attestations/dstack-verifier-qemu-10-2/tdx-lite-normalized-attestation.measurement.cbor"}},
			run{"verify", []string{"verify", "--json", "--attestation", dir + "/real-attestations/dstack-guest-agent-attestation-bin/attestation.as-getquote.json",
				"--measurement", dir + "/real-attestations/dstack-verifier-qemu-10-2/tdx-lite-normalized-attestation.measurement.cbor"}},
			run{"verify", []string{"verify", "--json", "--attestation", dir + "/real-attestations/nearai-cloud-report-gpt-oss-120b/model-gpu8.getquote.json"}},
			// A NEAR AI report: one report per CVM ($defs/multi_cvm).
			run{"verify", []string{"verify", "--json", "--time", "2026-11-30T00:00:00Z", "--attestation", dir + "/real-attestations/nearai-cloud-report-gpt-oss-120b/nearai_cloud_report_openai_gpt_oss_120b.json"}},
			run{"verify", []string{"verify", "--json", "--attestation", dir + "/real-attestations/near-mpc/getquote.old-ovmf.91b0067b.json",
				"--cpu", "8", "--memory", "64G", "--qemu-version", "8.2.2", "../../testdata/sample-image"}},
		)
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args[:2], " "), func(t *testing.T) {
			_, stdout, stderr := runCLI(tc.args...)
			if stdout == "" {
				t.Fatalf("no output: %s", stderr)
			}
			if errs := loadSchema(t, tc.schema).Validate([]byte(stdout)); len(errs) > 0 {
				t.Errorf("%s does not match schemas/%s.schema.json:\n%s", strings.Join(tc.args, " "), tc.schema, strings.Join(errs, "\n"))
			}
		})
	}
}

// Several shapes print an array of schema-conforming objects; --json-lines one per line.
func TestMeasureBatchForms(t *testing.T) {
	s := loadSchema(t, "measure")
	_, arr, _ := runCLI("measure", "../../testdata/sample-image", "--json", "--cpu", "1,2")
	var items []json.RawMessage
	if err := json.Unmarshal([]byte(arr), &items); err != nil || len(items) != 2 {
		t.Fatalf("array of 2: %v (%d)", err, len(items))
	}
	_, lines, _ := runCLI("measure", "../../testdata/sample-image", "--json-lines", "--cpu", "1,2", "--memory", "2G,4G")
	sc := bufio.NewScanner(strings.NewReader(lines))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		if errs := s.Validate(sc.Bytes()); len(errs) > 0 {
			t.Errorf("line %d: %v", n+1, errs)
		}
		n++
	}
	if n != 4 {
		t.Errorf("%d JSON lines, want 4", n)
	}
	for i, it := range items {
		if errs := s.Validate(it); len(errs) > 0 {
			t.Errorf("item %d: %v", i, errs)
		}
	}
	if errs := s.Validate([]byte(arr)); len(errs) > 0 {
		t.Errorf("the array itself: %v", errs)
	}
}
