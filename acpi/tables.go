package acpi

// The fixed-layout tables of QEMU's q35 machine (hw/i386/acpi-build.c, hw/i386/acpi-common.c,
// hw/acpi/aml-build.c, hw/acpi/pci.c), as dstack's QEMU emits them for a TDX guest.

// table is one ACPI table as it will sit in etc/acpi/tables, plus the loader commands QEMU's
// builder issues for it.
type table struct {
	sig      string
	data     []byte
	pointers []tablePointer // ADD_POINTER commands, in the order the builder issues them
	checksum bool           // acpi_table_end's ADD_CHECKSUM follows the pointers (not FACS)
	inRSDT   bool           // registered with acpi_add_table, i.e. listed by the RSDT
}

// tablePointer is a field of a table that holds the address of another table.
type tablePointer struct {
	offset int    // of the field, within the table
	size   int    // field width in bytes
	target string // signature of the table it points to
}

// buildFACS: ACPI 1.0b 5.2.6, 64 bytes, no standard header and no checksum command.
func buildFACS() table {
	t := make([]byte, 0, 64)
	t = append(t, "FACS"...)
	t = appendLE32(t, 64)
	t = append(t, make([]byte, 64-len(t))...) // signature, waking vector, lock, flags: all 0
	return table{sig: "FACS", data: t}
}

// FADT constants of the ICH9 LPC power-management block (hw/isa/lpc_ich9.c, ich9.h).
const (
	ich9PMIOBase     = 0x600 // ICH9_PMIO base: PM1a_EVT; CNT at +4, TMR at +8, GPE0 at +0x20
	ich9GPE0Len      = 16
	ich9SCIInt       = 9
	ich9ResetPort    = 0xcf9
	ich9ResetValue   = 0x0f
	apmCntPort       = 0xb2 // ACPI_PORT_SMI_CMD
	ich9APMEnableCmd = 0x02
	ich9APMDisable   = 0x03
	rtcCenturyIndex  = 0x32
	iapcBootArch8042 = 1 << 1
)

// FADT flag bits (ACPI 5.2.9, Table 5-10).
const (
	fadtWBINVD                = 1 << 0
	fadtProcC1                = 1 << 2
	fadtSlpButton             = 1 << 5
	fadtRTCS4                 = 1 << 7
	fadtResetRegSup           = 1 << 10
	fadtUsePlatformClock      = 1 << 15
	fadtForceAPICClusterModel = 1 << 18
)

// Generic Address Structure address-space id.
const gasSystemIO = 1

func appendGAS(b []byte, space, bitWidth byte, addr uint64) []byte {
	b = append(b, space, bitWidth, 0, 0) // bit offset 0, access size "undefined"
	return appendLE64(b, addr)
}

// FADT field offsets the loader patches.
const (
	fadtFirmwareCtrlOffset = 36
	fadtDSDTOffset         = 40
	fadtXDSDTOffset        = 140
)

// buildFADT: revision 3 (244 bytes), from init_common_fadt_data + acpi_get_pm_info (ICH9) +
// build_fadt.
func buildFADT(cfg *MachineConfig) table {
	flags := uint32(fadtWBINVD | fadtProcC1 | fadtSlpButton | fadtRTCS4 | fadtUsePlatformClock |
		fadtResetRegSup)
	// "Flat Logical" APIC destination mode addresses at most 8 CPUs.
	if cfg.CPUs > 8 {
		flags |= fadtForceAPICClusterModel
	}
	var smiCmd uint32
	var acpiEnable, acpiDisable byte
	if cfg.SMM {
		smiCmd, acpiEnable, acpiDisable = apmCntPort, ich9APMEnableCmd, ich9APMDisable
	}

	t := beginTable("FACP", 3)
	t = appendLE32(t, 0) // FIRMWARE_CTRL: FACS, patched by the loader
	t = appendLE32(t, 0) // DSDT: patched by the loader
	t = append(t, 1)     // INT_MODEL (ACPI 1.0): multiple APIC
	t = append(t, 0)     // Preferred_PM_Profile: unspecified
	t = appendLE16(t, ich9SCIInt)
	t = appendLE32(t, smiCmd)
	t = append(t, acpiEnable, acpiDisable, 0, 0) // ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT
	t = appendLE32(t, ich9PMIOBase)              // PM1a_EVT_BLK
	t = appendLE32(t, 0)                         // PM1b_EVT_BLK
	t = appendLE32(t, ich9PMIOBase+0x04)         // PM1a_CNT_BLK
	t = appendLE32(t, 0)                         // PM1b_CNT_BLK
	t = appendLE32(t, 0)                         // PM2_CNT_BLK
	t = appendLE32(t, ich9PMIOBase+0x08)         // PM_TMR_BLK
	t = appendLE32(t, ich9PMIOBase+0x20)         // GPE0_BLK
	t = appendLE32(t, 0)                         // GPE1_BLK
	t = append(t, 4, 2, 0, 4)                    // PM1_EVT_LEN, PM1_CNT_LEN, PM2_CNT_LEN, PM_TMR_LEN
	t = append(t, ich9GPE0Len, 0, 0, 0)          // GPE0_BLK_LEN, GPE1_BLK_LEN, GPE1_BASE, CST_CNT
	t = appendLE16(t, 0xfff)                     // P_LVL2_LAT: C2 not supported
	t = appendLE16(t, 0xfff)                     // P_LVL3_LAT: C3 not supported
	t = appendLE16(t, 0)                         // FLUSH_SIZE
	t = appendLE16(t, 0)                         // FLUSH_STRIDE
	t = append(t, 0, 0, 0, 0)                    // DUTY_OFFSET, DUTY_WIDTH, DAY_ALRM, MON_ALRM
	t = append(t, rtcCenturyIndex)               // CENTURY
	t = appendLE16(t, iapcBootArch8042)          // IAPC_BOOT_ARCH: i8042 present
	t = append(t, 0)                             // reserved
	t = appendLE32(t, flags)
	t = appendGAS(t, gasSystemIO, 8, ich9ResetPort) // RESET_REG
	t = append(t, ich9ResetValue)
	t = append(t, 0, 0, 0)                                          // reserved before ACPI 5.1
	t = appendLE64(t, 0)                                            // X_FIRMWARE_CTRL: must stay 0 as FIRMWARE_CTRL is set
	t = appendLE64(t, 0)                                            // X_DSDT: patched by the loader
	t = appendGAS(t, gasSystemIO, 4*8, ich9PMIOBase)                // X_PM1a_EVT_BLK
	t = appendGAS(t, 0, 0, 0)                                       // X_PM1b_EVT_BLK
	t = appendGAS(t, gasSystemIO, 2*8, ich9PMIOBase+0x04)           // X_PM1a_CNT_BLK
	t = appendGAS(t, 0, 0, 0)                                       // X_PM1b_CNT_BLK
	t = appendGAS(t, 0, 0, 0)                                       // X_PM2_CNT_BLK
	t = appendGAS(t, gasSystemIO, 4*8, ich9PMIOBase+0x08)           // X_PM_TMR_BLK
	t = appendGAS(t, gasSystemIO, ich9GPE0Len*8, ich9PMIOBase+0x20) // X_GPE0_BLK
	t = appendGAS(t, 0, 0, 0)                                       // X_GPE1_BLK
	return table{
		sig:  "FACP",
		data: endTable(t),
		pointers: []tablePointer{
			{fadtFirmwareCtrlOffset, 4, "FACS"},
			{fadtDSDTOffset, 4, "DSDT"},
			{fadtXDSDTOffset, 8, "DSDT"},
		},
		checksum: true,
		inRSDT:   true,
	}
}

// MADT constants (hw/i386/acpi-common.c, include/hw/i386/apic.h, ioapic.h).
const (
	lapicDefaultAddress  = 0xfee00000
	ioapicDefaultAddress = 0xfec00000
	ioapicID             = 0

	madtTypeLocalAPIC      = 0
	madtTypeIOAPIC         = 1
	madtTypeIntSrcOverride = 2
	madtTypeLocalAPICNMI   = 4
	madtTypeLocalX2APIC    = 9
	madtTypeLocalX2APICNMI = 10

	// APIC IDs from 255 up do not fit the 8-bit xAPIC structures.
	firstX2APICID = 255

	isoFlagsConforming      = 0x0 // polarity and trigger conform to the bus
	isoFlagsHighEdge        = 0x5
	isoFlagsHighLevel       = 0xd
	q35PCIIRQMask           = 1<<5 | 1<<9 | 1<<10 | 1<<11 // IRQs the q35 PCI links may route
	madtFlagPCATCompat      = 1
	lapicFlagEnabled        = 1
	lintAllProcessorsXAPIC  = 0xff
	lintAllProcessorsX2APIC = 0xffffffff
	acpiLINT1               = 1
)

// cpuAPICID is the APIC ID QEMU gives vCPU i for "-smp N": with N cores in one socket (or N
// sockets of one core) the topology fields are all zero-width but one, so IDs are 0..N-1.
func cpuAPICID(i int) uint32 { return uint32(i) }

// buildMADT: revision 3, acpi_build_madt with dstack's QEMU_ACPI_COMPAT_VER handling. Only the
// pre-9.2 profile differs; 9.2 through 11.1 emit the same bytes (PROFILES.md).
func buildMADT(cfg *MachineConfig) table {
	t := beginTable("APIC", 3)
	t = appendLE32(t, lapicDefaultAddress)
	var flags uint32
	if cfg.PICEnabled() {
		flags = madtFlagPCATCompat // dual 8259 PICs present
	}
	t = appendLE32(t, flags)

	x2apicMode := false
	for uid := 0; uid < cfg.CPUs; uid++ {
		id := cpuAPICID(uid)
		if id < firstX2APICID {
			t = append(t, madtTypeLocalAPIC, 8, byte(uid), byte(id))
			t = appendLE32(t, lapicFlagEnabled)
			continue
		}
		x2apicMode = true
		t = append(t, madtTypeLocalX2APIC, 16, 0, 0)
		t = appendLE32(t, id)
		t = appendLE32(t, lapicFlagEnabled)
		t = appendLE32(t, uint32(uid))
	}

	t = append(t, madtTypeIOAPIC, 12, ioapicID, 0)
	t = appendLE32(t, ioapicDefaultAddress)
	t = appendLE32(t, 0) // GSI base

	iso := func(src byte, gsi uint32, flags uint16) {
		t = append(t, madtTypeIntSrcOverride, 10, 0 /* ISA bus */, src)
		t = appendLE32(t, gsi)
		t = appendLE16(t, flags)
	}
	// The PIT's IRQ0 is wired to IOAPIC pin 2 on every PC machine (apic_xrupt_override).
	if cfg.profile().legacyISAOverrides {
		// Pre-9.2 profile: an explicit edge/active-high override for every ISA IRQ.
		iso(0, 2, isoFlagsHighEdge)
		for irq := byte(1); irq < 16; irq++ {
			iso(irq, uint32(irq), isoFlagsHighEdge)
		}
	} else {
		// Upstream: IRQ0 conforms to the bus; only the PCI-routable IRQs are level-triggered
		// and need an override.
		iso(0, 2, isoFlagsConforming)
		for irq := byte(1); irq < 16; irq++ {
			if q35PCIIRQMask&(1<<irq) != 0 {
				iso(irq, uint32(irq), isoFlagsHighLevel)
			}
		}
	}

	if x2apicMode {
		t = append(t, madtTypeLocalX2APICNMI, 12)
		t = appendLE16(t, 0) // flags
		t = appendLE32(t, lintAllProcessorsX2APIC)
		t = append(t, acpiLINT1, 0, 0, 0)
	} else {
		t = append(t, madtTypeLocalAPICNMI, 6, lintAllProcessorsXAPIC)
		t = appendLE16(t, 0) // flags
		t = append(t, acpiLINT1)
	}
	return table{sig: "APIC", data: endTable(t), checksum: true, inRSDT: true}
}

// q35 MMCONFIG window (hw/pci-host/q35.c: MCH_HOST_BRIDGE_PCIEXBAR_DEFAULT / _MAX).
const (
	q35MMConfigBase = 0xe0000000
	q35MMConfigSize = 0x10000000
)

// buildMCFG: revision 1, build_mcfg (hw/acpi/pci.c), one allocation for segment 0.
func buildMCFG() table {
	t := beginTable("MCFG", 1)
	t = appendLE64(t, 0) // reserved
	t = appendLE64(t, q35MMConfigBase)
	t = appendLE16(t, 0)                            // PCI segment group
	t = append(t, 0, byte((q35MMConfigSize-1)>>20)) // start bus, end bus (1 MiB per bus)
	t = appendLE32(t, 0)                            // reserved
	return table{sig: "MCFG", data: endTable(t), checksum: true, inRSDT: true}
}

// buildWAET: revision 1, build_waet: only "ACPI PM timer good".
func buildWAET() table {
	t := beginTable("WAET", 1)
	t = appendLE32(t, 1<<1)
	return table{sig: "WAET", data: endTable(t), checksum: true, inRSDT: true}
}

// buildRSDT: revision 1, build_rsdt: one 32-bit pointer per listed table, each patched by
// the loader, in listing order.
func buildRSDT(listed []string) table {
	t := beginTable("RSDT", 1)
	ptrs := make([]tablePointer, 0, len(listed))
	for _, sig := range listed {
		ptrs = append(ptrs, tablePointer{offset: len(t), size: 4, target: sig})
		t = appendLE32(t, 0)
	}
	return table{sig: "RSDT", data: endTable(t), pointers: ptrs, checksum: true}
}
