package acpi

// The q35 PCI Express host bridge in the DSDT: hw/i386/acpi-build.c (build_dsdt,
// build_q35_osc_method, aml_pci_edsm, aml_pci_pdsm, build_q35_dram_controller,
// build_x86_acpi_pci_hotplug), hw/acpi/pcihp.c and hw/acpi/pci-bridge.c.

import (
	"fmt"
	"sort"

	"github.com/dstack-mr/dstack-mr/acpi/aml"
)

// Fixed resources of the q35 machine.
const (
	pciHotplugIOBase = 0x0cc0 // ICH9 ACPI_PCIHP_ADDR_ICH9
	pciHotplugIOLen  = 0x18   // ACPI_PCIHP_SIZE
	pciHotplugSEJ    = 0x08   // ACPI_PCIHP_SEJ_BASE
	pciHotplugBNMR   = 0x10   // ACPI_PCIHP_BNMR_BASE

	gpe0IOBase = 0x0620 // ICH9 PM base 0x600 + ICH9_PMIO_GPE0_STS
	gpe0IOLen  = 0x10   // ICH9_PMIO_GPE0_LEN

	mcfgBase = 0xe0000000 // MCH_HOST_BRIDGE_PCIEXBAR_DEFAULT
	mcfgSize = 0x10000000 // 256 buses

	// The 32-bit PCI window ends below the IOAPIC. dstack's ACPI-dump QEMU builds its tables
	// before any firmware runs and fixes the 64-bit window at 0x380000000000 (the address QEMU
	// picks for a guest with a 46-bit physical address space), sized by pci-hole64-size.
	pciHole32End   = 0xfebfffff
	pciHole64Start = 0x380000000000

	// dstack's hugepages machine puts one pxb-pcie expander on pcie.0 at addr=0x10 with
	// bus_nr=5, on NUMA node 0 (pxbPCIeSlot in validate.go). dstack-vmm writes the slot as
	// addr={10+node index} in decimal, which QEMU reads as hex: 0x10.
	pxbBusNr    = 5
	pxbNUMANode = 0
)

// pciDevFn is a device/function number on a PCI bus (PCI_DEVFN).
func pciDevFn(slot, fn int) int { return slot<<3 | fn }

// pciDevice is one function on pcie.0 as the DSDT describes it.
type pciDevice struct {
	devfn int
	// rootPort: a pcie-root-port with one passed-through function (GPU or NVSwitch) at 0.0.
	rootPort bool
	// hotplugBus: the root port's secondary bus has a BSEL (ACPI PCI hotplug, after reset);
	// bsel is its value.
	hotplugBus bool
	bsel       int
	// lpc: the ICH9 LPC/ISA bridge, which carries the ISA devices' AML.
	lpc bool
}

// pxbExpander is a pxb-pcie expander bridge on pcie.0: a root bus of its own with a NUMA node.
type pxbExpander struct {
	busNr    int
	numaNode int
	slot     int
}

// pcieRoot is what build_dsdt sees of the PCI topology.
type pcieRoot struct {
	devices []pciDevice // sorted by devfn
	// expanders in pcie.0's child-bus list order, which build_dsdt walks: pxb_register_bus
	// inserts each new expander's bus at the head, so the last node's comes first.
	expanders []pxbExpander
}

// pcieRootLayout places dstack's devices on pcie.0 the way QEMU does for the command line
// dstack-mr passes (the qemu_args of ../testdata/acpi-oracle): each -device without addr= takes
// the lowest free slot, in command-line order:
//
//	slot 0         MCH host bridge (q35 built-in)
//	next slots     virtio-blk data disk (hd1), one virtio-blk per verity volume, one virtio-net
//	               per NIC, vhost-vsock, the host share (virtio-9p, or a virtio-blk vvfat disk),
//	               the root disk as virtio-blk (hd0) when RootVerity (a -cdrom hangs off the
//	               built-in ICH9 AHCI at 31.2 and takes no slot)
//	slot 0x10      (hugepages) the pxb-pcie expander; the GPUs' root ports sit on its bus, which
//	               the DSDT does not describe
//	next slots     pcie-root-port + vfio-pci per GPU (without hugepages), then per NVSwitch
//	slot 31        ICH9 functions: LPC (31.0), AHCI (31.2), SMBus (31.3)
func pcieRootLayout(cfg *MachineConfig, stage tablesStage) (*pcieRoot, error) {
	used := map[int]bool{0: true, 31: true}
	root := &pcieRoot{devices: []pciDevice{{devfn: pciDevFn(0, 0)}}}

	nextSlot := func() (int, error) {
		for s := 1; s < 32; s++ {
			if !used[s] {
				used[s] = true
				return s, nil
			}
		}
		return 0, fmt.Errorf("PCI layout: no free slot on pcie.0")
	}
	add := func(rootPort bool) error {
		s, err := nextSlot()
		if err != nil {
			return err
		}
		root.devices = append(root.devices, pciDevice{devfn: pciDevFn(s, 0), rootPort: rootPort})
		return nil
	}

	endpoints := 1 + cfg.NumVerityVolumes + cfg.NumNICs + 1 + 1 // hd1, vols, NICs, vsock, share
	if cfg.RootVerity {
		endpoints++ // hd0
	}
	for i := 0; i < endpoints; i++ {
		if err := add(false); err != nil {
			return nil, err
		}
	}

	gpuPorts := cfg.NumGPUs
	for _, x := range cfg.numaExpanders() {
		if used[x.slot] {
			return nil, fmt.Errorf("PCI layout: slot 0x%x of NUMA node %d's pxb-pcie expander is taken", x.slot, x.numaNode)
		}
		used[x.slot] = true
		root.devices = append(root.devices, pciDevice{devfn: pciDevFn(x.slot, 0)})
		root.expanders = append([]pxbExpander{x}, root.expanders...)
		gpuPorts = 0 // behind the expanders
	}
	for i := 0; i < gpuPorts+cfg.NumNVSwitches; i++ {
		if err := add(true); err != nil {
			return nil, err
		}
	}

	if stage == atFirstRead && !cfg.HotplugOff {
		root.assignBSELs()
	}
	root.devices = append(root.devices,
		pciDevice{devfn: pciDevFn(31, 0), lpc: true},
		pciDevice{devfn: pciDevFn(31, 2)},
		pciDevice{devfn: pciDevFn(31, 3)},
	)
	sort.Slice(root.devices, func(i, j int) bool { return root.devices[i].devfn < root.devices[j].devfn })
	return root, nil
}

// assignBSELs numbers the root ports' secondary buses as the machine reset does
// (acpi_pcihp_reset -> acpi_set_pci_info): a depth-first walk from pcie.0, which gets none (q35's
// root bus is not hot-pluggable through ACPI: acpi_pcihp_is_hotpluggable_bus), hands
// ACPI_PCIHP_BSEL_DEFAULT (0) onwards to every bus whose bridge is a cold-plugged PCI bridge
// with hotplug, in the order of pcie.0's child-bus list. pci_bridge_initfn inserts each new
// secondary bus at the head of that list, so the last root port created (the highest slot: the
// ports are created in command-line order, each taking the lowest free slot) gets 0.
// Expander buses in the same list are root buses and get none. Call it while devices holds the
// root ports in creation order.
func (r *pcieRoot) assignBSELs() {
	var ports []int
	for i, d := range r.devices {
		if d.rootPort {
			ports = append(ports, i)
		}
	}
	for k, i := range ports {
		r.devices[i].hotplugBus = true
		r.devices[i].bsel = len(ports) - 1 - k
	}
}

// hotplugBusesInChildOrder are the devices whose secondary bus has a BSEL, in pcie.0's
// child-bus list order (newest first), the order build_append_notification_callback walks.
func (r *pcieRoot) hotplugBusesInChildOrder() []pciDevice {
	var out []pciDevice
	for _, d := range r.devices {
		if d.hotplugBus {
			out = append(out, d)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].bsel < out[j].bsel })
	return out
}

// rootBusLimit is the last bus number PCI0 decodes, as build_dsdt computes it: walking the
// expanders in list order, a bus below the limit so far cuts it to that bus - 1. The comparison
// is with the limit, not the limit + 1, so an expander whose bus directly follows a later
// node's (buses 5, 6) does not cut: nodes on 5, 6 and 8 leave PCI0 buses 0..5 (QEMU 10.2.2).
func (r *pcieRoot) rootBusLimit() int {
	limit := 0xff
	for _, x := range r.expanders {
		if x.busNr < limit {
			limit = x.busNr - 1
		}
	}
	return limit
}

// hostBridgeAML is Scope(_SB){Device(PCI0), Device(DRAC)}. With ACPI PCI hotplug enabled the
// _OSC withholds native PCIe hotplug from the OS.
func hostBridgeAML(acpiHotplug bool) *aml.Term {
	pci0 := aml.Device("PCI0").Append(
		aml.NameDecl("_HID", aml.EISAID("PNP0A08")),
		aml.NameDecl("_CID", aml.EISAID("PNP0A03")),
		aml.NameDecl("_UID", aml.Int(0)), // pci_root_uid of q35
		oscMethod(!acpiHotplug),
		edsmMethod(),
	)
	return aml.Scope("_SB").Append(pci0, dramControllerAML())
}

// oscMethod is build_q35_osc_method: grant PME, AER, SHPC and PCIe capability control, and
// native PCIe hotplug only when ACPI PCI hotplug is off.
func oscMethod(nativePCIeHotplug bool) *aml.Term {
	cdw1, ctrl := aml.Name("CDW1"), aml.Local(0)
	mask := uint64(0x1e)
	if nativePCIeHotplug {
		mask |= 0x1
	}
	hostBridge := aml.If(aml.LEqual(aml.Arg(0), aml.ToUUID("33DB4D5B-1FF7-401C-9657-7441C03DD766"))).Append(
		aml.CreateDWordField(aml.Arg(3), aml.Int(4), "CDW2"),
		aml.CreateDWordField(aml.Arg(3), aml.Int(8), "CDW3"),
		aml.Store(aml.Name("CDW3"), ctrl),
		aml.And(ctrl, aml.Int(mask), ctrl),
		aml.If(aml.LNot(aml.LEqual(aml.Arg(1), aml.Int(1)))).Append(
			aml.Or(cdw1, aml.Int(0x08), cdw1)), // unknown revision
		aml.If(aml.LNot(aml.LEqual(aml.Name("CDW3"), ctrl))).Append(
			aml.Or(cdw1, aml.Int(0x10), cdw1)), // capabilities masked
		aml.Store(ctrl, aml.Name("CDW3")),
	)
	return aml.Method("_OSC", 4, false).Append(
		aml.CreateDWordField(aml.Arg(3), aml.Int(0), "CDW1"),
		hostBridge,
		aml.Else().Append(aml.Or(cdw1, aml.Int(4), cdw1)), // unrecognized UUID
		aml.Return(aml.Arg(3)),
	)
}

// pciDSMUUID is the PCI Firmware Specification's _DSM UUID (section 4.6).
const pciDSMUUID = "E5C937D0-3553-4D7A-9117-EA4D19C3434D"

// dsmFunc0Common is build_append_pci_dsm_func0_common: ret = Buffer{0}, returned as is for an
// unknown UUID or a revision below 2.
func dsmFunc0Common(ret *aml.Term) []*aml.Term {
	return []*aml.Term{
		aml.Store(aml.Buffer([]byte{0}), ret),
		aml.If(aml.LNot(aml.LEqual(aml.Arg(0), aml.ToUUID(pciDSMUUID)))).Append(aml.Return(ret)),
		aml.If(aml.LLess(aml.Arg(1), aml.Int(2))).Append(aml.Return(ret)),
	}
}

// edsmMethod is aml_pci_edsm: the _DSM body for devices with a static acpi-index.
func edsmMethod() *aml.Term {
	zero, fn, ret, idx, params := aml.Int(0), aml.Arg(2), aml.Local(0), aml.Local(1), aml.Arg(4)
	funcs := aml.If(aml.LEqual(fn, zero)).Append(dsmFunc0Common(ret)...).Append(
		aml.Store(aml.Int(1|1<<7), aml.Index(ret, zero)), // functions 0 and 7
		aml.Return(ret),
	)
	name := aml.If(aml.LEqual(fn, aml.Int(7))).Append(
		aml.Store(aml.Package(2).Append(zero, aml.String("")), ret),
		aml.Store(aml.DerefOf(aml.Index(params, aml.Int(0))), idx),
		aml.Store(idx, aml.Index(ret, zero)),
		aml.Return(ret),
	)
	return aml.Method("EDSM", 5, true).Append(funcs, name)
}

// dramControllerAML is build_q35_dram_controller: the MMCONFIG window as a motherboard resource.
func dramControllerAML() *aml.Term {
	crs := aml.ResourceTemplate().Append(aml.DWordMemory(aml.PosDecode, aml.MinIsFixed, aml.MaxIsFixed,
		aml.NonCacheable, aml.ReadWriteAccess, 0, mcfgBase, mcfgBase+mcfgSize-1, 0, mcfgSize))
	return aml.Device("DRAC").Append(
		aml.NameDecl("_HID", aml.String("PNP0C01")),
		aml.NameDecl("_CRS", crs),
	)
}

// pciHotplugAML is build_x86_acpi_pci_hotplug: the ACPI PCI hotplug registers and methods.
func pciHotplugAML(prof dsdtProfile) *aml.Term {
	field := func(region string, names ...string) *aml.Term {
		f := aml.Field(region, aml.DWordAcc, aml.NoLock, aml.WriteAsZeros)
		for _, n := range names {
			f.Append(aml.NamedField(n, 32))
		}
		return f
	}
	blck := aml.Name("BLCK")
	pcej := aml.Method("PCEJ", 2, false).Append(
		aml.Acquire(blck, 0xFFFF),
		aml.Store(aml.Arg(0), aml.Name("BNUM")),
		aml.Store(aml.ShiftLeft(aml.Int(1), aml.Arg(1)), aml.Name("B0EJ")),
		aml.Release(blck),
		aml.Return(aml.Int(0)),
	)
	aidx := aml.Method("AIDX", 2, false).Append(
		aml.Acquire(blck, 0xFFFF),
		aml.Store(aml.Arg(0), aml.Name("BNUM")),
		aml.Store(aml.ShiftLeft(aml.Int(1), aml.Arg(1)), aml.Name("PIDX")),
		aml.Store(aml.Name("PIDX"), aml.Local(0)),
		aml.Release(blck),
		aml.Return(aml.Local(0)),
	)
	return aml.Scope("_SB.PCI0").Append(
		aml.OperationRegion("PCST", aml.SystemIO, aml.Int(pciHotplugIOBase), 0x08),
		field("PCST", "PCIU", "PCID"),
		aml.OperationRegion("SEJ", aml.SystemIO, aml.Int(pciHotplugIOBase+pciHotplugSEJ), 0x04),
		field("SEJ", "B0EJ"),
		aml.OperationRegion("BNMR", aml.SystemIO, aml.Int(pciHotplugIOBase+pciHotplugBNMR), 0x08),
		field("BNMR", "BNUM", "PIDX"),
		aml.Mutex("BLCK", 0),
		pcej,
		aidx,
		pdsmMethod(prof),
	)
}

// pdsmMethod is aml_pci_pdsm: _DSM for hot-pluggable slots, asking QEMU for the acpi-index.
func pdsmMethod(prof dsdtProfile) *aml.Term {
	var (
		ret, caps, acpiIndex = aml.Local(0), aml.Local(1), aml.Local(2)
		zero, one, notSupp   = aml.Int(0), aml.Int(1), aml.Int(0xFFFFFFFF)
		fn, params           = aml.Arg(2), aml.Arg(4)
	)
	bnum := func() *aml.Term { return aml.DerefOf(aml.Index(params, aml.Int(0))) }
	sunum := func() *aml.Term { return aml.DerefOf(aml.Index(params, aml.Int(1))) }
	readIndex := aml.Store(aml.Call("AIDX", bnum(), sunum()), acpiIndex)

	funcs := aml.If(aml.LEqual(fn, zero)).Append(dsmFunc0Common(ret)...).Append(
		aml.Store(zero, caps),
		readIndex,
		aml.If(aml.LNot(aml.Or(aml.LEqual(acpiIndex, zero), aml.LEqual(acpiIndex, notSupp), nil))).Append(
			aml.Or(caps, one, caps),
			aml.Or(caps, aml.ShiftLeft(one, aml.Int(7)), caps),
		),
		aml.Store(caps, aml.Index(ret, zero)),
		aml.Return(ret),
	)

	name := aml.If(aml.LEqual(fn, aml.Int(7)))
	if prof.pdsmFunc7Guarded {
		name.Append(
			readIndex,
			aml.Store(aml.Package(2), ret),
			aml.If(aml.LNot(aml.LOr(aml.LEqual(acpiIndex, zero), aml.LEqual(acpiIndex, notSupp)))).Append(
				aml.Store(acpiIndex, aml.Index(ret, zero)),
				aml.Store(aml.String(""), aml.Index(ret, one)),
			),
			aml.Return(ret),
		)
	} else {
		name.Append(
			aml.Store(aml.Package(2).Append(zero, aml.String("")), ret),
			readIndex,
			aml.Store(acpiIndex, aml.Index(ret, zero)),
			aml.Return(ret),
		)
	}
	return aml.Method("PDSM", 5, true).Append(funcs, name)
}

// addrRange is an inclusive address range, as QEMU's CrsRangeEntry.
type addrRange struct{ base, limit uint64 }

// freeRanges is crs_replace_with_free_ranges: the parts of [start, end] no used range covers.
func freeRanges(used []addrRange, start, end uint64) []addrRange {
	sorted := append([]addrRange(nil), used...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].base < sorted[j].base })
	var free []addrRange
	next := start
	for _, r := range sorted {
		if r.limit < next || r.base > end {
			continue
		}
		if r.base > next {
			free = append(free, addrRange{next, r.base - 1})
		}
		if r.limit >= end {
			return free
		}
		next = r.limit + 1
	}
	return append(free, addrRange{next, end})
}

// pciWindows returns PCI0's 32-bit memory windows (the hole between RAM below 4 GiB and the
// IOAPIC, minus MMCONFIG) and its 64-bit window (none when pci-hole64-size is 0).
func pciWindows(cfg *MachineConfig) (w32 []addrRange, w64 *addrRange) {
	below4G, _ := cfg.RAMSplit()
	w32 = freeRanges([]addrRange{{mcfgBase, mcfgBase + mcfgSize - 1}}, below4G, pciHole32End)
	if size := cfg.hole64Size(); size > 0 {
		w64 = &addrRange{pciHole64Start, pciHole64Start + size - 1}
	}
	return w32, w64
}

// hostBridgeResourcesAML is Scope(\_SB.PCI0){Name(_CRS), Device(GPE0), Device(PHPR)}.
func hostBridgeResourcesAML(cfg *MachineConfig, bus *pcieRoot, acpiHotplug bool) *aml.Term {
	limit := uint16(bus.rootBusLimit())
	crs := aml.ResourceTemplate().Append(
		aml.WordBusNumber(aml.MinIsFixed, aml.MaxIsFixed, aml.PosDecode, 0, 0, limit, 0, limit+1),
		aml.IO(aml.Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08),
		aml.WordIO(aml.MinIsFixed, aml.MaxIsFixed, aml.PosDecode, aml.EntireRange, 0, 0, 0x0CF7, 0, 0x0CF8),
		// No expander has I/O assigned before the firmware runs: one window above 0xCFF.
		aml.WordIO(aml.MinIsFixed, aml.MaxIsFixed, aml.PosDecode, aml.EntireRange, 0, 0x0D00, 0xFFFF, 0, 0xFFFF-0x0D00+1),
		aml.DWordMemory(aml.PosDecode, aml.MinIsFixed, aml.MaxIsFixed, aml.CacheableMem, aml.ReadWriteAccess,
			0, 0x000A0000, 0x000BFFFF, 0, 0x00020000), // VGA window
	)
	w32, w64 := pciWindows(cfg)
	for _, w := range w32 {
		crs.Append(aml.DWordMemory(aml.PosDecode, aml.MinIsFixed, aml.MaxIsFixed, aml.NonCacheable,
			aml.ReadWriteAccess, 0, uint32(w.base), uint32(w.limit), 0, uint32(w.limit-w.base+1)))
	}
	if w64 != nil {
		crs.Append(aml.QWordMemory(aml.PosDecode, aml.MinIsFixed, aml.MaxIsFixed, aml.CacheableMem,
			aml.ReadWriteAccess, 0, w64.base, w64.limit, 0, w64.limit-w64.base+1))
	}

	scope := aml.Scope(`\_SB.PCI0`).Append(
		aml.NameDecl("_CRS", crs),
		reservedIODevice("GPE0", "GPE0 resources", gpe0IOBase, gpe0IOLen),
	)
	if acpiHotplug {
		scope.Append(reservedIODevice("PHPR", "PCI Hotplug resources", pciHotplugIOBase, pciHotplugIOLen))
	}
	return scope
}

// reservedIODevice is the PNP0A06 container build_dsdt uses to reserve an I/O block.
func reservedIODevice(name, uid string, base uint16, length byte) *aml.Term {
	return aml.Device("%s", name).Append(
		aml.NameDecl("_HID", aml.String("PNP0A06")),
		aml.NameDecl("_UID", aml.String("%s", uid)),
		aml.NameDecl("_STA", aml.Int(0xB)), // present, enabled, decoding, hidden
		aml.NameDecl("_CRS", aml.ResourceTemplate().Append(aml.IO(aml.Decode16, base, base, 1, length))),
	)
}

// expanderBridgeAML is build_dsdt's Scope(\_SB){Device(PCxx)} for a pxb-pcie root bus. Before
// the firmware assigns resources its _CRS holds only its own bus number.
func expanderBridgeAML(x pxbExpander) *aml.Term {
	bus := uint16(x.busNr)
	dev := aml.Device("PC%02X", x.busNr).Append(
		aml.NameDecl("_UID", aml.Int(uint64(x.busNr))), // acpi_uid of a pxb bus is its bus_nr
		aml.NameDecl("_BBN", aml.Int(uint64(x.busNr))),
		aml.NameDecl("_HID", aml.EISAID("PNP0A08")),
		aml.NameDecl("_CID", aml.EISAID("PNP0A03")),
		oscMethod(true), // expander bridges have no ACPI PCI hotplug
		aml.NameDecl("_PXM", aml.Int(uint64(x.numaNode))),
		expanderRoutingMethod(),
		aml.NameDecl("_CRS", aml.ResourceTemplate().Append(
			aml.WordBusNumber(aml.MinIsFixed, aml.MaxIsFixed, aml.PosDecode, 0, bus, bus, 0, 1))),
	)
	return aml.Scope(`\_SB`).Append(dev)
}

// pciBusDevicesAML is build_append_pci_bus_devices for pcie.0: Scope(PCI0) with a Device(Sxx)
// per populated function, named after its devfn, plus what each device's own AML adds.
func pciBusDevicesAML(bus *pcieRoot, prof dsdtProfile) *aml.Term {
	scope := aml.Scope("PCI0")
	for _, d := range bus.devices {
		scope.Append(pciDeviceAML(d, prof))
	}
	return scope
}

func pciDeviceAML(d pciDevice, prof dsdtProfile) *aml.Term {
	dev := aml.Device("S%02X", d.devfn).Append(aml.NameDecl("_ADR", aml.Int(pciADR(d.devfn))))
	switch {
	case d.lpc:
		dev.Append(lpcISAAML(prof)...)
	case d.rootPort:
		// build_pci_bridge_aml: a cold-plugged bridge describes its secondary bus
		// (build_append_pci_bus_devices: the passed-through function 0.0), then, once the
		// reset has given that bus a BSEL, its hotplug slots (build_append_pcihp_slots).
		dev.Append(aml.Device("S00").Append(aml.NameDecl("_ADR", aml.Int(0))))
		if d.hotplugBus {
			dev.Append(hotplugSlotsAML(d.bsel)...)
		}
	}
	return dev
}

// hotplugSlotsAML is build_append_pcihp_slots for a root port's secondary bus holding one
// hot-pluggable endpoint at 0.0: a PCIe bus describes no empty slot but 0, and the populated
// one gets a Scope (its Device is already declared) with the slot's hotplug methods.
func hotplugSlotsAML(bsel int) []*aml.Term {
	const slot = 0
	dsm := aml.Method("_DSM", 4, true).Append(
		aml.Store(aml.Package(2).Append(aml.Int(0), aml.Int(0)), aml.Local(0)),
		aml.Store(aml.Name("BSEL"), aml.Index(aml.Local(0), aml.Int(0))),
		aml.Store(aml.Name("ASUN"), aml.Index(aml.Local(0), aml.Int(1))),
		aml.Return(aml.Call("PDSM", aml.Arg(0), aml.Arg(1), aml.Arg(2), aml.Arg(3), aml.Local(0))),
	)
	s00 := aml.Scope("S%02X", pciDevFn(slot, 0)).Append(
		aml.NameDecl("ASUN", aml.Int(slot)),
		dsm,
		aml.NameDecl("_SUN", aml.Int(slot)),
		aml.Method("_EJ0", 1, false).Append(aml.Call("PCEJ", aml.Name("BSEL"), aml.Name("_SUN"))),
	)
	dvnt := aml.Method("DVNT", 2, false).Append(
		aml.If(aml.And(aml.Arg(0), aml.Int(1<<slot), nil)).Append(
			aml.Notify(aml.Name("S%02X", pciDevFn(slot, 0)), aml.Arg(1))),
	)
	return []*aml.Term{aml.NameDecl("BSEL", aml.Int(uint64(bsel))), s00, dvnt}
}

// hotplugNotifyAML is build_append_notification_callback for pcie.0 and the _E01 build_dsdt
// appends after it: per hot-pluggable bus a PCNT that selects the bus and notifies its slots,
// PCI0's PCNT calling each of them, and the GPE handler calling PCI0's under BLCK. Without any
// such bus there is no PCNT and _E01 is empty.
func hotplugNotifyAML(bus *pcieRoot) []*aml.Term {
	buses := bus.hotplugBusesInChildOrder()
	e01 := aml.Method("_E01", 0, false)
	if len(buses) == 0 {
		return []*aml.Term{aml.Scope("_GPE").Append(e01)}
	}
	scope := aml.Scope(`\_SB.PCI0`)
	pcnt := aml.Method("PCNT", 0, false)
	for _, d := range buses {
		scope.Append(aml.Scope("S%02X", d.devfn).Append(aml.Method("PCNT", 0, false).Append(
			aml.Store(aml.Int(uint64(d.bsel)), aml.Name("BNUM")),
			aml.Call("DVNT", aml.Name("PCIU"), aml.Int(1)), // device check
			aml.Call("DVNT", aml.Name("PCID"), aml.Int(3)), // eject request
		)))
		pcnt.Append(aml.Name("^S%02X.PCNT", d.devfn))
	}
	scope.Append(pcnt)
	e01.Append(
		aml.Acquire(aml.Name(`\_SB.PCI0.BLCK`), 0xFFFF),
		aml.Call(`\_SB.PCI0.PCNT`),
		aml.Release(aml.Name(`\_SB.PCI0.BLCK`)),
	)
	return []*aml.Term{scope, aml.Scope("_GPE").Append(e01)}
}

// pciADR is the _ADR of a PCI function: slot in the high word, function in the low word.
func pciADR(devfn int) uint64 { return uint64(devfn>>3)<<16 | uint64(devfn&7) }
