package acpi

// The DSDT of dstack's q35 machine, as hw/i386/acpi-build.c build_dsdt emits it (dstack's QEMU
// with its ACPI-dump and QEMU_ACPI_COMPAT_VER changes, the one behind ../testdata/acpi-oracle).
//
// Division of work between the DSDT files:
//
//	dsdt.go          buildDSDT: the top-level order of build_dsdt and the profile switches
//	dsdt_pci.go      the PCI host bridge: PCI0, _OSC, EDSM, DRAC, ACPI PCI hotplug registers,
//	                 _CRS windows, the pxb-pcie expander bridge, the slot layout and Sxx devices
//	dsdt_irq.go      PCI interrupt routing: _PIC, _PRT tables, LNKx/GSIx link devices
//	dsdt_isa.go      the ICH9 LPC bridge's ISA devices, fw_cfg, sleep states
//	dsdt_cpu.go      CPU hotplug (written separately; see the contract below)
//
// Contract with dsdt_cpu.go (build_cpus_aml of hw/acpi/cpu.c):
//
//	func cpuHotplugAML(cfg *MachineConfig) ([]*aml.Term, error)
//
// returns, in order, every term build_cpus_aml appends to the DSDT's root: Scope(_SB) holding
// Device(\_SB.PCI0.PRES) and Device(\_SB.CPUS), then Method(\_GPE._E02). buildDSDT appends them
// right after Scope(_GPE){Name(_HID,"ACPI0006")} and before the expander bridges and the
// Scope(\_SB.PCI0){Name(_CRS)} block, exactly where build_dsdt calls build_cpus_aml. The terms
// are complete (Scope and Method framing included); any error is returned as is.

import (
	"fmt"

	"github.com/dstack-mr/dstack-mr/acpi/aml"
)

// dsdtProfile holds everything in the DSDT that depends on the QEMU version dstack's QEMU was
// told to emulate (QEMU_ACPI_COMPAT_VER). Everything else is the same for every profile.
type dsdtProfile struct {
	// linkTrigger is how the LNKx/GSIx/IQCR Interrupt() descriptors declare PCI interrupts:
	// edge below 9.2 (acpi_dump_irq_trigger), level from 9.2 on.
	linkTrigger aml.LevelEdge
	// pdsmFunc7Guarded: from 9.2 PDSM function 7 returns an uninitialised package unless the
	// slot has an acpi-index (the Windows fix); below 9.2 it always fills in the index.
	pdsmFunc7Guarded bool
	// serialLevelIRQ: COM1's _CRS has IRQ(Level, ActiveLow, Shared) instead of IRQNoFlags (11.1).
	serialLevelIRQ bool
}

func profileFor(cfg *MachineConfig) dsdtProfile {
	p := cfg.profile()
	trigger := aml.Level
	if p.edgeTriggeredLinks {
		trigger = aml.Edge
	}
	return dsdtProfile{linkTrigger: trigger, pdsmFunc7Guarded: p.pdsmFunc7Guarded, serialLevelIRQ: p.serialLevelIRQ}
}

// tablesStage is when QEMU builds the tables: acpi_setup builds them when the machine is
// created; the firmware's first read of any of the three fw_cfg blobs rebuilds them
// (acpi_build_update) from the machine as the reset left it, and that is what a guest reads.
type tablesStage int

const (
	atSetup     tablesStage = iota // what acpi_setup dumps hold
	atFirstRead                    // what the firmware reads and measures
)

// buildDSDT returns the complete DSDT (header included, checksum 0) for cfg as acpi_setup
// builds it.
func buildDSDT(cfg *MachineConfig) ([]byte, error) { return buildDSDTAt(cfg, atSetup) }

// buildDSDTAt returns the DSDT for cfg as QEMU builds it at stage.
func buildDSDTAt(cfg *MachineConfig, stage tablesStage) ([]byte, error) {
	if err := checkDSDTShape(cfg); err != nil {
		return nil, err
	}
	bus, err := pcieRootLayout(cfg, stage)
	if err != nil {
		return nil, fmt.Errorf("DSDT: %w", err)
	}
	cpus, err := cpuHotplugAML(cfg)
	if err != nil {
		return nil, fmt.Errorf("DSDT: %w", err)
	}
	prof := profileFor(cfg)
	hotplug := !cfg.HotplugOff // ICH9-LPC acpi-pci-hotplug-with-bridge-support

	// build_dsdt, q35 branch, in order.
	var root []*aml.Term
	root = append(root, debugPortAML())
	root = append(root, hostBridgeAML(hotplug))
	if hotplug {
		root = append(root, pciHotplugAML(prof))
	}
	root = append(root, pciInterruptsAML(prof)...)
	root = append(root, gpeBlockAML())
	root = append(root, cpus...)
	for _, x := range bus.expanders {
		root = append(root, expanderBridgeAML(x))
	}
	root = append(root, hostBridgeResourcesAML(cfg, bus, hotplug))
	root = append(root, sleepStatesAML())
	root = append(root, aml.Scope(`\_SB.PCI0`).Append(fwCfgAML()))
	root = append(root, aml.Scope(`\_SB`).Append(pciBusDevicesAML(bus, prof)))
	if hotplug {
		// Before the reset no bus has a BSEL, so there is nothing to notify: no PCNT, an
		// empty _E01. After it, every root port's secondary bus has one.
		root = append(root, hotplugNotifyAML(bus)...)
	}

	t := beginTable("DSDT", 1)
	for _, term := range root {
		t = append(t, term.Bytes()...)
	}
	return endTable(t), nil
}

// checkDSDTShape rejects machine shapes whose DSDT has not been verified against real QEMU.
func checkDSDTShape(cfg *MachineConfig) error {
	if cfg.Hugepages && cfg.NumNVSwitches > 0 {
		return fmt.Errorf("DSDT: hugepages machine with NVSwitches: %w", ErrNotSupported)
	}
	return nil
}

// debugPortAML is build_dbg_aml: the DBUG method that prints to QEMU's debug port 0x402.
func debugPortAML() *aml.Term {
	buf, n, i := aml.Local(0), aml.Local(1), aml.Local(2)
	dbug := aml.Method("DBUG", 1, false).Append(
		aml.ToHexString(aml.Arg(0), buf),
		aml.ToBuffer(buf, buf),
		aml.Subtract(aml.SizeOf(buf), aml.Int(1), n),
		aml.Store(aml.Int(0), i),
		aml.While(aml.LLess(i, n)).Append(
			aml.Store(aml.DerefOf(aml.Index(buf, i)), aml.Name("DBGB")),
			aml.Increment(i),
		),
		aml.Store(aml.Int(0x0A), aml.Name("DBGB")),
	)
	return aml.Scope(`\`).Append(
		aml.OperationRegion("DBG", aml.SystemIO, aml.Int(0x0402), 0x01),
		aml.Field("DBG", aml.ByteAcc, aml.NoLock, aml.Preserve).Append(aml.NamedField("DBGB", 8)),
		dbug,
	)
}

// gpeBlockAML is the Scope(_GPE) build_dsdt declares before the CPU hotplug AML. dstack's
// machine has no NVDIMMs, so no _E04.
func gpeBlockAML() *aml.Term {
	return aml.Scope("_GPE").Append(aml.NameDecl("_HID", aml.String("ACPI0006")))
}
