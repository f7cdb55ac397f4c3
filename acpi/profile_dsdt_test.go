package acpi

import (
	"bytes"
	"os"
	"testing"
)

// amlMethod extracts Method(name) from an AML byte stream: MethodOp, PkgLength, NameSeg.
func amlMethod(t *testing.T, blob []byte, name string) []byte {
	t.Helper()
	for i := bytes.Index(blob, []byte(name)); i >= 0; {
		for k := 1; k <= 4; k++ {
			start := i - k - 1
			if start < 0 || blob[start] != 0x14 || int(blob[start+1]>>6)+1 != k {
				continue
			}
			n := int(blob[start+1] & 0x3F)
			if k > 1 {
				n = int(blob[start+1] & 0x0F)
				for j := 1; j < k; j++ {
					n |= int(blob[start+1+j]) << (4 + 8*(j-1))
				}
			}
			if end := start + 1 + n; end <= len(blob) {
				return blob[start:end]
			}
		}
		next := bytes.Index(blob[i+1:], []byte(name))
		if next < 0 {
			break
		}
		i += 1 + next
	}
	t.Fatalf("no Method(%s) in blob", name)
	return nil
}

// TestCPUScanMethodAgainstQEMUTestBlobs checks CSCN, the one DSDT method QEMU 10.0 changed for
// dstack's machine (qemu/qemu@8aa35bebee, remove events queued in CEJL), against the q35 DSDT
// that QEMU's own test suite expects (tests/data/acpi/x86/q35/DSDT) before and after that
// change: real QEMU output, not written here. The test machine's vCPU count only appears as
// the scan bound, so the method must match for exactly one count.
func TestCPUScanMethodAgainstQEMUTestBlobs(t *testing.T) {
	for _, tc := range []struct {
		file      string
		ejectList bool
	}{
		{"../testdata/acpi-profiles/qemu-q35-DSDT-before-cpuhp-ej-list.aml", false},
		{"../testdata/acpi-profiles/qemu-q35-DSDT-10.1.0-rc0.aml", true},
	} {
		blob, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		want := amlMethod(t, blob, cpuScanMethod)
		matched := 0
		for n := 1; n <= 16; n++ {
			if bytes.Equal(cpuScanMethodAML(n, tc.ejectList).Bytes(), want) {
				matched++
			}
		}
		if matched != 1 {
			t.Errorf("%s: CSCN (eject list %v) matches for %d vCPU counts, want exactly 1", tc.file, tc.ejectList, matched)
		}
	}
}

// TestProfile10DSDTSize: for every 9.2.1 oracle shape, the 10.x DSDT is the oracle's plus
// the 67 bytes of the CSCN change (PROFILES.md), plus one byte for each enclosing PkgLength
// whose encoding grows.
func TestProfile10DSDTSize(t *testing.T) {
	cases := loadOracle(t)
	checked := 0
	for _, c := range cases {
		if c.Error != "" || c.Config.QEMUVersion != "9.2.1" {
			continue
		}
		cfg := c.machine(t)
		old, err := buildDSDT(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []Version{{10, 0, 0}, {10, 1, 0}, {10, 2, 1}} {
			cfg := cfg
			cfg.QEMUVersion = v
			if v.AtLeast(10, 1, 0) && (cfg.PICEnabled() || cfg.SMM) {
				continue
			}
			got, err := buildDSDT(&cfg)
			if err != nil {
				t.Fatalf("%s as %s: %v", c.name(), v, err)
			}
			if d := len(got) - len(old); d < 67 || d > 70 {
				t.Fatalf("%s as %s: DSDT grew by %d bytes, want 67 plus PkgLength growth", c.name(), v, d)
			}
			checked++
		}
	}
	t.Logf("%d shapes rebuilt as 10.0/10.1/10.2", checked)
}

// TestProfile11DSDTDropsLegacyINI: 11.0 (fork acpi_dump_compat_before(11,0,0) in build_cpus_aml;
// "pc: Start with modern CPU hotplug interface by default") drops exactly PRES's
// Method (_INI, 0, Serialized) { CSEL = Zero } = 14 0C 5F494E49 08 70 00 4353454C (13 bytes),
// plus at most the PkgLength bytes of the enclosing PRES/_SB/DSDT that shrink with it.
// Source: kvinwang/qemu-tdx@72bedd9c51 hw/acpi/cpu.c guards _INI with acpi_dump_compat_before(11, 0, 0).
func TestProfile11DSDTDropsLegacyINI(t *testing.T) {
	ini := []byte{0x14, 0x0C, '_', 'I', 'N', 'I', 0x08, 0x70, 0x00, 'C', 'S', 'E', 'L'}
	for _, n := range []int{1, 8, 300} {
		c10 := testConfig()
		c10.CPUs, c10.QEMUVersion = n, Version{10, 2, 1}
		c11 := c10
		c11.QEMUVersion = Version{11, 0, 0}
		d10, err := buildDSDT(&c10)
		if err != nil {
			t.Fatal(err)
		}
		d11, err := buildDSDT(&c11)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Count(d10, ini) != 1 || bytes.Contains(d11, ini) {
			t.Errorf("%d vCPUs: _INI in 10.2 %d times, in 11.0 %v", n, bytes.Count(d10, ini), bytes.Contains(d11, ini))
		}
		if d := len(d10) - len(d11); d < 13 || d > 16 {
			t.Errorf("%d vCPUs: 11.0 DSDT is %d bytes smaller, want 13 plus PkgLength shrink", n, d)
		}
	}
}
