// Package verify checks a dstack TDX attestation against an expected OS image: it parses the
// quote, replays the event log into RTMR0-3, checks RTMR3's runtime events and the app
// identity they carry, predicts MRTD and RTMR0-2 from the image (full mode, via package mr)
// or from its measurement.tdx.cbor ("lite" mode) for the VM shape in vm_config, checks the
// logged ACPI digests against tables built for that shape, and names, for each register that
// diverges, the first divergent event, both digests and what the event depends on.
//
// The quote's authenticity (signatures, PCK chain to the pinned Intel SGX Root CA) is checked
// with package quote, and its TCB status when Intel's collateral is given; the report names
// every check made and every one not made.
package verify

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/dstack-mr/dstack-mr/acpi"
	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/quote"
)

// Options are the inputs of Verify.
type Options struct {
	// Attestation is a guest agent GetQuote response: {"quote": hex, "event_log": JSON string,
	// "vm_config": JSON string, "report_data": hex}.
	Attestation []byte
	// Quote (binary or hex), EventLog (JSON list or string) and VMConfig (JSON) replace the
	// attestation's fields when set.
	Quote    []byte
	EventLog []byte
	VMConfig []byte

	// Image selects full mode: the boot components of the expected OS image (the caller
	// opens a metadata.json / directory / release tarball with package images).
	Image *mr.Inputs
	// ImageOSImageHash is the expected image's os_image_hash (SHA-256 of its sha256sum.txt),
	// when known; vm_config.os_image_hash is checked against it.
	ImageOSImageHash []byte

	// LiteMeasurement selects lite mode with a measurement.tdx.cbor the caller trusts (e.g.
	// from an image they built). Without Image or LiteMeasurement, the document the VM
	// itself attached (vm_config.tdx_measurement) is used; it is bound to vm_config's
	// os_image_hash, which then needs Expect.OSImageHash to mean anything.
	LiteMeasurement []byte

	// Info is a dstack guest agent's Info response (tcb_info with MRTD, RTMR0-3 and the event
	// log, vm_config), checked without a quote: replayed and predicted, never verified.
	Info []byte

	// OverrideMachine adjusts the machine shape derived from vm_config (CLI flags). Without a
	// vm_config it is applied to vm_config's defaults, and must then set at least the CPU count
	// and the memory size.
	OverrideMachine func(*mr.Machine)
	// OverrideFields names, in vm_config's terms (cpu_count, memory_size, qemu_version, ...;
	// smm, root_verity and kernel_setup_header_patch for what vm_config has no key for), the
	// fields OverrideMachine sets, so the report can say where each shape field came from.
	OverrideFields []string
	// ACPI builds the ACPI blobs of a machine; nil means acpi.Build.
	ACPI mr.ACPIBuilder

	Expect Expectations

	// QuoteTime is when the PCK certificate chain (and the collateral) must be valid; zero
	// means now.
	QuoteTime time.Time
	// Collateral (dcap-qvl QuoteCollateralV3 JSON) evaluates the quote's TCB status against
	// TCBPolicy ("" = default); without it the TCB status is listed as not checked.
	Collateral []byte
	TCBPolicy  string
}

// Expectations are values the relying party requires; unset ones are not checked.
type Expectations struct {
	ComposeHash     []byte
	AppID           []byte
	InstanceID      []byte
	OSImageHash     []byte
	KeyProviderName string
	KeyProviderID   string
}

// Report is the outcome of Verify.
type Report struct {
	// SchemaVersion of the JSON form (schemas/verify.schema.json); set by the caller.
	SchemaVersion int `json:"schema_version,omitempty"`
	// Verified is true only when every check ran and passed (the quote's authenticity among
	// them) and nothing required was left unchecked. The TCB status, which needs Intel's
	// collateral, is listed as not checked but not required.
	Verified bool   `json:"verified"`
	Mode     string `json:"mode"` // "full", "lite" or "none" (no expected image)
	// InputForm names what the attestation was read from: a GetQuote response or dstack's
	// {"attestation": hex} in MessagePack or SCALE.
	InputForm string     `json:"input_form,omitempty"`
	Quote     *QuoteInfo `json:"quote"`
	// QuoteVerification is the quote's offline authenticity check (quote.Verify), as
	// `dstack-mr quote verify` prints it.
	QuoteVerification *quote.Verification  `json:"quote_verification"`
	Registers         map[string]*Register `json:"registers"`
	RTMR3             *eventlog.RTMR3Facts `json:"rtmr3,omitempty"`
	App               *AppInfo             `json:"app"`
	VMConfig          *VMConfig            `json:"vm_config,omitempty"`
	Lite              *LiteMeasurement     `json:"lite_measurement,omitempty"`
	// Shape is the VM shape the prediction assumed, with where each field came from.
	Shape      *VMShape     `json:"vm_shape,omitempty"`
	Checks     []Check      `json:"checks"`
	NotChecked []NotChecked `json:"not_checked"`
	// Warnings name what the prediction rests on beyond proof (acpi.MachineConfig.Warnings);
	// never null.
	Warnings []string `json:"warnings"`
	// ToolVersion names the program that wrote the report (set by the caller).
	ToolVersion string `json:"tool_version,omitempty"`
}

// VMShape is the machine a prediction was made for. Sources maps each field (vm_config's key
// names) to "vm_config", "flag" or "default".
type VMShape struct {
	mr.MachineReport
	Sources map[string]string `json:"sources"`
}

// shapeFields are the VMShape fields whose source is reported, by vm_config key.
var shapeFields = []string{"cpu_count", "memory_size", "qemu_version", "pic", "smm", "qemu_single_pass_add_pages",
	"num_nics", "num_verity_volumes", "num_gpus", "num_nvswitches", "hotplug_off", "root_verity",
	"pci_hole64_size", "hugepages", "host_share_mode", "numa_nodes", "qemu_build"}

func describeShape(m *mr.Machine, vm *VMConfig, flags []string) *VMShape {
	s := &VMShape{MachineReport: m.Report(), Sources: map[string]string{}}
	flagged := map[string]bool{}
	for _, f := range flags {
		flagged[f] = true
	}
	for _, f := range shapeFields {
		switch {
		case flagged[f]:
			s.Sources[f] = "flag"
		case vm != nil && vm.present[f]:
			s.Sources[f] = "vm_config"
		default:
			s.Sources[f] = "default"
		}
	}
	return s
}

// QuoteInfo summarises the quote.
type QuoteInfo struct {
	Version       uint16 `json:"version"`
	BodyType      uint16 `json:"body_type"`
	TEETCBSVN     Hex    `json:"tee_tcb_svn"`
	TDAttributes  Hex    `json:"td_attributes"`
	XFAM          Hex    `json:"xfam"`
	MRConfigID    Hex    `json:"mr_config_id"`
	MROwner       Hex    `json:"mr_owner"`
	MROwnerConfig Hex    `json:"mr_owner_config"`
	ReportData    Hex    `json:"report_data"`
}

// Register compares one measurement register.
type Register struct {
	Expected Hex `json:"expected,omitempty"`
	Actual   Hex `json:"actual"` // from the quote
	// Match: Expected equals Actual; null when nothing was predicted.
	Match *bool `json:"match"`
	// Replayed is the event log's replay (RTMRs only); ReplayMatch compares it with Actual.
	Replayed        Hex         `json:"replayed,omitempty"`
	ReplayMatch     *bool       `json:"replay_match,omitempty"`
	FirstDivergence *Divergence `json:"first_divergence,omitempty"`
}

// Divergence is the first event at which a register's log departs from the prediction.
type Divergence struct {
	Position  int      `json:"position"`  // index among the register's events
	LogIndex  int      `json:"log_index"` // index in the whole log; -1 when missing from it
	Label     string   `json:"label"`
	EventType uint32   `json:"event_type,omitempty"`
	Expected  Hex      `json:"expected_digest,omitempty"`
	Actual    Hex      `json:"actual_digest,omitempty"`
	DependsOn []string `json:"depends_on,omitempty"`
	Note      string   `json:"note,omitempty"`
}

// AppInfo is the app identity the attestation carries.
type AppInfo struct {
	AppID            Hex                   `json:"app_id,omitempty"`
	ComposeHash      Hex                   `json:"compose_hash,omitempty"`
	InstanceID       Hex                   `json:"instance_id,omitempty"`
	KeyProvider      *eventlog.KeyProvider `json:"key_provider,omitempty"`
	OSImageHash      Hex                   `json:"os_image_hash,omitempty"`       // vm_config's
	RTMR3OSImageHash Hex                   `json:"rtmr3_os_image_hash,omitempty"` // RTMR3 event (KMS's view)
	// OSImageIdentity is the os_image_hash this report holds the CVM to, and
	// OSImageIdentitySource says what carries it: "rtmr3" (the CVM's own event), "lite-document"
	// (vm_config's hash, bound by the lite document whose predicted registers the quote
	// matched), "image" (the expected image, whose registers the quote matched) or
	// "vm_config" (supplied by the host, attested by nothing).
	OSImageIdentity       Hex    `json:"os_image_identity,omitempty"`
	OSImageIdentitySource string `json:"os_image_identity_source,omitempty"`
	// LiteBinding names how the VM's own lite document was bound to that hash.
	LiteBinding string `json:"lite_binding,omitempty"`
	MRConfigID  Hex    `json:"mr_config_id,omitempty"`
}

// Check is one comparison that ran.
type Check = quote.Check

// NotChecked is something that could not be checked, and why. Required ones keep Verified
// false.
type NotChecked struct {
	Name     string `json:"name"`
	Reason   string `json:"reason"`
	Required bool   `json:"required"`
}

func (r *Report) check(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

func (r *Report) skip(name string, required bool, format string, args ...any) {
	r.NotChecked = append(r.NotChecked, NotChecked{Name: name, Reason: fmt.Sprintf(format, args...), Required: required})
}

// Failed lists the checks that did not pass.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

func (r *Report) finish() {
	r.Verified = len(r.Checks) > 0 && len(r.Failed()) == 0
	for _, n := range r.NotChecked {
		if n.Required {
			r.Verified = false
		}
	}
}

// inputs are the attestation pieces after Options' overrides.
type inputs struct {
	quote, eventLog, vmConfig, reportData []byte
	form                                  string
	// infoRegisters holds the registers of a guest-agent Info (no quote): only the TD report's
	// MRTD, RTMRs and MRCONFIGID (zero) are set.
	infoRegisters *quote.Quote
}

func gather(opts *Options) (*inputs, error) {
	in := &inputs{}
	if len(opts.Attestation) > 0 {
		var a struct {
			Binary     *string          `json:"attestation"`
			Quote      *string          `json:"quote"`
			EventLog   *json.RawMessage `json:"event_log"`
			VMConfig   *json.RawMessage `json:"vm_config"`
			ReportData *string          `json:"report_data"`
		}
		if err := json.Unmarshal(opts.Attestation, &a); err != nil {
			return nil, fmt.Errorf("attestation: want a GetQuote JSON object: %w", err)
		}
		in.form = "GetQuote response"
		if a.Quote != nil {
			in.quote = []byte(*a.Quote)
		} else if a.Binary != nil {
			b, err := decodeBinaryAttestation(strings.TrimPrefix(strings.TrimSpace(*a.Binary), "0x"))
			if err != nil {
				return nil, err
			}
			log, err := b.eventLogJSON()
			if err != nil {
				return nil, err
			}
			in.quote, in.eventLog, in.vmConfig, in.reportData = b.quote, log, []byte(b.config), b.reportData
			in.form = "dstack attestation (" + b.encoding + ")"
		}
		if present(a.EventLog) {
			in.eventLog = *a.EventLog
		}
		if present(a.VMConfig) {
			in.vmConfig = *a.VMConfig
		}
		if a.ReportData != nil && *a.ReportData != "" {
			b, err := hex.DecodeString(strings.TrimPrefix(*a.ReportData, "0x"))
			if err != nil {
				return nil, fmt.Errorf("attestation: report_data: not hex: %w", err)
			}
			in.reportData = b
		}
	}
	if len(opts.Info) > 0 {
		if len(opts.Attestation) > 0 || opts.Quote != nil {
			return nil, errors.New("give an Info or an attestation/quote, not both")
		}
		if err := in.readInfo(opts.Info); err != nil {
			return nil, err
		}
	}
	if opts.Quote != nil {
		in.quote = opts.Quote
	}
	if opts.EventLog != nil {
		in.eventLog = opts.EventLog
	}
	if opts.VMConfig != nil {
		in.vmConfig = opts.VMConfig
	}
	if len(in.quote) == 0 && in.infoRegisters == nil {
		return nil, errors.New("no quote: give an attestation with a quote, or the quote itself")
	}
	return in, nil
}

// present reports whether a JSON field holds something other than null or "".
func present(m *json.RawMessage) bool {
	if m == nil {
		return false
	}
	v := string(bytes.TrimSpace(*m))
	return v != "null" && v != `""` && v != ""
}

// Verify runs every check it can and reports the rest as not checked. It returns an error
// only for input it cannot read (a malformed quote, event log or vm_config).
func Verify(opts Options) (*Report, error) {
	in, err := gather(&opts)
	if err != nil {
		return nil, err
	}
	q := in.infoRegisters
	if q == nil {
		if q, err = quote.ParseAuto(in.quote); err != nil {
			return nil, fmt.Errorf("quote: %w", err)
		}
	}
	var events []eventlog.Event
	if len(in.eventLog) > 0 {
		if events, err = eventlog.Parse(in.eventLog); err != nil {
			return nil, fmt.Errorf("event log: %w", err)
		}
		eventlog.Label(events)
	}
	var vm *VMConfig
	if len(in.vmConfig) > 0 {
		if vm, err = ParseVMConfig(in.vmConfig); err != nil {
			return nil, err
		}
	}

	r := &Report{Mode: "none", Registers: map[string]*Register{}, App: &AppInfo{}, VMConfig: vm, Checks: []Check{}, NotChecked: []NotChecked{}, Warnings: []string{}}
	r.InputForm = in.form
	if in.infoRegisters != nil {
		r.skip("quote", true, "no quote: the registers come from the guest agent's Info (tcb_info), which is the CVM's unsigned word; "+
			"nothing proves they came from a TD. Get a quote (GetQuote) to verify")
	} else {
		r.Quote = quoteInfo(q)
		if err := checkQuoteAuthentic(r, q, &opts); err != nil {
			return nil, err
		}
	}
	r.App.MRConfigID = Hex(q.Report.MRConfigID)
	r.Registers["mrtd"] = &Register{Actual: Hex(q.Report.MRTD)}
	for i := 0; i < 4; i++ {
		r.Registers[rtmrName(i)] = &Register{Actual: Hex(q.Report.RTMR[i])}
	}

	checkReportData(r, q, in.reportData)
	checkEventLog(r, q, events)
	// RTMR3 is predicted by nothing but its own log: its replay is its expectation.
	if rt3 := r.Registers["rtmr3"]; rt3.Replayed != nil {
		rt3.Expected, rt3.Match = rt3.Replayed, rt3.ReplayMatch
	}
	newFirmware := checkFirmwareGeneration(r, events)
	sh := newShape(&opts, vm)
	if sh.machine != nil {
		r.Warnings = append(r.Warnings, sh.machine.Warnings()...)
	}
	checkACPIProfile(r, sh)
	exp := expected(r, &opts, vm, sh, events)
	if sh.machine != nil {
		// After the prediction, which may have settled the QEMU build from the quote.
		r.Shape = describeShape(sh.machine, vm, opts.OverrideFields)
	}
	compareExpected(r, exp, events)
	if rt0 := r.Registers["rtmr0"]; newFirmware != "" && rt0.Match != nil && !*rt0.Match {
		rt0.FirstDivergence = &Divergence{Position: -1, LogIndex: -1, Note: newFirmware}
	}
	checkACPI(r, sh, exp, events)
	checkApp(r, &opts, vm, q)
	explainReplayFailures(r)
	if vm != nil && len(vm.Unknown) > 0 {
		r.skip("vm-config-fields", false, "vm_config fields not interpreted: %s", strings.Join(vm.Unknown, ", "))
	}
	r.finish()
	return r, nil
}

func rtmrName(i int) string { return fmt.Sprintf("rtmr%d", i) }

// checkFirmwareGeneration recognises, from RTMR0 of the log, firmware built from edk2 after
// stable202502 (dstack's short-lived "stable202505" OVMF): it measures QEMU fw_cfg items cached
// in SEC ("QEMU FW CFG" events) and QEMU's SMBIOS tables (EV_EFI_HANDOFF_TABLES), and adds boot
// options, 17 RTMR0 events instead of 13. dstack-mr models only the pre-202505 sequence, so
// such a CVM is refused by name rather than reported as an unexplained divergence. It returns
// the reason, or "" for the modelled generation.
func checkFirmwareGeneration(r *Report, events []eventlog.Event) string {
	var n int
	var fwCfg []string
	smbios := false
	for _, e := range events {
		if e.IMR != 0 {
			continue
		}
		n++
		switch {
		case eventlog.IsQEMUFwCfgEvent(&e):
			fwCfg = append(fwCfg, eventlog.QEMUFwCfgItem(&e))
		case e.EventType == eventlog.EvEFIHandoffTables:
			smbios = true
		}
	}
	if len(fwCfg) == 0 && !smbios {
		return ""
	}
	what := []string{}
	if len(fwCfg) > 0 {
		what = append(what, fmt.Sprintf("QEMU fw_cfg items (%s)", strings.Join(fwCfg, ", ")))
	}
	if smbios {
		what = append(what, "an SMBIOS handoff table")
	}
	reason := fmt.Sprintf("the event log has %d RTMR0 events, including %s: the edk2 >= stable202505 firmware generation "+
		"(ovmf_variant stable202505), whose RTMR0 dstack-mr does not model (it models the 13-event pre-202505 sequence); "+
		"RTMR0 of this CVM cannot be predicted", n, strings.Join(what, " and "))
	r.check("firmware-generation", false, "%s", reason)
	return reason
}

func quoteInfo(q *quote.Quote) *QuoteInfo {
	return &QuoteInfo{
		Version: q.Header.Version, BodyType: q.BodyType, TEETCBSVN: Hex(q.Report.TEETCBSVN),
		TDAttributes: Hex(q.Report.TDAttributes), XFAM: Hex(q.Report.XFAM), MRConfigID: Hex(q.Report.MRConfigID),
		MROwner: Hex(q.Report.MROwner), MROwnerConfig: Hex(q.Report.MROwnerConfig), ReportData: Hex(q.Report.ReportData),
	}
}

// checkQuoteAuthentic runs quote.Verify: without an authentic quote nothing else in the
// report is the CVM's word.
func checkQuoteAuthentic(r *Report, q *quote.Quote, opts *Options) error {
	policy, err := quote.ParseTCBPolicy(opts.TCBPolicy)
	if err != nil {
		return err
	}
	var coll *quote.Collateral
	if opts.Collateral != nil {
		if coll, err = quote.ParseCollateral(opts.Collateral); err != nil {
			return err
		}
	}
	v, err := quote.Verify(q, quote.VerifyOptions{Time: opts.QuoteTime})
	r.QuoteVerification = v
	if err != nil {
		r.check("quote-authentic", false, "the quote's signature data cannot be read: %v", err)
		return nil
	}
	if !v.Authentic {
		r.check("quote-authentic", false, "%s", strings.Join(failedChecks(v), "; "))
		return nil
	}
	r.check("quote-authentic", true, "quote signature, QE report signature and data, PCK chain to the pinned Intel SGX Root CA (FMSPC %s, checked at %s)",
		v.FMSPC, v.VerificationTime.Format(time.RFC3339))
	for _, c := range v.Checks {
		if c.Name == "td-attributes" {
			r.check("td-attributes", c.OK, "%s", c.Detail)
		}
	}
	r.Warnings = append(r.Warnings, v.Warnings...)
	if coll != nil {
		if err := quote.VerifyCollateral(q, v, coll); err != nil {
			return fmt.Errorf("collateral: %w", err)
		}
		bad := failedChecks(v)
		status := "not evaluated"
		if v.TCBStatus != nil {
			status = *v.TCBStatus
		}
		ok := len(bad) == 0 && v.TCBStatus != nil && policy.Accepts(*v.TCBStatus)
		detail := fmt.Sprintf("TCB status %s under policy %s, advisories %v", status, policy.Name, v.AdvisoryIDs)
		if len(bad) > 0 {
			detail += "; " + strings.Join(bad, "; ")
		}
		r.check("tcb-status", ok, "%s", detail)
	}
	for _, n := range v.NotChecked {
		r.skip(n.Name, false, "%s", n.Reason)
	}
	return nil
}

func checkReportData(r *Report, q *quote.Quote, rd []byte) {
	if rd == nil {
		return
	}
	// GetQuote's report_data is the caller's data, zero padded to 64 bytes in the quote.
	want := make([]byte, 64)
	copy(want, rd)
	ok := len(rd) <= 64 && bytes.Equal(want, q.Report.ReportData)
	r.check("report-data", ok, "attestation report_data %x, quote REPORTDATA %x", rd, []byte(q.Report.ReportData))
}

func bptr(b bool) *bool { return &b }

func checkEventLog(r *Report, q *quote.Quote, events []eventlog.Event) {
	if events == nil {
		r.skip("event-log", true, "no event log: RTMR replay and RTMR3 facts need the GetQuote event_log")
		return
	}
	mrs := eventlog.Replay(events)
	stripped := strippedBootLog(events)
	for i := 0; i < 4; i++ {
		if stripped && i < 3 {
			r.skip(rtmrName(i)+"-replay", false, "stripped event log (dstack's KMS form: RTMR0's three ACPI digests and RTMR3 only): "+
				"RTMR%d cannot be replayed; it is predicted from the expected image or document and the VM shape, and that prediction is compared with the quote", i)
			continue
		}
		reg := r.Registers[rtmrName(i)]
		reg.Replayed = mrs[i]
		ok := bytes.Equal(mrs[i], q.Report.RTMR[i])
		reg.ReplayMatch = bptr(ok)
		r.check(rtmrName(i)+"-replay", ok, "event log replays RTMR%d to %x, quote has %x", i, mrs[i], []byte(q.Report.RTMR[i]))
	}
	probs := eventlog.CheckRuntimeDigests(events)
	if len(probs) == 0 {
		r.check("rtmr3-event-digests", true, "every runtime event's digest is the SHA-384 of its name and payload")
	} else {
		var parts []string
		for _, p := range probs {
			parts = append(parts, fmt.Sprintf("event %d %q (RTMR%d): %s (logged %x, computed %x)", p.Index, p.Name, p.IMR, p.Reason, []byte(p.Logged), []byte(p.Computed)))
		}
		r.check("rtmr3-event-digests", false, "%s", strings.Join(parts, "; "))
		// The first tampered runtime event is RTMR3's divergence.
		p := probs[0]
		r.Registers["rtmr3"].FirstDivergence = &Divergence{
			Position: positionInRegister(events, p.Index), LogIndex: p.Index, Label: p.Name, EventType: eventlog.RuntimeEventType,
			Expected: p.Computed, Actual: p.Logged, DependsOn: []string{"the event's payload"},
			Note: "expected_digest is recomputed from the logged name and payload",
		}
	}
	facts := eventlog.ExtractRTMR3(events)
	r.RTMR3 = facts
	r.check("rtmr3-structure", len(facts.Problems) == 0, "%s", orNone(facts.Problems))
	r.App.AppID, r.App.ComposeHash, r.App.InstanceID = facts.AppID, facts.ComposeHash, facts.InstanceID
	r.App.KeyProvider, r.App.RTMR3OSImageHash = facts.KeyProvider, facts.OSImageHash
}

// strippedBootLog recognises the event log dstack's KMS and verifier pass around: no RTMR1 or
// RTMR2 events at all, and in RTMR0 only the ACPI blobs' EV_PLATFORM_CONFIG_FLAGS events.
func strippedBootLog(events []eventlog.Event) bool {
	n0 := 0
	for _, e := range events {
		switch e.IMR {
		case 0:
			if e.EventType != eventlog.EvPlatformConfigFlags {
				return false
			}
			n0++
		case 1, 2:
			return false
		}
	}
	return n0 > 0
}

func orNone(p []string) string {
	if len(p) == 0 {
		return "markers in order, no duplicated identity events"
	}
	return strings.Join(p, "; ")
}

func positionInRegister(events []eventlog.Event, logIndex int) int {
	n := 0
	imr := events[logIndex].IMR
	for i := 0; i < logIndex; i++ {
		if events[i].IMR == imr {
			n++
		}
	}
	return n
}

// shape is the machine vm_config describes (after overrides) and the ACPI digests of its
// tables, each with the reason it is unavailable.
type shape struct {
	machine    *mr.Machine
	machineErr error
	acpi       map[string][]byte
	acpiErr    error
	// blobs are the tables behind acpi, built once for the checks and the prediction alike.
	blobs *acpi.Blobs
}

// acpiBuilder hands Measure the shape's tables instead of building them again.
func (s *shape) acpiBuilder(fallback mr.ACPIBuilder) mr.ACPIBuilder {
	return func(cfg acpi.MachineConfig) (*acpi.Blobs, error) {
		if s.blobs != nil && reflect.DeepEqual(cfg, s.machine.MachineConfig) {
			return s.blobs, nil
		}
		if fallback == nil {
			return acpi.Build(cfg)
		}
		return fallback(cfg)
	}
}

func newShape(opts *Options, vm *VMConfig) *shape {
	s := &shape{}
	if vm == nil {
		if !overrides(opts, "cpu_count") || !overrides(opts, "memory_size") {
			s.machineErr = errors.New("no vm_config: the VM shape (CPUs, memory, devices, QEMU version) is unknown; give it with --vm-config or the VM shape flags (at least --cpu and --memory)")
			s.acpiErr = s.machineErr
			return s
		}
		// Older attestations carry no vm_config; their operators publish the shape. Start
		// from what vm_config means when a key is absent, then apply the caller's shape.
		vm, _ = ParseVMConfig([]byte("{}"))
	}
	if s.machine, s.machineErr = machine(opts, vm); s.machineErr != nil {
		s.acpiErr = s.machineErr
		return s
	}
	build := opts.ACPI
	if build == nil {
		build = acpi.Build
	}
	blobs, err := build(s.machine.MachineConfig)
	if err != nil {
		s.acpiErr = fmt.Errorf("building the ACPI tables of this VM shape: %w", err)
		return s
	}
	s.blobs = blobs
	s.acpi = map[string][]byte{
		eventlog.LabelACPILoader: sha384(blobs.Loader),
		eventlog.LabelACPIRSDP:   sha384(blobs.RSDP),
		eventlog.LabelACPITables: sha384(blobs.Tables),
	}
	return s
}

// expected predicts MRTD and RTMR0-2, or records why it cannot.
func expected(r *Report, opts *Options, vm *VMConfig, sh *shape, events []eventlog.Event) *Expected {
	notPredicted := func(reason string) *Expected {
		for _, n := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2"} {
			r.skip(n, true, "%s", reason)
		}
		return nil
	}
	switch {
	case opts.Image != nil:
		r.Mode = "full"
	case opts.LiteMeasurement != nil, vm != nil && vm.TDXMeasurement != nil:
		r.Mode = "lite"
	default:
		return notPredicted("no expected image: give an OS image (full mode) or its measurement.tdx.cbor (lite mode)")
	}
	if sh.machineErr != nil {
		return notPredicted(sh.machineErr.Error())
	}
	m := sh.machine
	if r.Mode == "full" {
		im, err := mr.Prepare(*opts.Image)
		if err != nil {
			return notPredicted(fmt.Sprintf("expected image: %v", err))
		}
		im.ACPI = sh.acpiBuilder(opts.ACPI)
		meas, err := im.Measure(*m)
		if err != nil {
			return notPredicted(fmt.Sprintf("computing the expected registers: %v", err))
		}
		meas = tryOtherQEMUBuild(r, im, m, meas, overrides(opts, "qemu_build"))
		e, err := fromMeasurement(meas)
		if err != nil {
			return notPredicted(err.Error())
		}
		return e
	}
	var lm *LiteMeasurement
	var err error
	if opts.LiteMeasurement == nil {
		lm, err = vm.TDXMeasurement.Decode()
	} else {
		lm, err = DecodeLite(opts.LiteMeasurement)
	}
	if err != nil {
		r.check("lite-document", false, "%v", err)
		return notPredicted("the lite measurement document is unusable")
	}
	if opts.LiteMeasurement == nil {
		// The VM supplied the document itself: it counts only when bound to os_image_hash,
		// and the os_image_hash only when the relying party expects it.
		// Bind it to the image the CVM itself attested when it did (RTMR3 os-image-hash), else to
		// vm_config's, which the document then makes the identity.
		id, idSource := vm.OSImageHash, "vm_config"
		if r.App.RTMR3OSImageHash != nil {
			id, idSource = r.App.RTMR3OSImageHash, "the RTMR3 os-image-hash event"
		}
		err := vm.TDXMeasurement.CheckBinding(id)
		r.check("lite-document-binding", err == nil, "%s", errOr(err, vm.TDXMeasurement.Binding()+", to the os_image_hash of "+idSource))
		if err == nil {
			r.App.LiteBinding = vm.TDXMeasurement.Binding()
		}
		if opts.Expect.OSImageHash == nil && opts.ImageOSImageHash == nil {
			r.skip("os-image-identity", true, "the lite document comes from the VM's own vm_config: give the expected os_image_hash (or a measurement.tdx.cbor you trust) to tie it to an image you trust")
		}
	}
	if vm != nil && vm.OVMFVariant != nil && *vm.OVMFVariant != lm.TDVF.OVMF {
		r.check("ovmf-variant", false, "vm_config.ovmf_variant %q, document %q", *vm.OVMFVariant, lm.TDVF.OVMF)
	}
	r.Lite = lm
	// With tables built for the VM shape, RTMR0 is predicted entirely; otherwise its ACPI
	// digests come from the log (as upstream's lite verifier does) and the acpi-digests check
	// stays not checked.
	acpiDigests, fromLog := sh.acpi, false
	if acpiDigests == nil {
		acpiDigests, fromLog = acpiDigestsFromLog(events), true
	}
	e, err := liteExpectedForQuote(r, lm, m, acpiDigests)
	if err != nil {
		return notPredicted(err.Error())
	}
	for i := range e.Events[0] {
		if e.Events[0][i].EventType == eventlog.EvPlatformConfigFlags {
			e.Events[0][i].FromLog = fromLog
		}
	}
	return e
}

// liteExpectedForQuote predicts with the kernel digest the document allows for this machine.
// A release-candidate document carries both the patched and the unpatched digest, because
// whether QEMU patched the header depends on its build (upstream >= 10.2 does not, dstack's
// 9.2.1-based fork does): the one the quote's RTMR1 matches is taken and named; with none, the
// QEMU version's default, so the divergence is reported against it.
func liteExpectedForQuote(r *Report, lm *LiteMeasurement, m *mr.Machine, acpiDigests map[string][]byte) (*Expected, error) {
	cands := lm.KernelCandidates(m.MemoryBytes)
	if len(cands) == 0 {
		return LiteExpectedFor(lm, m, acpiDigests) // its error names why
	}
	var fallback *Expected
	for _, c := range cands {
		e, err := LiteExpectedKernel(lm, m, acpiDigests, c.Digest)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(e.RTMR[1], r.Registers["rtmr1"].Actual) {
			if len(cands) > 1 {
				r.check("kernel-form", true, "the quote's RTMR1 matches the document's %s kernel digest (of %d candidates)", c.Form, len(cands))
			}
			return e, nil
		}
		if fallback == nil || (c.Form == "unpatched") == m.QEMUVersion.AtLeast(10, 2, 0) {
			fallback = e
		}
	}
	return fallback, nil
}

// tryOtherQEMUBuild: vm_config declares a QEMU version, not whether upstream QEMU or dstack's
// 9.2.1-based fork loaded the kernel, and the two measure a non-normalized kernel differently
// from 10.0 on. Unless the caller fixed the build, the other build's prediction is taken when
// only it matches the quote's RTMR1, and the report names the build that matched.
func tryOtherQEMUBuild(r *Report, im *mr.Image, m *mr.Machine, meas *mr.Measurement, fixed bool) *mr.Measurement {
	actual := hex.EncodeToString(r.Registers["rtmr1"].Actual)
	if fixed || meas.RTMR1 == actual {
		return meas
	}
	alt, differs, err := im.OtherQEMUBuild(*m)
	if err != nil || !differs {
		return meas
	}
	// Only RTMR1 differs between the builds: the whole measurement is redone only on a match.
	if altRTMR1, err := im.RTMR1(alt); err != nil || altRTMR1 != actual {
		return meas
	}
	other, err := im.Measure(alt)
	if err != nil {
		return meas
	}
	r.check("qemu-build", true, "the quote's RTMR1 matches the kernel as %s QEMU loads it on QEMU %s, not as %s QEMU does", alt.QEMUBuild, m.QEMUVersion, m.QEMUBuild.OrUpstream())
	*m = alt
	return other
}

func errOr(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

func machine(opts *Options, vm *VMConfig) (*mr.Machine, error) {
	m, err := vm.Machine()
	if err != nil {
		return nil, err
	}
	if opts.OverrideMachine != nil {
		opts.OverrideMachine(m)
	}
	// A given memory size is QEMU's (vm_config's is rounded in vm.Machine); dstack-vmm only
	// ever gives a hugepages VM whole GiB.
	if m.Hugepages && overrides(opts, "memory_size") && m.MemoryBytes%mr.HugepagesGranule != 0 {
		return nil, fmt.Errorf("memory_size %d bytes with hugepages: dstack-vmm launches hugepages VMs with whole GiB", m.MemoryBytes)
	}
	// A verifier judges a CVM that already runs: a QEMU newer than the newest profile is
	// predicted with that profile, and the report names the assumption (checkACPIProfile).
	if m.QEMUVersion.NewerThanNewestProfile() {
		m.AssumeNewestProfile = true
	}
	return m, nil
}

func overrides(opts *Options, field string) bool {
	if opts.OverrideMachine == nil {
		return false
	}
	for _, f := range opts.OverrideFields {
		if f == field {
			return true
		}
	}
	return false
}

// checkACPIProfile reports, as a check of its own, that the ACPI tables were predicted with
// the newest profile for a newer QEMU, so that an ACPI mismatch reads as a possible ABI change.
func checkACPIProfile(r *Report, sh *shape) {
	if sh.machine == nil || !sh.machine.NewestProfileAssumed() {
		return
	}
	v, n := sh.machine.QEMUVersion, acpi.NewestProfile()
	r.check("acpi-profile-assumed", true, "QEMU %s is newer than the newest ACPI profile (%d.%d): the ACPI tables were predicted with the %d.%d profile; "+
		"if the ACPI digests differ, QEMU %d.%d may have changed the ACPI ABI (not necessarily tampering)", v, n.Major, n.Minor, n.Major, n.Minor, v.Major, v.Minor)
}

func acpiDigestsFromLog(events []eventlog.Event) map[string][]byte {
	out := map[string][]byte{}
	for _, e := range events {
		if e.IMR == 0 && e.EventType == eventlog.EvPlatformConfigFlags && e.Label != "" {
			if _, dup := out[e.Label]; !dup {
				out[e.Label] = e.Digest
			}
		}
	}
	return out
}

// fromMeasurement converts package mr's result.
func fromMeasurement(m *mr.Measurement) (*Expected, error) {
	e := &Expected{Source: "image"}
	var err error
	dec := func(s, what string) Hex {
		if err != nil {
			return nil
		}
		var b []byte
		if b, err = hex.DecodeString(s); err == nil && len(b) != 48 {
			err = fmt.Errorf("mr: %s is %d bytes", what, len(b))
		}
		return b
	}
	e.MRTD = dec(m.MRTD, "mrtd")
	e.RTMR[0], e.RTMR[1], e.RTMR[2] = dec(m.RTMR0, "rtmr0"), dec(m.RTMR1, "rtmr1"), dec(m.RTMR2, "rtmr2")
	for _, ev := range m.EventLog {
		if ev.IMR < 0 || ev.IMR > 2 {
			return nil, fmt.Errorf("mr: event %q in RTMR%d", ev.Label, ev.IMR)
		}
		d := dec(ev.Digest, ev.Label)
		e.Events[ev.IMR] = append(e.Events[ev.IMR], ExpectedEvent{IMR: ev.IMR, EventType: ev.EventType, Label: ev.Label, Digest: d})
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

func compareExpected(r *Report, e *Expected, events []eventlog.Event) {
	if e == nil {
		return
	}
	mrtd := r.Registers["mrtd"]
	mrtd.Expected = e.MRTD
	ok := bytes.Equal(e.MRTD, mrtd.Actual)
	mrtd.Match = bptr(ok)
	r.check("mrtd", ok, "expected %x, quote %x", []byte(e.MRTD), []byte(mrtd.Actual))
	if !ok {
		mrtd.FirstDivergence = &Divergence{LogIndex: -1, Label: "mrtd", Expected: e.MRTD, Actual: mrtd.Actual, DependsOn: DependsOn("mrtd"),
			Note: "MRTD has no event log: the firmware image or its page-add order differs"}
	}
	var logged [3][]eventlog.Event
	for _, ev := range events {
		if ev.IMR < 3 {
			logged[ev.IMR] = append(logged[ev.IMR], ev)
		}
	}
	for i := 0; i < 3; i++ {
		reg := r.Registers[rtmrName(i)]
		reg.Expected = e.RTMR[i]
		ok := bytes.Equal(e.RTMR[i], reg.Actual)
		reg.Match = bptr(ok)
		detail := fmt.Sprintf("expected %x, quote %x", []byte(e.RTMR[i]), []byte(reg.Actual))
		replayOK := reg.ReplayMatch == nil || *reg.ReplayMatch
		if (!ok || !replayOK) && events != nil {
			reg.FirstDivergence = firstDivergence(e.Events[i], logged[i])
			if d := reg.FirstDivergence; d != nil {
				detail += fmt.Sprintf("; first divergent event: #%d %s (expected %x, logged %x), depends on %s",
					d.Position, d.Label, []byte(d.Expected), []byte(d.Actual), strings.Join(d.DependsOn, ", "))
			}
		}
		r.check(rtmrName(i), ok, "%s", detail)
	}
}

// firstDivergence walks the predicted and logged events of one register side by side.
func firstDivergence(want []ExpectedEvent, got []eventlog.Event) *Divergence {
	for i := 0; i < len(want) || i < len(got); i++ {
		switch {
		case i >= len(want):
			g := got[i]
			return &Divergence{Position: i, LogIndex: g.Index, Label: g.Label, EventType: g.EventType, Actual: g.Digest, DependsOn: DependsOn(g.Label),
				Note: "the log has an event the image does not predict"}
		case i >= len(got):
			w := want[i]
			return &Divergence{Position: i, LogIndex: -1, Label: w.Label, EventType: w.EventType, Expected: w.Digest, DependsOn: DependsOn(w.Label),
				Note: "the log lacks an event the image predicts"}
		case !bytes.Equal(want[i].Digest, got[i].Digest) || want[i].EventType != got[i].EventType:
			w, g := want[i], got[i]
			d := &Divergence{Position: i, LogIndex: g.Index, Label: w.Label, EventType: w.EventType, Expected: w.Digest, Actual: g.Digest, DependsOn: DependsOn(w.Label)}
			if w.EventType != g.EventType {
				d.Note = fmt.Sprintf("the log has event type 0x%x (%s) where 0x%x is predicted", g.EventType, g.Label, w.EventType)
			}
			return d
		}
	}
	return &Divergence{Position: -1, LogIndex: -1, Note: "every logged event matches the prediction, so the log itself does not reproduce the quote's register (or, in lite mode, a digest taken from the log is wrong)"}
}

// checkACPI compares the logged ACPI digests with the tables built for the VM shape, which a
// matching register alone would not prove when the prediction took its ACPI digests from the
// log.
func checkACPI(r *Report, sh *shape, e *Expected, events []eventlog.Event) {
	const name = "acpi-digests"
	if events == nil {
		r.skip(name, true, "needs the event log")
		return
	}
	want := sh.acpi
	if e != nil && e.Source == "image" {
		want = map[string][]byte{}
		for _, ev := range e.Events[0] {
			if ev.EventType == eventlog.EvPlatformConfigFlags {
				want[ev.Label] = ev.Digest
			}
		}
	}
	if want == nil {
		if sh.acpiErr != nil && !isNotSupported(sh.acpiErr) && sh.machineErr == nil {
			r.check(name, false, "%v", sh.acpiErr)
		} else {
			r.skip(name, true, "%v", sh.acpiErr)
		}
		return
	}
	got := acpiDigestsFromLog(events)
	var bad []string
	for _, l := range []string{eventlog.LabelACPILoader, eventlog.LabelACPIRSDP, eventlog.LabelACPITables} {
		w, g := want[l], got[l]
		if w == nil || g == nil || !bytes.Equal(w, g) {
			bad = append(bad, fmt.Sprintf("%s: expected %x, logged %x", l, w, g))
		}
	}
	if len(bad) > 0 {
		note := ""
		if sh.machine != nil && sh.machine.NewestProfileAssumed() {
			note = fmt.Sprintf(" (tables predicted with the %s profile for QEMU %s, which may have changed the ACPI ABI)", acpi.NewestProfile(), sh.machine.QEMUVersion)
		}
		r.check(name, false, "%s; depends on %s%s", strings.Join(bad, "; "), strings.Join(DependsOn(eventlog.LabelACPITables), ", "), note)
		return
	}
	r.check(name, true, "acpi-loader, acpi-rsdp and acpi-tables match the tables of the VM shape")
}

// explainReplayFailures gives every register whose log does not replay, and whose divergent
// event nothing could name, a note saying why it cannot be named.
func explainReplayFailures(r *Report) {
	for i := 0; i < 4; i++ {
		reg := r.Registers[rtmrName(i)]
		if reg.ReplayMatch == nil || *reg.ReplayMatch || reg.FirstDivergence != nil {
			continue
		}
		note := "the logged events do not reproduce the quote's register and no expected events were computed to say which one departs"
		if i == 3 {
			note = "the runtime events do not reproduce RTMR3: one was altered, added, removed or reordered, and the log carries no digests to tell which"
		}
		reg.FirstDivergence = &Divergence{Position: -1, LogIndex: -1, Note: note}
	}
}

func isNotSupported(err error) bool {
	return errors.Is(err, ErrNotSupported) || errors.Is(err, acpi.ErrNotSupported) || errors.Is(err, mr.ErrNotSupported)
}

func checkApp(r *Report, opts *Options, vm *VMConfig, q *quote.Quote) {
	a := r.App
	if vm != nil {
		a.OSImageHash = vm.OSImageHash
	}
	switch {
	case a.RTMR3OSImageHash != nil:
		a.OSImageIdentity, a.OSImageIdentitySource = a.RTMR3OSImageHash, "rtmr3"
		if vm != nil && vm.OSImageHash != nil {
			r.check("os-image-hash-consistency", bytes.Equal(vm.OSImageHash, a.RTMR3OSImageHash),
				"vm_config names os_image_hash %x, the CVM attested %x in RTMR3 (os-image-hash event)", []byte(vm.OSImageHash), []byte(a.RTMR3OSImageHash))
		}
	case r.Mode == "full" && opts.ImageOSImageHash != nil && registersMatch(r):
		a.OSImageIdentity, a.OSImageIdentitySource = opts.ImageOSImageHash, "image"
	case vm != nil && vm.OSImageHash != nil && a.LiteBinding != "" && r.Mode == "lite" && registersMatch(r):
		a.OSImageIdentity, a.OSImageIdentitySource = vm.OSImageHash, "lite-document"
	case vm != nil && vm.OSImageHash != nil:
		a.OSImageIdentity, a.OSImageIdentitySource = vm.OSImageHash, "vm_config"
	}
	if opts.ImageOSImageHash != nil {
		r.check("os-image-hash-image", a.OSImageIdentity != nil && bytes.Equal(a.OSImageIdentity, opts.ImageOSImageHash),
			"the CVM's os_image_hash %x (from %s), expected image's %x", []byte(a.OSImageIdentity), a.OSImageIdentitySource, opts.ImageOSImageHash)
	}
	x := opts.Expect
	expect := func(name string, want, got []byte) {
		if want != nil {
			r.check("expect-"+name, bytes.Equal(want, got), "expected %x, attested %x", want, got)
		}
	}
	expect("compose-hash", x.ComposeHash, r.App.ComposeHash)
	expect("app-id", x.AppID, r.App.AppID)
	expect("instance-id", x.InstanceID, r.App.InstanceID)
	if x.OSImageHash != nil {
		switch a.OSImageIdentitySource {
		case "":
			r.check("expect-os-image-hash", false, "neither RTMR3 nor vm_config carries an os_image_hash")
		case "vm_config":
			r.check("expect-os-image-hash", false, "expected %x; only vm_config names one (%x), which the host supplies and nothing in the quote attests",
				x.OSImageHash, []byte(a.OSImageIdentity))
		default:
			r.check("expect-os-image-hash", bytes.Equal(x.OSImageHash, a.OSImageIdentity), "expected %x, attested %x (from %s)",
				x.OSImageHash, []byte(a.OSImageIdentity), a.OSImageIdentitySource)
		}
	}
	if x.KeyProviderName != "" || x.KeyProviderID != "" {
		kp := r.App.KeyProvider
		ok := kp != nil && (x.KeyProviderName == "" || kp.Name == x.KeyProviderName) &&
			(x.KeyProviderID == "" || strings.EqualFold(kp.ID, x.KeyProviderID))
		r.check("expect-key-provider", ok, "expected name %q id %q, attested %+v", x.KeyProviderName, x.KeyProviderID, kp)
	}
	checkMRConfigID(r, q)
}

// failedChecks names each failed check of a quote verification with its detail.
func failedChecks(v *quote.Verification) []string {
	var bad []string
	for _, c := range v.Failed() {
		bad = append(bad, c.Name+": "+c.Detail)
	}
	return bad
}

// registersMatch reports whether every predicted register matched the quote.
func registersMatch(r *Report) bool {
	for _, n := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2"} {
		if reg := r.Registers[n]; reg == nil || reg.Match == nil || !*reg.Match {
			return false
		}
	}
	return true
}

// checkMRConfigID checks a v1 MRCONFIGID (0x01 || compose hash) against RTMR3's compose hash.
// dstack's v2 form is a Keccak-256 this package does not compute.
func checkMRConfigID(r *Report, q *quote.Quote) {
	id := q.Report.MRConfigID
	switch {
	case bytes.Equal(id, make([]byte, len(id))):
	case id[0] == 1:
		want := make([]byte, 47)
		copy(want, r.App.ComposeHash)
		r.check("mr-config-id", r.App.ComposeHash != nil && bytes.Equal(id[1:], want), "MRCONFIGID %x, compose-hash %x", []byte(id), []byte(r.App.ComposeHash))
	default:
		r.skip("mr-config-id", false, "MRCONFIGID version %d (%x) is not checked", id[0], []byte(id))
	}
}

// readInfo takes the registers, event log and vm_config of a guest agent Info response.
func (in *inputs) readInfo(data []byte) error {
	var info struct {
		TCBInfo  json.RawMessage `json:"tcb_info"`
		VMConfig json.RawMessage `json:"vm_config"`
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return fmt.Errorf("info: want the guest agent's Info JSON: %w", err)
	}
	tcb := []byte(info.TCBInfo)
	var text string
	if json.Unmarshal(tcb, &text) == nil {
		tcb = []byte(text) // a JSON string holding the object, as the guest agent sends it
	}
	var t struct {
		MRTD     string          `json:"mrtd"`
		RTMR0    string          `json:"rtmr0"`
		RTMR1    string          `json:"rtmr1"`
		RTMR2    string          `json:"rtmr2"`
		RTMR3    string          `json:"rtmr3"`
		EventLog json.RawMessage `json:"event_log"`
	}
	if err := json.Unmarshal(tcb, &t); err != nil {
		return fmt.Errorf("info: tcb_info: %w", err)
	}
	q := &quote.Quote{}
	for _, f := range []struct {
		name string
		hex  string
		dst  *quote.Hex
	}{{"mrtd", t.MRTD, &q.Report.MRTD}, {"rtmr0", t.RTMR0, &q.Report.RTMR[0]}, {"rtmr1", t.RTMR1, &q.Report.RTMR[1]},
		{"rtmr2", t.RTMR2, &q.Report.RTMR[2]}, {"rtmr3", t.RTMR3, &q.Report.RTMR[3]}} {
		b, err := hex.DecodeString(strings.TrimPrefix(f.hex, "0x"))
		if err != nil || len(b) != 48 {
			return fmt.Errorf("info: tcb_info.%s: want 48 bytes of hex", f.name)
		}
		*f.dst = b
	}
	q.Report.MRConfigID = make(quote.Hex, 48)
	in.infoRegisters = q
	in.form = "guest agent Info (no quote)"
	if present((*json.RawMessage)(&t.EventLog)) {
		in.eventLog = t.EventLog
	}
	if present((*json.RawMessage)(&info.VMConfig)) {
		in.vmConfig = info.VMConfig
	}
	return nil
}
