package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/acpi"
	"github.com/dstack-mr/dstack-mr/mr"
)

const machineCategory = "VM shape"

// machineFlags are shared by every command that needs a VM shape. Names and defaults follow
// upstream dstack-mr so existing scripts carry over.
func machineFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cpu", Aliases: []string{"c"}, Value: "1", Category: machineCategory,
			Usage: "vCPU count; a comma-separated list measures several shapes (e.g. 1,2,4,8). Default as upstream dstack-mr"},
		&cli.StringFlag{Name: "memory", Aliases: []string{"m"}, Value: "2G", Category: machineCategory,
			Usage: "guest memory: bytes, 0x-hex bytes, or a number with K, M, G or T, binary as QEMU's -m reads them (2G = 2 GiB = 2147483648 bytes; KB/MB/GB/TB and KiB/MiB/GiB/TiB mean the same); a comma-separated list measures several shapes. Default as upstream dstack-mr"},
		&cli.StringFlag{Name: "qemu-version", Value: "9.1.0", Category: machineCategory,
			Usage: "QEMU version X.Y.Z the VM runs on, 8.0 to 11.1.x (dstack's production QEMU, a fork of 9.2.1, declares 11.1 and builds 11.1's ACPI tables): 8.x means two-pass MRTD and PIC on, 9.0+ single-pass and PIC off. Default: what dstack-mr assumes when a vm_config names no version"},
		&cli.BoolFlag{Name: "assume-newest-acpi-profile", Category: machineCategory,
			Usage: "build a QEMU release newer than the newest ACPI profile (11.1) with that profile instead of refusing it; the output then carries a warning"},
		&cli.BoolFlag{Name: "two-pass-add-pages", Category: machineCategory, DefaultText: "from --qemu-version",
			Usage: "override the QEMU version's MRTD page-add order (true: all pages first, as QEMU 8.x)"},
		&cli.BoolFlag{Name: "pic", Category: machineCategory, DefaultText: "from --qemu-version", Usage: "override the QEMU version's PIC default"},
		&cli.BoolFlag{Name: "smm", Category: machineCategory, Usage: "machine has SMM on"},
		&cli.IntFlag{Name: "num-nics", Value: 1, Category: machineCategory, Usage: "virtio-net NICs (dstack-vmm's default network: 1)"},
		&cli.IntFlag{Name: "num-verity-volumes", Value: 0, Category: machineCategory, Usage: "extra virtio-blk verity volumes"},
		&cli.IntFlag{Name: "num-gpus", Value: 0, Category: machineCategory, Usage: "passthrough GPUs (vfio-pci behind pcie-root-ports). On the root bus with ACPI PCI hotplug on, built for QEMU 10.1-10.2 only (proven against QEMU 10.2.2 and a real 8xB200 CVM); other versions need --hotplug-off"},
		&cli.IntFlag{Name: "num-nvswitches", Value: 0, Category: machineCategory, Usage: "passthrough NVSwitches (behind pcie-root-ports on the root bus; with ACPI PCI hotplug on, as --num-gpus: QEMU 10.1-10.2 only)"},
		&cli.BoolFlag{Name: "hotplug-off", Category: machineCategory, Usage: "ACPI PCI hotplug with bridge support off. Default off as dstack-vmm ships it (vmm.toml qemu_hotplug_off = false); dstack's GPU hosts turn it on"},
		&cli.BoolFlag{Name: "root-verity", Value: true, Category: machineCategory,
			Usage: "root disk as virtio-blk (true) or CD-ROM (false)"},
		&cli.StringFlag{Name: "pci-hole64-size", Category: machineCategory,
			Usage: "q35-pcihost.pci-hole64-size (bytes, 0x-hex or K/M/G/T); unset keeps QEMU's default"},
		&cli.BoolFlag{Name: "hugepages", Category: machineCategory, Usage: "hugepages backing as dstack-vmm launches it: NUMA node 0 with every vCPU and all RAM (SRAT) and a pxb-pcie expander on bus 5, GPUs behind it; --memory in whole GiB"},
		&cli.StringFlag{Name: "numa-nodes", Category: machineCategory, DefaultText: "the layout --hugepages implies",
			Usage: "guest NUMA nodes of a hugepages VM, one pxb-pcie expander bus per node (vm_config numa_nodes), e.g. 5,6,8: vCPUs and memory split evenly, node i's expander at slot 0x10+i; at most 10 nodes. With GPUs (behind the expanders) refused as not supported yet"},
		&cli.StringFlag{Name: "host-share-mode", Value: "9p", Category: machineCategory,
			Usage: "how the host config is shared: 9p or vvfat"},
		&cli.StringFlag{Name: "qemu-build", Value: "upstream", Category: machineCategory,
			Usage: "which QEMU loads the kernel: upstream (QEMU >= 10.2 measures it unpatched; confirmed by real captures) or dstack-fork (dstack's production QEMU, a fork of 9.2.1 that declares 11.1 (see --qemu-version): patches the kernel header at every declared version). Moot for normalized kernels"},
		&cli.BoolFlag{Name: "no-kernel-patch", Category: machineCategory, DefaultText: "from QEMU version and firmware",
			Usage: "measure the kernel without QEMU's setup-header patch. Default: unpatched from QEMU 10.2 (no patch for TDX guests) and from QEMU 10.0 when the firmware reads QEMU's unpatched etc/boot/kernel; patched otherwise"},
	}
}

// machineShape is one VM shape requested on the command line.
type machineShape struct {
	Config        acpi.MachineConfig
	TwoPass       *bool
	NoKernelPatch *bool // nil: derived from the QEMU version and the firmware
	QEMUBuild     mr.QEMUBuild
}

// machineShapes expands the --cpu and --memory lists into every combination, CPUs outermost.
func machineShapes(c *cli.Context) ([]machineShape, error) {
	base, err := baseMachine(c)
	if err != nil {
		return nil, err
	}
	cpus, err := splitList("cpu", c.String("cpu"))
	if err != nil {
		return nil, err
	}
	mems, err := splitList("memory", c.String("memory"))
	if err != nil {
		return nil, err
	}
	if v := base.Config.QEMUVersion; v.NewerThanNewestProfile() && !base.Config.AssumeNewestProfile {
		n := acpi.NewestProfile()
		return nil, fmt.Errorf("--qemu-version %s: newer than the newest ACPI profile (%d.%d), whose tables QEMU %d.%d may have changed; "+
			"a published value must not be a guess. Pass --assume-newest-acpi-profile to build with the %d.%d profile anyway",
			v, n.Major, n.Minor, v.Major, v.Minor, n.Major, n.Minor)
	}
	var shapes []machineShape
	for _, cs := range cpus {
		n, err := strconv.Atoi(cs)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--cpu %q: want a positive whole number", cs)
		}
		for _, ms := range mems {
			m, err := parseSize(ms)
			if err != nil {
				return nil, fmt.Errorf("--memory: %w", err)
			}
			if m == 0 {
				return nil, fmt.Errorf("--memory %q: must be more than 0", ms)
			}
			if m < acpi.MinMemoryBytes && isDigits(ms) {
				// Upstream dstack-mr reads a bare number as bytes; the original Go tool's -ram
				// took MiB. Say which was meant rather than fail deep in the firmware layout.
				return nil, fmt.Errorf("--memory %s: a bare number is bytes, and %d bytes cannot hold the firmware: did you mean %sM?", ms, m, ms)
			}
			if base.Config.Hugepages && m%mr.HugepagesGranule != 0 {
				// --memory is what QEMU gets; dstack-vmm only ever gives a hugepages VM whole
				// GiB (verify applies its rounding to vm_config's memory_size).
				return nil, fmt.Errorf("--memory %s with --hugepages: dstack-vmm launches hugepages VMs with whole GiB (memory_size %s would get %s)",
					ms, formatSize(m), formatSize(m/mr.HugepagesGranule*mr.HugepagesGranule))
			}
			for _, prev := range shapes {
				if prev.Config.CPUs == n && prev.Config.MemoryBytes == m {
					return nil, fmt.Errorf("--cpu/--memory: the shape %d vCPU, %s is listed twice", n, formatSize(m))
				}
			}
			s := base
			s.Config.CPUs = n
			s.Config.MemoryBytes = m
			shapes = append(shapes, s)
		}
	}
	return shapes, nil
}

func baseMachine(c *cli.Context) (machineShape, error) {
	var s machineShape
	v, err := acpi.ParseVersion(c.String("qemu-version"))
	if err != nil {
		return s, fmt.Errorf("--qemu-version: %w", err)
	}
	if !v.AtLeast(8, 0, 0) {
		return s, fmt.Errorf("--qemu-version %s: versions below 8.0 are not supported", v)
	}
	cfg := acpi.MachineConfig{
		QEMUVersion:         v,
		SMM:                 c.Bool("smm"),
		NumNICs:             c.Int("num-nics"),
		NumVerityVolumes:    c.Int("num-verity-volumes"),
		NumGPUs:             c.Int("num-gpus"),
		NumNVSwitches:       c.Int("num-nvswitches"),
		HotplugOff:          c.Bool("hotplug-off"),
		RootVerity:          c.Bool("root-verity"),
		Hugepages:           c.Bool("hugepages"),
		HostShareMode:       acpi.HostShareMode(c.String("host-share-mode")),
		AssumeNewestProfile: c.Bool("assume-newest-acpi-profile"),
	}
	for name, n := range map[string]int{"num-nics": cfg.NumNICs, "num-verity-volumes": cfg.NumVerityVolumes,
		"num-gpus": cfg.NumGPUs, "num-nvswitches": cfg.NumNVSwitches} {
		if n < 0 {
			return s, fmt.Errorf("--%s %d: must not be negative", name, n)
		}
	}
	switch cfg.HostShareMode {
	case acpi.HostShare9p, acpi.HostShareVVFAT:
	default:
		return s, enumError("host-share-mode", string(cfg.HostShareMode), []string{"9p", "vvfat"})
	}
	if c.IsSet("pic") {
		pic := c.Bool("pic")
		cfg.PIC = &pic
	}
	if c.IsSet("numa-nodes") {
		buses, err := splitList("numa-nodes", c.String("numa-nodes"))
		if err != nil {
			return s, err
		}
		for _, b := range buses {
			n, err := strconv.Atoi(b)
			if err != nil {
				return s, fmt.Errorf("--numa-nodes %q: want a comma-separated list of expander bus numbers", c.String("numa-nodes"))
			}
			cfg.NUMANodes = append(cfg.NUMANodes, acpi.NUMANode{PXBBus: n})
		}
	}
	if c.IsSet("pci-hole64-size") {
		size, err := parseSize(c.String("pci-hole64-size"))
		if err != nil {
			return s, fmt.Errorf("--pci-hole64-size: %w", err)
		}
		cfg.PCIHole64Size, cfg.PCIHole64SizeSet = size, true
	}
	s.Config = cfg
	if c.IsSet("two-pass-add-pages") {
		tp := c.Bool("two-pass-add-pages")
		s.TwoPass = &tp
	}
	switch b := mr.QEMUBuild(c.String("qemu-build")); b {
	case "": // a command without the flag (acpi): the build does not reach its output
	case mr.QEMUBuildUpstream, mr.QEMUBuildDstackFork:
		s.QEMUBuild = b
	default:
		return s, enumError("qemu-build", string(b), []string{"upstream", "dstack-fork"})
	}
	if c.IsSet("no-kernel-patch") {
		nkp := c.Bool("no-kernel-patch")
		s.NoKernelPatch = &nkp
	}
	return s, nil
}

// shapeKeyFlags maps the vm_config keys the libraries name in their errors to the flags a
// measure or acpi user typed.
var shapeKeyFlags = strings.NewReplacer(
	"(cpu_count)", "(--cpu)", "(memory_size)", "(--memory)", "(qemu_version)", "(--qemu-version)",
	"(num_nics)", "(--num-nics)", "(num_verity_volumes)", "(--num-verity-volumes)", "(num_gpus)", "(--num-gpus)",
	"(num_nvswitches)", "(--num-nvswitches)", "(host_share_mode)", "(--host-share-mode)", "(pic)", "(--pic)",
	"(smm)", "(--smm)", "pci_hole64_size ", "--pci-hole64-size ", "vm_config qemu_hotplug_off, ", "",
)

// inFlagTerms rewrites a shape error in the terms of the command line.
func inFlagTerms(err error) error {
	if err == nil {
		return nil
	}
	return flagTermsError{err}
}

type flagTermsError struct{ err error }

func (e flagTermsError) Error() string { return shapeKeyFlags.Replace(e.err.Error()) }
func (e flagTermsError) Unwrap() error { return e.err }

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
