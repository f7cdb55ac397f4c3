package acpi

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"sync"
)

// Blobs are the three fw_cfg files the firmware measures into RTMR0. Treat them as read-only:
// their digests are computed once (SHA384).
type Blobs struct {
	Tables []byte       // etc/acpi/tables, zero padded to QEMU's fixed blob size
	RSDP   []byte       // etc/acpi/rsdp
	Loader []byte       // etc/table-loader, zero padded
	List   []TableEntry // where each table sits inside Tables

	// digests memoizes SHA384 for Blobs made by Build: the same tables are hashed by the
	// prediction and by the ACPI check, and a service serves one shape's tables to many CVMs.
	digests *blobDigests
}

// BlobDigests are the SHA-384 digests of the three blobs, as RTMR0's events carry them.
type BlobDigests struct {
	Tables, RSDP, Loader []byte
}

type blobDigests struct {
	once sync.Once
	d    BlobDigests
}

// SHA384 returns the blobs' digests (copies: the caller may keep or change them).
func (b *Blobs) SHA384() BlobDigests {
	var d BlobDigests
	if b.digests == nil {
		d = b.hash()
	} else {
		b.digests.once.Do(func() { b.digests.d = b.hash() })
		d = b.digests.d
	}
	return BlobDigests{Tables: bytes.Clone(d.Tables), RSDP: bytes.Clone(d.RSDP), Loader: bytes.Clone(d.Loader)}
}

func (b *Blobs) hash() BlobDigests {
	t, r, l := sha512.Sum384(b.Tables), sha512.Sum384(b.RSDP), sha512.Sum384(b.Loader)
	return BlobDigests{Tables: t[:], RSDP: r[:], Loader: l[:]}
}

// TableEntry locates one ACPI table inside the tables blob.
type TableEntry struct {
	Signature string `json:"signature"`
	Offset    int    `json:"offset"`
	Length    int    `json:"length"`
}

// Build synthesizes the blobs a guest of shape cfg reads from QEMU. It validates cfg first;
// shapes this package cannot reproduce yet yield an error wrapping ErrNotSupported.
func Build(cfg MachineConfig) (*Blobs, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.checkTablesStable(); err != nil {
		return nil, err
	}
	return buildAt(cfg, atFirstRead)
}

// checkTablesStable refuses shapes whose tables, as the firmware reads them, are not proven.
// OVMF fetches etc/acpi/tables only after it has connected the PCI root bridges (AcpiPlatformDxe
// waits for that), and the read makes QEMU rebuild the tables (acpi_build_update) from the
// machine as it then is:
//   - with ACPI PCI hotplug on, a pcie-root-port on pcie.0 (a GPU of a machine without an
//     expander, any NVSwitch) has got a BSEL at machine reset (acpi_pcihp_reset ->
//     acpi_set_bsel), and the rebuilt DSDT carries per-slot hotplug AML for that bus (BSEL,
//     PCNT, the _E01 call). Build models it (dsdt_pci.go); it is proven against QEMU dumped
//     at that read for the profiles marked hotplugRootPortsProven and refused for the others;
//   - a pxb-pcie expander's _CRS comes from build_crs, which reads the bus numbers and the
//     windows the firmware has programmed into the bridges behind it (the GPUs' root ports,
//     sized by the GPUs' BARs), and PCI0's _CRS is cut around them. A dump at the firmware's
//     read (QEMU 10.2.2 booting Debian's OVMF under TCG, testdata/README.md) shows it: one
//     device behind a root port behind the expander, and PC05's _CRS gains that port's memory
//     windows and bus 6 while PCI0's windows are cut around them; where a TD's OVMF puts those
//     windows (GPU BAR sizes, its 64-bit aperture) is not modelled. An empty expander stays as
//     acpi_setup built it.
func (c *MachineConfig) checkTablesStable() error {
	if c.Hugepages && c.NumGPUs > 0 {
		return fmt.Errorf("%d GPU(s) behind the hugepages pxb-pcie expander(s): the expanders' resources in the tables the firmware "+
			"measures are the bus numbers and windows a TD's OVMF assigns to the GPUs' root ports (their BAR sizes), which are not modelled yet: %w",
			c.NumGPUs, ErrNotSupported)
	}
	if c.HotplugOff {
		return nil
	}
	if ports := c.NumGPUs + c.NumNVSwitches; ports > 0 && !c.profile().hotplugRootPortsProven {
		return fmt.Errorf("%d GPU/NVSwitch root port(s) on the root PCIe bus with ACPI PCI hotplug on, QEMU %s: "+
			"QEMU adds hotplug AML for them when the VM resets; it is modelled and proven against QEMU 10.2 at the firmware's read, "+
			"but not yet against the QEMU %s ACPI profile, so the tables the firmware measures are not known for it; "+
			"launch with hotplug off (vm_config qemu_hotplug_off, --hotplug-off): %w",
			ports, c.QEMUVersion, c.profile().name, ErrNotSupported)
	}
	return nil
}

// buildAtSetup builds the blobs exactly as QEMU's acpi_setup writes them when the machine is
// created, which is what the real-QEMU dumps this package is checked against hold, including
// shapes checkTablesStable refuses because a guest reads other, rebuilt tables. cfg must be
// valid.
func buildAtSetup(cfg MachineConfig) (*Blobs, error) { return buildAt(cfg, atSetup) }

// buildAt builds the blobs as QEMU builds them at stage. cfg must be valid.
func buildAt(cfg MachineConfig, stage tablesStage) (*Blobs, error) {
	dsdt, err := buildDSDTAt(&cfg, stage)
	if err != nil {
		return nil, fmt.Errorf("acpi: %w", err)
	}
	return assemble(&cfg, dsdt)
}

const (
	// acpi_build pads etc/acpi/tables to a multiple of ACPI_BUILD_TABLE_SIZE (128 KiB) so
	// its size rarely changes across migrations; it only grows past that for huge machines.
	tablesBlobAlign = 0x20000
	// No machine this package accepts comes close; it bounds what assemble trusts from dsdt.
	maxDSDTLen = 16 << 20
)

// assemble lays out every table in acpi_build's order around an already built DSDT and
// derives the loader script from the tables actually present. Validate must have accepted cfg.
func assemble(cfg *MachineConfig, dsdt []byte) (*Blobs, error) {
	if err := checkDSDT(dsdt); err != nil {
		return nil, err
	}

	// acpi_build order: FACS first (the only table with an alignment need), the DSDT, then the
	// tables the RSDT lists, then the RSDT itself.
	tables := []table{
		buildFACS(),
		{sig: "DSDT", data: dsdt, checksum: true},
		buildFADT(cfg),
		buildMADT(cfg),
	}
	if cfg.numaNodes() > 0 {
		tables = append(tables, buildSRAT(cfg))
	}
	tables = append(tables, buildMCFG(), buildWAET())
	var listed []string
	for _, t := range tables {
		if t.inRSDT {
			listed = append(listed, t.sig)
		}
	}
	tables = append(tables, buildRSDT(listed))

	offsets := make(map[string]int, len(tables))
	list := make([]TableEntry, 0, len(tables))
	total := 0
	for _, t := range tables {
		if _, dup := offsets[t.sig]; dup {
			return nil, fmt.Errorf("acpi: table %s built twice", t.sig)
		}
		offsets[t.sig] = total
		list = append(list, TableEntry{Signature: t.sig, Offset: total, Length: len(t.data)})
		total += len(t.data)
	}
	blob := make([]byte, alignUp(total, tablesBlobAlign))
	for i, t := range tables {
		copy(blob[list[i].Offset:], t.data)
	}

	l := newLinker()
	if err := l.alloc(FileTables, blob, tablesAlign, loaderZoneHigh); err != nil {
		return nil, err
	}
	for i, t := range tables {
		off := list[i].Offset
		for _, p := range t.pointers {
			target, ok := offsets[p.target]
			if !ok {
				return nil, fmt.Errorf("acpi: %s points to missing table %s", t.sig, p.target)
			}
			if err := l.addPointer(FileTables, off+p.offset, p.size, FileTables, target); err != nil {
				return nil, fmt.Errorf("acpi: %s: %w", t.sig, err)
			}
		}
		if t.checksum {
			if err := l.addChecksum(FileTables, off, len(t.data), off+tableChecksumOffset); err != nil {
				return nil, fmt.Errorf("acpi: %s: %w", t.sig, err)
			}
		}
	}
	rsdp, err := buildRSDP(l, offsets["RSDT"])
	if err != nil {
		return nil, fmt.Errorf("acpi: RSDP: %w", err)
	}
	return &Blobs{Tables: blob, RSDP: rsdp, Loader: l.blob(), List: list, digests: &blobDigests{}}, nil
}

// checkDSDT rejects a DSDT whose header cannot be what QEMU emitted, before anything trusts it.
func checkDSDT(d []byte) error {
	if len(d) < tableHeaderLen {
		return fmt.Errorf("acpi: DSDT is %d bytes, shorter than a table header", len(d))
	}
	if string(d[:4]) != "DSDT" {
		return fmt.Errorf("acpi: DSDT has signature %q", d[:4])
	}
	if len(d) > maxDSDTLen {
		return fmt.Errorf("acpi: DSDT is %d bytes, over the %d-byte limit", len(d), maxDSDTLen)
	}
	if n := binary.LittleEndian.Uint32(d[tableLengthOffset:]); int(n) != len(d) {
		return fmt.Errorf("acpi: DSDT header length %d but %d bytes given", n, len(d))
	}
	return nil
}

// Warnings lists what a value built for cfg rests on beyond this package's proof: each one
// names the assumption and how to remove it. Build succeeding does not make them go away.
func (c *MachineConfig) Warnings() []string {
	var w []string
	if c.NewestProfileAssumed() {
		n := NewestProfile()
		w = append(w, fmt.Sprintf("acpi-profile: QEMU %s is newer than the newest ACPI profile (%d.%d); the tables were built with the %d.%d profile, "+
			"so a mismatch of the ACPI digests may mean QEMU %d.%d changed the ACPI ABI, not tampering",
			c.QEMUVersion, n.Major, n.Minor, n.Major, n.Minor, c.QEMUVersion.Major, c.QEMUVersion.Minor))
	}
	if c.NumGPUs > 0 && !c.PCIHole64SizeSet {
		w = append(w, fmt.Sprintf("pci-hole64: %d GPU(s) without an explicit pci_hole64_size: QEMU sizes the DSDT's 64-bit PCI window "+
			"to cover the BARs the firmware assigned, which cannot be known ahead of time; this value holds only if they fit "+
			"QEMU's default window. Set pci_hole64_size (vm_config, --pci-hole64-size), as dstack's GPU hosts do", c.NumGPUs))
	}
	return w
}
