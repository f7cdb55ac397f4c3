package verify

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/quote"
)

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
		r.check(rtmrName(i)+"-replay", ok, "event log replays RTMR%d to %x, %s has %x", i, mrs[i], r.registerSource(), []byte(q.Report.RTMR[i]))
	}
	probs := eventlog.CheckRuntimeDigests(events)
	if len(probs) == 0 {
		detail := "every runtime event's digest is the SHA-384 of its name and payload"
		if n, stripped := eventlog.RuntimeCounts(events); stripped > 0 {
			detail = fmt.Sprintf("all %d runtime events are logged without a digest (stripped)", n)
			if stripped < n {
				detail = fmt.Sprintf("%d of %d runtime events are logged without a digest (stripped); the other %d are the SHA-384 of their name and payload", stripped, n, n-stripped)
			}
			detail += ": each stripped digest is recomputed from name and payload as dstack computes it when extending RTMR3, and the replay against the quote's RTMR3 decides"
		}
		r.check("rtmr3-event-digests", true, "%s", detail)
	} else {
		var parts []string
		for _, p := range probs {
			parts = append(parts, fmt.Sprintf("event %d %q (RTMR%d): %s (logged %x, computed %x)", p.Index, p.Name, p.IMR, p.Reason, []byte(p.Logged), []byte(p.Computed)))
		}
		r.check("rtmr3-event-digests", false, "%s", strings.Join(parts, "; "))
		// The first tampered runtime event is RTMR3's divergence.
		p := probs[0]
		r.Registers["rtmr3"].FirstDivergence = &Divergence{
			Position: positionInRegister(events, p.Index), LogIndex: p.Index, Label: p.Name, LoggedLabel: p.Name, EventType: eventlog.RuntimeEventType,
			Expected: p.Computed, Actual: p.Logged, DependsOn: []string{"the event's payload"},
			Note: "the predicted digest is recomputed from the logged name and payload",
		}
	}
	facts := eventlog.ExtractRTMR3(events)
	r.RTMR3 = facts
	r.check("rtmr3-structure", len(facts.Problems) == 0, "%s", orNone(facts.Problems))
	r.App.AppID, r.App.ComposeHash, r.App.InstanceID = facts.AppID, facts.ComposeHash, facts.InstanceID
	r.App.KeyProvider = facts.KeyProvider
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
