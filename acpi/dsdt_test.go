package acpi

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// TestDSDTOracle compares buildDSDT with the DSDT real QEMU built, for every oracle shape.
// Failures name the first differing offset and show the bytes around it; the log sums up
// matches per matrix and profile.
func TestDSDTOracle(t *testing.T) {
	cases := loadOracle(t)
	bc := blobCache{}
	type tally struct{ matched, total, unsupported int }
	progress := map[string]*tally{}
	var total, matched int
	for i := range cases {
		o := &cases[i]
		if o.Error != "" {
			continue
		}
		key := o.Config.Name + " " + o.Config.QEMUVersion
		if progress[key] == nil {
			progress[key] = &tally{}
		}
		tl := progress[key]
		tl.total++
		total++
		t.Run(o.name(), func(t *testing.T) {
			cfg := o.machine(t)
			tables, _, _ := o.want(t, bc)
			want := oracleDSDT(t, tables, o.tableList())
			got, err := buildDSDT(&cfg)
			if errors.Is(err, ErrNotSupported) {
				tl.unsupported++
				t.Skip(err)
			}
			if err != nil {
				t.Fatalf("buildDSDT: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal(describeAMLDiff(got, want))
			}
			tl.matched++
			matched++
		})
	}
	keys := make([]string, 0, len(progress))
	for k := range progress {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := progress[k]
		t.Logf("%-22s %3d/%3d matched (%d not supported)", k, p.matched, p.total, p.unsupported)
	}
	t.Logf("DSDT: %d/%d oracle shapes matched byte for byte", matched, total)
}

// describeAMLDiff reports where two AML tables first differ, with the bytes around it.
func describeAMLDiff(got, want []byte) string {
	i := firstDiff(got, want)
	lo := max(0, i-16)
	dump := func(b []byte) string {
		hi := min(len(b), i+32)
		if lo >= hi {
			return "(end)"
		}
		var s strings.Builder
		for j := lo; j < hi; j++ {
			if j == i {
				s.WriteString("[")
			}
			fmt.Fprintf(&s, "%02x", b[j])
			if j == i {
				s.WriteString("]")
			}
			s.WriteString(" ")
		}
		return s.String()
	}
	return fmt.Sprintf("DSDT is %d bytes, want %d; first difference at offset %#x\n got %s\nwant %s",
		len(got), len(want), i, dump(got), dump(want))
}

func TestPCIeRootLayout(t *testing.T) {
	slots := func(r *pcieRoot) string {
		var s []string
		for _, d := range r.devices {
			tag := ""
			switch {
			case d.rootPort:
				tag = "rp"
			case d.lpc:
				tag = "lpc"
			}
			s = append(s, fmt.Sprintf("%02x%s", d.devfn, tag))
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		name string
		cfg  MachineConfig
		want string
	}{
		{"cdrom root, 1 NIC", MachineConfig{NumNICs: 1},
			"00 08 10 18 20 f8lpc fa fb"},
		{"verity root, 1 NIC", MachineConfig{NumNICs: 1, RootVerity: true},
			"00 08 10 18 20 28 f8lpc fa fb"},
		{"2 GPUs, 1 NVSwitch", MachineConfig{NumGPUs: 2, NumNVSwitches: 1},
			"00 08 10 18 20rp 28rp 30rp f8lpc fa fb"},
		{"hugepages GPUs behind the expander", MachineConfig{NumNICs: 1, NumGPUs: 8, Hugepages: true, RootVerity: true},
			"00 08 10 18 20 28 80 f8lpc fa fb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := pcieRootLayout(&tc.cfg, atSetup)
			if err != nil {
				t.Fatal(err)
			}
			if got := slots(r); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	if _, err := pcieRootLayout(&MachineConfig{NumNICs: 40}, atSetup); err == nil {
		t.Error("40 NICs fit on pcie.0")
	}
}

func TestFreeRanges(t *testing.T) {
	used := []addrRange{{0xe0000000, 0xefffffff}}
	got := freeRanges(used, 0x80000000, 0xfebfffff)
	want := []addrRange{{0x80000000, 0xdfffffff}, {0xf0000000, 0xfebfffff}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %x want %x", got, want)
	}
	if got := freeRanges(used, 0xe8000000, 0xfebfffff); fmt.Sprint(got) != fmt.Sprint([]addrRange{{0xf0000000, 0xfebfffff}}) {
		t.Errorf("start inside the used range: got %x", got)
	}
}

func BenchmarkBuildDSDT(b *testing.B) {
	cfg := MachineConfig{CPUs: 32, MemoryBytes: 16 << 30, QEMUVersion: Version{9, 2, 1}, NumNICs: 1,
		HostShareMode: HostShare9p, NumGPUs: 8}
	for b.Loop() {
		if _, err := buildDSDT(&cfg); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDSDTUnverifiedShapes(t *testing.T) {
	cfg := MachineConfig{CPUs: 4, MemoryBytes: 4 << 30, QEMUVersion: Version{8, 2, 0}, NumNICs: 1,
		HostShareMode: HostShare9p, Hugepages: true, NumGPUs: 2, NumNVSwitches: 1}
	if _, err := buildDSDT(&cfg); !errors.Is(err, ErrNotSupported) {
		t.Errorf("hugepages with NVSwitches: got %v, want ErrNotSupported", err)
	}
}

// FuzzBuildDSDT checks that any machine Validate accepts yields a well-formed DSDT or an error,
// never a panic.
func FuzzBuildDSDT(f *testing.F) {
	f.Add(uint16(1), uint32(512), uint8(0), uint8(1), uint8(0), uint8(0), uint8(0), uint64(0), uint8(0))
	f.Add(uint16(128), uint32(65536), uint8(2), uint8(1), uint8(8), uint8(4), uint8(0xff), uint64(1<<41), uint8(1))
	f.Fuzz(func(t *testing.T, cpus uint16, memMiB uint32, vols, nics, gpus, nvs, flags uint8, hole64 uint64, ver uint8) {
		versions := []Version{{8, 2, 0}, {9, 1, 0}, {9, 2, 1}}
		cfg := MachineConfig{
			CPUs:             int(cpus),
			MemoryBytes:      uint64(memMiB) * mib,
			QEMUVersion:      versions[int(ver)%len(versions)],
			NumVerityVolumes: int(vols),
			NumNICs:          int(nics),
			NumGPUs:          int(gpus),
			NumNVSwitches:    int(nvs),
			HotplugOff:       flags&1 != 0,
			RootVerity:       flags&2 != 0,
			Hugepages:        flags&4 != 0,
			SMM:              flags&8 != 0,
			HostShareMode:    HostShare9p,
		}
		if flags&16 != 0 {
			cfg.HostShareMode = HostShareVVFAT
		}
		if flags&32 != 0 {
			cfg.PCIHole64Size, cfg.PCIHole64SizeSet = hole64, true
		}
		if cfg.Validate() != nil {
			return
		}
		d, err := buildDSDT(&cfg)
		if err != nil {
			return
		}
		if err := checkDSDT(d); err != nil {
			t.Fatal(err)
		}
	})
}
