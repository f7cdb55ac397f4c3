package mr

import (
	"strings"
	"testing"
)

// dstack-vmm's configure_hugepage_memory launches a hugepages VM with whole GiB per node while
// vm_config keeps the requested memory_size.
func TestHugepagesLaunchMemory(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		memory  uint64
		nodes   int
		want    uint64
		errPart string
	}{
		{2 * gib, 0, 2 * gib, ""},
		{2*gib + 512<<20, 0, 2 * gib, ""}, // 2560 MiB: the VMM divides MiB by 1024
		{64 * gib, 1, 64 * gib, ""},
		{5 * gib, 2, 6 * gib, ""}, // then rounds up to a multiple of the node count
		{6*gib + 1<<20, 3, 6 * gib, ""},
		{512 << 20, 0, 0, "would launch this VM with none"},
	} {
		got, err := HugepagesLaunchMemory(tc.memory, tc.nodes)
		switch {
		case tc.errPart != "":
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("%d bytes, %d nodes: error %v, want %q", tc.memory, tc.nodes, err, tc.errPart)
			}
		case err != nil || got != tc.want:
			t.Errorf("%d bytes, %d nodes: %d, %v; want %d", tc.memory, tc.nodes, got, err, tc.want)
		}
	}
}
