package acpi

import (
	"errors"
	"strings"
	"testing"
)

// testConfig is dstack's default shape: 8 vCPUs, 4 GiB, one NIC, QEMU 9.2.1.
func testConfig() MachineConfig {
	return MachineConfig{
		CPUs:          8,
		MemoryBytes:   4 << 30,
		QEMUVersion:   Version{9, 2, 1},
		NumNICs:       1,
		RootVerity:    true,
		HostShareMode: HostShare9p,
	}
}

func TestValidate(t *testing.T) {
	const (
		ok = iota
		invalid
		notSupported
	)
	for _, tc := range []struct {
		name   string
		mutate func(c *MachineConfig)
		want   int
		field  string // must appear in the error
	}{
		{"default", func(c *MachineConfig) {}, ok, ""},
		{"version unset", func(c *MachineConfig) { c.QEMUVersion = Version{} }, invalid, "qemu_version"},
		{"version 7.2", func(c *MachineConfig) { c.QEMUVersion = Version{7, 2, 0} }, invalid, "qemu_version"},
		{"version 8.0", func(c *MachineConfig) { c.QEMUVersion = Version{8, 0, 0} }, ok, ""},
		{"version 9.2.3", func(c *MachineConfig) { c.QEMUVersion = Version{9, 2, 3} }, ok, ""},
		{"version 11.0", func(c *MachineConfig) { c.QEMUVersion = Version{11, 0, 0} }, ok, ""},
		{"version 11.2", func(c *MachineConfig) { c.QEMUVersion = Version{11, 2, 0} }, notSupported, "newest ACPI profile (11.1"},
		{"no cpus", func(c *MachineConfig) { c.CPUs = 0 }, invalid, "cpu_count"},
		{"negative cpus", func(c *MachineConfig) { c.CPUs = -1 }, invalid, "cpu_count"},
		{"8.0 max cpus", func(c *MachineConfig) { c.QEMUVersion = Version{8, 0, 2}; c.CPUs = 288 }, ok, ""},
		{"8.0 too many cpus", func(c *MachineConfig) { c.QEMUVersion = Version{8, 0, 2}; c.CPUs = 289 }, invalid, "cpu_count"},
		{"8.2 max cpus", func(c *MachineConfig) { c.QEMUVersion = Version{8, 2, 0}; c.CPUs = 1024 }, ok, ""},
		{"8.2 too many cpus", func(c *MachineConfig) { c.QEMUVersion = Version{8, 2, 0}; c.CPUs = 1025 }, invalid, "cpu_count"},
		{"9.0 max cpus", func(c *MachineConfig) { c.QEMUVersion = Version{9, 0, 0}; c.CPUs = 4096 }, ok, ""},
		{"9.2 too many cpus", func(c *MachineConfig) { c.CPUs = 4097 }, invalid, "cpu_count"},
		{"no memory", func(c *MachineConfig) { c.MemoryBytes = 0 }, invalid, "memory_size"},
		{"1 MiB", func(c *MachineConfig) { c.MemoryBytes = 1 << 20 }, ok, ""},
		{"1 TiB", func(c *MachineConfig) { c.MemoryBytes = 1 << 40 }, ok, ""},
		{"over 1 TiB", func(c *MachineConfig) { c.MemoryBytes = 1<<40 + 1<<20 }, invalid, "memory_size"},
		{"partial MiB", func(c *MachineConfig) { c.MemoryBytes = 4<<30 + 4096 }, invalid, "memory_size"},
		{"share mode empty", func(c *MachineConfig) { c.HostShareMode = "" }, invalid, "host_share_mode"},
		{"share mode vvfat", func(c *MachineConfig) { c.HostShareMode = HostShareVVFAT }, ok, ""},
		{"share mode bogus", func(c *MachineConfig) { c.HostShareMode = "nfs" }, invalid, "host_share_mode"},
		{"negative nics", func(c *MachineConfig) { c.NumNICs = -1 }, invalid, "num_nics"},
		{"negative verity", func(c *MachineConfig) { c.NumVerityVolumes = -2 }, invalid, "num_verity_volumes"},
		{"negative gpus", func(c *MachineConfig) { c.NumGPUs = -1 }, invalid, "num_gpus"},
		{"absurd gpus", func(c *MachineConfig) { c.NumGPUs = 1 << 30 }, invalid, "num_gpus"},
		{"nvswitch without gpu", func(c *MachineConfig) { c.NumNVSwitches = 2 }, invalid, "num_nvswitches"},
		{"nvswitch with gpu", func(c *MachineConfig) { c.NumGPUs = 8; c.NumNVSwitches = 4 }, ok, ""},
		// 1 boot disk + 1 NIC + vsock + 9p + root disk = 5 auto-placed devices: 25 slots left.
		{"pcie.0 full", func(c *MachineConfig) { c.NumGPUs = 25 }, ok, ""},
		{"pcie.0 overfull", func(c *MachineConfig) { c.NumGPUs = 20; c.NumNVSwitches = 6 }, invalid, "slots"},
		{"hugepages gpus behind pxb", func(c *MachineConfig) { c.Hugepages = true; c.NumGPUs = 32 }, ok, ""},
		{"hugepages pxb full", func(c *MachineConfig) { c.Hugepages = true; c.NumGPUs = 33 }, invalid, "num_gpus"},
		{"hugepages pxb slot taken", func(c *MachineConfig) { c.Hugepages = true; c.NumGPUs = 1; c.NumVerityVolumes = 11 }, invalid, "0x10"},
		{"hugepages pxb slot free", func(c *MachineConfig) { c.Hugepages = true; c.NumGPUs = 1; c.NumVerityVolumes = 10 }, ok, ""},
		{"hugepages plain", func(c *MachineConfig) { c.Hugepages = true; c.HugepagesBackend = HugepagesPlain }, ok, ""},
		{"hugepages dstack", func(c *MachineConfig) { c.Hugepages = true; c.HugepagesBackend = HugepagesDstack }, ok, ""},
		{"dstack backend unused", func(c *MachineConfig) { c.HugepagesBackend = HugepagesDstack }, ok, ""},
		{"bogus backend", func(c *MachineConfig) { c.HugepagesBackend = "tmpfs" }, invalid, "HugepagesBackend"},
		// A TD's vCPU is Intel, so no AMD HyperTransport-hole relocation (upstream dumps).
		{"hugepages near 1 TiB", func(c *MachineConfig) { c.Hugepages = true; c.MemoryBytes = 1 << 40 }, ok, ""},
		{"hugepages big hole64", func(c *MachineConfig) {
			c.Hugepages = true
			c.PCIHole64Size, c.PCIHole64SizeSet = 1<<40, true
		}, ok, ""},
		{"hole64 without set", func(c *MachineConfig) { c.PCIHole64Size = 1 << 30 }, invalid, "PCIHole64SizeSet"},
		{"hole64 zero", func(c *MachineConfig) { c.PCIHole64SizeSet = true }, ok, ""},
		{"hole64 16 TiB", func(c *MachineConfig) { c.PCIHole64Size, c.PCIHole64SizeSet = 16<<40, true }, ok, ""},
		{"hole64 beyond 52 bits", func(c *MachineConfig) { c.PCIHole64Size, c.PCIHole64SizeSet = 1<<52, true }, invalid, "pci_hole64_size"},
		{"hole64 max", func(c *MachineConfig) { c.PCIHole64Size, c.PCIHole64SizeSet = ^uint64(0), true }, invalid, "pci_hole64_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.want == ok && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.want != ok && err == nil:
				t.Fatal("accepted")
			case tc.want == notSupported && !errors.Is(err, ErrNotSupported):
				t.Fatalf("want ErrNotSupported, got %v", err)
			case tc.want == invalid && errors.Is(err, ErrNotSupported):
				t.Fatalf("want a plain error, got ErrNotSupported: %v", err)
			}
			if err != nil && !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q does not name %q", err, tc.field)
			}
			if _, berr := Build(c); (berr == nil) != (err == nil) && err != nil {
				t.Fatalf("Build accepts what Validate rejects")
			}
		})
	}
}

func TestMaxCPUs(t *testing.T) {
	for _, tc := range []struct {
		v    Version
		want int
	}{
		{Version{8, 0, 0}, 288}, {Version{8, 1, 0}, 1024}, {Version{8, 2, 9}, 1024},
		{Version{9, 0, 0}, 4096}, {Version{9, 2, 1}, 4096},
	} {
		if got := MaxCPUs(tc.v); got != tc.want {
			t.Errorf("MaxCPUs(%s) = %d, want %d", tc.v, got, tc.want)
		}
	}
}
