package acpi

import (
	"fmt"
)

// Limits of the machine shapes Build accepts. Anything QEMU itself would refuse is an error;
// anything QEMU accepts but this package has no reference tables for wraps ErrNotSupported.
const (
	MinMemoryBytes = 1 << 20 // 1 MiB
	MaxMemoryBytes = 1 << 40 // 1 TiB

	// x86 physical addresses are at most 52 bits wide; the 64-bit PCI window must fit.
	maxPhysAddrBits = 52

	// -nodefaults q35 leaves pcie.0 slots 1..30 free: 0 is the MCH, 31 the ICH9 functions.
	pcieRootFreeSlots = 30
	// dstack's pxb-pcie expander for hugepages GPUs sits at addr=10 (hex) on pcie.0.
	pxbPCIeSlot = 0x10
	// Root ports behind the expander: one per slot of its bus.
	pxbPCIeSlots = 32

	q35Hole64Default = 1 << 35 // Q35_PCI_HOST_HOLE64_SIZE_DEFAULT
)

// MaxCPUs is the q35 machine's vCPU limit in the given QEMU release (pc_q35.c max_cpus: 288
// up to the 8.0 machine, 1024 for 8.1 and 8.2, 4096 from 9.0; still 4096 for the 10.1
// machine).
func MaxCPUs(v Version) int {
	switch {
	case v.Less(Version{8, 1, 0}):
		return 288
	case v.Less(Version{9, 0, 0}):
		return 1024
	default:
		return 4096
	}
}

// Validate checks cfg before anything is built or allocated. The error names the offending
// field; shapes QEMU runs but this package cannot reproduce wrap ErrNotSupported.
func (c *MachineConfig) Validate() error {
	// Every profile dstack can meet is listed in profile.go; one whose DSDT this package cannot
	// build yet is refused here with ErrNotSupported.
	p, err := supportedProfile(c.ProfileVersion())
	if err != nil {
		return err
	}
	return c.validateShape(p)
}

// validateShape checks everything but whether the profile's DSDT is supported: the machine
// shape against the limits of p's QEMU.
func (c *MachineConfig) validateShape(p profile) error {
	v := c.QEMUVersion
	if max := MaxCPUs(v); c.CPUs < 1 || c.CPUs > max {
		return fmt.Errorf("vCPU count %d (cpu_count): QEMU %s's q35 machine accepts 1 to %d", c.CPUs, v, max)
	}

	switch {
	case c.MemoryBytes < MinMemoryBytes || c.MemoryBytes > MaxMemoryBytes:
		return fmt.Errorf("memory %s (memory_size): want 1 MiB to 1 TiB", HumanBytes(c.MemoryBytes))
	case c.MemoryBytes%mib != 0:
		// dstack passes -m in MiB; a finer size would be a different command line.
		return fmt.Errorf("memory %d bytes (memory_size): not a whole number of MiB, which is how dstack-vmm passes it", c.MemoryBytes)
	}

	switch c.HostShareMode {
	case HostShare9p, HostShareVVFAT:
	default:
		return fmt.Errorf("host share mode %q (host_share_mode): want %q or %q", c.HostShareMode, HostShare9p, HostShareVVFAT)
	}

	if err := c.validateTDX(p); err != nil {
		return err
	}
	if err := c.validateDevices(); err != nil {
		return err
	}
	if err := c.validateHole64(); err != nil {
		return err
	}
	return c.validateHugepages()
}

// validateTDX refuses what QEMU's TDX support refuses at launch: from 10.1 an explicit pic=on
// or smm=on (tdx_kvm_init, qemu/qemu@e7ef60892c80 and @810d4e83d07c).
func (c *MachineConfig) validateTDX(p profile) error {
	if !p.tdxRefusesPICAndSMM {
		return nil
	}
	if c.PIC != nil && *c.PIC {
		return fmt.Errorf("PIC on (pic): QEMU %s refuses it for TDX (\"TDX VM doesn't support PIC\")", c.QEMUVersion)
	}
	if c.SMM {
		return fmt.Errorf("SMM on (smm): QEMU %s refuses it for TDX (\"TDX VM doesn't support SMM\")", c.QEMUVersion)
	}
	return nil
}

func (c *MachineConfig) validateDevices() error {
	for _, f := range []struct {
		name string
		n    int
	}{
		{"NICs (num_nics)", c.NumNICs},
		{"verity volumes (num_verity_volumes)", c.NumVerityVolumes},
		{"GPUs (num_gpus)", c.NumGPUs},
		{"NVSwitches (num_nvswitches)", c.NumNVSwitches},
	} {
		if f.n < 0 || f.n > pcieRootFreeSlots+pxbPCIeSlots {
			return fmt.Errorf("%d %s: want 0 to %d", f.n, f.name, pcieRootFreeSlots+pxbPCIeSlots)
		}
	}
	if c.NumNVSwitches > 0 && c.NumGPUs == 0 {
		// NVSwitches are passed through with iommufd=iommufd0, an object dstack only creates
		// for GPUs: QEMU fails with "Device 'iommufd0' not found".
		return fmt.Errorf("%d NVSwitches (num_nvswitches) without GPUs: dstack-vmm's QEMU command line fails (no iommufd object)", c.NumNVSwitches)
	}

	// Devices QEMU places on pcie.0's first free slots, in command-line order: boot disk,
	// verity volumes, NICs, vsock, the host share (9p or vvfat disk), the root disk when it is
	// virtio-blk (a CD-ROM hangs off the ICH9 AHCI instead).
	auto := 1 + c.NumVerityVolumes + c.NumNICs + 1 + 1
	if c.RootVerity {
		auto++
	}
	used := auto + c.NumGPUs + c.NumNVSwitches
	if c.hasExpander() {
		if auto >= pxbPCIeSlot {
			return fmt.Errorf("%d PCI devices take pcie.0 slot 0x%x, which the hugepages pxb-pcie expander needs", auto, pxbPCIeSlot)
		}
		if c.NumGPUs > pxbPCIeSlots {
			return fmt.Errorf("%d GPUs (num_gpus): the hugepages pxb-pcie expander has %d slots", c.NumGPUs, pxbPCIeSlots)
		}
		used = auto + len(c.numaExpanders()) + c.NumNVSwitches // GPU root ports sit behind the expanders
	}
	if used > pcieRootFreeSlots {
		return fmt.Errorf("the machine needs %d pcie.0 slots (disks, NICs, GPU/NVSwitch root ports); q35 has %d", used, pcieRootFreeSlots)
	}
	return nil
}

// hole64Size is the q35 pci-hole64-size property QEMU uses.
func (c *MachineConfig) hole64Size() uint64 {
	if c.PCIHole64SizeSet {
		return c.PCIHole64Size
	}
	return q35Hole64Default
}

// hole64Start is pc_pci_hole64_start for a machine without hotpluggable memory: the end of
// RAM above 4 GiB, rounded up to 1 GiB.
func (c *MachineConfig) hole64Start() uint64 {
	_, above := c.RAMSplit()
	return uint64(alignUp(int(c.ramAbove4GBase()+above), gib))
}

func (c *MachineConfig) validateHole64() error {
	if !c.PCIHole64SizeSet && c.PCIHole64Size != 0 {
		return fmt.Errorf("acpi: MachineConfig.PCIHole64Size = %d but PCIHole64SizeSet is false", c.PCIHole64Size)
	}
	if c.hole64Size() > 1<<maxPhysAddrBits-c.hole64Start() {
		return fmt.Errorf("pci_hole64_size %s: the 64-bit PCI window would end beyond the %d-bit physical address space", HumanBytes(c.PCIHole64Size), maxPhysAddrBits)
	}
	return nil
}

func (c *MachineConfig) validateHugepages() error {
	switch c.HugepagesBackend {
	case "", HugepagesPlain, HugepagesDstack:
	default:
		return fmt.Errorf("acpi: MachineConfig.HugepagesBackend = %q: want %q or %q", c.HugepagesBackend, HugepagesPlain, HugepagesDstack)
	}
	return c.validateNUMANodes()
}

// maxNUMAExpanders: dstack-vmm writes node i's expander address as addr={10+i} in decimal and
// QEMU reads it as hex, so nodes 0..9 get slots 0x10..0x19 and node 10's "20" is refused by
// QEMU ("Property 'pxb-pcie.addr' doesn't take value '20'", QEMU 10.2.2).
const maxNUMAExpanders = 10

// validateNUMANodes refuses NUMA layouts QEMU or dstack-vmm would refuse. GPUs behind the
// expanders are Build's to refuse (checkTablesStable), like the single node's.
func (c *MachineConfig) validateNUMANodes() error {
	n := len(c.NUMANodes)
	if n == 0 {
		return nil
	}
	if !c.Hugepages {
		return fmt.Errorf("acpi: %d NUMA nodes (numa_nodes) without hugepages: dstack-vmm builds guest NUMA nodes only for hugepages VMs", n)
	}
	if n > maxNUMAExpanders {
		return fmt.Errorf("acpi: %d NUMA nodes: dstack-vmm names expander slots addr=10..19, which QEMU reads as hex; node %d's addr=20 is refused, so at most %d nodes", n, maxNUMAExpanders, maxNUMAExpanders)
	}
	seen := map[int]bool{}
	for i, node := range c.NUMANodes {
		switch {
		case node.PXBBus <= 0 || node.PXBBus > 0xff:
			return fmt.Errorf("acpi: NUMA node %d: expander bus %d: want 1..255 (bus 0 is the root bus)", i, node.PXBBus)
		case seen[node.PXBBus]:
			return fmt.Errorf("acpi: NUMA node %d: expander bus %d is used by another node", i, node.PXBBus)
		}
		seen[node.PXBBus] = true
	}
	if c.CPUs%n != 0 {
		return fmt.Errorf("acpi: %d vCPUs do not split evenly across %d NUMA nodes", c.CPUs, n)
	}
	if c.MemoryBytes%uint64(n) != 0 {
		return fmt.Errorf("acpi: %d bytes of memory do not split evenly across %d NUMA nodes", c.MemoryBytes, n)
	}
	return nil
}

// HumanBytes prints a byte count with the largest binary unit that divides it exactly.
func HumanBytes(v uint64) string {
	for _, u := range []struct {
		shift  uint
		suffix string
	}{{50, "PiB"}, {40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if v != 0 && v%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", v>>u.shift, u.suffix)
		}
	}
	return fmt.Sprintf("%d bytes", v)
}
