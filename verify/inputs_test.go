package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dstack-mr/dstack-mr/acpi"
	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/quote"
)

// The quotes here carry PCK certificates of limited life: they are checked at a time every one
// of them was valid (see ../shared/dcap/README.md).
var sampleTime = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

const (
	nearAIDir        = "real-attestations/nearai-cloud-report-gpt-oss-120b/"
	nearAIReportFile = nearAIDir + "nearai_cloud_report_openai_gpt_oss_120b.json"
	nearMPCDir       = "real-attestations/near-mpc/"
	qemu10Dir        = "real-attestations/dstack-verifier-qemu-10-2/"
	simulatorDir     = "real-attestations/dstack-sdk-simulator/"
	guestAgentBin    = "real-attestations/dstack-guest-agent-attestation-bin/attestation.bin"
)

// nearMPCShape is the shape near/mpc's operators run (deploy-launcher.sh, the guide's
// published values): their attestations carry no vm_config.
func nearMPCShape(opts *Options) {
	opts.OverrideMachine = func(m *mr.Machine) {
		m.CPUs, m.MemoryBytes, m.QEMUVersion = 8, 64<<30, acpi.Version{Major: 8, Minor: 2, Micro: 2}
	}
	opts.OverrideFields = []string{"cpu_count", "memory_size", "qemu_version"}
}

// Every sample in the shared data is recognised for what it is, from its content alone.
func TestSniffRealSamples(t *testing.T) {
	dir, ok := testvectors.SharedDir()
	if !ok {
		t.Skip("shared reference data not found")
	}
	glob := func(pattern string, f Form) []struct {
		file string
		form Form
	} {
		files, _ := filepath.Glob(filepath.Join(dir, pattern))
		if len(files) == 0 {
			t.Errorf("no %s in the shared data", pattern)
		}
		var out []struct {
			file string
			form Form
		}
		for _, p := range files {
			out = append(out, struct {
				file string
				form Form
			}{p, f})
		}
		return out
	}
	var cases []struct {
		file string
		form Form
	}
	for _, g := range []struct {
		pattern string
		form    Form
	}{
		{nearAIDir + "nearai_cloud_report_*.json", FormNearAIReport},
		{nearAIDir + "*.getquote.json", FormGetQuote},
		{nearMPCDir + "public_data.*.json", FormNearMPCPublicData},
		{nearMPCDir + "quote.*.json", FormQuoteBytes},
		{nearMPCDir + "tcb_info.*.json", FormTCBInfo},
		{nearMPCDir + "getquote.*.json", FormGetQuote},
		{qemu10Dir + "*-attestation.json", FormDstackAttestation},
		{qemu10Dir + "*.measurement.cbor", FormLiteDocument},
		{qemu10Dir + "*.vm_config.json", FormVMConfig},
		{"real-attestations/dstack-fixture-history/*-getquote.*.json", FormGetQuote},
		{"real-attestations/phala-trust-center/*.getquote.json", FormGetQuote},
		{"real-attestations/phala-trust-center/kmsInfo/*.json", FormGuestAgentInfo},
		{"real-attestations/dstack-verifier/ra-tls-tdx_quote.bin", FormQuote},
		{simulatorDir + "quote.hex", FormQuoteHex},
		{simulatorDir + "eventlog.json", FormEventLog},
		{simulatorDir + "sys-config.*.json", FormSysConfig},
		{simulatorDir + "app-compose.*.json", FormAppCompose},
		{"real-attestations/dstack-examples-attestation-2025/app-compose.json", FormAppCompose},
		{"real-attestations/dstack-examples-attestation-2025/report.json", FormGetQuote},
		{guestAgentBin, FormDstackAttestationBinary},
		{"real-attestations/dstack-ccel-bin/ccel.bin", FormCCEL},
		{"real-attestations/google-go-eventlog-ccel/cos-113-intel-tdx.bin", FormCCEL},
		{"dcap/dcap-qvl_tdx_quote_collateral.json", FormCollateral},
		{"dcap/dcap-qvl_tdx_quote.bin", FormQuote},
	} {
		cases = append(cases, glob(g.pattern, g.form)...)
	}
	cases = append(cases, struct {
		file string
		form Form
	}{"../testdata/sample-image/metadata.json", FormMetadataJSON})
	for _, c := range cases {
		data, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		if got := Sniff(data); got != c.form {
			t.Errorf("%s: sniffed as %s, want %s", c.file, got, c.form)
		}
	}
	t.Logf("%d real samples recognised", len(cases))
}

func requireChecksOK(t *testing.T, r *Report, names ...string) {
	t.Helper()
	for _, n := range names {
		if c := findCheck(r, n); c == nil || !c.OK {
			t.Errorf("%s: %+v", n, c)
		}
	}
}

// A NEAR AI cloud report holds three quotes: the gateway's, the model server's and its compose
// manager's. Each is read natively, verified as far as no expected image allows (authentic,
// every RTMR replays, the ACPI digests equal its vm_config shape's tables), and its own
// app_compose hashes to the compose hash RTMR3 attests. Each equals the GetQuote reshaping of
// the same values kept beside the report.
func TestNearAIReport(t *testing.T) {
	raw := testvectors.ReadShared(t, nearAIReportFile)
	cvms, err := SplitAttestations(raw)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cvms {
		names = append(names, c.Title())
	}
	want := []string{"gateway", "model[0] (openai/gpt-oss-120b)", "model[0].compose-manager (openai/gpt-oss-120b)"}
	if strings.Join(names, "|") != strings.Join(want, "|") {
		t.Fatalf("CVMs %q, want %q", names, want)
	}
	reshaped := map[string]string{"gateway": "gateway", "model[0]": "model-gpu8", "model[0].compose-manager": "model-gpu8.compose-manager"}
	for _, c := range cvms {
		t.Run(c.Name, func(t *testing.T) {
			in, err := gather(&Options{Attestation: c.Attestation})
			if err != nil {
				t.Fatal(err)
			}
			r := mustVerify(t, Options{Attestation: c.Attestation, QuoteTime: sampleTime})
			requireChecksOK(t, r, "quote-authentic", "rtmr0-replay", "rtmr1-replay", "rtmr2-replay", "rtmr3-replay",
				"rtmr3-event-digests", "rtmr3-structure", "acpi-digests", "os-image-hash-consistency")
			if r.Verified {
				t.Error("verified without an expected image")
			}
			if c.Name != "model[0].compose-manager" { // a GetQuote-shaped entry: no app_compose
				sum := sha256.Sum256(in.appCompose)
				if len(in.appCompose) == 0 || !bytes.Equal(sum[:], r.App.ComposeHash) {
					t.Errorf("info.tcb_info.app_compose (%d bytes) hashes to %x, RTMR3 attests %x", len(in.appCompose), sum, []byte(r.App.ComposeHash))
				}
			}
			g := mustVerify(t, Options{Attestation: testvectors.ReadShared(t, nearAIDir+reshaped[c.Name]+".getquote.json"), QuoteTime: sampleTime})
			for _, n := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"} {
				a, b := r.Registers[n], g.Registers[n]
				if !bytes.Equal(a.Actual, b.Actual) || !bytes.Equal(a.Replayed, b.Replayed) {
					t.Errorf("%s differs from the GetQuote reshaping", n)
				}
			}
			// The report carries the app-compose the GetQuote reshaping lacks: checked, and it holds.
			if ic := findCheck(r, "input-app-compose"); c.Name != "model[0].compose-manager" && (ic == nil || !ic.OK) {
				t.Errorf("input-app-compose %+v", ic)
			}
			if !sameChecks(r, g, "report-data", "input-app-compose") {
				t.Errorf("checks differ from the GetQuote reshaping:\n%v\n%v", checkNames(r), checkNames(g))
			}
		})
	}
	// A report with several CVMs is not one attestation: Verify says so and names them.
	_, err = Verify(Options{Attestation: raw})
	var ie *InputError
	if !errors.As(err, &ie) || ie.Flag != "attestation" || !strings.Contains(err.Error(), "3 CVMs") || !strings.Contains(err.Error(), "model[0].compose-manager") {
		t.Errorf("whole report: %v", err)
	}
	for sel, name := range map[string]string{"gateway": "gateway", "2": "model[0]", "openai/gpt-oss-120b": "model[0]", "MODEL[0].compose-manager": "model[0].compose-manager"} {
		got, err := SelectCVM(cvms, sel)
		if err != nil || got.Name != name {
			t.Errorf("--cvm %s: %q, %v; want %s", sel, got.Name, err, name)
		}
	}
	for _, sel := range []string{"4", "0", "model[1]", ""} {
		if _, err := SelectCVM(cvms, sel); err == nil || !strings.Contains(err.Error(), "1 gateway") {
			t.Errorf("--cvm %q: %v", sel, err)
		}
	}
}

func checkNames(r *Report) []string {
	var out []string
	for _, c := range r.Checks {
		out = append(out, c.Name+map[bool]string{true: "=ok", false: "=FAIL"}[c.OK])
	}
	sort.Strings(out)
	return out
}

// sameChecks compares the checks of two reports by name and outcome, ignoring those named.
func sameChecks(a, b *Report, ignore ...string) bool {
	drop := func(l []string) []string {
		var out []string
	next:
		for _, s := range l {
			for _, i := range ignore {
				if strings.HasPrefix(s, i+"=") {
					continue next
				}
			}
			out = append(out, s)
		}
		return out
	}
	return strings.Join(drop(checkNames(a)), ",") == strings.Join(drop(checkNames(b)), ",")
}

// near/mpc's own files: public_data.json (quote as byte values, tcb_info with the event log),
// quote.json beside tcb_info.json, and tcb_info.json alone (registers, no quote). Each reads
// to what the GetQuote reshaping of the same values reads to; the app_compose they carry
// hashes to the compose hash RTMR3 attests.
func TestNearMPCForms(t *testing.T) {
	cases := []struct {
		name     string
		opts     Options
		getQuote string
	}{
		{"public_data 0.5.8", Options{Attestation: testvectors.ReadShared(t, nearMPCDir+"public_data.dstack-dev-0.5.8.50328c65.json")}, "getquote.dstack-dev-0.5.8.50328c65.json"},
		{"public_data 0.5.7", Options{Attestation: testvectors.ReadShared(t, nearMPCDir+"public_data.dstack-dev-0.5.7.d8451991.json")}, "getquote.dstack-dev-0.5.7.d8451991.json"},
		{"public_data 0.5.4-dev", Options{Attestation: testvectors.ReadShared(t, nearMPCDir+"public_data.dstack-0.5.4-dev.f16a2912.json")}, "getquote.dstack-0.5.4-dev.f16a2912.json"},
		{"quote.json + tcb_info.json 0.5.4", Options{Quote: testvectors.ReadShared(t, nearMPCDir+"quote.dstack-0.5.4.e76f1a38.json"),
			EventLog: testvectors.ReadShared(t, nearMPCDir+"tcb_info.dstack-0.5.4.e76f1a38.json")}, "getquote.dstack-0.5.4.e76f1a38.json"},
		{"quote.json + tcb_info.json old OVMF", Options{Quote: testvectors.ReadShared(t, nearMPCDir+"quote.old-ovmf.91b0067b.json"),
			EventLog: testvectors.ReadShared(t, nearMPCDir+"tcb_info.old-ovmf.91b0067b.json")}, "getquote.old-ovmf.91b0067b.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.QuoteTime = sampleTime
			nearMPCShape(&c.opts)
			r := mustVerify(t, c.opts)
			requireChecksOK(t, r, "quote-authentic", "rtmr0-replay", "rtmr1-replay", "rtmr2-replay", "rtmr3-replay", "rtmr3-event-digests", "acpi-digests")
			g := Options{Attestation: testvectors.ReadShared(t, nearMPCDir+c.getQuote), QuoteTime: sampleTime}
			nearMPCShape(&g)
			gr := mustVerify(t, g)
			// public_data carries the app-compose the GetQuote reshaping lacks: checked, and it holds.
			if ic := findCheck(r, "input-app-compose"); strings.HasPrefix(c.name, "public_data") && (ic == nil || !ic.OK) {
				t.Errorf("input-app-compose %+v", ic)
			}
			if !sameChecks(r, gr, "os-image-hash-consistency", "input-app-compose") {
				t.Errorf("checks differ from the GetQuote reshaping:\n%v\n%v", checkNames(r), checkNames(gr))
			}
			for _, n := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"} {
				if !bytes.Equal(r.Registers[n].Replayed, gr.Registers[n].Replayed) || !bytes.Equal(r.Registers[n].Actual, gr.Registers[n].Actual) {
					t.Errorf("%s differs from the GetQuote reshaping", n)
				}
			}
			in, err := gather(&c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if c.opts.Attestation != nil {
				if sum := sha256.Sum256(in.appCompose); !bytes.Equal(sum[:], r.App.ComposeHash) {
					t.Errorf("tcb_info.app_compose hashes to %x, RTMR3 attests %x", sum, []byte(r.App.ComposeHash))
				}
			}
		})
	}
	// tcb_info.json alone: the registers the guest read, replayed, never verified.
	for _, f := range []string{"tcb_info.dstack-0.5.4.e76f1a38.json", "tcb_info.dstack-0.5.7.release.json", "tcb_info.dstack-0.5.8.release.json", "tcb_info.old-ovmf.91b0067b.json"} {
		t.Run(f, func(t *testing.T) {
			opts := Options{Info: testvectors.ReadShared(t, nearMPCDir+f)}
			nearMPCShape(&opts)
			r := mustVerify(t, opts)
			requireChecksOK(t, r, "rtmr0-replay", "rtmr1-replay", "rtmr2-replay", "rtmr3-replay", "acpi-digests")
			if r.Verified || r.Quote != nil || r.InputForm != "tcb_info (no quote)" {
				t.Errorf("verified %v, form %q", r.Verified, r.InputForm)
			}
			if s := findSkip(r, "quote"); s == nil || !s.Required {
				t.Errorf("the missing quote is not named: %+v", s)
			}
		})
	}
}

// dstack's encoded attestation read raw (the guest agent's attestation.bin fixture, SCALE) equals
// the decoded form kept beside it, and its sys-config's inner vm_config gives the VM's shape.
func TestRawBinaryAttestation(t *testing.T) {
	raw := testvectors.ReadShared(t, guestAgentBin)
	r := mustVerify(t, Options{Attestation: raw, QuoteTime: sampleTime})
	g := mustVerify(t, Options{Attestation: testvectors.ReadShared(t, "real-attestations/dstack-guest-agent-attestation-bin/attestation.as-getquote.json"), QuoteTime: sampleTime})
	if r.InputForm != "dstack attestation (SCALE)" {
		t.Errorf("form %q", r.InputForm)
	}
	requireChecksOK(t, r, "quote-authentic", "rtmr0-replay", "rtmr1-replay", "rtmr2-replay", "rtmr3-replay", "acpi-digests")
	if !sameChecks(r, g) {
		t.Errorf("checks differ from the GetQuote reshaping:\n%v\n%v", checkNames(r), checkNames(g))
	}
	if r.Shape == nil || r.Shape.Sources["cpu_count"] != "vm_config" {
		t.Errorf("shape not taken from the sys-config's vm_config: %+v", r.Shape)
	}
}

// Runtime events whose digest a provider stripped are recomputed from name and payload: the
// real logs replay to their quotes exactly as with the digests, and the report says so.
func TestStrippedRuntimeDigests(t *testing.T) {
	for _, f := range []string{nearAIDir + "gateway.getquote.json", nearMPCDir + "getquote.dstack-dev-0.5.8.50328c65.json", qemu10Dir + "tdx-lite-normalized-attestation.getquote.json"} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var g map[string]any
			if err := json.Unmarshal(testvectors.ReadShared(t, f), &g); err != nil {
				t.Fatal(err)
			}
			var events []map[string]any
			logJSON, isString := g["event_log"].(string)
			if !isString {
				b, _ := json.Marshal(g["event_log"])
				logJSON = string(b)
			}
			if err := json.Unmarshal([]byte(logJSON), &events); err != nil {
				t.Fatal(err)
			}
			n := 0
			for i, e := range events {
				if e["event_type"].(float64) == 0x08000001 {
					if n%2 == 0 {
						e["digest"] = ""
					} else {
						delete(e, "digest") // both ways of stripping occur
					}
					n++
				}
				events[i] = e
			}
			log, _ := json.Marshal(events)
			g["event_log"] = string(log)
			stripped, _ := json.Marshal(g)
			r := mustVerify(t, Options{Attestation: stripped, QuoteTime: sampleTime})
			requireChecksOK(t, r, "rtmr3-replay", "rtmr3-event-digests", "rtmr3-structure")
			c := findCheck(r, "rtmr3-event-digests")
			if n == 0 || !strings.Contains(c.Detail, "without a digest") || !strings.Contains(c.Detail, "recomputed") {
				t.Errorf("%d stripped digests, detail %q", n, c.Detail)
			}
			orig := mustVerify(t, Options{Attestation: testvectors.ReadShared(t, f), QuoteTime: sampleTime})
			if !bytes.Equal(orig.Registers["rtmr3"].Replayed, r.Registers["rtmr3"].Replayed) || !sameChecks(orig, r) {
				t.Error("stripping the runtime digests changed the verdict")
			}
		})
	}
}

// dstack's own lite logs strip every runtime digest: they replay and the report says so.
func TestRealStrippedLogs(t *testing.T) {
	for _, f := range []string{"real-attestations/dstack-fixture-history/tdx-lite-getquote.02bb2476.json", "real-attestations/dstack-fixture-history/tdx-measurement-getquote.687c4668.json"} {
		r := mustVerify(t, Options{Attestation: testvectors.ReadShared(t, f), QuoteTime: sampleTime})
		requireChecksOK(t, r, "rtmr3-replay", "rtmr3-event-digests")
		if c := findCheck(r, "rtmr3-event-digests"); c == nil || !strings.HasPrefix(c.Detail, "all ") || !strings.Contains(c.Detail, "recomputed") {
			t.Errorf("%s: %+v", f, c)
		}
	}
}

// A file given to the wrong input is named for what it is and where it goes; no parser message.
func TestWrongInputNamesTheForm(t *testing.T) {
	read := func(rel string) []byte { return testvectors.ReadShared(t, rel) }
	quoteJSON := read(nearMPCDir + "quote.dstack-0.5.4.e76f1a38.json")
	tcbInfo := read(nearMPCDir + "tcb_info.dstack-0.5.4.e76f1a38.json")
	getQuote := read(nearMPCDir + "getquote.dstack-0.5.4.e76f1a38.json")
	cbor := read(qemu10Dir + "tdx-lite-normalized-attestation.measurement.cbor")
	vmConfig := read(qemu10Dir + "tdx-lite-normalized-attestation.vm_config.json")
	eventLog := read(simulatorDir + "eventlog.json")
	metadata, err := os.ReadFile("../testdata/sample-image/metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		opts       Options
		flag, want string
	}{
		{"quote.json as attestation", Options{Attestation: quoteJSON}, "attestation", "TDX quote as a JSON array of byte values, not an attestation"},
		{"tcb_info as attestation", Options{Attestation: tcbInfo}, "attestation", "use --info"},
		{"measurement as attestation", Options{Attestation: cbor}, "attestation", "use --measurement"},
		{"metadata.json as attestation", Options{Attestation: metadata}, "attestation", "as the IMAGE argument"},
		{"event log as attestation", Options{Attestation: eventLog}, "attestation", "use --event-log"},
		{"vm_config as attestation", Options{Attestation: vmConfig}, "attestation", "use --vm-config"},
		{"GetQuote as quote", Options{Quote: getQuote, EventLog: eventLog}, "quote", "a GetQuote response, not a TDX quote"},
		{"tcb_info as quote", Options{Quote: tcbInfo}, "quote", "use --info"},
		{"GetQuote as event log", Options{Quote: quoteJSON, EventLog: getQuote}, "event-log", "use --attestation"},
		{"vm_config as event log", Options{Quote: quoteJSON, EventLog: vmConfig}, "event-log", "use --vm-config"},
		{"quote as vm_config", Options{Quote: quoteJSON, EventLog: eventLog, VMConfig: quoteJSON}, "vm-config", "use --quote"},
		{"GetQuote as info", Options{Info: getQuote}, "info", "use --attestation"},
		{"object of unknown keys", Options{Attestation: []byte(`{"foo": 1, "bar": 2}`)}, "attestation", "keys bar, foo"},
		{"empty attestation", Options{Attestation: []byte{}}, "attestation", "empty file"},
	}
	for _, c := range cases {
		_, err := Verify(c.opts)
		var ie *InputError
		if !errors.As(err, &ie) || ie.Flag != c.flag || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error of --%s saying %q", c.name, err, c.flag, c.want)
			continue
		}
		for _, parser := range []string{"TEE type", "unmarshal", "Go value", "map with text keys", "eventlog."} {
			if strings.Contains(err.Error(), parser) {
				t.Errorf("%s: parser message %q", c.name, err)
			}
		}
	}
	// A broken quote within an attestation is the attestation's fault, and the parser's word
	// on where it breaks is then the useful one.
	_, err = Verify(Options{Attestation: []byte(`{"quote": "040002008100"}`)})
	if ie := (*InputError)(nil); !errors.As(err, &ie) || ie.Flag != "attestation" || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated quote in an attestation: %v", err)
	}
}

// quote verify takes every form that carries a quote, and names the others.
func TestExtractQuote(t *testing.T) {
	cases := []struct {
		file, cvm string
		form      Form
	}{
		{nearMPCDir + "quote.dstack-0.5.4.e76f1a38.json", "", FormQuoteBytes},
		{nearMPCDir + "public_data.dstack-dev-0.5.8.50328c65.json", "", FormNearMPCPublicData},
		{qemu10Dir + "tdx-lite-normalized-attestation.json", "", FormDstackAttestation},
		{qemu10Dir + "tdx-lite-qemu-10-2-attestation.json", "", FormDstackAttestation}, // MessagePack
		{guestAgentBin, "", FormDstackAttestationBinary},
		{simulatorDir + "quote.hex", "", FormQuoteHex},
		{nearAIReportFile, "gateway", FormNearAIReport},
		{nearAIReportFile, "model[0]", FormNearAIReport},
		{nearAIDir + "gateway.getquote.json", "", FormGetQuote},
	}
	for _, c := range cases {
		raw, f, err := ExtractQuote(testvectors.ReadShared(t, c.file), c.cvm)
		if err != nil || f != c.form {
			t.Errorf("%s: %s, %v", c.file, f, err)
			continue
		}
		if _, err := quote.ParseAuto(raw); err != nil {
			t.Errorf("%s: the extracted quote does not parse: %v", c.file, err)
		}
	}
	if _, _, err := ExtractQuote(testvectors.ReadShared(t, nearAIReportFile), ""); err == nil || !strings.Contains(err.Error(), "--cvm") {
		t.Errorf("a report of 3 quotes without --cvm: %v", err)
	}
	if _, _, err := ExtractQuote(testvectors.ReadShared(t, simulatorDir+"eventlog.json"), ""); err == nil || !strings.Contains(err.Error(), "carries no TDX quote") {
		t.Errorf("an event log: %v", err)
	}
}

// fuzzSeeds adds the real samples of each input form (when the shared data is present) and a
// few small synthetic ones.
func fuzzSeeds(f *testing.F) {
	f.Add([]byte(`[4,0,2,0,129,0,0,0]`))
	f.Add([]byte(`{"gateway_attestation":{"intel_quote":"0400","event_log":"[]","info":{"tcb_info":"{\"app_compose\":\"{}\"}"}},"model_attestations":[null,{"model_name":"m","compose_manager_attestation":{"quote":""}}]}`))
	f.Add([]byte(`{"tee_participant_info":{"Dstack":{"quote":[4,0],"tcb_info":{"event_log":[]}}}}`))
	f.Add([]byte(`{"mrtd":"00","rtmr0":"00","event_log":[{"imr":3,"event_type":134217729,"event":"app-id","event_payload":"00"}]}`))
	f.Add([]byte(`{"kms_urls":[],"vm_config":"{\"cpu_count\":1}"}`))
	f.Add([]byte("\"[{\\\"imr\\\":0}]\""))
	dir, ok := testvectors.SharedDir()
	if !ok {
		return
	}
	for _, rel := range []string{nearAIDir + "gateway.getquote.json", nearMPCDir + "quote.old-ovmf.91b0067b.json", nearMPCDir + "tcb_info.old-ovmf.91b0067b.json",
		qemu10Dir + "tdx-lite-normalized-attestation.json", qemu10Dir + "tdx-lite-normalized-attestation.measurement.cbor", guestAgentBin,
		simulatorDir + "quote.hex", simulatorDir + "sys-config.c12af859.json", "real-attestations/dstack-ccel-bin/ccel.bin"} {
		if b, err := os.ReadFile(filepath.Join(dir, rel)); err == nil {
			f.Add(b)
		}
	}
	// The NEAR AI report's model entry without its GPU evidence, which only makes it large.
	if b, err := os.ReadFile(filepath.Join(dir, nearAIReportFile)); err == nil {
		var rep map[string]any
		if json.Unmarshal(b, &rep) == nil {
			if ms, ok := rep["model_attestations"].([]any); ok && len(ms) > 0 {
				if m, ok := ms[0].(map[string]any); ok {
					delete(m, "nvidia_payload")
					delete(m, "compose_manager_attestation")
				}
			}
			small, _ := json.Marshal(rep)
			f.Add(small)
		}
	}
}

// Sniff and the errors built from it take any bytes; a recognised form of another input always
// gets a hint naming where it goes.
func FuzzSniff(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		form := Sniff(data)
		err := WrongInput("an attestation", data)
		if err == nil || err.Error() == "" {
			t.Fatal("no error text")
		}
		if form != FormUnknown && form != FormEmpty && form.VerifyHint() != "" && !strings.Contains(err.Error(), form.VerifyHint()) {
			t.Fatalf("%s: %v", form, err)
		}
		if _, _, err := ExtractQuote(data, ""); err == nil && !form.CarriesQuote() {
			t.Fatalf("a quote extracted from %s", form)
		}
	})
}

// Every attestation form read through Verify's input gathering, and the report split: never a
// panic, and an input error always names the input.
func FuzzReadAttestation(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		cvms, err := SplitAttestations(data)
		if err == nil {
			for _, c := range cvms {
				if _, err := gather(&Options{Attestation: c.Attestation}); err != nil {
					var ie *InputError
					if !errors.As(err, &ie) && !strings.Contains(err.Error(), "no quote") {
						t.Fatalf("unattributed error %v", err)
					}
				}
			}
		}
		if c, err := CollateralOf(data); err == nil {
			_, _ = quote.ParseCollateral(c)
		}
		_, _ = gather(&Options{Info: data})
		_, _ = gather(&Options{Quote: data, EventLog: data, VMConfig: data})
	})
}

// decodeByteArray never holds more than a quote's worth of bytes and reads back what it is given.
func FuzzDecodeByteArray(f *testing.F) {
	f.Add([]byte(`[4, 0, 255]`))
	f.Add([]byte(`[256]`))
	f.Add([]byte(`[1.5, -1]`))
	f.Add([]byte(`[1] [2]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeByteArray(data)
		if err != nil {
			return
		}
		if len(b) == 0 || len(b) > quote.MaxQuoteLen {
			t.Fatalf("%d bytes", len(b))
		}
		var back []int
		if json.Unmarshal(data, &back) != nil || len(back) != len(b) {
			t.Fatalf("decoded %d bytes from %q", len(b), data)
		}
		for i := range b {
			if int(b[i]) != back[i] {
				t.Fatalf("byte %d: %d, want %d", i, b[i], back[i])
			}
		}
	})
}

func TestSplitAttestationsErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"gateway_attestation": "x"}`, "gateway_attestation is not an attestation"},
		{`{"model_attestations": [{"model_name": "m"}]}`, "model_attestations[0] has no intel_quote"},
		{`{"model_attestations": [{"intel_quote": "04", "compose_manager_attestation": {"a": 1}}]}`, "compose_manager_attestation is not"},
		{`{"gateway_attestation": null, "model_attestations": []}`, "neither"},
		{`{"model_attestations": {"intel_quote": "04"}}`, "model_attestations: want a list"},
	} {
		if _, err := SplitAttestations([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.json, err, c.want)
		}
	}
	// Anything else is one attestation, split or not.
	if l, err := SplitAttestations([]byte(`{"quote": "04"}`)); err != nil || len(l) != 1 || l[0].Name != "" {
		t.Errorf("a GetQuote response: %v %v", l, err)
	}
}
