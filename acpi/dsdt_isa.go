package acpi

// Fixed platform devices of the q35 DSDT: the ICH9 LPC bridge and its ISA devices
// (hw/isa/lpc_ich9.c build_ich9_isa_aml, hw/input/pckbd.c i8042_build_aml,
// hw/char/serial-isa.c serial_isa_build_aml, hw/rtc/mc146818rtc.c rtc_build_aml), the fw_cfg
// device (hw/nvram/fw_cfg-acpi.c fw_cfg_add_acpi_dsdt) and the sleep states of build_dsdt.

import (
	"github.com/dstack-mr/dstack-mr/acpi/aml"
)

// ISA resources of dstack's machine: -nodefaults leaves the i8042 and the RTC that q35 always
// creates; "-serial stdio" adds COM1; hpet=off removes the HPET.
const (
	kbdIRQ   = 1
	mouseIRQ = 12
	com1Base = 0x03f8
	com1IRQ  = 4
	rtcBase  = 0x0070
	rtcIRQ   = 8

	fwCfgIOBase = 0x0510
	fwCfgIOLen  = 0x0c // selector + data + DMA address registers
)

// lpcISAAML is what the LPC bridge adds to its Device(SF8): the PIRQ routing registers (fields
// declared in \_SB for the link devices), then each ISA device in bus order.
func lpcISAAML(prof dsdtProfile) []*aml.Term {
	pirq := aml.Field("PCI0.SF8.PIRQ", aml.ByteAcc, aml.NoLock, aml.Preserve).Append(
		aml.NamedField("PRQA", 8),
		aml.NamedField("PRQB", 8),
		aml.NamedField("PRQC", 8),
		aml.NamedField("PRQD", 8),
		aml.ReservedField(0x20), // 0x64..0x67 are not routing registers
		aml.NamedField("PRQE", 8),
		aml.NamedField("PRQF", 8),
		aml.NamedField("PRQG", 8),
		aml.NamedField("PRQH", 8),
	)
	terms := []*aml.Term{
		aml.OperationRegion("PIRQ", aml.PCIConfig, aml.Int(0x60), 0x0C),
		aml.Scope(`\_SB`).Append(pirq),
	}
	terms = append(terms, i8042AML()...)
	return append(terms, serialCOM1AML(prof), rtcAML())
}

// i8042AML is the PS/2 controller: keyboard and mouse.
func i8042AML() []*aml.Term {
	kbd := aml.Device("KBD").Append(
		aml.NameDecl("_HID", aml.EISAID("PNP0303")),
		aml.NameDecl("_STA", aml.Int(0xF)),
		aml.NameDecl("_CRS", aml.ResourceTemplate().Append(
			aml.IO(aml.Decode16, 0x0060, 0x0060, 0x01, 0x01),
			aml.IO(aml.Decode16, 0x0064, 0x0064, 0x01, 0x01),
			aml.IRQNoFlags(kbdIRQ),
		)),
	)
	mou := aml.Device("MOU").Append(
		aml.NameDecl("_HID", aml.EISAID("PNP0F13")),
		aml.NameDecl("_STA", aml.Int(0xF)),
		aml.NameDecl("_CRS", aml.ResourceTemplate().Append(aml.IRQNoFlags(mouseIRQ))),
	)
	return []*aml.Term{kbd, mou}
}

// serialCOM1AML is serial_isa_build_aml for -serial stdio's COM1.
func serialCOM1AML(prof dsdtProfile) *aml.Term {
	irq := aml.IRQNoFlags(com1IRQ)
	if prof.serialLevelIRQ {
		irq = aml.IRQ(aml.Level, aml.ActiveLow, aml.Shared, com1IRQ)
	}
	return aml.Device("COM1").Append(
		aml.NameDecl("_HID", aml.EISAID("PNP0501")),
		aml.NameDecl("_UID", aml.Int(1)),
		aml.NameDecl("_STA", aml.Int(0xF)),
		aml.NameDecl("_CRS", aml.ResourceTemplate().Append(
			aml.IO(aml.Decode16, com1Base, com1Base, 0x00, 0x08),
			irq,
		)),
	)
}

func rtcAML() *aml.Term {
	return aml.Device("RTC").Append(
		aml.NameDecl("_HID", aml.EISAID("PNP0B00")),
		aml.NameDecl("_CRS", aml.ResourceTemplate().Append(
			aml.IO(aml.Decode16, rtcBase, rtcBase, 0x01, 0x08),
			aml.IRQNoFlags(rtcIRQ),
		)),
	)
}

// fwCfgAML is Device(FWCF), the fw_cfg I/O interface with DMA.
func fwCfgAML() *aml.Term {
	return aml.Device("FWCF").Append(
		aml.NameDecl("_HID", aml.String("QEMU0002")),
		aml.NameDecl("_STA", aml.Int(0xB)),
		aml.NameDecl("_CRS", aml.ResourceTemplate().Append(
			aml.IO(aml.Decode16, fwCfgIOBase, fwCfgIOBase, 0x01, fwCfgIOLen))),
	)
}

// ICH9 PM1a_CNT.SLP_TYP values (hw/acpi/ich9.c: S3 enabled, s4_val 2).
const (
	slpTypS3 = 1
	slpTypS4 = 2
	slpTypS5 = 0
)

// sleepStatesAML is Scope(\){_S3, _S4, _S5}.
func sleepStatesAML() *aml.Term {
	state := func(name string, typ uint64) *aml.Term {
		return aml.NameDecl(name, aml.Package(4).Append(
			aml.Int(typ), // PM1a_CNT.SLP_TYP
			aml.Int(typ), // PM1b_CNT.SLP_TYP (not implemented)
			aml.Int(0),   // reserved
			aml.Int(0),   // reserved
		))
	}
	return aml.Scope(`\`).Append(
		state("_S3", slpTypS3),
		state("_S4", slpTypS4),
		state("_S5", slpTypS5),
	)
}
