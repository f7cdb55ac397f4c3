package acpi

// The Root System Description Pointer: ACPI 1.0 form (revision 0, 20 bytes) pointing at the
// RSDT, in its own fw_cfg file because the firmware must place it in the F segment
// (hw/acpi/aml-build.c: build_rsdp).

const (
	rsdpLen              = 20
	rsdpChecksumOffset   = 8
	rsdpRSDTAddrOffset   = 16
	rsdpAlign            = 16
	tablesAlign          = 64 // FACS must be 64-byte aligned, and it comes first
	rsdpRevisionACPI10   = 0
	rsdpSignature        = "RSD PTR "
	rsdpRSDTAddrPtrWidth = 4
)

// buildRSDP allocates etc/acpi/rsdp and issues its pointer to the RSDT at rsdtOffset within
// etc/acpi/tables, then its checksum.
func buildRSDP(l *linker, rsdtOffset int) ([]byte, error) {
	r := make([]byte, 0, rsdpLen)
	r = append(r, rsdpSignature...)
	r = append(r, 0) // checksum: computed by the firmware
	r = append(r, qemuOEMID...)
	r = append(r, rsdpRevisionACPI10)
	r = appendLE32(r, 0) // RSDT address: patched by the loader

	if err := l.alloc(FileRSDP, r, rsdpAlign, loaderZoneFSeg); err != nil {
		return nil, err
	}
	if err := l.addPointer(FileRSDP, rsdpRSDTAddrOffset, rsdpRSDTAddrPtrWidth, FileTables, rsdtOffset); err != nil {
		return nil, err
	}
	if err := l.addChecksum(FileRSDP, 0, rsdpLen, rsdpChecksumOffset); err != nil {
		return nil, err
	}
	return r, nil
}
