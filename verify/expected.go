package verify

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"

	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/uefi"
)

// Hex is a byte string that marshals to lowercase hex in JSON.
type Hex = eventlog.Hex

// ExpectedEvent is one event the image and VM shape predict.
type ExpectedEvent struct {
	IMR       int    `json:"imr"`
	EventType uint32 `json:"event_type"`
	Label     string `json:"label"`
	Digest    Hex    `json:"digest"`
	// FromLog marks digests taken from the event log itself rather than predicted (lite
	// mode's ACPI digests): they can never diverge, so they prove nothing on their own.
	FromLog bool `json:"from_log,omitempty"`
}

// Expected are the registers (and, when known, the events) an image predicts for one VM shape.
type Expected struct {
	Source string             `json:"source"` // "image" or "lite"
	MRTD   Hex                `json:"mrtd"`
	RTMR   [3]Hex             `json:"rtmr"`
	Events [3][]ExpectedEvent `json:"events"`
}

// dependsOn says what a measured event is a function of, to point a reader at the input
// that differs when it diverges.
var dependsOn = map[string][]string{
	"mrtd":                        {"firmware", "QEMU version (page-add order)"},
	eventlog.LabelTDHob:           {"memory", "firmware (TDVF TD_HOB/TEMP_MEM layout)"},
	eventlog.LabelCFV:             {"firmware"},
	eventlog.LabelSecureBoot:      {"firmware"},
	eventlog.LabelPK:              {"firmware"},
	eventlog.LabelKEK:             {"firmware"},
	eventlog.LabelDB:              {"firmware"},
	eventlog.LabelDBX:             {"firmware"},
	eventlog.LabelDBT:             {"firmware"},
	eventlog.LabelSeparator:       {"firmware"},
	eventlog.LabelACPILoader:      {"CPU count", "memory", "devices (NICs, GPUs, NVSwitches, verity volumes, hotplug, hugepages, pci-hole64)", "QEMU version"},
	eventlog.LabelACPIRSDP:        {"CPU count", "memory", "devices (NICs, GPUs, NVSwitches, verity volumes, hotplug, hugepages, pci-hole64)", "QEMU version"},
	eventlog.LabelACPITables:      {"CPU count", "memory", "devices (NICs, GPUs, NVSwitches, verity volumes, hotplug, hugepages, pci-hole64)", "QEMU version"},
	eventlog.LabelBootOrder:       {"firmware"},
	eventlog.LabelBoot0000:        {"firmware"},
	eventlog.LabelKernel:          {"kernel", "memory (QEMU patches the setup header)", "initrd size", "QEMU version"},
	eventlog.LabelBootAttempt:     {"firmware"},
	eventlog.LabelExitBootSvc:     {"firmware"},
	eventlog.LabelExitBootSvcDone: {"firmware"},
	eventlog.LabelCmdline:         {"cmdline"},
	eventlog.LabelInitrd:          {"initrd"},
}

// DependsOn returns what the event labelled label depends on (nil when unknown).
func DependsOn(label string) []string { return dependsOn[label] }

func sha384(parts ...[]byte) []byte {
	h := sha512.New384()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Firmware-fixed RTMR0 digests of dstack's pre-202505 OVMF. A lite document carries no
// firmware, so, like upstream dstack-mr (tdvf.rs rtmr0_log_from_td_hob_hash_with_acpi_hashes),
// lite mode takes them as properties of the "pre202505" variant: the SHA-384 of its
// configuration firmware volume and of its Boot0000 (UiApp) load option.
var (
	pre202505CFV      = mustHex("344bc51c980ba621aaa00da3ed7436f7d6e549197dfe699515dfa2c6583d95e6412af21c097d473155875ffd561d6790")
	pre202505Boot0000 = mustHex("23ada07f5261f12f34a0bd8e46760962d6b4d576a416f1fea1c64bc656b1d28eacf7047ae6e967c58fd2a98bfa74c298")
)

// EFI variable vendor GUIDs and the fixed digests of the pre-202505 event sequence.
var (
	efiGlobalVariable    = uefi.GlobalVariableGUID
	efiImageSecurityDB   = uefi.ImageSecurityDatabase
	separatorDigest      = sha384([]byte{0, 0, 0, 0})
	emptyBootOrderDigest = sha384([]byte{0, 0}) // pre-202505 OVMF measures BootOrder's raw 2 bytes
)

// emptyVariableDigest is the EV_EFI_VARIABLE_DRIVER_CONFIG digest of a Secure Boot variable
// that is not set.
func emptyVariableDigest(guid uefi.GUID, name string) []byte {
	return mr.VariableDriverConfigDigest(guid, name, nil)
}

// LiteExpected computes MRTD and RTMR0-2 from a lite document for the VM shape in vm, taking
// the three ACPI digests from the event log (acpi maps acpi-loader/-rsdp/-tables to digests).
// The ACPI digests are checked separately against tables built for the VM shape.
func LiteExpected(m *LiteMeasurement, vm *VMConfig, acpiDigests map[string][]byte) (*Expected, error) {
	mc, err := vm.Machine()
	if err != nil {
		return nil, err
	}
	return LiteExpectedFor(m, mc, acpiDigests)
}

// LiteExpectedFor is LiteExpected for an explicit machine shape (vm_config with overrides), with
// the first kernel candidate the document allows (see LiteExpectedKernel).
func LiteExpectedFor(m *LiteMeasurement, mc *mr.Machine, acpiDigests map[string][]byte) (*Expected, error) {
	c := m.KernelCandidates(mc.MemoryBytes)
	if len(c) == 0 {
		return nil, fmt.Errorf("lite mode: memory_size %d: the document's kernel digest (as QEMU patches the kernel) holds only for exactly 2 GiB or at least %d bytes, and the image's kernel header is not normalized (%w)", mc.MemoryBytes, uint64(liteMemoryStableMin), ErrNotSupported)
	}
	return LiteExpectedKernel(m, mc, acpiDigests, c[0].Digest)
}

// LiteExpectedKernel predicts the registers with kernelDigest as RTMR1's kernel event.
func LiteExpectedKernel(m *LiteMeasurement, mc *mr.Machine, acpiDigests map[string][]byte, kernelDigest []byte) (*Expected, error) {
	e := &Expected{Source: "lite", MRTD: m.TDVF.MRTD.SinglePass}
	if mc.TwoPass() {
		e.MRTD = m.TDVF.MRTD.TwoPass
	}
	hob, err := tdHOBFromWitness(m.TDVF.TDHobWitness, mc.MemoryBytes)
	if err != nil {
		return nil, fmt.Errorf("lite mode: TD HOB: %w", err)
	}
	ev := func(imr int, typ uint32, label string, d []byte) ExpectedEvent {
		return ExpectedEvent{IMR: imr, EventType: typ, Label: label, Digest: d}
	}
	r0 := []ExpectedEvent{
		ev(0, eventlog.EvEFIHandoffTables2, eventlog.LabelTDHob, sha384(hob)),
		ev(0, eventlog.EvEFIPlatformFirmwareBlob2, eventlog.LabelCFV, pre202505CFV),
		ev(0, eventlog.EvEFIVariableDriverConfig, eventlog.LabelSecureBoot, emptyVariableDigest(efiGlobalVariable, "SecureBoot")),
		ev(0, eventlog.EvEFIVariableDriverConfig, eventlog.LabelPK, emptyVariableDigest(efiGlobalVariable, "PK")),
		ev(0, eventlog.EvEFIVariableDriverConfig, eventlog.LabelKEK, emptyVariableDigest(efiGlobalVariable, "KEK")),
		ev(0, eventlog.EvEFIVariableDriverConfig, eventlog.LabelDB, emptyVariableDigest(efiImageSecurityDB, "db")),
		ev(0, eventlog.EvEFIVariableDriverConfig, eventlog.LabelDBX, emptyVariableDigest(efiImageSecurityDB, "dbx")),
		ev(0, eventlog.EvSeparator, eventlog.LabelSeparator, separatorDigest),
	}
	for _, l := range []string{eventlog.LabelACPILoader, eventlog.LabelACPIRSDP, eventlog.LabelACPITables} {
		d, ok := acpiDigests[l]
		if !ok {
			return nil, fmt.Errorf("lite mode: the event log has no RTMR0 %s event", l)
		}
		x := ev(0, eventlog.EvPlatformConfigFlags, l, d)
		x.FromLog = true
		r0 = append(r0, x)
	}
	r0 = append(r0,
		ev(0, eventlog.EvEFIVariableBoot, eventlog.LabelBootOrder, emptyBootOrderDigest),
		ev(0, eventlog.EvEFIVariableBoot, eventlog.LabelBoot0000, pre202505Boot0000),
	)
	r1 := []ExpectedEvent{
		ev(1, eventlog.EvEFIBootServicesApp, eventlog.LabelKernel, kernelDigest),
		ev(1, eventlog.EvEFIAction, eventlog.LabelBootAttempt, sha384([]byte("Calling EFI Application from Boot Option"))),
		ev(1, eventlog.EvSeparator, eventlog.LabelSeparator, separatorDigest),
		ev(1, eventlog.EvEFIAction, eventlog.LabelExitBootSvc, sha384([]byte("Exit Boot Services Invocation"))),
		ev(1, eventlog.EvEFIAction, eventlog.LabelExitBootSvcDone, sha384([]byte("Exit Boot Services Returned with Success"))),
	}
	r2 := []ExpectedEvent{
		ev(2, eventlog.EvEventTag, eventlog.LabelCmdline, m.CmdlineDigest()),
		ev(2, eventlog.EvEventTag, eventlog.LabelInitrd, m.Image.InitrdSHA384),
	}
	e.Events = [3][]ExpectedEvent{r0, r1, r2}
	for i, evs := range e.Events {
		ds := make([][]byte, len(evs))
		for j := range evs {
			ds[j] = evs[j].Digest
		}
		e.RTMR[i] = eventlog.ReplayDigests(ds)
	}
	return e, nil
}
