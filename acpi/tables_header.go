package acpi

// The standard ACPI System Description Table header, exactly as QEMU writes it
// (hw/acpi/aml-build.c: acpi_table_begin / acpi_table_end). Shared by every table builder in
// this package, the DSDT builder included:
//
//	t := beginTable("DSDT", 1)  // 36-byte header, Length still 0
//	t = append(t, aml...)       // the table body
//	t = endTable(t)             // fills in Length; Checksum stays 0
//
// or, when the body is already complete, newTable("DSDT", 1, aml).
//
// Header layout and the values QEMU's x86 machines put there (checked against all 1221 oracle
// tables):
//
//	offset size field             value
//	0      4    Signature         sig
//	4      4    Length            whole table incl. header (acpi_table_end)
//	8      1    Revision          per table (DSDT 1, FACP 3, APIC 3, SRAT 1, MCFG 1, WAET 1, RSDT 1)
//	9      1    Checksum          0: QEMU never computes it; the loader's ADD_CHECKSUM command
//	                              makes the firmware do so (bios_linker_loader_add_checksum
//	                              zeroes the byte), so the measured blob carries 0
//	10     6    OEM ID            "BOCHS "
//	16     8    OEM Table ID      "BXPC    " (the x86 machine default, identical for all tables)
//	24     4    OEM Revision      1
//	28     4    Creator ID        "BXPC"
//	32     4    Creator Revision  1

import "encoding/binary"

const (
	tableHeaderLen      = 36
	tableLengthOffset   = 4
	tableChecksumOffset = 9

	qemuOEMID      = "BOCHS "
	qemuOEMTableID = "BXPC    "
	qemuCreatorID  = "BXPC"
)

// beginTable returns the 36-byte header QEMU's acpi_table_begin emits, with Length 0.
// sig must be exactly 4 characters: it is always a constant of this package.
func beginTable(sig string, rev byte) []byte {
	if len(sig) != 4 {
		panic("acpi: table signature must be 4 bytes: " + sig)
	}
	t := make([]byte, 0, 256)
	t = append(t, sig...)
	t = binary.LittleEndian.AppendUint32(t, 0) // Length: set by endTable
	t = append(t, rev, 0)                      // Revision, Checksum
	t = append(t, qemuOEMID...)
	t = append(t, qemuOEMTableID...)
	t = binary.LittleEndian.AppendUint32(t, 1) // OEM Revision
	t = append(t, qemuCreatorID...)
	t = binary.LittleEndian.AppendUint32(t, 1) // Creator Revision
	return t
}

// endTable stores the table's final length in its header, as acpi_table_end does, and
// returns t. The Checksum byte is left 0 (see the package comment above).
func endTable(t []byte) []byte {
	binary.LittleEndian.PutUint32(t[tableLengthOffset:], uint32(len(t)))
	return t
}

// newTable is beginTable + body + endTable.
func newTable(sig string, rev byte, body []byte) []byte {
	return endTable(append(beginTable(sig, rev), body...))
}

// checksum8 returns the byte that makes the 8-bit sum of b (with this byte added) zero: what
// the firmware writes into a table's Checksum field when it runs ADD_CHECKSUM.
func checksum8(b []byte) byte {
	var sum byte
	for _, x := range b {
		sum += x
	}
	return -sum
}

// Little-endian appenders, named by width, keep table builders readable next to the spec.
func appendLE16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendLE32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func appendLE64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
