package mr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dstack-mr/dstack-mr/uefi"
)

// ErrNotSupported marks inputs that a real QEMU/OVMF would run but whose measurement this
// package does not model yet. A result is never returned alongside it: a wrong digest is
// worse than none.
var ErrNotSupported = errors.New("not supported yet")

// OVMF GUIDed table at the end of the flash image (QEMU hw/i386/pc_sysfw_ovmf.c,
// EDK2 OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm).
const (
	// The table footer GUID sits 48 bytes before the end of the image: 32 bytes of reset
	// vector follow it.
	footerGUIDFromEnd = 48
	guidLen           = 16
	// Every entry ends with a 2-byte length (of the whole entry) and its GUID.
	entryTailLen = 2 + guidLen
)

// TDVF metadata (Intel TDX Virtual Firmware Design Guide, section 11; QEMU hw/i386/tdvf.c).
const (
	tdvfSignature       = "TDVF"
	tdvfVersion         = 1
	tdvfDescriptorLen   = 16 // Signature, Length, Version, NumberOfSectionEntries
	tdvfSectionEntryLen = 32
	// QEMU rejects metadata with fewer sections: a TD needs at least a BFV and a TD HOB.
	tdvfMinSections = 2
	// No real TDVF has more than a handful; this bounds what a hostile image can make us loop
	// over. The descriptor length check bounds it by the file size anyway.
	tdvfMaxSections = 4096

	pageSize    = 0x1000
	extendChunk = 0x100 // TDH.MR.EXTEND measures 256 bytes at a time
)

var (
	ovmfTableFooterGUID = uefi.MustParseGUID("96b582de-1fb2-45f7-baea-a366c55a082d")
	tdxMetadataGUID     = uefi.MustParseGUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
)

// SectionType is the TDVF section Type field.
type SectionType uint32

// Section types QEMU accepts (hw/i386/tdvf.h).
const (
	SectionBFV     SectionType = 0 // boot firmware volume: code, measured into MRTD
	SectionCFV     SectionType = 1 // configuration firmware volume: the variable store
	SectionTDHOB   SectionType = 2 // where QEMU writes the TD HOB
	SectionTempMem SectionType = 3 // temporary memory TDVF uses before it accepts RAM
)

func (t SectionType) String() string {
	switch t {
	case SectionBFV:
		return "BFV"
	case SectionCFV:
		return "CFV"
	case SectionTDHOB:
		return "TD_HOB"
	case SectionTempMem:
		return "TEMP_MEM"
	}
	return fmt.Sprintf("type %d", uint32(t))
}

// Section attributes.
const (
	AttrMRExtend uint32 = 1 << 0 // the section's pages are also TDH.MR.EXTENDed
	// AttrPageAug (TDVF spec 1.0+): pages are added later by TDH.MEM.PAGE.AUG. QEMU ignores it
	// and adds them at build time like any other, so no firmware QEMU runs should set it.
	AttrPageAug uint32 = 1 << 1
)

// Section is one TDVF metadata section entry, validated against the image.
type Section struct {
	DataOffset     uint32      `json:"data_offset"`
	RawDataSize    uint32      `json:"raw_data_size"`
	MemoryAddress  uint64      `json:"memory_address"`
	MemoryDataSize uint64      `json:"memory_data_size"`
	Type           SectionType `json:"type"`
	Attributes     uint32      `json:"attributes"`
}

// End returns the first guest-physical address after the section.
func (s Section) End() uint64 { return s.MemoryAddress + s.MemoryDataSize }

// ovmfTableEntry returns the data of the entry with the given GUID in the OVMF GUIDed table
// at the end of image, walking it backwards from the footer as QEMU's
// pc_system_ovmf_table_find does. found is false when the table has no such entry.
func ovmfTableEntry(image []byte, guid uefi.GUID) (data []byte, found bool, err error) {
	if len(image) < footerGUIDFromEnd+2 {
		return nil, false, fmt.Errorf("firmware is %d bytes, too small for an OVMF table footer", len(image))
	}
	footer := len(image) - footerGUIDFromEnd
	if !bytes.Equal(image[footer:footer+guidLen], ovmfTableFooterGUID[:]) {
		return nil, false, errors.New("firmware has no OVMF table footer GUID 96b582de-1fb2-45f7-baea-a366c55a082d 48 bytes before its end: not an OVMF/TDVF image")
	}
	// The footer's length covers the whole table including the footer's own length and GUID.
	total := int(binary.LittleEndian.Uint16(image[footer-2:]))
	if total < entryTailLen || total-entryTailLen > footer-2 {
		return nil, false, fmt.Errorf("firmware OVMF table footer: length %d is outside %d..%d", total, entryTailLen, footer-2+entryTailLen)
	}
	table := image[footer-2-(total-entryTailLen) : footer-2]
	for end := len(table); end > 0; {
		if end < entryTailLen {
			return nil, false, fmt.Errorf("firmware OVMF table: %d stray bytes at the start of the table", end)
		}
		n := int(binary.LittleEndian.Uint16(table[end-entryTailLen:]))
		if n < entryTailLen || n > end {
			return nil, false, fmt.Errorf("firmware OVMF table: entry %x ending at table offset %d has length %d, want %d..%d",
				table[end-guidLen:end], end, n, entryTailLen, end)
		}
		if bytes.Equal(table[end-guidLen:end], guid[:]) {
			return table[end-n : end-entryTailLen], true, nil
		}
		end -= n
	}
	return nil, false, nil
}

// ParseTDVFMetadata finds and validates the TDVF metadata of a firmware image and returns its
// sections in metadata order (the order QEMU adds them to the TD, which MRTD depends on).
// Every offset and size is checked against the image before use.
func ParseTDVFMetadata(image []byte) ([]Section, error) {
	loc, found, err := ovmfTableEntry(image, tdxMetadataGUID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, errors.New("firmware OVMF table has no TDX metadata offset entry (GUID e47a6535-984a-4798-865e-4685a7bf8ec2): not a TDX-capable OVMF")
	}
	if len(loc) < 4 {
		return nil, fmt.Errorf("firmware TDX metadata offset entry has %d data bytes, want 4", len(loc))
	}
	// The offset counts back from the end of the image.
	fromEnd := uint64(binary.LittleEndian.Uint32(loc[len(loc)-4:]))
	size := uint64(len(image))
	if fromEnd > size || size-fromEnd+tdvfDescriptorLen > size {
		return nil, fmt.Errorf("firmware TDX metadata offset 0x%x (from the end) puts the TDVF descriptor outside the %d-byte image", fromEnd, size)
	}
	off := size - fromEnd
	desc := image[off : off+tdvfDescriptorLen]
	if string(desc[0:4]) != tdvfSignature {
		return nil, fmt.Errorf("firmware TDVF descriptor at 0x%x: Signature %q, want %q", off, desc[0:4], tdvfSignature)
	}
	length := uint64(binary.LittleEndian.Uint32(desc[4:]))
	version := binary.LittleEndian.Uint32(desc[8:])
	count := uint64(binary.LittleEndian.Uint32(desc[12:]))
	if version != tdvfVersion {
		return nil, fmt.Errorf("firmware TDVF descriptor: Version %d, only %d is defined: %w", version, tdvfVersion, ErrNotSupported)
	}
	if count < tdvfMinSections || count > tdvfMaxSections {
		return nil, fmt.Errorf("firmware TDVF descriptor: NumberOfSectionEntries %d, want %d..%d", count, tdvfMinSections, tdvfMaxSections)
	}
	if want := tdvfDescriptorLen + count*tdvfSectionEntryLen; length != want {
		return nil, fmt.Errorf("firmware TDVF descriptor: Length %d, want %d for %d sections", length, want, count)
	}
	if off+length > size {
		return nil, fmt.Errorf("firmware TDVF descriptor at 0x%x: Length %d runs past the end of the %d-byte image", off, length, size)
	}

	sections := make([]Section, count)
	var hobs int
	for i := range sections {
		e := image[off+tdvfDescriptorLen+uint64(i)*tdvfSectionEntryLen:]
		s := Section{
			DataOffset:     binary.LittleEndian.Uint32(e[0:]),
			RawDataSize:    binary.LittleEndian.Uint32(e[4:]),
			MemoryAddress:  binary.LittleEndian.Uint64(e[8:]),
			MemoryDataSize: binary.LittleEndian.Uint64(e[16:]),
			Type:           SectionType(binary.LittleEndian.Uint32(e[24:])),
			Attributes:     binary.LittleEndian.Uint32(e[28:]),
		}
		if err := s.validate(size); err != nil {
			return nil, fmt.Errorf("firmware TDVF section %d (%s): %w", i, s.Type, err)
		}
		if s.Type == SectionTDHOB {
			hobs++
		}
		sections[i] = s
	}
	if hobs == 0 {
		return nil, errors.New("firmware TDVF metadata has no TD_HOB section: QEMU cannot start it")
	}
	if err := checkOverlap(sections); err != nil {
		return nil, err
	}
	return sections, nil
}

// validate applies QEMU's tdvf_parse_and_check_section_entry rules plus the bounds QEMU
// leaves to the flash mapping: the bytes copied into the TD must lie inside the image.
func (s Section) validate(imageSize uint64) error {
	if s.MemoryDataSize < uint64(s.RawDataSize) {
		return fmt.Errorf("MemoryDataSize 0x%x is smaller than RawDataSize 0x%x", s.MemoryDataSize, s.RawDataSize)
	}
	if s.MemoryAddress%pageSize != 0 {
		return fmt.Errorf("MemoryAddress 0x%x is not 4 KiB aligned", s.MemoryAddress)
	}
	if s.MemoryDataSize%pageSize != 0 {
		return fmt.Errorf("MemoryDataSize 0x%x is not a multiple of 4 KiB", s.MemoryDataSize)
	}
	if s.MemoryDataSize == 0 {
		return errors.New("MemoryDataSize is 0")
	}
	if s.MemoryAddress+s.MemoryDataSize < s.MemoryAddress || s.MemoryAddress+s.MemoryDataSize > 1<<52 {
		return fmt.Errorf("MemoryAddress 0x%x + MemoryDataSize 0x%x is beyond the 52-bit physical address space", s.MemoryAddress, s.MemoryDataSize)
	}
	if s.Attributes&^AttrMRExtend != 0 {
		return fmt.Errorf("Attributes 0x%x: only MR.EXTEND (bit 0) is modelled: %w", s.Attributes, ErrNotSupported)
	}
	switch s.Type {
	case SectionBFV, SectionCFV:
		if s.RawDataSize == 0 {
			return errors.New("RawDataSize is 0 for a section that is copied from the image")
		}
		// KVM copies MemoryDataSize bytes starting at DataOffset of the mapped image.
		if uint64(s.DataOffset)+s.MemoryDataSize > imageSize {
			return fmt.Errorf("DataOffset 0x%x + MemoryDataSize 0x%x runs past the end of the %d-byte image", s.DataOffset, s.MemoryDataSize, imageSize)
		}
	case SectionTDHOB, SectionTempMem:
		if s.RawDataSize != 0 {
			return fmt.Errorf("RawDataSize is 0x%x, want 0 for a section not copied from the image", s.RawDataSize)
		}
		if s.Attributes&AttrMRExtend != 0 {
			return errors.New("Attributes has MR.EXTEND on a section with no data to extend")
		}
	default:
		return fmt.Errorf("Type %d: QEMU supports only BFV (0), CFV (1), TD_HOB (2) and TEMP_MEM (3)", uint32(s.Type))
	}
	return nil
}

// checkOverlap rejects sections sharing guest pages: KVM would refuse to add a page twice.
func checkOverlap(ss []Section) error {
	for i := range ss {
		for j := i + 1; j < len(ss); j++ {
			if ss[i].MemoryAddress < ss[j].End() && ss[j].MemoryAddress < ss[i].End() {
				return fmt.Errorf("firmware TDVF sections %d and %d overlap in guest memory (0x%x-0x%x and 0x%x-0x%x)",
					i, j, ss[i].MemoryAddress, ss[i].End(), ss[j].MemoryAddress, ss[j].End())
			}
		}
	}
	return nil
}
