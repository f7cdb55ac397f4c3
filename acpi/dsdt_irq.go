package acpi

// PCI interrupt routing of the q35 DSDT: hw/i386/acpi-build.c build_q35_pci0_int,
// build_q35_routing_table, append_q35_prt_entry, build_prt, build_link_dev,
// build_gsi_link_dev, build_iqcr_method and build_irq_status_method.

import (
	"github.com/dstack-mr/dstack-mr/acpi/aml"
)

const (
	pciRoutes        = 128 // 32 slots x 4 pins
	linkDisabledFlag = 0x80
	firstPCIGSI      = 0x10 // GSIA..GSIH route to IOAPIC pins 16..23
)

// pciInterruptsAML is build_q35_pci0_int: the PIC/APIC mode switch, PCI0's two routing tables
// and the link devices they name.
func pciInterruptsAML(prof dsdtProfile) []*aml.Term {
	pic := aml.Method("_PIC", 1, false).Append(aml.Store(aml.Arg(0), aml.Name("PICF")))

	prt := aml.Method("_PRT", 0, false).Append(
		aml.If(aml.LEqual(aml.Name("PICF"), aml.Int(0))).Append(aml.Return(aml.Name("PRTP"))),
		aml.Else().Append(aml.Return(aml.Name("PRTA"))),
	)
	pci0 := aml.Scope("PCI0").Append(
		aml.NameDecl("PRTP", q35RoutingTable("LNK")), // PIC mode: ICH9 PIRQ links
		aml.NameDecl("PRTA", q35RoutingTable("GSI")), // APIC mode: IOAPIC GSIs 16..23
		prt,
	)

	sb := aml.Scope("_SB").Append(pci0, irqStatusMethod(), irqCurrentResourcesMethod(prof))
	for i := 0; i < 8; i++ {
		letter := string(rune('A' + i))
		sb.Append(pirqLinkDevice("LNK"+letter, i, "PRQ"+letter, prof))
	}
	for i := 0; i < 8; i++ {
		gsi := firstPCIGSI + i
		sb.Append(gsiLinkDevice("GSI"+string(rune('A'+i)), gsi, gsi, prof))
	}

	return []*aml.Term{
		aml.NameDecl("PICF", aml.Int(0)), // 0: PIC mode, 1: APIC mode
		pic,
		sb,
	}
}

// q35RoutingTable is build_q35_routing_table: which link each slot's INTA..INTD reaches. Slots
// 0..23 rotate through PIRQ E..H, slot 24 and the PCIe-to-PCI bridge slot 30 start at E, the
// other ICH9 slots 25..29 and 31 at A (the D<N>IR register defaults).
func q35RoutingTable(prefix string) *aml.Term {
	pkg := aml.Package(pciRoutes)
	first := func(slot int) byte {
		switch {
		case slot < 0x18:
			return 'E' + byte(slot&3)
		case slot == 0x18, slot == 0x1e:
			return 'E'
		default:
			return 'A'
		}
	}
	for slot := 0; slot < 32; slot++ {
		appendQ35PRTEntries(pkg, slot, prefix, first(slot))
	}
	return pkg
}

// appendQ35PRTEntries is append_q35_prt_entry: the four pins of a slot take consecutive links
// of the group (A..D or E..H) starting at first, wrapping inside the group.
func appendQ35PRTEntries(pkg *aml.Term, slot int, prefix string, first byte) {
	base := byte('A')
	if first >= 'E' {
		base = 'E'
	}
	for pin := 0; pin < 4; pin++ {
		link := base + (first-base+byte(pin))%4
		pkg.Append(prtEntry(slot, pin, prefix+string(rune(link))))
	}
}

// prtEntry is one _PRT package: {address (slot, any function), pin, link, source index 0}.
func prtEntry(slot, pin int, link string) *aml.Term {
	return aml.Package(4).Append(
		aml.Int(uint64(slot)<<16|0xFFFF),
		aml.Int(uint64(pin)),
		aml.Name("%s", link),
		aml.Int(0),
	)
}

// expanderRoutingMethod is build_prt(false), the _PRT of an expander bridge: the i440fx-style
// hash (slot + route index) & 3 over LNKD, LNKA, LNKB, LNKC.
func expanderRoutingMethod() *aml.Term {
	links := [4]string{"LNKD", "LNKA", "LNKB", "LNKC"}
	pkg := aml.Package(pciRoutes)
	for route := 0; route < pciRoutes; route++ {
		slot := route >> 2
		pkg.Append(prtEntry(slot, route&3, links[(slot+route)&3]))
	}
	return aml.Method("_PRT", 0, false).Append(aml.Return(pkg))
}

// pciInterrupt is the Interrupt() descriptor every link device uses.
func pciInterrupt(prof dsdtProfile, irqs ...uint32) *aml.Term {
	return aml.Interrupt(aml.Consumer, prof.linkTrigger, aml.ActiveHigh, aml.Shared, irqs...)
}

// irqStatusMethod is IQST(reg): a link whose PIRQ register has the disable bit is disabled.
func irqStatusMethod() *aml.Term {
	return aml.Method("IQST", 1, false).Append(
		aml.If(aml.And(aml.Int(linkDisabledFlag), aml.Arg(0), nil)).Append(aml.Return(aml.Int(0x09))),
		aml.Return(aml.Int(0x0B)),
	)
}

// irqCurrentResourcesMethod is IQCR(reg) for ICH9: the routed IRQ is the register's low nibble.
func irqCurrentResourcesMethod(prof dsdtProfile) *aml.Term {
	return aml.Method("IQCR", 1, true).Append(
		aml.NameDecl("PRR0", aml.ResourceTemplate().Append(pciInterrupt(prof, 0))),
		aml.CreateDWordField(aml.Name("PRR0"), aml.Int(5), "PRRI"),
		aml.Store(aml.And(aml.Arg(0), aml.Int(0xF), nil), aml.Name("PRRI")),
		aml.Return(aml.Name("PRR0")),
	)
}

// pirqLinkDevice is build_link_dev: a link backed by an ICH9 PIRQx routing register.
func pirqLinkDevice(name string, uid int, reg string, prof dsdtProfile) *aml.Term {
	r := aml.Name("%s", reg)
	return aml.Device("%s", name).Append(
		aml.NameDecl("_HID", aml.EISAID("PNP0C0F")),
		aml.NameDecl("_UID", aml.Int(uint64(uid))),
		aml.NameDecl("_PRS", aml.ResourceTemplate().Append(pciInterrupt(prof, 5, 10, 11))),
		aml.Method("_STA", 0, false).Append(aml.Return(aml.Call("IQST", r))),
		aml.Method("_DIS", 0, false).Append(aml.Or(r, aml.Int(linkDisabledFlag), r)),
		aml.Method("_CRS", 0, false).Append(aml.Return(aml.Call("IQCR", r))),
		aml.Method("_SRS", 1, false).Append(
			aml.CreateDWordField(aml.Arg(0), aml.Int(5), "PRRI"),
			aml.Store(aml.Name("PRRI"), r),
		),
	)
}

// gsiLinkDevice is build_gsi_link_dev: a link hard-wired to one IOAPIC input.
func gsiLinkDevice(name string, uid, gsi int, prof dsdtProfile) *aml.Term {
	crs := aml.ResourceTemplate().Append(pciInterrupt(prof, uint32(gsi)))
	return aml.Device("%s", name).Append(
		aml.NameDecl("_HID", aml.EISAID("PNP0C0F")),
		aml.NameDecl("_UID", aml.Int(uint64(uid))),
		aml.NameDecl("_PRS", crs),
		aml.NameDecl("_CRS", crs),
		aml.Method("_DIS", 0, false), // the interrupt cannot be disabled
		aml.Method("_SRS", 1, false),
	)
}
