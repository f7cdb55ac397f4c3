package mr

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/dstack-mr/dstack-mr/acpi"
)

// PI HOB encoding (EDK2 MdePkg/Include/Pi/PiHob.h) as QEMU's tdvf-hob.c fills it.
const (
	hobTypeHandoff            = 0x0001
	hobTypeResourceDescriptor = 0x0003
	hobTypeEndOfList          = 0xffff

	hobHandoffLen  = 56 // EFI_HOB_HANDOFF_INFO_TABLE
	hobResourceLen = 48 // EFI_HOB_RESOURCE_DESCRIPTOR
	hobEndLen      = 8  // EFI_HOB_GENERIC_HEADER

	hobHandoffVersion = 0x0009 // EFI_HOB_HANDOFF_TABLE_VERSION

	resourceSystemMemory     = 0x00000000 // EFI_RESOURCE_SYSTEM_MEMORY
	resourceMemoryUnaccepted = 0x00000007 // EFI_RESOURCE_MEMORY_UNACCEPTED
	// EFI_RESOURCE_ATTRIBUTE_TDVF_PRIVATE and _TDVF_UNACCEPTED (hw/i386/tdvf-hob.h) are both
	// PRESENT | INITIALIZED | TESTED.
	resourceAttrTDVF = 0x00000007

	fourGiB = 1 << 32
)

// RAMEntry is one range of guest RAM as QEMU describes it in the TD HOB.
type RAMEntry struct {
	Address  uint64 `json:"address"`
	Length   uint64 `json:"length"`
	Accepted bool   `json:"accepted"` // TDX_RAM_ADDED: pages QEMU added at build time
}

// ramEntries reproduces QEMU's tdx_init_ram_entries + tdx_accept_ram_range + sort
// (target/i386/kvm/tdx.c tdx_finalize_vm): the E820 RAM ranges of the q35 machine, each
// TD_HOB and TEMP_MEM section carved out of the range holding it as accepted memory, the
// rest unaccepted, ordered by address.
func ramEntries(sections []Section, memoryBytes uint64) ([]RAMEntry, error) {
	entries := RAMLayout(memoryBytes)
	for i, s := range sections {
		if s.Type != SectionTDHOB && s.Type != SectionTempMem {
			continue
		}
		var err error
		if entries, err = AcceptRAM(entries, s.MemoryAddress, s.MemoryDataSize); err != nil {
			return nil, fmt.Errorf("TDVF section %d (%s at 0x%x-0x%x): %w; QEMU fails to start such a VM",
				i, s.Type, s.MemoryAddress, s.End(), err)
		}
	}
	return entries, nil
}

// RAMLayout is the guest RAM of a q35 machine with memoryBytes, all unaccepted:
// pc_q35_init's lowmem split (RAM >= 0xb0000000 keeps only 2 GiB below 4 GiB) and
// pc_memory_init's E820 RAM entries.
func RAMLayout(memoryBytes uint64) []RAMEntry {
	below, above := (&acpi.MachineConfig{MemoryBytes: memoryBytes}).RAMSplit()
	entries := []RAMEntry{{Address: 0, Length: below}}
	if above > 0 {
		entries = append(entries, RAMEntry{Address: fourGiB, Length: above})
	}
	return entries
}

// AcceptRAM marks [addr, addr+length) accepted as tdx_accept_ram_range does and returns the
// entries ordered by address.
func AcceptRAM(entries []RAMEntry, addr, length uint64) ([]RAMEntry, error) {
	entries, err := acceptRange(entries, addr, length)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b RAMEntry) int {
		switch {
		case a.Address < b.Address:
			return -1
		case a.Address > b.Address:
			return 1
		}
		return 0
	})
	return entries, nil
}

// acceptRange is tdx_accept_ram_range: the range must lie inside one RAM entry; an
// unaccepted entry is narrowed to it in place, and what is left of it on either side is
// appended as new unaccepted entries (the final sort puts them in place).
func acceptRange(entries []RAMEntry, addr, length uint64) ([]RAMEntry, error) {
	end := addr + length
	i := slices.IndexFunc(entries, func(e RAMEntry) bool {
		return end > e.Address && addr < e.Address+e.Length
	})
	if i < 0 {
		return nil, fmt.Errorf("no guest RAM there for the memory size given")
	}
	e := entries[i]
	if e.Address > addr || e.Address+e.Length < end {
		return nil, fmt.Errorf("range is not inside the RAM range 0x%x-0x%x", e.Address, e.Address+e.Length)
	}
	if e.Accepted {
		return entries, nil
	}
	entries[i] = RAMEntry{Address: addr, Length: length, Accepted: true}
	if addr > e.Address {
		entries = append(entries, RAMEntry{Address: e.Address, Length: addr - e.Address})
	}
	if eEnd := e.Address + e.Length; end < eEnd {
		entries = append(entries, RAMEntry{Address: end, Length: eEnd - end})
	}
	return entries, nil
}

// tdHOB builds the HOB list QEMU's tdvf_hob_create writes at the TD_HOB section, up to but
// not including the end-of-list HOB: exactly the bytes TDVF hashes into RTMR0
// (OvmfPkg TdxHelperMeasureTdHob walks to END_OF_HOB_LIST and measures what precedes it).
func tdHOB(sections []Section, memoryBytes uint64) ([]byte, error) {
	hob, ok := firstSection(sections, SectionTDHOB)
	if !ok {
		return nil, fmt.Errorf("firmware has no TD_HOB section")
	}
	entries, err := ramEntries(sections, memoryBytes)
	if err != nil {
		return nil, err
	}
	n := hobHandoffLen + hobResourceLen*len(entries)
	if uint64(n+hobEndLen) > hob.MemoryDataSize {
		// tdvf_get_area: "TD_HOB overrun" and QEMU exits.
		return nil, fmt.Errorf("TD HOB of %d bytes overruns the 0x%x-byte TD_HOB section", n+hobEndLen, hob.MemoryDataSize)
	}
	return BuildTDHOB(hob.MemoryAddress, entries), nil
}

// BuildTDHOB lays out the HOB list tdvf_hob_create writes at hobBase for the RAM entries:
// the handoff table, then one resource descriptor per entry, up to but not including the
// end-of-list HOB.
func BuildTDHOB(hobBase uint64, entries []RAMEntry) []byte {
	n := hobHandoffLen + hobResourceLen*len(entries)
	b := make([]byte, n)
	le := binary.LittleEndian
	le.PutUint16(b[0:], hobTypeHandoff)
	le.PutUint16(b[2:], hobHandoffLen)
	le.PutUint32(b[8:], hobHandoffVersion)
	// BootMode and Efi{Free}Memory{Top,Bottom} stay zero; EfiEndOfHobList is the guest
	// address just past the end-of-list HOB.
	le.PutUint64(b[48:], hobBase+uint64(n+hobEndLen))
	off := hobHandoffLen
	for _, e := range entries {
		r := b[off : off+hobResourceLen]
		le.PutUint16(r[0:], hobTypeResourceDescriptor)
		le.PutUint16(r[2:], hobResourceLen)
		// Owner GUID (bytes 8..24) is zero.
		typ := uint32(resourceMemoryUnaccepted)
		if e.Accepted {
			typ = resourceSystemMemory
		}
		le.PutUint32(r[24:], typ)
		le.PutUint32(r[28:], resourceAttrTDVF)
		le.PutUint64(r[32:], e.Address)
		le.PutUint64(r[40:], e.Length)
		off += hobResourceLen
	}
	return b
}

func firstSection(ss []Section, t SectionType) (Section, bool) {
	for _, s := range ss {
		if s.Type == t {
			return s, true
		}
	}
	return Section{}, false
}

// TDHobWitness is the compact TdHobWitnessV1 of a lite measurement document (dstack-types):
// unsigned LEB128 varints counted in 4 KiB pages — the lowest page of the TD_HOB and TEMP_MEM
// sections, the TD_HOB's page relative to it, the number of such sections, then for each in
// address order (not merged) its first page relative to the base and its page count. With the
// memory size it rebuilds the TD HOB QEMU writes (ramEntries carves exactly these sections).
func (f *Firmware) TDHobWitness() ([]byte, error) {
	hob, ok := firstSection(f.sections, SectionTDHOB)
	if !ok {
		return nil, fmt.Errorf("firmware has no TD_HOB section")
	}
	var ranges []Section
	for _, s := range f.sections {
		if s.Type == SectionTDHOB || s.Type == SectionTempMem {
			if s.MemoryAddress%pageSize != 0 || s.MemoryDataSize%pageSize != 0 {
				return nil, fmt.Errorf("TDVF %s section at 0x%x (0x%x bytes) is not page aligned", s.Type, s.MemoryAddress, s.MemoryDataSize)
			}
			ranges = append(ranges, s)
		}
	}
	slices.SortStableFunc(ranges, func(a, b Section) int { return cmp.Compare(a.MemoryAddress, b.MemoryAddress) })
	base := ranges[0].MemoryAddress / pageSize
	out := binary.AppendUvarint(nil, base)
	out = binary.AppendUvarint(out, hob.MemoryAddress/pageSize-base)
	out = binary.AppendUvarint(out, uint64(len(ranges)))
	for _, s := range ranges {
		out = binary.AppendUvarint(out, s.MemoryAddress/pageSize-base)
		out = binary.AppendUvarint(out, s.MemoryDataSize/pageSize)
	}
	return out, nil
}
