package verify

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstack-mr/dstack-mr/acpi"
	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/mr"
)

func checkNamed(r *Report, name string) *Check {
	for i := range r.Checks {
		if r.Checks[i].Name == name {
			return &r.Checks[i]
		}
	}
	return nil
}

// A NEAR MPC node's attestation carries no vm_config; its operators publish the shape
// (8 vCPU, 64 GiB, QEMU 8.2.2). Given as the VM shape, it predicts the logged ACPI digests,
// and the report says which fields came from the caller and which are vm_config's defaults.
func TestVerifyWithoutVMConfigUsesGivenShape(t *testing.T) {
	raw := testvectors.ReadShared(t, "real-attestations/near-mpc/getquote.dstack-0.5.4.e76f1a38.json")
	v822 := acpi.Version{Major: 8, Minor: 2, Micro: 2}
	shape := func(m *mr.Machine) { m.CPUs, m.MemoryBytes, m.QEMUVersion = 8, 64<<30, v822 }

	r := mustVerify(t, Options{Attestation: raw, OverrideMachine: shape, OverrideFields: []string{"cpu_count", "memory_size", "qemu_version"}})
	if c := checkNamed(r, "acpi-digests"); c == nil || !c.OK {
		t.Fatalf("acpi-digests %+v", c)
	}
	if r.Shape == nil || r.Shape.CPUCount != 8 || r.Shape.Sources["cpu_count"] != "flag" || r.Shape.Sources["num_nics"] != "default" || r.Shape.Sources["qemu_version"] != "flag" {
		t.Errorf("shape %+v", r.Shape)
	}
	// A wrong published shape is caught by the ACPI digests.
	wrong := func(m *mr.Machine) { m.CPUs, m.MemoryBytes, m.QEMUVersion = 4, 64<<30, v822 }
	r = mustVerify(t, Options{Attestation: raw, OverrideMachine: wrong, OverrideFields: []string{"cpu_count", "memory_size", "qemu_version"}})
	if c := checkNamed(r, "acpi-digests"); c == nil || c.OK {
		t.Fatalf("4 vCPUs instead of 8: acpi-digests %+v", c)
	}
	// Without CPU count and memory there is no shape, and the report says how to give one.
	r = mustVerify(t, Options{Attestation: raw, OverrideMachine: func(m *mr.Machine) { m.QEMUVersion = v822 }, OverrideFields: []string{"qemu_version"}})
	found := false
	for _, n := range r.NotChecked {
		found = found || (n.Name == "acpi-digests" && strings.Contains(n.Reason, "--cpu"))
	}
	if !found || r.Shape != nil {
		t.Errorf("no shape: not checked %+v, shape %+v", r.NotChecked, r.Shape)
	}
}

// A QEMU newer than the newest ACPI profile is predicted with that profile; the assumption is
// a named check, and an ACPI mismatch says the release may have changed the ABI.
func TestVerifyAssumesNewestProfile(t *testing.T) {
	raw, _ := loadFixture(t, fullFixture)
	r := mustVerify(t, Options{Attestation: raw, OverrideMachine: func(m *mr.Machine) { m.QEMUVersion = acpi.Version{Major: 11, Minor: 2} },
		OverrideFields: []string{"qemu_version"}})
	c := checkNamed(r, "acpi-profile-assumed")
	if c == nil || !c.OK || !strings.Contains(c.Detail, "11.2.0") || !strings.Contains(c.Detail, "(11.1)") {
		t.Fatalf("acpi-profile-assumed %+v", c)
	}
	// The CVM ran QEMU 9.2.1, whose tables differ from 11.1's.
	a := checkNamed(r, "acpi-digests")
	if a == nil || a.OK || !strings.Contains(a.Detail, "may have changed the ACPI ABI") {
		t.Errorf("acpi-digests %+v", a)
	}
	if r.Shape.ACPIProfile != "11.1.0" || len(r.Warnings) == 0 || !strings.HasPrefix(r.Warnings[0], "acpi-profile:") {
		t.Errorf("shape profile %s, warnings %q", r.Shape.ACPIProfile, r.Warnings)
	}
}

// vm_config fields that change the machine beyond the model (GPUs behind NUMA nodes'
// expanders, extra root devices) are refused as not supported, never ignored into a wrong
// prediction.
func TestVerifyRefusesUnmodelledTopology(t *testing.T) {
	raw, g := loadFixture(t, fullFixture)
	for _, tc := range []struct{ field, want string }{
		{`"hugepages": true, "numa_nodes": [{"pxb_bus": 5}, {"pxb_bus": 7}]`, "GPU(s) behind the hugepages pxb-pcie expander(s)"},
		{`"extra_root_devices": [{"kind": "endpoint"}]`, "extra_root_devices"},
	} {
		var vm map[string]any
		if err := json.Unmarshal([]byte(g.VMConfig), &vm); err != nil {
			t.Fatal(err)
		}
		var extra map[string]any
		if err := json.Unmarshal([]byte("{"+tc.field+"}"), &extra); err != nil {
			t.Fatal(err)
		}
		for k, v := range extra {
			vm[k] = v
		}
		vmJSON, _ := json.Marshal(vm)
		r := mustVerify(t, Options{Attestation: raw, VMConfig: vmJSON})
		if r.Verified {
			t.Fatalf("%s: verified", tc.field)
		}
		found := false
		for _, n := range r.NotChecked {
			found = found || (n.Name == "acpi-digests" && strings.Contains(n.Reason, tc.want) && strings.Contains(n.Reason, "not supported yet"))
		}
		if !found {
			t.Errorf("%s: acpi-digests not refused by name: %+v", tc.field, r.NotChecked)
		}
	}
}

// With Intel's collateral the quote's TCB status is evaluated and must meet the policy; expired
// collateral is an error, not a verdict.
func TestVerifyWithCollateral(t *testing.T) {
	raw, _ := loadFixture(t, fullFixture)
	coll := testvectors.ReadShared(t, "dcap/dcap-qvl_tdx_quote_outdated_collateral.json")
	at := time.Date(2026, 3, 5, 10, 58, 51, 0, time.UTC)
	for _, policy := range []string{"", "strict"} {
		r := mustVerify(t, Options{Attestation: raw, Collateral: coll, QuoteTime: at, TCBPolicy: policy})
		c := checkNamed(r, "tcb-status")
		if c == nil || !c.OK || !strings.Contains(c.Detail, "UpToDate") {
			t.Errorf("policy %q: tcb-status %+v", policy, c)
		}
		if r.QuoteVerification.TCBStatus == nil || *r.QuoteVerification.TCBStatus != "UpToDate" {
			t.Errorf("quote_verification.tcb_status %v", r.QuoteVerification.TCBStatus)
		}
	}
	r := mustVerify(t, Options{Attestation: raw, Collateral: coll, QuoteTime: at, TCBPolicy: "OutOfDate"})
	if c := checkNamed(r, "tcb-status"); c == nil || c.OK {
		t.Errorf("policy OutOfDate accepted UpToDate: %+v", c)
	}
	if _, err := Verify(Options{Attestation: raw, Collateral: coll}); err == nil || !strings.Contains(err.Error(), "nextUpdate") {
		t.Errorf("expired collateral: %v", err)
	}
}

// The four earlier real captures of upstream's lite fixtures (three "lite", one of the older
// "measurement" variant; tdx_measurement schema 2) are self-consistent: each verifies when
// pinned to the os_image_hash it attested in RTMR3, bound by SHA-256 of its CBOR document.
func TestFixtureHistoryVerifies(t *testing.T) {
	for _, name := range []string{"tdx-lite-getquote.02bb2476.json", "tdx-lite-getquote.6d26e732.json", "tdx-lite-getquote.dc11472f.json", "tdx-measurement-getquote.687c4668.json"} {
		t.Run(name, func(t *testing.T) {
			raw := testvectors.ReadShared(t, "real-attestations/dstack-fixture-history/"+name)
			probe := mustVerify(t, Options{Attestation: raw})
			attested := probe.RTMR3.OSImageHash
			if attested == nil {
				t.Fatal("no os-image-hash event in RTMR3")
			}
			r := mustVerify(t, Options{Attestation: raw, Expect: Expectations{OSImageHash: attested}})
			if !r.Verified {
				t.Fatalf("not verified: failed %+v, not checked %+v", r.Failed(), r.NotChecked)
			}
			if r.App.OSImageHashSource != "rtmr3" || !strings.Contains(r.App.OSImageHashBinding, "SHA-256(measurement CBOR)") {
				t.Errorf("identity %q, binding %q", r.App.OSImageHashSource, r.App.OSImageHashBinding)
			}
			wrong := append([]byte{}, attested...)
			wrong[0] ^= 1
			if r := mustVerify(t, Options{Attestation: raw, Expect: Expectations{OSImageHash: wrong}}); r.Verified {
				t.Error("verified against another os_image_hash")
			}
		})
	}
}

// dstack 0.6.0 captures in its KMS form (stripped event log, no os-image-hash event in RTMR3):
// a normalized kernel on QEMU 8.2.2 (v3 document) and 10.2.1 (v4), and a release candidate on
// QEMU 10.2.1 whose document carries both kernel digests. MRTD and RTMR0-2 are predicted (not
// replayed) from the document and the shape, and the identity is the document's binding.
func TestStrippedLogCapturesVerify(t *testing.T) {
	for _, tc := range []struct{ name, form string }{
		{"tdx-lite-normalized-attestation", ""},
		{"tdx-lite-normalized-qemu-10-2-attestation", ""},
		{"tdx-lite-qemu-10-2-attestation", "unpatched"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := "real-attestations/dstack-verifier-qemu-10-2/"
			raw := testvectors.ReadShared(t, dir+tc.name+".getquote.json")
			vm, err := ParseVMConfig(testvectors.ReadShared(t, dir+tc.name+".vm_config.json"))
			if err != nil {
				t.Fatal(err)
			}
			r := mustVerify(t, Options{Attestation: raw, Expect: Expectations{OSImageHash: vm.OSImageHash}})
			if !r.Verified {
				t.Fatalf("not verified: failed %+v, not checked %+v", r.Failed(), r.NotChecked)
			}
			if r.App.OSImageHashSource != IdentityPinnedDocument {
				t.Errorf("identity from %q", r.App.OSImageHashSource)
			}
			if s := findSkip(r, "rtmr1-replay"); s == nil || s.Required || !strings.Contains(s.Reason, "predicted") {
				t.Errorf("rtmr1-replay not reported as predicted: %+v", s)
			}
			if c := findCheck(r, "acpi-digests"); c == nil || !c.OK {
				t.Errorf("acpi-digests %+v", c)
			}
			if c := findCheck(r, "kernel-form"); (c != nil) != (tc.form != "") || (c != nil && !strings.Contains(c.Detail, tc.form)) {
				t.Errorf("kernel-form %+v, want %q", c, tc.form)
			}
			wrong := append([]byte{}, vm.OSImageHash...)
			wrong[31] ^= 1
			if r := mustVerify(t, Options{Attestation: raw, Expect: Expectations{OSImageHash: wrong}}); r.Verified {
				t.Error("verified against another os_image_hash")
			}
		})
	}
}

// Every real measurement document decodes: v3 with the normalized flag, v4, release-candidate v4
// (their predictions matching the quotes is TestStrippedLogCapturesVerify).
func TestRealMeasurementDocumentsDecode(t *testing.T) {
	for _, name := range []string{"tdx-lite-normalized-attestation", "tdx-lite-normalized-qemu-10-2-attestation", "tdx-lite-qemu-10-2-attestation"} {
		m, err := DecodeLite(testvectors.ReadShared(t, "real-attestations/dstack-verifier-qemu-10-2/"+name+".measurement.cbor"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(m.CmdlineDigest()) != 48 || len(m.KernelCandidates(2<<30)) == 0 {
			t.Errorf("%s: %+v", name, m.Image)
		}
	}
}

// The 36 guest-agent Info blobs of Phala Cloud's KMS CVMs (no quote): their event logs replay
// to the registers they report, their logged ACPI digests equal the tables of their vm_config
// shape, and none is ever VERIFIED: without a quote nothing proves the values came from a TD.
func TestGuestAgentInfo(t *testing.T) {
	files := guestAgentInfoFiles(t)
	v822 := acpi.Version{Major: 8, Minor: 2, Micro: 2}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{Info: raw}
			if strings.HasPrefix(filepath.Base(f), "prod6-051-") {
				// A dstack 0.5.1 vm_config: CPU count and memory only; the host ran QEMU 8.2.2.
				opts.OverrideMachine, opts.OverrideFields = func(m *mr.Machine) { m.QEMUVersion = v822 }, []string{"qemu_version"}
			}
			r := mustVerify(t, opts)
			if r.Verified || r.Quote != nil || r.InputForm != "guest agent Info (no quote)" {
				t.Fatalf("verified %v, quote %v, form %q", r.Verified, r.Quote, r.InputForm)
			}
			if s := findSkip(r, "quote"); s == nil || !s.Required || !strings.Contains(s.Reason, "nothing proves") {
				t.Errorf("the missing quote is not named: %+v", s)
			}
			for _, n := range []string{"rtmr0-replay", "rtmr1-replay", "rtmr2-replay", "rtmr3-replay", "acpi-digests"} {
				if c := findCheck(r, n); c == nil || !c.OK {
					t.Errorf("%s: %+v", n, c)
				}
			}
		})
	}
	t.Logf("%d guest-agent Info blobs replayed, ACPI digests predicted from their shape", len(files))
}

// guestAgentInfoFiles lists Phala Cloud's guest-agent Info blobs in the shared reference data,
// skipping the test where there are none.
func guestAgentInfoFiles(t *testing.T) []string {
	t.Helper()
	dir, ok := testvectors.SharedDir()
	if !ok {
		t.Skip("shared reference data not found")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "real-attestations", "phala-trust-center", "kmsInfo", "*.json"))
	if len(files) == 0 {
		t.Skip("no guest-agent Info files in the shared reference data")
	}
	return files
}
