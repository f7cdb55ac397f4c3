package verify

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/quote"
)

type getQuoteFixture struct {
	Quote      string `json:"quote"`
	EventLog   string `json:"event_log"`
	VMConfig   string `json:"vm_config"`
	ReportData string `json:"report_data"`
}

func loadFixture(t testing.TB, name string) (raw []byte, g getQuoteFixture) {
	t.Helper()
	raw, err := os.ReadFile(testvectors.Shared(t, testvectors.DstackVerifier(name)))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return raw, g
}

func loadLite(t testing.TB) (*VMConfig, *LiteMeasurement, []eventlog.Event, *quote.Quote) {
	t.Helper()
	_, g := loadFixture(t, "tdx-lite-getquote.json")
	vm, err := ParseVMConfig([]byte(g.VMConfig))
	if err != nil {
		t.Fatal(err)
	}
	if vm.TDXMeasurement == nil {
		t.Fatal("fixture vm_config has no tdx_measurement")
	}
	m, err := DecodeLite(vm.TDXMeasurement.Measurement)
	if err != nil {
		t.Fatal(err)
	}
	events, err := eventlog.Parse([]byte(g.EventLog))
	if err != nil {
		t.Fatal(err)
	}
	eventlog.Label(events)
	q, err := quote.ParseAuto([]byte(g.Quote))
	if err != nil {
		t.Fatal(err)
	}
	return vm, m, events, q
}

func acpiFromLog(events []eventlog.Event) map[string][]byte {
	out := map[string][]byte{}
	for _, e := range events {
		if e.IMR == 0 && e.EventType == eventlog.EvPlatformConfigFlags {
			out[e.Label] = e.Digest
		}
	}
	return out
}

// TestLiteGenuine recomputes MRTD and RTMR0-2 of a real CVM from its lite document and VM
// shape, and compares them with the registers of its real quote.
func TestLiteGenuine(t *testing.T) {
	vm, m, events, q := loadLite(t)
	if err := vm.TDXMeasurement.CheckBinding(vm.OSImageHash); err != nil {
		t.Fatal(err)
	}
	e, err := LiteExpected(m, vm, acpiFromLog(events))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.MRTD, q.Report.MRTD) {
		t.Errorf("MRTD %x, quote %x", e.MRTD, q.Report.MRTD)
	}
	for i := 0; i < 3; i++ {
		if !bytes.Equal(e.RTMR[i], q.Report.RTMR[i]) {
			t.Errorf("RTMR%d %x, quote %x", i, e.RTMR[i], q.Report.RTMR[i])
		}
	}
	// Event by event too: every predicted digest is the logged one.
	var logged [3][]eventlog.Event
	for _, ev := range events {
		if ev.IMR < 3 {
			logged[ev.IMR] = append(logged[ev.IMR], ev)
		}
	}
	for r := 0; r < 3; r++ {
		if len(logged[r]) != len(e.Events[r]) {
			t.Fatalf("RTMR%d: %d events predicted, %d logged", r, len(e.Events[r]), len(logged[r]))
		}
		for i, x := range e.Events[r] {
			if !bytes.Equal(x.Digest, logged[r][i].Digest) || x.Label != logged[r][i].Label || x.EventType != logged[r][i].EventType {
				t.Errorf("RTMR%d event %d: predicted %s %x, logged %s %x", r, i, x.Label, x.Digest, logged[r][i].Label, logged[r][i].Digest)
			}
		}
	}
}

// The full GetQuote fixture logs payloads: its Secure Boot variable events were measured by
// a real OVMF, so they check emptyVariableDigest and the fixed pre-202505 digests.
func TestFirmwareFixedDigestsAgainstRealLog(t *testing.T) {
	_, g := loadFixture(t, "quote-report.json")
	events, err := eventlog.Parse([]byte(g.EventLog))
	if err != nil {
		t.Fatal(err)
	}
	eventlog.Label(events)
	want := map[string][]byte{
		eventlog.LabelCFV:        pre202505CFV,
		eventlog.LabelSecureBoot: emptyVariableDigest(efiGlobalVariable, "SecureBoot"),
		eventlog.LabelPK:         emptyVariableDigest(efiGlobalVariable, "PK"),
		eventlog.LabelKEK:        emptyVariableDigest(efiGlobalVariable, "KEK"),
		eventlog.LabelDB:         emptyVariableDigest(efiImageSecurityDB, "db"),
		eventlog.LabelDBX:        emptyVariableDigest(efiImageSecurityDB, "dbx"),
		eventlog.LabelBootOrder:  emptyBootOrderDigest,
		eventlog.LabelBoot0000:   pre202505Boot0000,
	}
	seen := 0
	for _, e := range events {
		if d, ok := want[e.Label]; ok && e.IMR == 0 {
			seen++
			if !bytes.Equal(d, e.Digest) {
				t.Errorf("%s: %x, real log %x", e.Label, d, e.Digest)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("matched %d of %d events", seen, len(want))
	}
}

func TestLiteTamperedMemoryNamesTDHOB(t *testing.T) {
	vm, m, events, q := loadLite(t)
	vm.MemorySize = 4 << 30
	e, err := LiteExpected(m, vm, acpiFromLog(events))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(e.RTMR[0], q.Report.RTMR[0]) {
		t.Fatal("4 GiB predicts the RTMR0 of a 2 GiB VM")
	}
	if e.Events[0][0].Label != eventlog.LabelTDHob || bytes.Equal(e.Events[0][0].Digest, events[0].Digest) {
		t.Error("the TD HOB digest should be what changed")
	}
	vm.MemorySize = 1 << 30
	if _, err := LiteExpected(m, vm, acpiFromLog(events)); err == nil || !strings.Contains(err.Error(), "memory_size") {
		t.Errorf("1 GiB: %v, want an unsupported-memory error", err)
	}
}

func TestLiteBinding(t *testing.T) {
	vm, _, _, _ := loadLite(t)
	d := *vm.TDXMeasurement
	if err := d.CheckBinding(append([]byte{1}, vm.OSImageHash[1:]...)); err == nil {
		t.Error("wrong os_image_hash accepted")
	}
	bad := d
	bad.Measurement = append(append([]byte(nil), d.Measurement...), 0)
	if err := bad.CheckBinding(vm.OSImageHash); err == nil || !strings.Contains(err.Error(), LiteFileName) {
		t.Errorf("altered document: %v", err)
	}
}

func TestDecodeLiteErrors(t *testing.T) {
	vm, _, _, _ := loadLite(t)
	good := vm.TDXMeasurement.Measurement
	cases := []struct {
		name  string
		data  []byte
		field string
	}{
		{"empty", nil, "EOF"},
		{"truncated", good[:len(good)-3], "unexpected EOF"},
		{"version", bytes.Replace(good, []byte("version\x03"), []byte("version\x05"), 1), "version 5"},
		{"unknown key", bytes.Replace(good, []byte("initrd_sha384"), []byte("initrd_sha385"), 1), "initrd_sha385"},
		{"variant", bytes.Replace(good, []byte("pre202505"), []byte("pre202506"), 1), "tdvf.ovmf"},
		{"digest length", bytes.Replace(good, []byte("initrd_sha384\x58\x30"), []byte("initrd_sha384\x58\x2f"), 1), ""},
		{"witness", bytes.Replace(good, []byte("td_hob\x4c"), []byte("td_hob\x4b"), 1), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeLite(c.data)
			if err == nil || !strings.Contains(err.Error(), c.field) {
				t.Errorf("error %v, want one containing %q", err, c.field)
			}
		})
	}
}

func TestTDHOBWitnessErrors(t *testing.T) {
	for _, w := range [][]byte{
		{},                 // no base page
		{0x80},             // truncated varuint
		{1, 1, 5, 0, 1},    // range count beyond data
		{1, 1, 1, 0, 0},    // zero pages
		{1, 1, 1, 0, 1, 9}, // trailing byte
	} {
		if _, err := tdHOBFromWitness(w, 2<<30); err == nil {
			t.Errorf("witness %x accepted", w)
		}
	}
	if _, err := tdHOBFromWitness([]byte{1, 1, 1, 0, 1}, 4096); err == nil {
		t.Error("range beyond RAM accepted")
	}
}

func FuzzDecodeLite(f *testing.F) {
	vm, _, _, _ := loadLite(f)
	f.Add(vm.TDXMeasurement.Measurement)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeLite(data)
		if err != nil {
			return
		}
		for _, mem := range []uint64{2 << 30, 3 << 30, 64 << 30} {
			_, _ = tdHOBFromWitness(m.TDVF.TDHobWitness, mem)
		}
	})
}

// Every real measurement document re-encodes to its exact bytes (an auditor recomputes
// os_image_hash from them): v3 (dstack 0.6.0), v3 with the normalized flag, v4, the release
// candidates' v4, and the unversioned documents of tdx_measurement schema 2.
func TestLiteRoundTripRealDocuments(t *testing.T) {
	docs := map[string][]byte{}
	dir := "real-attestations/dstack-verifier-qemu-10-2/"
	for _, n := range []string{"tdx-lite-normalized-attestation", "tdx-lite-normalized-qemu-10-2-attestation", "tdx-lite-qemu-10-2-attestation"} {
		docs[n] = testvectors.ReadShared(t, dir+n+".measurement.cbor")
	}
	unversioned := map[string]bool{}
	for _, f := range []string{testvectors.DstackVerifier("tdx-lite-getquote.json"),
		"real-attestations/dstack-fixture-history/tdx-lite-getquote.02bb2476.json", "real-attestations/dstack-fixture-history/tdx-lite-getquote.6d26e732.json",
		"real-attestations/dstack-fixture-history/tdx-lite-getquote.dc11472f.json", "real-attestations/dstack-fixture-history/tdx-measurement-getquote.687c4668.json"} {
		var g getQuoteFixture
		if err := json.Unmarshal(testvectors.ReadShared(t, f), &g); err != nil {
			t.Fatal(err)
		}
		vm, err := ParseVMConfig([]byte(g.VMConfig))
		if err != nil {
			t.Fatal(err)
		}
		docs[f] = vm.TDXMeasurement.Measurement
		unversioned[f] = vm.TDXMeasurement.Schema == 2
	}
	for name, b := range docs {
		m, err := decodeLite(b, unversioned[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, err := EncodeLite(m)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(out, b) {
			t.Errorf("%s: re-encoded %d bytes differ from the original %d", name, len(out), len(b))
		}
	}
	t.Logf("%d real documents round-trip byte for byte", len(docs))
}
