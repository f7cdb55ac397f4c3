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
	"fmt"
	"strings"
	"time"

	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/policy"
	"github.com/dstack-mr/dstack-mr/quote"
)

// Options are the inputs of Verify.
type Options struct {
	// Attestation is a guest agent GetQuote response ({"quote": hex, "event_log": JSON string,
	// "vm_config": JSON string, "report_data": hex}), dstack's {"attestation": hex} or the
	// encoded attestation itself, one CVM's entry of a NEAR AI cloud report (SplitAttestations
	// gives each of a whole report's), or a NEAR MPC node's public_data.json; recognised by
	// content (Sniff).
	Attestation []byte
	// Quote (binary, hex or a JSON array of byte values), EventLog (JSON list or string, or a
	// tcb_info holding one) and VMConfig (JSON, or a sys-config holding one) replace the
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
	// ImageName names the expected image in the report (UseImage sets it).
	ImageName ExpectedImage
	// PreparedImage, when set with Image, is that image already prepared (mr.Prepare): a
	// service verifying many CVMs of one image prepares it once and shares it.
	PreparedImage *mr.Image
	// ResolveImage, when set and neither Image nor LiteMeasurement is given, is asked for the
	// expected image of the os_image_hash the attestation names (RTMR3's os-image-hash event,
	// else vm_config's; nil when neither does) and may set Image (with ImageOSImageHash,
	// ImageName, PreparedImage) or LiteMeasurement with Expect.OSImageHash. The name is only a
	// key: what it selects is checked like any image the caller gives.
	ResolveImage func(osImageHash []byte, o *Options) error

	// LiteMeasurement selects lite mode with a measurement.tdx.cbor the caller trusts (e.g.
	// from an image they built). Without Image or LiteMeasurement, the document the VM
	// itself attached (vm_config.tdx_measurement) is used; it is bound to vm_config's
	// os_image_hash, which then needs Expect.OSImageHash to mean anything.
	LiteMeasurement []byte

	// Info is a dstack guest agent's Info response (tcb_info with MRTD, RTMR0-3 and the event
	// log, vm_config) or a bare tcb_info, checked without a quote: replayed and predicted, never
	// verified.
	Info []byte

	// AppCompose is the app-compose document the relying party reviewed: it must hash, in one
	// of the forms dstack's tools write (ComposeForms), to the compose hash the CVM attested.
	AppCompose []byte

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
	// CollateralFor, when set and Collateral is not, supplies the collateral for the FMSPC of
	// an authentic quote's PCK certificate (nil: none, the TCB status is not evaluated).
	CollateralFor func(fmspc string) []byte

	// Policy (dstack's auth-simple format) is evaluated over the report's BootInfo for
	// PolicyRole ("" = policy.RoleApp): Report.Policy and the "policy" check.
	Policy     *policy.Policy
	PolicyRole policy.Role
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

	r := &Report{TEEVariant: "dstack-tdx", Mode: "none", Registers: map[string]*Register{}, App: &AppInfo{}, VMConfig: vm, Checks: []Check{}, NotChecked: []NotChecked{}, Warnings: []string{}}
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
	if opts.ResolveImage != nil && opts.Image == nil && opts.LiteMeasurement == nil {
		if err := opts.ResolveImage(namedOSImageHash(r, vm), &opts); err != nil {
			return nil, err
		}
	}
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
	compareExpected(r, exp, events, newFirmware)
	checkACPI(r, sh, exp, events)
	checkAppCompose(r, &opts, in)
	checkIdentity(r, &opts, vm)
	checkExpectations(r, &opts, q)
	explainReplayFailures(r)
	if vm != nil && len(vm.Unknown) > 0 {
		r.skip("vm-config-fields", false, "vm_config fields not interpreted: %s", strings.Join(vm.Unknown, ", "))
	}
	r.finish()
	checkBootInfo(r, q, &opts, events)
	return r, nil
}

// namedOSImageHash is the os_image_hash the attestation names, attested or not: RTMR3's
// os-image-hash event, else vm_config's.
func namedOSImageHash(r *Report, vm *VMConfig) []byte {
	if h := attestedOSImageHash(r); h != nil {
		return h
	}
	if vm != nil {
		return vm.OSImageHash
	}
	return nil
}

func rtmrName(i int) string { return fmt.Sprintf("rtmr%d", i) }
