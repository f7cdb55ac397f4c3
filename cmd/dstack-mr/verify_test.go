package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// The attestation fixtures are real GetQuote responses from dstack CVMs, published by upstream
// dstack and read in place from the shared reference data (skipped where it is absent).

func TestVerifyExitCodes(t *testing.T) {
	attestation := testvectors.Shared(t, testvectors.DstackVerifier("quote-report.json"))
	// No expected image: the log replays, but MRTD/RTMR0-2 stay unpredicted, so not verified.
	code, stdout, stderr := runCLI("verify", "--attestation", attestation, "--json")
	if code != exitNotVerified {
		t.Fatalf("exit %d, want %d; stderr %s", code, exitNotVerified, stderr)
	}
	var rep struct {
		Verified   bool `json:"verified"`
		NotChecked []struct {
			Name     string `json:"name"`
			Required bool   `json:"required"`
		} `json:"not_checked"`
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Verified {
		t.Fatal("verified without an expected image")
	}
	for _, ch := range rep.Checks {
		if !ch.OK {
			t.Errorf("genuine attestation failed check %s", ch.Name)
		}
	}
	// Tampered expectations fail with the same exit code.
	code, _, _ = runCLI("verify", "--attestation", attestation, "--compose-hash", strings.Repeat("00", 32))
	if code != exitNotVerified {
		t.Errorf("wrong compose hash: exit %d, want %d", code, exitNotVerified)
	}
	// Unreadable input is a usage error, with nothing on stdout.
	code, stdout, _ = runCLI("verify", "--attestation", "does-not-exist.json")
	if code != 1 || stdout != "" {
		t.Errorf("missing file: exit %d stdout %q", code, stdout)
	}
	code, _, _ = runCLI("verify")
	if code != 1 {
		t.Errorf("no input: exit %d", code)
	}
}

// TestVerifyGenuineLiteAttestation: a real lite-mode CVM's attestation (the capture behind
// upstream's lite fixture, before its vm_config was edited) verifies end to end once its
// os_image_hash is pinned, and a wrong pin or a different VM shape is refused.
func TestVerifyGenuineLiteAttestation(t *testing.T) {
	lite := testvectors.Shared(t, "real-attestations/dstack-fixture-history/tdx-lite-getquote.02bb2476.json")
	const osImageHash = "07a2388c7a6a1b6a646d443f1517990a4ec294471d63146cda9d56972765051d"
	if code, _, stderr := runCLI("verify", "--attestation", lite, "--os-image-hash", osImageHash); code != 0 {
		t.Fatalf("genuine attestation: exit %d: %s", code, stderr)
	}
	if code, _, _ := runCLI("verify", "--attestation", lite, "--os-image-hash", strings.Repeat("11", 32)); code != exitNotVerified {
		t.Errorf("wrong os_image_hash: exit %d, want %d", code, exitNotVerified)
	}
	code, stdout, _ := runCLI("verify", "--attestation", lite, "--os-image-hash", osImageHash, "--cpu", "4", "--json")
	if code != exitNotVerified {
		t.Fatalf("4 vCPUs instead of 2: exit %d, want %d", code, exitNotVerified)
	}
	var rep struct {
		Registers map[string]struct {
			Match           *bool `json:"match"`
			FirstDivergence *struct {
				Label string `json:"label"`
			} `json:"first_divergence"`
		} `json:"registers"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	r0 := rep.Registers["rtmr0"]
	if r0.Match == nil || *r0.Match || r0.FirstDivergence == nil || !strings.HasPrefix(r0.FirstDivergence.Label, "acpi-") {
		t.Errorf("rtmr0 with the wrong CPU count: %+v", r0)
	}
}

// An attestation without vm_config (a NEAR MPC node) is checked against the shape its operators
// publish, given as flags; the JSON says where each shape field came from.
func TestVerifyShapeFromFlagsWithoutVMConfig(t *testing.T) {
	att := testvectors.Shared(t, "real-attestations/near-mpc/getquote.dstack-0.5.4.e76f1a38.json")
	code, stdout, stderr := runCLI("verify", "--attestation", att, "--cpu", "8", "--memory", "64G", "--qemu-version", "8.2.2", "--json")
	if code != exitNotVerified { // no expected image: MRTD and RTMR0-2 are not predicted
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep struct {
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
		Shape struct {
			CPUCount int               `json:"cpu_count"`
			Sources  map[string]string `json:"sources"`
		} `json:"vm_shape"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	acpiOK := false
	for _, c := range rep.Checks {
		acpiOK = acpiOK || (c.Name == "acpi-digests" && c.OK)
	}
	if !acpiOK || rep.Shape.CPUCount != 8 || rep.Shape.Sources["memory_size"] != "flag" || rep.Shape.Sources["hotplug_off"] != "default" || rep.Warnings == nil {
		t.Errorf("acpi-digests ok %v, shape %+v, warnings %v", acpiOK, rep.Shape, rep.Warnings)
	}
}

// A --measurement file that is empty or not a measurement document is unreadable input.
func TestVerifyMeasurementFileMustDecode(t *testing.T) {
	lite := testvectors.Shared(t, "real-attestations/dstack-fixture-history/tdx-lite-getquote.02bb2476.json")
	dir := t.TempDir()
	for name, content := range map[string]string{"empty.cbor": "", "text.cbor": "not cbor at all"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runCLI("verify", "--attestation", lite, "--measurement", p)
		if code != 1 || stdout != "" || !strings.Contains(stderr, name) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", name, code, stdout, stderr)
		}
	}
}
