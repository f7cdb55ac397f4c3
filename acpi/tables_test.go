package acpi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

func TestTableHeader(t *testing.T) {
	tbl := newTable("WAET", 1, []byte{2, 0, 0, 0})
	want := []byte("WAET\x28\x00\x00\x00\x01\x00BOCHS BXPC    \x01\x00\x00\x00BXPC\x01\x00\x00\x00\x02\x00\x00\x00")
	if !bytes.Equal(tbl, want) {
		t.Fatalf("newTable\n got %q\nwant %q", tbl, want)
	}
	streamed := endTable(append(beginTable("WAET", 1), 2, 0, 0, 0))
	if !bytes.Equal(streamed, tbl) {
		t.Fatal("beginTable/endTable differ from newTable")
	}
	tbl[tableChecksumOffset] = checksum8(tbl)
	if sum8(tbl) != 0 {
		t.Fatal("checksum8 does not zero the sum")
	}
}

// The memory ranges follow build_srat's two cuts; expectations worked out by hand from QEMU's
// pc_q35_init split (below 4 GiB: all RAM under 0xb0000000, else 2 GiB).
func TestSRATMemoryRanges(t *testing.T) {
	const k, m, g = 1 << 10, 1 << 20, 1 << 30
	for _, tc := range []struct {
		mem   uint64
		nodes int
		want  []memRange
	}{
		{1 * m, 0, []memRange{{0, 640 * k, 0}}},
		{2 * m, 0, []memRange{{0, 640 * k, 0}, {1 * m, 1 * m, 0}}},
		{2815 * m, 0, []memRange{{0, 640 * k, 0}, {1 * m, 2814 * m, 0}}},
		{2816 * m, 0, []memRange{{0, 640 * k, 0}, {1 * m, 2*g - 1*m, 0}, {4 * g, 768 * m, 0}}},
		{16 * g, 0, []memRange{{0, 640 * k, 0}, {1 * m, 2*g - 1*m, 0}, {4 * g, 14 * g, 0}}},
		// Node 0 ends where low RAM does: node 1 has nothing below 4 GiB and starts there.
		{6 * g, 3, []memRange{{0, 640 * k, 0}, {1 * m, 2*g - 1*m, 0}, {4 * g, 2 * g, 1}, {6 * g, 2 * g, 2}}},
		{16 * g, 2, []memRange{{0, 640 * k, 0}, {1 * m, 2*g - 1*m, 0}, {4 * g, 6 * g, 0}, {10 * g, 8 * g, 1}}},
	} {
		c := MachineConfig{MemoryBytes: tc.mem, Hugepages: tc.nodes > 0, NUMANodes: make([]NUMANode, tc.nodes)}
		if got := sratMemoryRanges(&c); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%d MiB: got %v want %v", tc.mem/m, got, tc.want)
		}
	}
}

// madtEntries splits a MADT into its interrupt-controller structures.
func madtEntries(t *testing.T, madt []byte) map[byte]int {
	t.Helper()
	count := map[byte]int{}
	for o := tableHeaderLen + 8; o < len(madt); {
		if o+2 > len(madt) || madt[o+1] < 2 || o+int(madt[o+1]) > len(madt) {
			t.Fatalf("malformed MADT structure at %d", o)
		}
		count[madt[o]]++
		o += int(madt[o+1])
	}
	return count
}

func TestMADTStructures(t *testing.T) {
	for _, tc := range []struct {
		cpus    int
		version Version
		xapic   int
		x2apic  int
		isos    int
		nmiType byte
	}{
		{1, Version{9, 1, 0}, 1, 0, 16, madtTypeLocalAPICNMI},
		{255, Version{9, 2, 1}, 255, 0, 5, madtTypeLocalAPICNMI},
		{256, Version{9, 2, 1}, 255, 1, 5, madtTypeLocalX2APICNMI},
		{4096, Version{9, 2, 1}, 255, 4096 - 255, 5, madtTypeLocalX2APICNMI},
		{1024, Version{8, 2, 0}, 255, 1024 - 255, 16, madtTypeLocalX2APICNMI},
	} {
		c := MachineConfig{CPUs: tc.cpus, QEMUVersion: tc.version}
		madt := buildMADT(&c).data
		got := madtEntries(t, madt)
		want := map[byte]int{madtTypeLocalAPIC: tc.xapic, madtTypeIOAPIC: 1, madtTypeIntSrcOverride: tc.isos, tc.nmiType: 1}
		if tc.x2apic > 0 {
			want[madtTypeLocalX2APIC] = tc.x2apic
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%d CPUs on %s: structures %v, want %v", tc.cpus, tc.version, got, want)
		}
		if binary.LittleEndian.Uint32(madt[4:]) != uint32(len(madt)) {
			t.Errorf("%d CPUs: header length wrong", tc.cpus)
		}
	}
}

func TestAssembleRejectsBadDSDT(t *testing.T) {
	cfg := testConfig()
	good := newTable("DSDT", 1, []byte{0x10})
	short := bytes.Clone(good)
	binary.LittleEndian.PutUint32(short[4:], 99)
	for name, d := range map[string][]byte{
		"nil":       nil,
		"short":     good[:20],
		"signature": newTable("SSDT", 1, nil),
		"length":    short,
		"oversized": func() []byte { return newTable("DSDT", 1, make([]byte, maxDSDTLen)) }(),
	} {
		if _, err := assemble(&cfg, d); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzMachineConfig: any configuration is either rejected with an error or yields blobs a
// firmware can load into a consistent ACPI tree; never a panic, and allocation stays bounded
// because Validate caps every count before anything is built.
func FuzzMachineConfig(f *testing.F) {
	f.Add(8, uint64(4096), 9, 2, 1, uint16(0), int8(1), int8(0), int8(0), int8(0), uint64(0))
	f.Add(256, uint64(16384), 8, 2, 0, uint16(0x7f), int8(2), int8(3), int8(8), int8(4), uint64(1<<41))
	f.Add(16, uint64(2816), 9, 1, 0, uint16(0x1ff), int8(0), int8(1), int8(1), int8(0), uint64(0))
	f.Add(4096, uint64(1<<20), 9, 2, 1, uint16(0x100), int8(0), int8(0), int8(0), int8(0), uint64(1<<60))
	f.Fuzz(func(t *testing.T, cpus int, memMiB uint64, major, minor, micro int, flags uint16,
		nics, verity, gpus, nvswitches int8, hole64 uint64) {
		pic := flags&(1<<1) != 0
		c := MachineConfig{
			CPUs:             cpus,
			MemoryBytes:      memMiB << 20,
			QEMUVersion:      Version{major, minor, micro},
			SMM:              flags&(1<<0) != 0,
			NumNICs:          int(nics),
			NumVerityVolumes: int(verity),
			NumGPUs:          int(gpus),
			NumNVSwitches:    int(nvswitches),
			HotplugOff:       flags&(1<<3) != 0,
			PCIHole64Size:    hole64,
			PCIHole64SizeSet: flags&(1<<4) != 0,
			RootVerity:       flags&(1<<5) != 0,
			HostShareMode:    []HostShareMode{HostShare9p, HostShareVVFAT, "", "x"}[flags>>6&3],
			Hugepages:        flags&(1<<8) != 0,
			HugepagesBackend: []HugepagesBackend{"", HugepagesPlain, HugepagesDstack, "y"}[flags>>9&3],
		}
		if flags&(1<<2) != 0 {
			c.PIC = &pic
		}
		if err := c.Validate(); err != nil {
			return
		}
		b, err := assemble(&c, newTable("DSDT", 1, []byte{0x10, 0x05}))
		if err != nil {
			t.Fatalf("valid config %+v: %v", c, err)
		}
		checkBlobs(t, &c, b)
		if _, err := Build(c); err != nil && !errors.Is(err, ErrNotSupported) {
			t.Fatalf("Build on a valid config: %v", err)
		}
	})
}

// FuzzAssembleDSDT: whatever the DSDT builder hands over, assemble rejects it or produces
// loadable blobs.
func FuzzAssembleDSDT(f *testing.F) {
	f.Add(newTable("DSDT", 1, []byte{0x10, 0x05}))
	f.Add([]byte("DSDT\x24\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, dsdt []byte) {
		cfg := testConfig()
		b, err := assemble(&cfg, dsdt)
		if err != nil {
			return
		}
		checkBlobs(t, &cfg, b)
	})
}

func BenchmarkAssemble4096CPUs(b *testing.B) {
	cfg := testConfig()
	cfg.CPUs = 4096
	cfg.Hugepages = true
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	// A DSDT of the size QEMU's per-CPU AML reaches for 4096 vCPUs.
	dsdt := newTable("DSDT", 1, make([]byte, 1<<20))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := assemble(&cfg, dsdt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuild4096CPUs(b *testing.B) {
	cfg := testConfig()
	cfg.CPUs = 4096
	if _, err := Build(cfg); errors.Is(err, ErrNotSupported) {
		b.Skipf("Build: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(cfg); err != nil {
			b.Fatal(err)
		}
	}
}
