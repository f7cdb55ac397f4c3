// Package acpi synthesizes, byte for byte, the ACPI blobs QEMU's q35 machine hands a dstack
// TDX guest over fw_cfg: etc/acpi/tables, etc/acpi/rsdp and etc/table-loader.
//
// The output depends on the QEMU release (profile.go; PROFILES.md says what each release
// changed and how each profile is proven): 8.0 to 11.1.x are supported, later releases are
// refused with ErrNotSupported until their sources have been read, unless the caller explicitly
// assumes the newest profile (MachineConfig.AssumeNewestProfile).
package acpi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrNotSupported marks machine shapes or QEMU profiles this package cannot build yet.
// Callers must surface it instead of guessing: a wrong ACPI digest is worse than none.
var ErrNotSupported = errors.New("not supported yet")

// Version is a QEMU release. Only major.minor.micro matter for ACPI and measurement profiles.
type Version struct {
	Major, Minor, Micro int
}

// ParseVersion accepts "X.Y.Z" or "X.Y".
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, fmt.Errorf("QEMU version %q: want X.Y.Z", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > 1000 {
			return Version{}, fmt.Errorf("QEMU version %q: bad component %q", s, p)
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro) }

// Less reports whether v is an older release than o.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Micro < o.Micro
}

// AtLeast reports whether v is o or newer.
func (v Version) AtLeast(major, minor, micro int) bool {
	return !v.Less(Version{major, minor, micro})
}

// HostShareMode is how dstack-vmm shares the host config directory with the guest.
type HostShareMode string

const (
	HostShare9p    HostShareMode = "9p"    // -virtfs local,... (virtio-9p-pci)
	HostShareVVFAT HostShareMode = "vvfat" // an extra read-only virtio-blk disk
)

// MachineConfig is the shape of the q35 TDX VM dstack-vmm launches. Its fields mirror the
// machine flags of the CLI and the config of ../shared/acpi-oracle/index.jsonl.
type MachineConfig struct {
	CPUs             int     // -smp N
	MemoryBytes      uint64  // -m
	QEMUVersion      Version // ACPI compatibility profile
	PIC              *bool   // nil: the version's default (on below 9.0, off from 9.0)
	SMM              bool
	NumNICs          int
	NumVerityVolumes int
	NumGPUs          int
	NumNVSwitches    int
	HotplugOff       bool   // -global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off
	PCIHole64Size    uint64 // 0: not set on the command line
	PCIHole64SizeSet bool   // distinguishes an explicit 0 from "not set"
	RootVerity       bool   // root disk as virtio-blk (true) or CD-ROM (false)
	HostShareMode    HostShareMode
	// Hugepages: NUMA node 0 holding every vCPU and all RAM (SRAT), and a pxb-pcie expander on
	// bus 5 for that node, the GPUs' root ports behind it. dstack-vmm adds the expander with or
	// without GPUs ever since vm_config carries hugepages (v0.5.4, commit e49e4f29).
	Hugepages bool
	// HugepagesBackend is how the hugepage memory backend is bound to host NUMA nodes; only
	// meaningful with Hugepages. The zero value means HugepagesPlain.
	HugepagesBackend HugepagesBackend
	// NUMANodes is dstack-vmm's guest NUMA layout (vm_config numa_nodes): one entry per guest
	// node, naming the bus of that node's pxb-pcie expander. Empty: the layout Hugepages implies
	// (one node, its expander on bus 5). Only that layout is supported yet; more nodes are
	// refused with ErrNotSupported until proven against real QEMU.
	NUMANodes []NUMANode
	// AssumeNewestProfile builds a QEMU release newer than the newest ACPI profile with that
	// profile instead of refusing it. The result is a guess about a release nobody has read:
	// callers must say so wherever they show it.
	AssumeNewestProfile bool

	// amdHTRelocation reproduces tables dumped under TCG with an AMD CPU model, whose RAM above
	// 4 GiB pc_memory_init moved to 1 TiB: never a TD's layout, so unexported. Tests use it to
	// show that a published golden differing from a TD's tables differs for exactly that reason.
	amdHTRelocation bool

	// hugepagesWithoutExpander reproduces upstream dstack-mr's own command line for a hugepages
	// VM without GPUs: NUMA node 0 but no pxb-pcie expander. No dstack-vmm release launches that
	// machine (before v0.5.4 it ignored hugepages without GPUs, and its vm_config had no
	// hugepages field; since, it adds the expander), so it stays unexported: tests use it to
	// keep checking SRAT and memory layouts against the oracle dumps of that command line.
	hugepagesWithoutExpander bool
}

// hasExpander: the machine has dstack's pxb-pcie expander on bus 5 (hugepages).
func (c *MachineConfig) hasExpander() bool {
	return c.Hugepages && (c.NumGPUs > 0 || !c.hugepagesWithoutExpander)
}

// NUMANode is one guest NUMA node of a multi-node GPU VM.
type NUMANode struct {
	PXBBus int `json:"pxb_bus"` // bus number of the node's pxb-pcie expander
}

// HugepagesBackend selects the -object memory-backend-file options of a hugepages VM. Where the
// host places guest memory is not in the guest's ACPI tables: both backends build the same
// blobs (upstream QEMU 11.0.3 dumps identical tables for both, testdata/acpi-upstream).
type HugepagesBackend string

const (
	// HugepagesPlain: memory-backend-file,...,share=on,prealloc=no (no host-node binding).
	HugepagesPlain HugepagesBackend = "plain"
	// HugepagesDstack: dstack-vmm's ...,host-nodes=N,policy=bind. dstack's 9.2-based oracle
	// QEMU was built without NUMA binding support and refuses it; a QEMU with it (as any
	// dstack host that binds hugepages runs) builds the plain backend's tables.
	HugepagesDstack HugepagesBackend = "dstack"
)

// PICEnabled resolves the PIC default for the configured QEMU version.
func (c *MachineConfig) PICEnabled() bool {
	if c.PIC != nil {
		return *c.PIC
	}
	if p, ok := c.ProfileVersion().acpiProfile(); ok {
		return p.picDefault
	}
	return !c.QEMUVersion.AtLeast(9, 0, 0)
}

// ProfileVersion is the QEMU version whose ACPI profile the tables are built with: the
// configured one, or the newest profile's for a newer release under AssumeNewestProfile.
func (c *MachineConfig) ProfileVersion() Version {
	if c.NewestProfileAssumed() {
		return NewestProfile()
	}
	return c.QEMUVersion
}

// NewestProfileAssumed reports whether the tables stand on an assumption: the configured QEMU
// is newer than every profile and AssumeNewestProfile lets the newest one build them.
func (c *MachineConfig) NewestProfileAssumed() bool {
	return c.AssumeNewestProfile && c.QEMUVersion.NewerThanNewestProfile()
}

// profile is the ACPI profile of the configured QEMU version (profile.go). Versions without one
// get the zero profile; Validate refuses them before any builder runs.
func (c *MachineConfig) profile() profile {
	p, _ := c.ProfileVersion().acpiProfile()
	return p
}

// Guest-physical layout constants of QEMU's pc/q35 machine (hw/i386/pc.c, pc_q35.c).
const (
	mib = 1 << 20
	gib = 1 << 30

	// q35 keeps RAM below this address when all of it does not fit under 4 GiB...
	q35LowmemSplit = 0xb0000000
	// ...and then puts only 2 GiB below 4 GiB, keeping guest 1 GiB pages host-aligned.
	q35LowmemLarge = 0x80000000
	// RAM above 4 GiB always starts here for a TD. pc_memory_init moves it to 1 TiB when the
	// address space reaches AMD's HyperTransport hole, but only for AMD vCPUs, and under KVM
	// even "-cpu qemu64" takes the host's vendor (host_cpu_instance_init): Intel, for TDX.
	above4GStart = 4 * gib
	// amdAbove1TiBStart is where that relocation puts it (AMD_ABOVE_1TB_START). Only tables
	// dumped under TCG with an AMD CPU model have it; see MachineConfig.amdHTRelocation.
	amdAbove1TiBStart = 1 << 40
)

// ramAbove4GBase is where RAM above 4 GiB starts in the guest-physical map.
func (c *MachineConfig) ramAbove4GBase() uint64 {
	if c.amdHTRelocation {
		return amdAbove1TiBStart
	}
	return above4GStart
}

// RAMSplit returns how much RAM q35 maps below 4 GiB and how much from 4 GiB upwards
// (pc_q35_init: lowmem is 0xb0000000, or 0x80000000 once RAM reaches 0xb0000000).
func (c *MachineConfig) RAMSplit() (below4G, above4G uint64) {
	lowmem := uint64(q35LowmemSplit)
	if c.MemoryBytes >= q35LowmemSplit {
		lowmem = q35LowmemLarge
	}
	if c.MemoryBytes >= lowmem {
		return lowmem, c.MemoryBytes - lowmem
	}
	return c.MemoryBytes, 0
}
