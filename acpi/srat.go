package acpi

// The System Resource Affinity Table QEMU emits once the machine has NUMA nodes
// (hw/i386/acpi-build.c: build_srat). dstack-vmm splits vCPUs and RAM evenly and contiguously
// over the nodes, in node order: -numa node,nodeid=i,cpus=i*k..(i+1)*k-1,memdev=mem{i}.

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
	switch {
	case !c.Hugepages:
		return 0
	case len(c.NUMANodes) > 0:
		return len(c.NUMANodes)
	}
	return 1
}

// numaExpanders is the pxb-pcie expander of each node, in node order: node i at root slot
// 0x10+i. Without numa_nodes, hugepages implies node 0's on bus 5.
func (c *MachineConfig) numaExpanders() []pxbExpander {
	if !c.hasExpander() {
		return nil
	}
	if len(c.NUMANodes) == 0 {
		return []pxbExpander{{busNr: pxbBusNr, numaNode: pxbNUMANode, slot: pxbPCIeSlot}}
	}
	out := make([]pxbExpander, len(c.NUMANodes))
	for i, n := range c.NUMANodes {
		out[i] = pxbExpander{busNr: n.PXBBus, numaNode: i, slot: pxbPCIeSlot + i}
	}
	return out
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

// buildSRAT: revision 1, each vCPU and each node's share of RAM with its node.
func buildSRAT(cfg *MachineConfig) table {
	t := beginTable("SRAT", 1)
	t = appendLE32(t, 1) // reserved, 1 for backward compatibility
	t = appendLE64(t, 0) // reserved

	for uid := 0; uid < cfg.CPUs; uid++ {
		node, _ := cpuNUMANode(cfg, uid)
		id := cpuAPICID(uid)
		if id < firstX2APICID {
			t = append(t, sratTypeLocalAPIC, 16, byte(node), byte(id))
			t = appendLE32(t, 1)      // enabled
			t = append(t, 0, 0, 0, 0) // local SAPIC EID, proximity domain [31:8]
			t = appendLE32(t, 0)      // clock domain
			continue
		}
		t = append(t, sratTypeLocalX2APIC, 24, 0, 0)
		t = appendLE32(t, uint32(node))
		t = appendLE32(t, id)
		t = appendLE32(t, 1) // enabled
		t = appendLE32(t, 0) // clock domain
		t = appendLE32(t, 0) // reserved
	}

	memStart := len(t)
	for _, r := range sratMemoryRanges(cfg) {
		t = appendSRATMemory(t, r.base, r.length, uint32(r.node), memAffinityEnabled)
	}
	// QEMU pads the memory entries to at least nodes+2 with empty ones for old guests.
	for slots := (len(t) - memStart) / sratMemEntryLen; slots < cfg.numaNodes()+2; slots++ {
		t = appendSRATMemory(t, 0, 0, 0, 0)
	}
	return table{sig: "SRAT", data: endTable(t), checksum: true, inRSDT: true}
}

type memRange struct {
	base, length uint64
	node         int
}

// sratMemoryRanges walks each node's RAM, in node order and contiguously, through QEMU's two
// cuts: the 640 KiB-1 MiB legacy hole and the gap between the end of low RAM and 4 GiB (the
// node that straddles it continues at 4 GiB, and so do the nodes after it).
func sratMemoryRanges(cfg *MachineConfig) []memRange {
	below, _ := cfg.RAMSplit()
	nodes := max(cfg.numaNodes(), 1)
	var out []memRange
	next := uint64(0)
	for node := 0; node < nodes; node++ {
		base := next
		length := cfg.MemoryBytes / uint64(nodes)
		next = base + length
		if base <= hole640KStart && next > hole640KStart {
			length -= next - hole640KStart
			if length > 0 {
				out = append(out, memRange{base, length, node})
			}
			if next <= hole640KEnd { // RAM ends inside the hole
				next = hole640KEnd
				continue
			}
			base, length = hole640KEnd, next-hole640KEnd
		}
		if base <= below && next > below {
			length -= next - below
			if length > 0 {
				out = append(out, memRange{base, length, node})
			}
			base = cfg.ramAbove4GBase()
			length = next - below
			next = base + length
		}
		if length > 0 {
			out = append(out, memRange{base, length, node})
		}
	}
	return out
}
