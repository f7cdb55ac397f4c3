package acpi

import (
	"encoding/binary"
	"fmt"
)

// Blobs are the three fw_cfg files the firmware measures into RTMR0.
type Blobs struct {
	Tables []byte       // etc/acpi/tables, zero padded to QEMU's fixed blob size
	RSDP   []byte       // etc/acpi/rsdp
	Loader []byte       // etc/table-loader, zero padded
	List   []TableEntry // where each table sits inside Tables
}

// TableEntry locates one ACPI table inside the tables blob.
type TableEntry struct {
	Signature string `json:"signature"`
	Offset    int    `json:"offset"`
	Length    int    `json:"length"`
}

// Build synthesizes the blobs QEMU generates for cfg. It validates cfg first; shapes this
// package cannot reproduce yet yield an error wrapping ErrNotSupported.
func Build(cfg MachineConfig) (*Blobs, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dsdt, err := buildDSDT(&cfg)
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
	return &Blobs{Tables: blob, RSDP: rsdp, Loader: l.blob(), List: list}, nil
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
