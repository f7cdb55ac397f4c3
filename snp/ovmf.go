package snp

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// EDK2 GUIDs in their on-disk (mixed-endian) form. The footer table sits just below the 32
// bytes of the reset vector at the top of an OVMF image; its entries are read backwards, each
// ending with a u16 length (of the whole entry) and a GUID.
var (
	guidFooterTable  = mustGUID("96b582de-1fb2-45f7-baea-a366c55a082d")
	guidHashesTable  = mustGUID("7255371f-3a3b-4b04-927b-1da6efa8d454") // SEV hashes table: u32 GPA, u32 size
	guidSEVESReset   = mustGUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e") // SEV-ES reset block: u32 AP EIP
	guidSEVMetadata  = mustGUID("dc886566-984a-4798-a75e-5585a7bf67cc") // u32 offset of the metadata from the end
	footerTailOffset = 32                                               // reset vector bytes above the table
)

const footerEntryHeader = 18 // u16 length + GUID

// Firmware limits: QEMU maps a -bios image below 4 GiB and wants a multiple of 64 KiB; real
// AmdSev builds are 4 MiB.
const (
	maxFirmwareBytes = 64 << 20
	firmwareAlign    = 64 << 10
	// maxSections bounds the SEV metadata (upstream dstack-mr's limit; real builds have 5-7).
	maxSections = 64
)

// SectionType is an OVMF SEV metadata section type (OvmfPkg/Include/WorkArea.h,
// OVMF_SECTION_TYPE).
type SectionType uint32

const (
	SectionSNPSecMemory    SectionType = 1    // pre-validated memory, measured as zero pages
	SectionSNPSecrets      SectionType = 2    // the PSP's secrets page
	SectionCPUID           SectionType = 3    // the PSP-filtered CPUID page
	SectionSVSMCAA         SectionType = 4    // SVSM calling area, measured as zero pages
	SectionSNPKernelHashes SectionType = 0x10 // QEMU's table of kernel, initrd and cmdline SHA-256
)

func (t SectionType) String() string {
	switch t {
	case SectionSNPSecMemory:
		return "snp-sec-memory"
	case SectionSNPSecrets:
		return "snp-secrets"
	case SectionCPUID:
		return "cpuid"
	case SectionSVSMCAA:
		return "svsm-caa"
	case SectionSNPKernelHashes:
		return "snp-kernel-hashes"
	}
	return fmt.Sprintf("unknown (%#x)", uint32(t))
}

// Section is one item of the firmware's SEV metadata, measured in metadata order.
type Section struct {
	GPA  uint64      `cbor:"gpa" json:"gpa"`
	Size uint64      `cbor:"size" json:"size"`
	Type SectionType `cbor:"type" json:"type"`
}

// Firmware is what an AmdSev OVMF image contributes to the launch digest.
type Firmware struct {
	Size int    // bytes
	GPA  uint64 // where QEMU maps it: 4 GiB minus Size
	// Digest is the launch digest after the firmware's pages, from zero: dstack's ovmf_hash.
	Digest [DigestSize]byte
	// HashesTableGPA is where QEMU puts the table of kernel, initrd and cmdline hashes.
	HashesTableGPA uint32
	// ResetEIP is where the APs start (the SEV-ES reset block).
	ResetEIP uint32
	Sections []Section
}

// ParseFirmware reads an AmdSev OVMF image: its footer GUID table, the SEV metadata it points
// at, and the launch digest of its pages. Every error says which structure is wrong.
func ParseFirmware(data []byte) (*Firmware, error) {
	if len(data) == 0 || len(data)%firmwareAlign != 0 || len(data) > maxFirmwareBytes {
		return nil, fmt.Errorf("firmware is %d bytes: QEMU maps a whole number of 64 KiB blocks (at most %d MiB here)", len(data), maxFirmwareBytes>>20)
	}
	entries, err := footerEntries(data)
	if err != nil {
		return nil, err
	}
	fw := &Firmware{Size: len(data), GPA: 1<<32 - uint64(len(data))}
	var metaOffset uint32
	for _, want := range []struct {
		guid [16]byte
		name string
		dst  *uint32
	}{
		{guidHashesTable, "SEV hashes table", &fw.HashesTableGPA},
		{guidSEVESReset, "SEV-ES reset block", &fw.ResetEIP},
		{guidSEVMetadata, "SEV metadata offset", &metaOffset},
	} {
		var found [][]byte
		for _, e := range entries {
			if e.guid == want.guid {
				found = append(found, e.data)
			}
		}
		switch {
		case len(found) == 0:
			return nil, fmt.Errorf("firmware footer table has no %s entry (%s): not an AmdSev OVMF build (OvmfPkg/AmdSev/AmdSevX64.dsc)", want.name, guidString(want.guid))
		case len(found) > 1:
			return nil, fmt.Errorf("firmware footer table has %d %s entries", len(found), want.name)
		case len(found[0]) < 4:
			return nil, fmt.Errorf("firmware footer %s entry has %d bytes of data, want at least 4", want.name, len(found[0]))
		}
		*want.dst = binary.LittleEndian.Uint32(found[0])
		if *want.dst == 0 && want.guid == guidHashesTable {
			return nil, fmt.Errorf("firmware reserves no SEV hashes table (its footer entry is zero): QEMU's kernel-hashes=on needs an AmdSev build (OvmfPkg/AmdSev/AmdSevX64.dsc), as an image's bios-sev is")
		}
		if *want.dst == 0 {
			return nil, fmt.Errorf("firmware footer %s entry is zero", want.name)
		}
	}
	fw.Sections, err = parseMetadata(data, metaOffset)
	if err != nil {
		return nil, err
	}
	if err := checkLayout(fw.Sections, uint64(fw.HashesTableGPA)); err != nil {
		return nil, fmt.Errorf("firmware SEV metadata: %w", err)
	}
	var g gctx
	g.normalPages(fw.GPA, data)
	fw.Digest = g.ld
	return fw, nil
}

type footerEntry struct {
	guid [16]byte
	data []byte
}

// footerEntries walks the footer GUID table backwards; the entries must tile it exactly.
func footerEntries(data []byte) ([]footerEntry, error) {
	if len(data) < footerTailOffset+footerEntryHeader {
		return nil, fmt.Errorf("firmware is too small to hold a footer table")
	}
	end := len(data) - footerTailOffset
	hdr := data[end-footerEntryHeader : end]
	if !bytes.Equal(hdr[2:], guidFooterTable[:]) {
		return nil, fmt.Errorf("firmware has no OVMF footer table (GUID %s at %d bytes from the end): not an OVMF image with SEV support", guidString(guidFooterTable), footerTailOffset+footerEntryHeader)
	}
	total := int(binary.LittleEndian.Uint16(hdr))
	if total < footerEntryHeader || total > end {
		return nil, fmt.Errorf("firmware footer table length %d is out of bounds", total)
	}
	table := data[end-total : end-footerEntryHeader]
	var out []footerEntry
	for pos := len(table); pos > 0; {
		if pos < footerEntryHeader {
			return nil, fmt.Errorf("firmware footer table has %d stray bytes at its start", pos)
		}
		h := table[pos-footerEntryHeader : pos]
		n := int(binary.LittleEndian.Uint16(h))
		if n < footerEntryHeader || n > pos {
			return nil, fmt.Errorf("firmware footer table entry %s has length %d, out of bounds", guidString([16]byte(h[2:])), n)
		}
		out = append(out, footerEntry{guid: [16]byte(h[2:]), data: table[pos-n : pos-footerEntryHeader]})
		pos -= n
	}
	return out, nil
}

// parseMetadata reads the OVMF SEV metadata ("ASEV", length, version 1, item count, then
// {u32 GPA, u32 size, u32 type} items) at offset bytes from the end of the image.
func parseMetadata(data []byte, offset uint32) ([]Section, error) {
	const hdrLen, itemLen = 16, 12
	if uint64(offset) > uint64(len(data)) || offset < hdrLen {
		return nil, fmt.Errorf("firmware SEV metadata offset %d (from the end) is outside the %d-byte image", offset, len(data))
	}
	m := data[len(data)-int(offset):]
	if string(m[:4]) != "ASEV" {
		return nil, fmt.Errorf("firmware SEV metadata at %d bytes from the end has signature %q, want \"ASEV\"", offset, m[:4])
	}
	size := binary.LittleEndian.Uint32(m[4:])
	version := binary.LittleEndian.Uint32(m[8:])
	n := binary.LittleEndian.Uint32(m[12:])
	switch {
	case version != 1:
		return nil, fmt.Errorf("firmware SEV metadata version %d: only version 1 is defined", version)
	case n == 0 || n > maxSections:
		return nil, fmt.Errorf("firmware SEV metadata has %d sections, want 1 to %d", n, maxSections)
	case uint64(size) < hdrLen+itemLen*uint64(n):
		return nil, fmt.Errorf("firmware SEV metadata length %d is too short for its %d sections", size, n)
	case uint64(size) > uint64(len(m)):
		return nil, fmt.Errorf("firmware SEV metadata length %d runs past the end of the image", size)
	}
	out := make([]Section, n)
	for i := range out {
		it := m[hdrLen+itemLen*i:]
		out[i] = Section{
			GPA:  uint64(binary.LittleEndian.Uint32(it)),
			Size: uint64(binary.LittleEndian.Uint32(it[4:])),
			Type: SectionType(binary.LittleEndian.Uint32(it[8:])),
		}
	}
	return out, nil
}

// maxMeasuredPages bounds the metadata pages one launch measures (1 GiB; real builds ~100).
const maxMeasuredPages = 1 << 18

// checkLayout refuses what the model does not cover: unknown section types, pages that are not
// whole, single-page sections of another size (upstream dstack and virtee measure one page
// where QEMU would measure the whole section), and a hashes table that does not fit its page.
func checkLayout(sections []Section, hashesTableGPA uint64) error {
	if len(sections) == 0 || len(sections) > maxSections {
		return fmt.Errorf("%d sections, want 1 to %d", len(sections), maxSections)
	}
	var pages uint64
	hashes := 0
	for i, s := range sections {
		where := fmt.Sprintf("section %d (%s at %#x, %#x bytes)", i, s.Type, s.GPA, s.Size)
		switch {
		case s.GPA > 0xFFFFFFFF || s.Size > 0xFFFFFFFF:
			return fmt.Errorf("%s: GPA and size are 32-bit in the firmware's metadata", where)
		case s.Size == 0 || s.GPA%pageSize != 0 || s.Size%pageSize != 0:
			return fmt.Errorf("%s: not whole 4 KiB pages", where)
		}
		switch s.Type {
		case SectionSNPSecMemory, SectionSVSMCAA:
		case SectionSNPSecrets, SectionCPUID, SectionSNPKernelHashes:
			if s.Size != pageSize {
				return fmt.Errorf("%s: a %s section of more than one page is not supported yet", where, s.Type)
			}
			if s.Type == SectionSNPKernelHashes {
				hashes++
			}
		default:
			return fmt.Errorf("%s: section type %#x is not supported yet", where, uint32(s.Type))
		}
		pages += s.Size / pageSize
		if pages > maxMeasuredPages {
			return fmt.Errorf("the sections cover more than %d pages", maxMeasuredPages)
		}
	}
	if hashes == 0 {
		return fmt.Errorf("no %s section: QEMU's kernel-hashes=on needs one", SectionSNPKernelHashes)
	}
	if hashesTableGPA == 0 || hashesTableGPA > 0xFFFFFFFF {
		return fmt.Errorf("hashes table GPA %#x: want a non-zero 32-bit address", hashesTableGPA)
	}
	if hashesTableGPA%pageSize+paddedHashesTableSize > pageSize {
		return fmt.Errorf("hashes table GPA %#x: the %d-byte table would cross its page", hashesTableGPA, paddedHashesTableSize)
	}
	return nil
}

// mustGUID turns the textual GUID into EDK2's byte order (first three fields little-endian).
func mustGUID(s string) [16]byte {
	var g [16]byte
	var parts [5][]byte
	j := 0
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '-' {
			b := make([]byte, (i-start)/2)
			for k := range b {
				var v byte
				if _, err := fmt.Sscanf(s[start+2*k:start+2*k+2], "%02x", &v); err != nil {
					panic(err)
				}
				b[k] = v
			}
			parts[j] = b
			j++
			start = i + 1
		}
	}
	for _, k := range []int{0, 1, 2} {
		for a, z := 0, len(parts[k])-1; a < z; a, z = a+1, z-1 {
			parts[k][a], parts[k][z] = parts[k][z], parts[k][a]
		}
	}
	copy(g[:], bytes.Join(parts[:], nil))
	return g
}

func guidString(g [16]byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]),
		binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}
