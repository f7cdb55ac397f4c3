package verify

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/images"
	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
)

// The fixtures are real GetQuote responses of real dstack CVMs (upstream dstack's verifier
// fixtures, read in place from the shared reference data: testvectors.DstackVerifier).
const (
	fullFixture = "quote-report.json" // 16 vCPUs, 64 GiB, 1 GPU, QEMU 9.2.1, payloads kept
	liteFixture = "tdx-lite-getquote.json"
)

func mustVerify(t *testing.T, opts Options) *Report {
	t.Helper()
	r, err := Verify(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
	return r
}

func findCheck(r *Report, name string) *Check {
	for i := range r.Checks {
		if r.Checks[i].Name == name {
			return &r.Checks[i]
		}
	}
	return nil
}

func findSkip(r *Report, name string) *NotChecked {
	for i := range r.NotChecked {
		if r.NotChecked[i].Name == name {
			return &r.NotChecked[i]
		}
	}
	return nil
}

// acpiAvailable reports whether the ACPI tables of the report's VM shape could be built; the
// checks that need them are skipped otherwise.
func acpiAvailable(r *Report) bool {
	return findCheck(r, "acpi-digests") != nil
}

// mutate rewrites a GetQuote fixture: events and vm_config are decoded, changed and put back
// as the JSON strings GetQuote carries.
func mutate(t *testing.T, name string, editEvents func([]map[string]any), editVM func(map[string]any)) []byte {
	t.Helper()
	raw, _ := loadFixture(t, name)
	var top map[string]any
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	if editEvents != nil {
		var evs []map[string]any
		if err := json.Unmarshal([]byte(top["event_log"].(string)), &evs); err != nil {
			t.Fatal(err)
		}
		editEvents(evs)
		b, _ := json.Marshal(evs)
		top["event_log"] = string(b)
	}
	if editVM != nil {
		var vm map[string]any
		if err := json.Unmarshal([]byte(top["vm_config"].(string)), &vm); err != nil {
			t.Fatal(err)
		}
		editVM(vm)
		b, _ := json.Marshal(vm)
		top["vm_config"] = string(b)
	}
	out, _ := json.Marshal(top)
	return out
}

func vmOSImageHash(t *testing.T, name string) []byte {
	_, g := loadFixture(t, name)
	vm, err := ParseVMConfig([]byte(g.VMConfig))
	if err != nil {
		t.Fatal(err)
	}
	return vm.OSImageHash
}

func TestGenuineWithoutImage(t *testing.T) {
	raw, _ := loadFixture(t, fullFixture)
	r := mustVerify(t, Options{Attestation: raw})
	if r.Verified || r.Mode != "none" {
		t.Fatalf("verified %v mode %s: nothing predicted MRTD/RTMR0-2", r.Verified, r.Mode)
	}
	if f := r.Failed(); len(f) != 0 {
		t.Errorf("a genuine attestation failed %+v", f)
	}
	for _, n := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2"} {
		if s := findSkip(r, n); s == nil || !s.Required {
			t.Errorf("%s should be a required not-checked item", n)
		}
	}
	for i := 0; i < 4; i++ {
		if reg := r.Registers[rtmrName(i)]; reg.ReplayMatch == nil || !*reg.ReplayMatch {
			t.Errorf("RTMR%d does not replay", i)
		}
	}
	if r.App.ComposeHash == nil || r.App.KeyProvider == nil || r.App.KeyProvider.Name != "local-sgx" {
		t.Errorf("app %+v", r.App)
	}
	if c := checkNamed(r, "quote-authentic"); c == nil || !c.OK || r.QuoteVerification == nil || !r.QuoteVerification.Authentic {
		t.Errorf("the genuine quote must be checked authentic: %+v", c)
	}
	if s := findSkip(r, "tcb-status"); s == nil || s.Required {
		t.Error("the TCB status (no collateral) must be listed as not checked, not required")
	}
}

// A quote whose TD report was altered after signing (here its RTMR3, with an event log to
// match) fails as not authentic, however well the rest agrees.
func TestForgedQuoteIsNotVerified(t *testing.T) {
	raw, g := loadFixture(t, liteFixture)
	q := []byte(g.Quote)
	// RTMR3 of the TD report (header 48 + body offset 328 + 3*48), as hex digits.
	off := 2 * (48 + 328 + 3*48)
	if q[off] == '0' {
		q[off] = '1'
	} else {
		q[off] = '0'
	}
	r := mustVerify(t, Options{Attestation: raw, Quote: q, Expect: Expectations{OSImageHash: mustHex("e6f5cfec20c02e7b97baa213d0f718020b55e040172d90ccbcb946d56c8b09db")}})
	if r.Verified {
		t.Fatal("a forged quote verified")
	}
	if c := checkNamed(r, "quote-authentic"); c == nil || c.OK || !strings.Contains(c.Detail, "quote-signature") {
		t.Errorf("quote-authentic %+v", c)
	}
}

// historyLite is the same real capture as upstream's current lite fixture before upstream
// edited its vm_config (tdx_measurement schema 2; vm_config, document and RTMR3 all agree).
const historyLite = "real-attestations/dstack-fixture-history/tdx-lite-getquote.02bb2476.json"

func TestGenuineLite(t *testing.T) {
	raw := testvectors.ReadShared(t, historyLite)
	var g getQuoteFixture
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	vm, err := ParseVMConfig([]byte(g.VMConfig))
	if err != nil {
		t.Fatal(err)
	}
	r := mustVerify(t, Options{Attestation: raw, Expect: Expectations{OSImageHash: vm.OSImageHash}})
	if r.Mode != "lite" {
		t.Fatalf("mode %s", r.Mode)
	}
	if f := r.Failed(); len(f) != 0 {
		t.Fatalf("a genuine attestation failed %+v", f)
	}
	for _, n := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2", "lite-document-binding", "expect-os-image-hash", "mr-config-id"} {
		if findCheck(r, n) == nil {
			t.Errorf("check %s did not run", n)
		}
	}
	required := false
	for _, n := range r.NotChecked {
		required = required || n.Required
	}
	if r.Verified == required {
		t.Errorf("verified %v with required not-checked items %+v", r.Verified, r.NotChecked)
	}
	if acpiAvailable(r) && !r.Verified {
		t.Errorf("with ACPI tables available the genuine lite attestation should verify: %+v", r.NotChecked)
	}
	if r.App.OSImageHashSource != "rtmr3" || r.App.OSImageHashBinding == "" {
		t.Errorf("identity from %q, binding %q", r.App.OSImageHashSource, r.App.OSImageHashBinding)
	}

	// Without an expected os_image_hash the VM's own document proves only self-consistency.
	r = mustVerify(t, Options{Attestation: raw})
	if r.Verified || findSkip(r, "os-image-identity") == nil {
		t.Error("a VM-supplied lite document must not verify without an expected os_image_hash")
	}
	r = mustVerify(t, Options{Attestation: raw, Expect: Expectations{OSImageHash: make([]byte, 32)}})
	if r.Verified || findCheck(r, "expect-os-image-hash").OK {
		t.Error("a wrong expected os_image_hash passed")
	}
}

// Upstream's current lite fixture had its vm_config edited after capture: vm_config names
// e6f5cfec…, the CVM attested 07a2388c… in RTMR3. Pinned either way it must fail, naming both.
func TestEditedVMConfigOSImageHashFails(t *testing.T) {
	raw, _ := loadFixture(t, liteFixture)
	for _, pin := range []string{"e6f5cfec20c02e7b97baa213d0f718020b55e040172d90ccbcb946d56c8b09db", "07a2388c7a6a1b6a646d443f1517990a4ec294471d63146cda9d56972765051d"} {
		r := mustVerify(t, Options{Attestation: raw, Expect: Expectations{OSImageHash: mustHex(pin)}})
		c := findCheck(r, "os-image-hash-consistency")
		if r.Verified || c == nil || c.OK || !strings.Contains(c.Detail, "e6f5cfec") || !strings.Contains(c.Detail, "07a2388c") {
			t.Errorf("pin %s: verified %v, consistency %+v", pin[:8], r.Verified, c)
		}
	}
}

func TestTrustedLiteDocument(t *testing.T) {
	// A measurement.tdx.cbor the relying party trusts (here: upstream's v3 document of the
	// same image, as if taken from the image) needs no os_image_hash expectation.
	raw := testvectors.ReadShared(t, historyLite)
	vm, _, _, _ := loadLite(t)
	r := mustVerify(t, Options{Attestation: raw, LiteMeasurement: vm.TDXMeasurement.Measurement})
	if r.Mode != "lite" || findSkip(r, "os-image-identity") != nil || findCheck(r, "lite-document-binding") != nil || len(r.Failed()) != 0 {
		t.Errorf("mode %s failed %+v not checked %+v", r.Mode, r.Failed(), r.NotChecked)
	}
	if _, err := Verify(Options{Attestation: raw, LiteMeasurement: []byte{0xa0}}); err != nil {
		t.Fatal(err)
	} else if r := mustVerify(t, Options{Attestation: raw, LiteMeasurement: []byte{0xa0}}); r.Verified || findCheck(r, "lite-document") == nil {
		t.Error("an unusable lite document was not reported")
	}
}

func TestNullFieldsAreMissing(t *testing.T) {
	_, g := loadFixture(t, fullFixture)
	r := mustVerify(t, Options{Attestation: []byte(`{"quote":"` + g.Quote + `","event_log":null,"vm_config":null}`)})
	if r.Verified || r.VMConfig != nil || findSkip(r, "event-log") == nil || findSkip(r, "acpi-digests") == nil {
		t.Errorf("null fields: %+v", r.NotChecked)
	}
}

func TestBinaryAttestationErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"attestation":"0000"}`, "attestation (SCALE): quote length"},
		{`{"attestation":"0100"}`, "variant 1"},
		{`{"attestation":"81a776657273696f6e02"}`, "attestation (MessagePack): version 2"},
		{`{"attestation":"zz"}`, "not hex"},
		{`{"attestation":""}`, "empty"},
	} {
		if _, err := Verify(Options{Attestation: []byte(tc.in)}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

// dstack's own {"attestation": hex} forms of three real captures, MessagePack and SCALE, verify
// exactly as their GetQuote reshapings do.
func TestBinaryAttestationForms(t *testing.T) {
	for _, tc := range []struct{ name, form string }{
		{"tdx-lite-qemu-10-2-attestation", "MessagePack"},
		{"tdx-lite-normalized-attestation", "SCALE"},
		{"tdx-lite-normalized-qemu-10-2-attestation", "SCALE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := "real-attestations/dstack-verifier-qemu-10-2/"
			vm, err := ParseVMConfig(testvectors.ReadShared(t, dir+tc.name+".vm_config.json"))
			if err != nil {
				t.Fatal(err)
			}
			bin := mustVerify(t, Options{Attestation: testvectors.ReadShared(t, dir+tc.name+".json"), Expect: Expectations{OSImageHash: vm.OSImageHash}})
			gq := mustVerify(t, Options{Attestation: testvectors.ReadShared(t, dir+tc.name+".getquote.json"), Expect: Expectations{OSImageHash: vm.OSImageHash}})
			if !bin.Verified || bin.InputForm != "dstack attestation ("+tc.form+")" {
				t.Fatalf("verified %v, form %q, failed %+v", bin.Verified, bin.InputForm, bin.Failed())
			}
			for n, reg := range gq.Registers {
				if !bytes.Equal(bin.Registers[n].Actual, reg.Actual) || !bytes.Equal(bin.Registers[n].Expected, reg.Expected) {
					t.Errorf("%s differs between the two forms", n)
				}
			}
		})
	}
}

func FuzzBinaryAttestation(f *testing.F) {
	f.Add("0000")
	f.Add("81a776657273696f6e01")
	f.Fuzz(func(t *testing.T, h string) {
		_, _ = decodeBinaryAttestation(h)
	})
}

func TestPiecesEqualAttestation(t *testing.T) {
	raw, g := loadFixture(t, liteFixture)
	a := mustVerify(t, Options{Attestation: raw})
	qb, _ := hex.DecodeString(g.Quote)
	b := mustVerify(t, Options{Quote: qb, EventLog: []byte(g.EventLog), VMConfig: []byte(g.VMConfig)})
	if a.Verified != b.Verified || len(a.Checks) != len(b.Checks)+1 { // + report-data
		t.Errorf("pieces: %d checks, attestation %d", len(b.Checks), len(a.Checks))
	}
	for n, reg := range a.Registers {
		if !bytes.Equal(reg.Expected, b.Registers[n].Expected) || !bytes.Equal(reg.Replayed, b.Registers[n].Replayed) {
			t.Errorf("%s differs", n)
		}
	}
}

func TestTamperedRTMR3Payload(t *testing.T) {
	_, g := loadFixture(t, fullFixture)
	events, _ := eventlog.Parse([]byte(g.EventLog))
	n := 0
	for i, e := range events {
		if !e.IsRuntime() {
			continue
		}
		n++
		att := mutate(t, fullFixture, func(evs []map[string]any) {
			evs[i]["event_payload"] = evs[i]["event_payload"].(string) + "00"
		}, nil)
		r := mustVerify(t, Options{Attestation: att})
		if r.Verified || findCheck(r, "rtmr3-replay").OK || findCheck(r, "rtmr3-event-digests").OK {
			t.Errorf("tampered %s not detected", e.Name)
			continue
		}
		d := r.Registers["rtmr3"].FirstDivergence
		if d == nil || d.Label != e.Name || d.LogIndex != i || !bytes.Equal(d.Actual, e.Digest) {
			t.Errorf("tampered %s: divergence %+v", e.Name, d)
		}
		if !strings.Contains(findCheck(r, "rtmr3-event-digests").Detail, `"`+e.Name+`"`) {
			t.Errorf("check detail does not name %s", e.Name)
		}
	}
	if n != 8 {
		t.Errorf("tampered %d runtime events, want 8", n)
	}
}

func TestTamperedLiteComposeHash(t *testing.T) {
	// The lite log strips runtime digests: a changed payload shows in the replay and in
	// MRCONFIGID, which binds the compose hash.
	att := mutate(t, liteFixture, func(evs []map[string]any) {
		for _, e := range evs {
			if e["event"] == "compose-hash" {
				e["event_payload"] = strings.Repeat("00", 32)
			}
		}
	}, nil)
	r := mustVerify(t, Options{Attestation: att})
	if r.Verified || findCheck(r, "rtmr3-replay").OK || findCheck(r, "mr-config-id").OK {
		t.Error("tampered compose-hash not detected")
	}
	if d := r.Registers["rtmr3"].FirstDivergence; d == nil || d.Note == "" {
		t.Errorf("RTMR3 divergence %+v should explain why no event is named", d)
	}
}

func TestTamperedRTMR0Digest(t *testing.T) {
	_, g := loadFixture(t, liteFixture)
	events, _ := eventlog.Parse([]byte(g.EventLog))
	eventlog.Label(events)
	base := mustVerify(t, Options{Attestation: mutate(t, liteFixture, nil, nil)})
	n := 0
	for i, e := range events {
		if e.IMR != 0 {
			continue
		}
		n++
		isACPI := e.EventType == eventlog.EvPlatformConfigFlags
		att := mutate(t, liteFixture, func(evs []map[string]any) {
			d := []byte(evs[i]["digest"].(string))
			d[0] ^= 1 // '0'..'9','a'..'f' stay hex digits
			evs[i]["digest"] = string(d)
		}, nil)
		r := mustVerify(t, Options{Attestation: att})
		if r.Verified || findCheck(r, "rtmr0-replay").OK {
			t.Errorf("tampered %s not detected", e.Label)
			continue
		}
		if isACPI && !acpiAvailable(base) {
			continue // lite mode takes ACPI digests from the log: only the replay can tell
		}
		d := r.Registers["rtmr0"].FirstDivergence
		if d == nil || d.Label != e.Label || d.LogIndex != i || !bytes.Equal(d.Expected, e.Digest) || bytes.Equal(d.Actual, e.Digest) {
			t.Errorf("tampered %s: divergence %+v", e.Label, d)
		}
		if isACPI && findCheck(r, "acpi-digests").OK {
			t.Errorf("tampered %s passed the ACPI check", e.Label)
		}
	}
	if n != 13 {
		t.Errorf("tampered %d RTMR0 events, want 13", n)
	}
}

func TestTamperedShapeMemory(t *testing.T) {
	att := mutate(t, liteFixture, nil, func(vm map[string]any) { vm["memory_size"] = 4 << 30 })
	r := mustVerify(t, Options{Attestation: att, Expect: Expectations{OSImageHash: vmOSImageHash(t, liteFixture)}})
	if r.Verified || findCheck(r, "rtmr0").OK {
		t.Fatal("4 GiB accepted for a 2 GiB VM")
	}
	d := r.Registers["rtmr0"].FirstDivergence
	if d == nil || d.Label != eventlog.LabelTDHob || !strings.Contains(strings.Join(d.DependsOn, ","), "memory") {
		t.Errorf("divergence %+v, want td-hob depending on memory", d)
	}
}

func TestTamperedShapeCPUs(t *testing.T) {
	for _, fixture := range []string{fullFixture, liteFixture} {
		t.Run(fixture, func(t *testing.T) {
			base := mustVerify(t, Options{Attestation: mutate(t, fixture, nil, nil)})
			if !acpiAvailable(base) {
				t.Skipf("ACPI tables of this shape cannot be built yet: %+v", findSkip(base, "acpi-digests"))
			}
			if !findCheck(base, "acpi-digests").OK {
				t.Fatalf("genuine shape fails the ACPI check: %s", findCheck(base, "acpi-digests").Detail)
			}
			att := mutate(t, fixture, nil, func(vm map[string]any) { vm["cpu_count"] = vm["cpu_count"].(float64) + 2 })
			r := mustVerify(t, Options{Attestation: att})
			c := findCheck(r, "acpi-digests")
			if r.Verified || c == nil || c.OK || !strings.Contains(c.Detail, "CPU count") {
				t.Errorf("CPU count change not flagged: %+v", c)
			}
			if fixture == liteFixture {
				d := r.Registers["rtmr0"].FirstDivergence
				if d == nil || !strings.HasPrefix(d.Label, "acpi-") {
					t.Errorf("lite divergence %+v, want an ACPI event", d)
				}
			}
		})
	}
}

func TestExpectations(t *testing.T) {
	raw, _ := loadFixture(t, fullFixture)
	base := mustVerify(t, Options{Attestation: raw})
	good := Expectations{ComposeHash: base.App.ComposeHash, AppID: base.App.AppID, InstanceID: base.App.InstanceID, KeyProviderName: "local-sgx", KeyProviderID: base.App.KeyProvider.ID}
	r := mustVerify(t, Options{Attestation: raw, Expect: good})
	for _, n := range []string{"expect-compose-hash", "expect-app-id", "expect-instance-id", "expect-key-provider"} {
		if c := findCheck(r, n); c == nil || !c.OK {
			t.Errorf("%s: %+v", n, c)
		}
	}
	bad := []Expectations{
		{ComposeHash: make([]byte, 32)}, {AppID: make([]byte, 20)}, {InstanceID: []byte{1}}, {KeyProviderName: "kms"}, {KeyProviderID: "00"},
	}
	for _, x := range bad {
		if f := mustVerify(t, Options{Attestation: raw, Expect: x}).Failed(); len(f) != 1 || !strings.HasPrefix(f[0].Name, "expect-") {
			t.Errorf("%+v: failed %+v", x, f)
		}
	}
}

func TestReportDataMismatch(t *testing.T) {
	raw, _ := loadFixture(t, fullFixture)
	var top map[string]any
	_ = json.Unmarshal(raw, &top)
	top["report_data"] = "5678"
	att, _ := json.Marshal(top)
	if c := findCheck(mustVerify(t, Options{Attestation: att}), "report-data"); c == nil || c.OK {
		t.Errorf("report_data mismatch: %+v", c)
	}
}

// Full mode with an image that is not the one the CVM booted (the Debian sample image):
// nothing may verify, and each register names where it departs.
func TestFullModeWrongImage(t *testing.T) {
	img, err := images.Open("../testdata/sample-image/metadata.json", images.Options{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := loadFixture(t, fullFixture)
	opts := Options{Attestation: raw}
	if err := opts.UseImage(img); err != nil {
		t.Fatal(err)
	}
	r := mustVerify(t, opts)
	if r.Verified || r.Mode != "full" {
		t.Fatalf("verified %v mode %s", r.Verified, r.Mode)
	}
	if s := findSkip(r, "mrtd"); s != nil {
		t.Skipf("full mode cannot predict this shape yet: %s", s.Reason)
	}
	for _, n := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2"} {
		c := findCheck(r, n)
		d := r.Registers[n].FirstDivergence
		if c == nil || c.OK || d == nil || d.Label == "" || len(d.DependsOn) == 0 {
			t.Errorf("%s: check %+v divergence %+v", n, c, d)
		}
	}
	if c := findCheck(r, "acpi-digests"); c == nil || !c.OK {
		t.Errorf("the VM shape is genuine, its ACPI digests should match: %+v", c)
	}
}

func TestVerifyInputErrors(t *testing.T) {
	raw, g := loadFixture(t, fullFixture)
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"nothing", Options{}, "no quote"},
		{"not JSON", Options{Attestation: []byte("{")}, "attestation"},
		{"bad quote", Options{Attestation: raw, Quote: []byte("0400")}, "quote"},
		{"bad event log", Options{Attestation: raw, EventLog: []byte(`[{"imr":9}]`)}, "event log"},
		{"bad vm_config", Options{Attestation: raw, VMConfig: []byte(`{"cpu_count":"x"}`)}, "vm_config.cpu_count"},
		{"null quote", Options{Attestation: []byte(`{"quote":null,"event_log":null}`)}, "no quote"},
		{"bad report_data", Options{Attestation: []byte(`{"quote":"` + g.Quote + `","report_data":"zz"}`)}, "report_data"},
	}
	for _, c := range cases {
		_, err := Verify(c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.name, err, c.want)
		}
	}
}

func TestVMConfigMachine(t *testing.T) {
	_, g := loadFixture(t, fullFixture)
	vm, err := ParseVMConfig([]byte(g.VMConfig))
	if err != nil {
		t.Fatal(err)
	}
	m, err := vm.Machine()
	if err != nil {
		t.Fatal(err)
	}
	if m.CPUs != 16 || m.MemoryBytes != 64<<30 || m.NumGPUs != 1 || !m.HotplugOff || !m.PCIHole64SizeSet || m.PCIHole64Size != 16<<40 ||
		m.NumNICs != 1 || !m.RootVerity || m.QEMUVersion.String() != "9.2.1" || m.TwoPass() || m.PICEnabled() {
		t.Errorf("machine %+v", m)
	}
	for _, c := range []struct{ json, want string }{
		{`{"swtpm":true}`, "swtpm"},
		{`{"qemu_version":"x"}`, "qemu_version"},
		{`{"host_share_mode":"nfs"}`, "host_share_mode"},
		{`{"ovmf_variant":"v2"}`, "ovmf_variant"},
	} {
		vm, err := ParseVMConfig([]byte(c.json))
		if err == nil {
			_, err = vm.Machine()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.json, err)
		}
	}
	vm, _ = ParseVMConfig([]byte(`{"future_knob":1}`))
	if len(vm.Unknown) != 1 || vm.NumNICs != 1 {
		t.Errorf("unknown fields %v, nics %d", vm.Unknown, vm.NumNICs)
	}
	if _, err := ParseVMConfig([]byte(`{"os_image_hash":"zz"}`)); err == nil {
		t.Error("non-hex os_image_hash accepted")
	}
}

func FuzzVerify(f *testing.F) {
	_, g := loadFixture(f, liteFixture)
	// A compact log: the RTMR0 events lite mode needs, without payloads, and two runtime events.
	var evs []map[string]any
	_ = json.Unmarshal([]byte(g.EventLog), &evs)
	var small []map[string]any
	for _, e := range evs {
		if e["imr"].(float64) == 0 || e["event"] == "app-id" || e["event"] == "compose-hash" {
			small = append(small, e)
		}
	}
	log, _ := json.Marshal(small)
	f.Add(log, []byte(g.VMConfig))
	f.Fuzz(func(t *testing.T, log, vm []byte) {
		r, err := Verify(Options{Quote: []byte(g.Quote), EventLog: log, VMConfig: vm})
		if err != nil {
			return
		}
		if r.Verified && len(r.Failed()) != 0 {
			t.Fatal("verified with failed checks")
		}
	})
}

func BenchmarkVerifyLite(b *testing.B) {
	raw, _ := loadFixture(b, liteFixture)
	for b.Loop() {
		if _, err := Verify(Options{Attestation: raw}); err != nil {
			b.Fatal(err)
		}
	}
}
