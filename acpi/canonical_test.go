package acpi

import (
	"bytes"
	"fmt"
	"testing"
)

// TestCanonicalQEMU1021Dump holds this package against the one published dump of a real
// upstream 10.x QEMU for dstack's machine: Datura-ai/dstack@94dc90c1096c8c1e295d0e0076ac700e7aec5fe5
// verifier/builder/QEMU10_ORACLE.md ("dstack-acpi-tables oracle on Canonical QEMU 10.2.1"),
// where Ubuntu's qemu 1:10.2.1+ds-1ubuntu3.1 with a dump-only patch and dstack's 9.2.1 fork
// were run on the same two command lines. It records the table set and order, the DSDT and
// APIC lengths, and that FACS, FACP, APIC, MCFG and WAET are byte-identical between the two
// builds while RSDT differs only in the pointers the longer DSDT moves.
//
// The record names vCPUs, memory, GPUs and NVSwitches; everything else is dstack's default
// shape (one NIC, root verity, 9p, hotplug on), which the 9.2.1 lengths confirm, since this
// package's 9.2.1 output is byte-exact against dstack's fork (oracle_test.go).
func TestCanonicalQEMU1021Dump(t *testing.T) {
	for _, tc := range []struct {
		name             string
		cpus             int
		memGiB           uint64
		gpus, nvswitches int
		dsdt921, dsdt    int
		apic             int
	}{
		{"Shape-1 16c/32G 1 GPU", 16, 32, 1, 0, 9538, 9605, 240},
		{"Shape-2 128c/512G 8 GPU 4 NVSwitch", 128, 512, 8, 4, 19502, 19569, 1136},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.CPUs, cfg.MemoryBytes, cfg.NumGPUs, cfg.NumNVSwitches = tc.cpus, tc.memGiB<<30, tc.gpus, tc.nvswitches
			old, err := buildDump(cfg)
			if err != nil {
				t.Fatal(err)
			}
			cfg.QEMUVersion = Version{10, 2, 1}
			cur, err := buildDump(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range []struct {
				v     string
				blobs *Blobs
				dsdt  int
			}{{"9.2.1", old, tc.dsdt921}, {"10.2.1", cur, tc.dsdt}} {
				got := fmt.Sprint(tableLengths(b.blobs))
				want := fmt.Sprint([]string{"FACS", "DSDT", fmt.Sprint(b.dsdt), "FACP", "APIC", fmt.Sprint(tc.apic), "MCFG", "WAET", "RSDT"})
				if got != want {
					t.Errorf("%s tables %s, the dump has %s", b.v, got, want)
				}
			}
			for _, sig := range []string{"FACS", "FACP", "APIC", "MCFG", "WAET"} {
				if !bytes.Equal(tableBytes(t, old, sig), tableBytes(t, cur, sig)) {
					t.Errorf("%s differs between 9.2.1 and 10.2.1; the dump has it byte-identical", sig)
				}
			}
		})
	}
}

// tableLengths lists the signatures in blob order, with the DSDT's and APIC's lengths after
// their signatures (the lengths the dump record gives).
func tableLengths(b *Blobs) []string {
	var out []string
	for _, e := range b.List {
		out = append(out, e.Signature)
		if e.Signature == "DSDT" || e.Signature == "APIC" {
			out = append(out, fmt.Sprint(e.Length))
		}
	}
	return out
}

func tableBytes(t *testing.T, b *Blobs, sig string) []byte {
	t.Helper()
	for _, e := range b.List {
		if e.Signature == sig {
			return b.Tables[e.Offset : e.Offset+e.Length]
		}
	}
	t.Fatalf("no %s table", sig)
	return nil
}
