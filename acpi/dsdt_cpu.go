package acpi

// CPU hotplug AML of the q35 DSDT: QEMU's hw/acpi/cpu.c build_cpus_aml as hw/i386/acpi-build.c
// build_dsdt calls it for dstack's machine, with the _MAT buffers of hw/i386/acpi-common.c
// pc_madt_cpu_entry. The functions below follow build_cpus_aml block by block, in its order.
//
// Profiles: QEMU 8.2.0, 9.1.0 and 9.2.x emit the same bytes here for an x86 machine. The only
// rework of build_cpus_aml in that span (9.1.0, Salil Mehta's "hw/acpi: Update CPUs AML with
// cpu-(ctrl)dev change" for ARM vCPU hotplug) added an MMIO register variant and made the event
// handler optional; x86 still passes AML_SYSTEM_IO and "\_GPE._E02". Every profile of the
// real-QEMU oracle agrees, so there is no profile switch below.

import (
	"fmt"

	"github.com/dstack-mr/dstack-mr/acpi/aml"
)

// Fixed by q35 (ICH9 LPC) and hw/acpi/cpu.c.
const (
	cpuHotplugIOBase    = 0x0cd8 // ICH9_CPU_HOTPLUG_IO_BASE
	cpuHotplugRegLen    = 12     // ACPI_CPU_HOTPLUG_REG_LEN
	cpuFlagsOffset      = 4      // ACPI_CPU_FLAGS_OFFSET_RW
	cpuHotplugResRoot   = `\_SB.PCI0`
	cpuHotplugEventGPE  = `\_GPE._E02` // ICH9 GPE0 bit 2: ACPI_CPU_HOTPLUG_STATUS
	cpuScanMaxPerPass   = 255          // CSCN's max_cpus_per_pass: an ACPI 1.0 Package's limit
	cpuHotplugMaxDevice = 0x1000       // "C%.03X" stays a 4-character NameSeg below this

	// Register commands (enum CPHP_*).
	cphpGetNextCPUWithEvent = 0
	cphpOSTEvent            = 1
	cphpOSTStatus           = 2

	// _OST / Notify codes CSCN uses.
	notifyDeviceCheck  = 1
	notifyEjectRequest = 3
)

// Names build_cpus_aml declares (CPU_* macros of hw/acpi/cpu.c).
const (
	cpuResDevice     = "PRES"
	cpuLock          = "CPLK"
	cpuStatusMethod  = "CSTA"
	cpuScanMethod    = "CSCN"
	cpuNotifyMethod  = "CTFY"
	cpuEjectMethod   = "CEJ0"
	cpuOSTMethod     = "COST"
	cpuAddedList     = "CNEW"
	cpuEjectList     = "CEJL" // QEMU 10.0+
	cpuEnabled       = "CPEN"
	cpuSelector      = "CSEL"
	cpuCommand       = "CCMD"
	cpuData          = "CDAT"
	cpuInsertEvent   = "CINS"
	cpuRemoveEvent   = "CRMV"
	cpuEjectEvent    = "CEJ0"
	cpuFwEjectEvent  = "CEJF"
	cpuHotplugRegion = "PRST"
)

// cpuHotplugFeatures mirrors the CPUHotplugFeatures q35's build_dsdt passes. Its smi_path and
// fw_unplugs_cpu stay unset for dstack: QEMU sets them only after the firmware negotiated the
// ICH9 SMI CPU-hotplug features, which needs SMM, and TDX firmware has none.
type cpuHotplugFeatures struct {
	acpi1Compatible bool // Processor() rather than Device() objects for APIC IDs below 255
	hasLegacyCPHP   bool // _INI switches the legacy (PIIX-era) CPU hotplug interface off
}

var q35CPUHotplugFeatures = cpuHotplugFeatures{acpi1Compatible: true, hasLegacyCPHP: true}

// cpuHotplugAML returns the DSDT terms build_cpus_aml appends to the table root, in order:
// Scope(_SB){Device(\_SB.PCI0.PRES), Device(\_SB.CPUS)} and Method(\_GPE._E02). In build_dsdt
// they follow the Scope(_GPE){Name(_HID,"ACPI0006")} declaration and precede the pxb-pcie
// expander bridges and the host bridge's Scope(\_SB.PCI0){_CRS} (see the contract in dsdt.go).
func cpuHotplugAML(cfg *MachineConfig) ([]*aml.Term, error) {
	if cfg.CPUs < 1 || cfg.CPUs > cpuHotplugMaxDevice {
		return nil, fmt.Errorf("CPU hotplug AML: %d vCPUs: want 1..%d", cfg.CPUs, cpuHotplugMaxDevice)
	}
	opts := q35CPUHotplugFeatures
	// From 11.0 q35 starts in the modern CPU hotplug mode and PRES._INI is gone (PROFILES.md).
	opts.hasLegacyCPHP = cfg.profile().cpuHotplugLegacyINI
	sb := aml.Scope("_SB").Append(
		cpuHotplugResourceDevice(opts),
		cpusDevice(cfg, opts),
	)
	return []*aml.Term{sb, cpuHotplugEventHandler()}, nil
}

// cpuResPath names a member of the register device, e.g. \_SB.PCI0.PRES.CSEL.
func cpuResPath(member string) *aml.Term {
	return aml.Name("%s.%s.%s", cpuHotplugResRoot, cpuResDevice, member)
}

// cpuName is CPU_NAME_FMT ("C%.03X").
func cpuName(i int) string { return fmt.Sprintf("C%03X", i) }

// cpuHotplugResourceDevice is the register block at 0x0cd8: selector, flags, command, data.
func cpuHotplugResourceDevice(opts cpuHotplugFeatures) *aml.Term {
	dev := aml.Device("%s.%s", cpuHotplugResRoot, cpuResDevice).Append(
		aml.NameDecl("_HID", aml.EISAID("PNP0A06")),
		aml.NameDecl("_UID", aml.String("CPU Hotplug resources")),
		aml.Mutex(cpuLock, 0),
		aml.NameDecl("_CRS", aml.ResourceTemplate().Append(
			aml.IO(aml.Decode16, cpuHotplugIOBase, cpuHotplugIOBase, 1, cpuHotplugRegLen))),
		aml.OperationRegion(cpuHotplugRegion, aml.SystemIO, aml.Int(cpuHotplugIOBase), cpuHotplugRegLen),
		cpuHotplugFlagsField(),
		cpuHotplugDataField(),
	)
	if opts.hasLegacyCPHP {
		// After a reboot the machine is already in the new mode, and selecting CPU 0 is a no-op.
		dev.Append(aml.Method("_INI", 0, true).Append(
			aml.Store(aml.Int(0), aml.Name(cpuSelector))))
	}
	return dev
}

// cpuHotplugFlagsField maps the byte-wide flags (offset 4) and command (offset 5) registers.
func cpuHotplugFlagsField() *aml.Term {
	return aml.Field(cpuHotplugRegion, aml.ByteAcc, aml.NoLock, aml.WriteAsZeros).Append(
		aml.ReservedField(cpuFlagsOffset*8),
		aml.NamedField(cpuEnabled, 1),      // read: CPU present
		aml.NamedField(cpuInsertEvent, 1),  // read: insert pending; write 1: clear it
		aml.NamedField(cpuRemoveEvent, 1),  // read: remove pending; write 1: clear it
		aml.NamedField(cpuEjectEvent, 1),   // write 1: eject
		aml.NamedField(cpuFwEjectEvent, 1), // write 1: eject through firmware
		aml.ReservedField(3),
		aml.NamedField(cpuCommand, 8),
	)
}

// cpuHotplugDataField maps the dword-wide selector (offset 0) and data (offset 8) registers.
func cpuHotplugDataField() *aml.Term {
	return aml.Field(cpuHotplugRegion, aml.DWordAcc, aml.NoLock, aml.Preserve).Append(
		aml.NamedField(cpuSelector, 32),
		aml.ReservedField(4*8), // flags, command and two bytes of alignment
		aml.NamedField(cpuData, 32),
	)
}

// cpusDevice is the \_SB.CPUS processor container: helper methods, then one object per
// possible vCPU (with -smp N, N of them, all present).
func cpusDevice(cfg *MachineConfig, opts cpuHotplugFeatures) *aml.Term {
	dev := aml.Device(`\_SB.CPUS`).Append(
		aml.NameDecl("_HID", aml.String("ACPI0010")),
		aml.NameDecl("_CID", aml.EISAID("PNP0A05")),
		cpuNotifyMethodAML(cfg.CPUs),
		cpuStatusMethodAML(),
		cpuEjectMethodAML(),
		cpuScanMethodAML(cfg.CPUs, cfg.profile().cpuHotplugEjectList),
		cpuOSTMethodAML(),
	)
	for i := 0; i < cfg.CPUs; i++ {
		dev.Append(cpuObject(cfg, opts, i))
	}
	return dev
}

// cpuNotifyMethodAML is CTFY(uid, event): Notify the vCPU object with that uid.
func cpuNotifyMethodAML(n int) *aml.Term {
	m := aml.Method(cpuNotifyMethod, 2, false)
	for i := 0; i < n; i++ {
		m.Append(aml.If(aml.LEqual(aml.Arg(0), aml.Int(uint64(i)))).Append(
			aml.Notify(aml.Name("%s", cpuName(i)), aml.Arg(1))))
	}
	return m
}

// cpuStatusMethodAML is CSTA(uid): 0xF if the selected vCPU is enabled, else 0.
func cpuStatusMethodAML() *aml.Term {
	sta := aml.Local(0)
	return aml.Method(cpuStatusMethod, 1, true).Append(
		aml.Acquire(cpuResPath(cpuLock), 0xFFFF),
		aml.Store(aml.Arg(0), cpuResPath(cpuSelector)),
		aml.Store(aml.Int(0), sta),
		aml.If(aml.LEqual(cpuResPath(cpuEnabled), aml.Int(1))).Append(
			aml.Store(aml.Int(0xF), sta)),
		aml.Release(cpuResPath(cpuLock)),
		aml.Return(sta),
	)
}

// cpuEjectMethodAML is CEJ0(uid): ask QEMU to eject the selected vCPU.
func cpuEjectMethodAML() *aml.Term {
	return aml.Method(cpuEjectMethod, 1, true).Append(
		aml.Acquire(cpuResPath(cpuLock), 0xFFFF),
		aml.Store(aml.Arg(0), cpuResPath(cpuSelector)),
		aml.Store(aml.Int(1), cpuResPath(cpuEjectEvent)),
		aml.Release(cpuResPath(cpuLock)),
	)
}

// cpuScanMethodAML is CSCN, run on the CPU hotplug GPE: it collects vCPUs with an insert
// event in batches of up to 255 (CNEW is an ACPI 1.0 Package for old Windows), then notifies
// and acknowledges each collected insertion. Removals: before QEMU 10.0 they are notified at
// once, and only for vCPUs without an insert event; from 10.0 (ejectList, qemu/qemu@8aa35bebee
// "cpuhp: make sure that remove events are handled within the same SCI") they are queued in
// CEJL next to CNEW, independently of inserts, and notified after the insertions.
func cpuScanMethodAML(n int, ejectList bool) *aml.Term {
	// Terms are copied when appended (as aml_append copies), so sharing them is safe.
	var (
		hasEvent    = aml.Local(0)
		numAdded    = aml.Local(1)
		cpuIdx      = aml.Local(2)
		uid         = aml.Local(3)
		hasJob      = aml.Local(4)
		numEjected  = aml.Local(5)
		zero        = aml.Int(0)
		one         = aml.Int(1)
		newCPUs     = aml.Name(cpuAddedList)
		ejCPUs      = aml.Name(cpuEjectList)
		selector    = cpuResPath(cpuSelector)
		data        = cpuResPath(cpuData)
		insertEvent = cpuResPath(cpuInsertEvent)
		removeEvent = cpuResPath(cpuRemoveEvent)
	)

	// A full CNEW (or, from 10.0, CEJL) ends the pass: process the batch, then scan on.
	batchFull := aml.LEqual(numAdded, aml.Int(cpuScanMaxPerPass))
	if ejectList {
		batchFull = aml.LOr(batchFull, aml.LEqual(numEjected, aml.Int(cpuScanMaxPerPass)))
	}
	onInsert := aml.If(aml.LEqual(insertEvent, one)).Append(
		aml.Store(uid, aml.Index(newCPUs, numAdded)),
		aml.Increment(numAdded),
		aml.Store(one, hasEvent))
	var onRemove []*aml.Term
	if ejectList {
		onRemove = []*aml.Term{aml.If(aml.LEqual(removeEvent, one)).Append(
			aml.Store(uid, aml.Index(ejCPUs, numEjected)),
			aml.Increment(numEjected),
			aml.Store(one, hasEvent))}
	} else {
		onRemove = []*aml.Term{aml.Else().Append(
			aml.If(aml.LEqual(removeEvent, one)).Append(
				aml.Call(cpuNotifyMethod, uid, aml.Int(notifyEjectRequest)),
				aml.Store(one, removeEvent),
				aml.Store(one, hasEvent)))}
	}

	scan := aml.While(aml.LAnd(aml.LEqual(hasEvent, one), aml.LLess(uid, aml.Int(uint64(n))))).Append(
		// Cleared here; set again while the next-CPU command keeps returning CPUs with events.
		aml.Store(zero, hasEvent),
		aml.Store(uid, selector),
		aml.Store(aml.Int(cphpGetNextCPUWithEvent), cpuResPath(cpuCommand)),
		// Wrapped around: events are cleared only after the scan, so everything was seen.
		aml.If(aml.LLess(data, uid)).Append(aml.Break()),
		aml.If(batchFull).Append(
			aml.Store(one, hasJob),
			aml.Break()),
		aml.Store(data, uid),
		onInsert,
	).Append(onRemove...).Append(
		aml.Increment(uid),
	)

	notifyAdded := aml.While(aml.LLess(cpuIdx, numAdded)).Append(
		aml.Store(aml.DerefOf(aml.Index(newCPUs, cpuIdx)), uid),
		aml.Call(cpuNotifyMethod, uid, aml.Int(notifyDeviceCheck)),
		aml.Store(uid, aml.Debug()),
		aml.Store(uid, selector),
		aml.Store(one, insertEvent),
		aml.Increment(cpuIdx),
	)

	batches := aml.While(aml.LEqual(hasJob, one)).Append(
		aml.Store(zero, hasJob),
		aml.Store(one, hasEvent),
		aml.Store(zero, numAdded),
	)
	if ejectList {
		batches.Append(aml.Store(zero, numEjected))
	}
	batches.Append(
		scan,
		aml.Store(zero, cpuIdx),
		notifyAdded,
	)
	if ejectList {
		batches.Append(
			aml.Store(zero, cpuIdx),
			aml.While(aml.LLess(cpuIdx, numEjected)).Append(
				aml.Store(aml.DerefOf(aml.Index(ejCPUs, cpuIdx)), uid),
				aml.Call(cpuNotifyMethod, uid, aml.Int(notifyEjectRequest)),
				aml.Store(uid, selector),
				aml.Store(one, removeEvent),
				aml.Increment(cpuIdx),
			),
		)
	}

	method := aml.Method(cpuScanMethod, 0, true).Append(
		aml.Acquire(cpuResPath(cpuLock), 0xFFFF),
		aml.NameDecl(cpuAddedList, aml.Package(cpuScanMaxPerPass)),
	)
	if ejectList {
		method.Append(aml.NameDecl(cpuEjectList, aml.Package(cpuScanMaxPerPass)))
	}
	return method.Append(
		aml.Store(zero, uid),
		aml.Store(one, hasJob),
		batches,
		aml.Release(cpuResPath(cpuLock)),
	)
}

// cpuOSTMethodAML is COST(uid, event, status, info): forward _OST to QEMU.
func cpuOSTMethodAML() *aml.Term {
	return aml.Method(cpuOSTMethod, 4, true).Append(
		aml.Acquire(cpuResPath(cpuLock), 0xFFFF),
		aml.Store(aml.Arg(0), cpuResPath(cpuSelector)),
		aml.Store(aml.Int(cphpOSTEvent), cpuResPath(cpuCommand)),
		aml.Store(aml.Arg(1), cpuResPath(cpuData)),
		aml.Store(aml.Int(cphpOSTStatus), cpuResPath(cpuCommand)),
		aml.Store(aml.Arg(2), cpuResPath(cpuData)),
		aml.Release(cpuResPath(cpuLock)),
	)
}

// cpuObject is vCPU i's Processor (APIC ID below 255) or ACPI0007 Device.
func cpuObject(cfg *MachineConfig, opts cpuHotplugFeatures, i int) *aml.Term {
	uid := aml.Int(uint64(i))
	var dev *aml.Term
	if opts.acpi1Compatible && cpuAPICID(i) < firstX2APICID {
		dev = aml.Processor(byte(i), 0, 0, "%s", cpuName(i))
	} else {
		dev = aml.Device("%s", cpuName(i)).Append(
			aml.NameDecl("_HID", aml.String("ACPI0007")),
			aml.NameDecl("_UID", uid))
	}
	dev.Append(
		aml.Method("_STA", 0, true).Append(aml.Return(aml.Call(cpuStatusMethod, uid))),
		aml.NameDecl("_MAT", aml.Buffer(madtCPUEntry(i))),
	)
	// Every vCPU but the boot one (first_cpu) can be ejected.
	if i != 0 {
		dev.Append(aml.Method("_EJ0", 1, false).Append(aml.Call(cpuEjectMethod, uid)))
	}
	dev.Append(aml.Method("_OST", 3, true).Append(
		aml.Call(cpuOSTMethod, uid, aml.Arg(0), aml.Arg(1), aml.Arg(2))))
	// Linux drops SRAT affinity of CPUs absent at boot, so QEMU gives every possible CPU a _PXM.
	if node, ok := cpuNUMANode(cfg, i); ok {
		dev.Append(aml.NameDecl("_PXM", aml.Int(uint64(node))))
	}
	return dev
}

// cpuNUMANode is the node QEMU assigns vCPU i (props.node_id), if the machine has NUMA nodes:
// dstack-vmm gives node n the n-th equal, contiguous run of vCPUs.
func cpuNUMANode(cfg *MachineConfig, i int) (node int, ok bool) {
	n := cfg.numaNodes()
	if n == 0 {
		return 0, false
	}
	return i / (cfg.CPUs / n), true
}

// madtCPUEntry is pc_madt_cpu_entry: vCPU uid's MADT structure, a Local APIC for APIC IDs
// below 255 and a Local x2APIC above. It is always marked enabled: _MAT forces the flag (so
// CPUs plugged later read as enabled), and with -smp N every possible vCPU is present anyway.
func madtCPUEntry(uid int) []byte {
	id := cpuAPICID(uid)
	const flags = lapicFlagEnabled
	if id < firstX2APICID {
		e := []byte{madtTypeLocalAPIC, 8, byte(uid), byte(id)}
		return appendLE32(e, flags)
	}
	e := []byte{madtTypeLocalX2APIC, 16, 0, 0}
	e = appendLE32(e, id)
	e = appendLE32(e, flags)
	return appendLE32(e, uint32(uid))
}

// cpuHotplugEventHandler is the GPE method build_cpus_aml appends to the table root.
func cpuHotplugEventHandler() *aml.Term {
	return aml.Method(cpuHotplugEventGPE, 0, false).Append(
		aml.Call(fmt.Sprintf(`\_SB.CPUS.%s`, cpuScanMethod)))
}
