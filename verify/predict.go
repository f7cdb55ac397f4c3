package verify

// MRTD and RTMR0-2 predicted from an image (full mode) or its lite document, for the VM shape.

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/dstack-mr/dstack-mr/acpi"
	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
)

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
	sums := blobs.SHA384()
	s.acpi = map[string][]byte{
		eventlog.LabelACPILoader: sums.Loader,
		eventlog.LabelACPIRSDP:   sums.RSDP,
		eventlog.LabelACPITables: sums.Tables,
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
		im := opts.ImageName
		im.OSImageHash = opts.ImageOSImageHash
		r.ExpectedImage = &im
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
		var im *mr.Image
		if opts.PreparedImage != nil {
			shared := *opts.PreparedImage // shared across calls: the ACPI builder is this call's
			im = &shared
		} else {
			var err error
			if im, err = mr.Prepare(*opts.Image); err != nil {
				return notPredicted(fmt.Sprintf("expected image: %v", err))
			}
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
	// Whose document it is decides how it may be bound to an os_image_hash (checkIdentity).
	if opts.LiteMeasurement == nil {
		r.LiteSource, r.LiteSHA256 = LiteFromVMConfig, sha256Of(vm.TDXMeasurement.Measurement)
	} else {
		r.LiteSource, r.LiteSHA256 = LiteFromRelyingParty, sha256Of(opts.LiteMeasurement)
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
				r.check("kernel-form", true, "the "+r.registerSource()+"'s RTMR1 matches the document's %s kernel digest (of %d candidates)", c.Form, len(cands))
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
	r.check("qemu-build", true, "the "+r.registerSource()+"'s RTMR1 matches the kernel as %s QEMU loads it on QEMU %s, not as %s QEMU does", alt.QEMUBuild, m.QEMUVersion, m.QEMUBuild.OrUpstream())
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

// compareExpected compares the predicted registers with the quote and names, for each that
// diverges, the first divergent event. firmwareNote, when set, is why RTMR0 cannot be predicted
// at all (an unmodelled firmware generation): it is then the whole of RTMR0's diagnosis.
func compareExpected(r *Report, e *Expected, events []eventlog.Event, firmwareNote string) {
	if e == nil {
		return
	}
	mrtd := r.Registers["mrtd"]
	mrtd.Expected = e.MRTD
	ok := bytes.Equal(e.MRTD, mrtd.Actual)
	mrtd.Match = bptr(ok)
	detail := fmt.Sprintf("expected %x, %s %x", []byte(e.MRTD), r.registerSource(), []byte(mrtd.Actual))
	if !ok {
		mrtd.FirstDivergence = &Divergence{Position: -1, LogIndex: -1, Label: "mrtd", DependsOn: DependsOn("mrtd"),
			Note: "MRTD has no event log: the firmware image or its page-add order (QEMU version) differs"}
		detail += "; " + mrtd.FirstDivergence.String()
	}
	r.check("mrtd", ok, "%s", detail)
	var logged [3][]eventlog.Event
	for _, ev := range events {
		if ev.IMR < 3 {
			logged[ev.IMR] = append(logged[ev.IMR], ev)
		}
	}
	stripped := strippedBootLog(events)
	for i := 0; i < 3; i++ {
		reg := r.Registers[rtmrName(i)]
		reg.Expected = e.RTMR[i]
		ok := bytes.Equal(e.RTMR[i], reg.Actual)
		reg.Match = bptr(ok)
		detail := fmt.Sprintf("expected %x, %s %x", []byte(e.RTMR[i]), r.registerSource(), []byte(reg.Actual))
		replayOK := reg.ReplayMatch == nil || *reg.ReplayMatch
		if (!ok || !replayOK) && events != nil {
			switch {
			case i == 0 && firmwareNote != "":
				reg.FirstDivergence = &Divergence{Position: -1, LogIndex: -1, Note: firmwareNote}
			case stripped:
				reg.FirstDivergence = firstDivergenceStripped(i, e.Events[i], logged[i])
			default:
				reg.FirstDivergence = firstDivergence(e.Events[i], logged[i])
			}
			detail += "; " + reg.FirstDivergence.String()
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
			return &Divergence{Position: i, LogIndex: g.Index, LoggedLabel: g.Label, EventType: g.EventType, Actual: g.Digest, DependsOn: DependsOn(g.Label),
				Note: "the log has an event the prediction does not have"}
		case i >= len(got):
			w := want[i]
			return &Divergence{Position: i, LogIndex: -1, Label: w.Label, EventType: w.EventType, Expected: w.Digest, DependsOn: DependsOn(w.Label),
				Note: "the log lacks an event the prediction has"}
		case !bytes.Equal(want[i].Digest, got[i].Digest) || want[i].EventType != got[i].EventType:
			w, g := want[i], got[i]
			d := &Divergence{Position: i, LogIndex: g.Index, Label: w.Label, LoggedLabel: g.Label, EventType: w.EventType, Expected: w.Digest, Actual: g.Digest, DependsOn: DependsOn(w.Label)}
			if w.EventType != g.EventType {
				d.Note = fmt.Sprintf("the log has event type 0x%x where 0x%x is predicted", g.EventType, w.EventType)
			}
			return d
		}
	}
	return &Divergence{Position: -1, LogIndex: -1, Note: "every logged event matches the prediction, so the log itself does not reproduce the quote's register (or, in lite mode, a digest taken from the log is wrong)"}
}

// firstDivergenceStripped diagnoses a register of dstack's stripped log (RTMR0's ACPI digests
// and nothing of RTMR1-2), where predicted and logged events cannot be walked side by side:
// the logged ones are matched by label, and when they all agree the divergent event is among
// those the log leaves out, which are named with what they depend on.
func firstDivergenceStripped(imr int, want []ExpectedEvent, got []eventlog.Event) *Divergence {
	byLabel := map[string]eventlog.Event{}
	for _, g := range got {
		if _, dup := byLabel[g.Label]; !dup && g.Label != "" {
			byLabel[g.Label] = g
		}
	}
	var unlogged, deps []string
	seen := map[string]bool{}
	for i, w := range want {
		g, ok := byLabel[w.Label]
		if !ok {
			unlogged = append(unlogged, w.Label)
			for _, d := range DependsOn(w.Label) {
				if !seen[d] {
					seen[d] = true
					deps = append(deps, d)
				}
			}
			continue
		}
		if w.FromLog {
			continue // taken from the log: equal by construction
		}
		if !bytes.Equal(w.Digest, g.Digest) {
			return &Divergence{Position: i, LogIndex: g.Index, Label: w.Label, LoggedLabel: g.Label, EventType: w.EventType, Expected: w.Digest, Actual: g.Digest,
				DependsOn: DependsOn(w.Label), Note: "stripped event log: compared by label"}
		}
	}
	note := fmt.Sprintf("stripped event log (dstack's KMS form): RTMR%d's events are not logged, so the divergent one cannot be named; it is one of %s", imr, strings.Join(unlogged, ", "))
	if len(byLabel) > 0 {
		note = fmt.Sprintf("stripped event log (dstack's KMS form): the logged events match the prediction, so the divergent one is among those the log leaves out: %s", strings.Join(unlogged, ", "))
	}
	return &Divergence{Position: -1, LogIndex: -1, DependsOn: deps, Note: note}
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

func isNotSupported(err error) bool {
	return errors.Is(err, ErrNotSupported) || errors.Is(err, acpi.ErrNotSupported) || errors.Is(err, mr.ErrNotSupported)
}
