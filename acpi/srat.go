package acpi

// The System Resource Affinity Table QEMU emits once the machine has NUMA nodes: dstack's
// hugepages VMs put all vCPUs and all RAM into node 0 (hw/i386/acpi-build.c: build_srat).

const (
	sratTypeLocalAPIC   = 0
	sratTypeMemory      = 1
	sratTypeLocalX2APIC = 2

	sratMemEntryLen    = 40
	memAffinityEnabled = 1

	hole640KStart = 640 << 10
	hole640KEnd   = 1 << 20
)

// numaNodes is how many NUMA nodes dstack's command line declares for cfg.
func (c *MachineConfig) numaNodes() int {
	if c.Hugepages {
		return 1
	}
	return 0
}

func appendSRATMemory(t []byte, base, length uint64, node uint32, flags uint32) []byte {
	t = append(t, sratTypeMemory, sratMemEntryLen)
	t = appendLE32(t, node)
	t = appendLE16(t, 0) // reserved
	t = appendLE64(t, base)
	t = appendLE64(t, length)
	t = appendLE32(t, 0) // reserved
	t = appendLE32(t, flags)
	t = appendLE64(t, 0) // reserved
	return t
}

// buildSRAT: revision 1, single node 0 holding every vCPU and all of RAM.
func buildSRAT(cfg *MachineConfig) table {
	const node = 0
	t := beginTable("SRAT", 1)
	t = appendLE32(t, 1) // reserved, 1 for backward compatibility
	t = appendLE64(t, 0) // reserved

	for uid := 0; uid < cfg.CPUs; uid++ {
		id := cpuAPICID(uid)
		if id < firstX2APICID {
			t = append(t, sratTypeLocalAPIC, 16, node, byte(id))
			t = appendLE32(t, 1)      // enabled
			t = append(t, 0, 0, 0, 0) // local SAPIC EID, proximity domain [31:8]
			t = appendLE32(t, 0)      // clock domain
			continue
		}
		t = append(t, sratTypeLocalX2APIC, 24, 0, 0)
		t = appendLE32(t, node)
		t = appendLE32(t, id)
		t = appendLE32(t, 1) // enabled
		t = appendLE32(t, 0) // clock domain
		t = appendLE32(t, 0) // reserved
	}

	memStart := len(t)
	for _, r := range sratMemoryRanges(cfg) {
		t = appendSRATMemory(t, r.base, r.length, node, memAffinityEnabled)
	}
	// QEMU pads the memory entries to at least nodes+2 with empty ones for old guests.
	for slots := (len(t) - memStart) / sratMemEntryLen; slots < cfg.numaNodes()+2; slots++ {
		t = appendSRATMemory(t, 0, 0, 0, 0)
	}
	return table{sig: "SRAT", data: endTable(t), checksum: true, inRSDT: true}
}

type memRange struct{ base, length uint64 }

// sratMemoryRanges walks node 0's RAM (all of it) through QEMU's two cuts: the 640 KiB-1 MiB
// legacy hole and the gap between the end of low RAM and 4 GiB.
func sratMemoryRanges(cfg *MachineConfig) []memRange {
	below, _ := cfg.RAMSplit()
	var out []memRange
	base, length := uint64(0), cfg.MemoryBytes
	next := base + length

	if base <= hole640KStart && next > hole640KStart {
		length -= next - hole640KStart
		if length > 0 {
			out = append(out, memRange{base, length})
		}
		if next <= hole640KEnd { // RAM ends inside the hole
			return out
		}
		base, length = hole640KEnd, next-hole640KEnd
	}
	if base <= below && next > below {
		length -= next - below
		if length > 0 {
			out = append(out, memRange{base, length})
		}
		base = cfg.ramAbove4GBase()
		length = next - below
	}
	if length > 0 {
		out = append(out, memRange{base, length})
	}
	return out
}
