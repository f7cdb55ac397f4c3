package verify

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/mr"
)

const qemu102Dir = "real-attestations/dstack-verifier-qemu-10-2/"

// capture102 reads one of upstream's dstack 0.6.0 lite captures (stripped log, no os-image-hash
// event in RTMR3) with its own measurement document and the os_image_hash its vm_config names.
func capture102(t *testing.T, name string) (raw, doc, vmHash []byte) {
	t.Helper()
	raw = testvectors.ReadShared(t, qemu102Dir+name+".getquote.json")
	doc = testvectors.ReadShared(t, qemu102Dir+name+".measurement.cbor")
	vm, err := ParseVMConfig(testvectors.ReadShared(t, qemu102Dir+name+".vm_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return raw, doc, vm.OSImageHash
}

// One identity rule, whatever the inputs: the table is every combination of the relying
// party's document and pinned hash on a capture whose vm_config carries the image's
// sha256sum.txt. Adding the right pin never turns VERIFIED into NOT VERIFIED, and a
// host-supplied hash is never the identity.
func TestIdentityRuleLite(t *testing.T) {
	raw, doc, vmHash := capture102(t, "tdx-lite-normalized-qemu-10-2-attestation")
	wrong := append([]byte{}, vmHash...)
	wrong[0] ^= 1
	for _, tc := range []struct {
		name         string
		doc          []byte
		pin          []byte
		verified     bool
		source       string // App.OSImageHashSource
		failed, skip string // a check that must fail, a required not-checked item
	}{
		{name: "own document, nothing pinned", skip: "os-image-identity"},
		{name: "own document, pinned", pin: vmHash, verified: true, source: IdentityPinnedDocument},
		{name: "own document, wrong pin", pin: wrong, failed: "lite-document-binding"},
		{name: "your document", doc: doc, verified: true},
		{name: "your document, pinned", doc: doc, pin: vmHash, verified: true, source: IdentityPinnedDocument},
		{name: "your document, wrong pin", doc: doc, pin: wrong, failed: "lite-document-binding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustVerify(t, Options{Attestation: raw, LiteMeasurement: tc.doc, Expect: Expectations{OSImageHash: tc.pin}})
			if r.Verified != tc.verified {
				t.Fatalf("verified %v, want %v: failed %+v, not checked %+v", r.Verified, tc.verified, r.Failed(), r.NotChecked)
			}
			if r.App.OSImageHashSource != tc.source {
				t.Errorf("identity source %q, want %q", r.App.OSImageHashSource, tc.source)
			}
			if tc.source == "" && r.App.OSImageHash != nil {
				t.Errorf("identity %x established from nothing the relying party proved", []byte(r.App.OSImageHash))
			}
			if !bytes.Equal(r.App.VMConfigOSImageHash, vmHash) {
				t.Errorf("vm_config_os_image_hash %x", []byte(r.App.VMConfigOSImageHash))
			}
			if tc.failed != "" {
				if c := findCheck(r, tc.failed); c == nil || c.OK {
					t.Errorf("%s: %+v, want a failure", tc.failed, c)
				}
			}
			if tc.skip != "" {
				if s := findSkip(r, tc.skip); s == nil || !s.Required {
					t.Errorf("%s: %+v, want required not-checked", tc.skip, s)
				}
			}
			wantLite := LiteFromVMConfig
			if tc.doc != nil {
				wantLite = LiteFromRelyingParty
			}
			if r.LiteSource != wantLite || len(r.LiteSHA256) != 32 {
				t.Errorf("lite source %q, sha256 %x", r.LiteSource, []byte(r.LiteSHA256))
			}
		})
	}
}

// The relying party's document with a pinned hash but a vm_config without the image's
// sha256sum.txt: the pin cannot be tied to the document, and the report says so instead of
// pretending the hash was checked (or mismatched).
func TestIdentityPinWithoutChecksumFile(t *testing.T) {
	raw, doc, vmHash := capture102(t, "tdx-lite-normalized-qemu-10-2-attestation")
	var a map[string]any
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	var vm map[string]any
	if err := json.Unmarshal([]byte(a["vm_config"].(string)), &vm); err != nil {
		t.Fatal(err)
	}
	delete(vm, "tdx_measurement")
	b, _ := json.Marshal(vm)
	a["vm_config"] = string(b)
	raw, _ = json.Marshal(a)
	r := mustVerify(t, Options{Attestation: raw, LiteMeasurement: doc, Expect: Expectations{OSImageHash: vmHash}})
	s := findSkip(r, "expect-os-image-hash")
	if r.Verified || s == nil || !s.Required || !strings.Contains(s.Reason, "checksum_file") || !strings.Contains(s.Reason, "host supplies") {
		t.Errorf("verified %v, expect-os-image-hash %+v", r.Verified, s)
	}
	if r.App.OSImageHash != nil {
		t.Errorf("identity %x without a binding", []byte(r.App.OSImageHash))
	}
	// The registers themselves still verify against the document: without the pin it is VERIFIED.
	if r := mustVerify(t, Options{Attestation: raw, LiteMeasurement: doc}); !r.Verified {
		t.Errorf("document alone: failed %+v, not checked %+v", r.Failed(), r.NotChecked)
	}
}

// Every real capture that verifies when pinned to the hash it is held to still verifies with
// every further true expectation added, and the identity never comes from vm_config alone.
func TestMoreTrustedInputNeverHurts(t *testing.T) {
	for _, name := range []string{"tdx-lite-normalized-attestation", "tdx-lite-normalized-qemu-10-2-attestation", "tdx-lite-qemu-10-2-attestation"} {
		t.Run(name, func(t *testing.T) {
			raw, doc, vmHash := capture102(t, name)
			base := mustVerify(t, Options{Attestation: raw, LiteMeasurement: doc})
			if !base.Verified {
				t.Fatalf("with its own document: failed %+v, not checked %+v", base.Failed(), base.NotChecked)
			}
			more := mustVerify(t, Options{Attestation: raw, LiteMeasurement: doc, Expect: Expectations{
				OSImageHash: vmHash, ComposeHash: base.App.ComposeHash, AppID: base.App.AppID, InstanceID: base.App.InstanceID}})
			if !more.Verified || more.App.OSImageHashSource != IdentityPinnedDocument {
				t.Errorf("with every true expectation: verified %v, identity %q, failed %+v, not checked %+v",
					more.Verified, more.App.OSImageHashSource, more.Failed(), more.NotChecked)
			}
		})
	}
}

// Each divergence a reader is shown names the event on both sides and prints no empty value:
// a stripped log against another image's document, a stripped log against the wrong memory
// size, a stable202505-firmware CVM, and a full-mode mismatch.
func TestDivergenceLines(t *testing.T) {
	raw, _, _ := capture102(t, "tdx-lite-qemu-10-2-attestation")
	_, otherDoc, _ := capture102(t, "tdx-lite-normalized-attestation")
	gaBin := testvectors.ReadShared(t, "real-attestations/dstack-guest-agent-attestation-bin/attestation.as-getquote.json")
	for _, tc := range []struct {
		name  string
		opts  Options
		check func(t *testing.T, r *Report)
	}{
		{"stripped log, another document", Options{Attestation: raw, LiteMeasurement: otherDoc}, func(t *testing.T, r *Report) {
			for _, n := range []string{"rtmr1", "rtmr2"} {
				d := r.Registers[n].FirstDivergence
				if d == nil || d.Position != -1 || !strings.Contains(d.Note, "stripped event log") || len(d.DependsOn) == 0 {
					t.Errorf("%s: %+v", n, d)
				}
			}
		}},
		{"stripped log, wrong CPU count", Options{Attestation: raw, OverrideMachine: func(m *mr.Machine) { m.CPUs = 4 }, OverrideFields: []string{"cpu_count"}},
			func(t *testing.T, r *Report) {
				d := r.Registers["rtmr0"].FirstDivergence
				if d == nil || d.Label != d.LoggedLabel || !strings.HasPrefix(d.Label, "acpi-") {
					t.Errorf("rtmr0 divergence %+v: want an ACPI event, the same on both sides", d)
				}
			}},
		{"stable202505 firmware", Options{Attestation: gaBin, LiteMeasurement: otherDoc}, func(t *testing.T, r *Report) {
			d := r.Registers["rtmr0"].FirstDivergence
			c := findCheck(r, "rtmr0")
			if d == nil || !strings.Contains(d.Note, "stable202505") || c == nil || !strings.Contains(c.Detail, "stable202505") || strings.Contains(c.Detail, "td-hob") {
				t.Errorf("divergence %+v, check %+v", d, c)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustVerify(t, tc.opts)
			tc.check(t, r)
			for n, reg := range r.Registers {
				d := reg.FirstDivergence
				if d == nil {
					continue
				}
				s := d.String()
				for _, bad := range []string{"predicted ,", "predicted ;", "logged ,", "logged ;", "#-1", ": ;", "  "} {
					if strings.Contains(s, bad) {
						t.Errorf("%s: %q contains %q", n, s, bad)
					}
				}
				if d.Position >= 0 && d.Label == "" && d.LoggedLabel == "" {
					t.Errorf("%s: event #%d named on neither side", n, d.Position)
				}
			}
		})
	}
}

// Without a quote (guest-agent Info) no check speaks of one.
func TestInfoReportNeverSaysQuote(t *testing.T) {
	raw, err := os.ReadFile(guestAgentInfoFiles(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	r := mustVerify(t, Options{Info: raw})
	for _, c := range r.Checks {
		if strings.Contains(c.Detail, "quote") {
			t.Errorf("%s: %q", c.Name, c.Detail)
		}
	}
}
