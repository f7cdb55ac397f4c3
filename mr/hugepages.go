package mr

import "fmt"

// HugepagesGranule is the unit of a hugepages VM's RAM: dstack-vmm's configure_hugepage_memory
// sizes each node's hugepage backend in whole GiB (size={n}G), so QEMU's memory is a multiple.
const HugepagesGranule = 1 << 30

// HugepagesLaunchMemory is the RAM dstack-vmm gives a hugepages VM whose vm_config says
// memorySize: whole GiB, rounded down, then up to a multiple of the node count so each node's
// hugepage backend has whole GiB (configure_hugepage_memory; vm_config keeps the requested
// size, cpu_count is already the effective one). nodes 0 means the single node hugepages
// implies. Under 1 GiB the VMM would launch QEMU with no RAM at all: an error.
func HugepagesLaunchMemory(memorySize uint64, nodes int) (uint64, error) {
	if nodes < 1 {
		nodes = 1
	}
	g := memorySize / HugepagesGranule
	if g == 0 {
		return 0, fmt.Errorf("%d bytes with hugepages: dstack-vmm counts hugepage memory in whole GiB and would launch this VM with none", memorySize)
	}
	n := uint64(nodes)
	return (g + n - 1) / n * n * HugepagesGranule, nil
}
