package acpi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/dstack-mr/dstack-mr/acpi/aml"
)

func cpuHotplugBytes(t testing.TB, cfg *MachineConfig) []byte {
	t.Helper()
	terms, err := cpuHotplugAML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, term := range terms {
		out = append(out, term.Bytes()...)
	}
	return out
}

// gpeScopeBytes is what build_dsdt emits just before calling build_cpus_aml.
func gpeScopeBytes() []byte {
	return aml.Scope("_GPE").Append(aml.NameDecl("_HID", aml.String("ACPI0006"))).Bytes()
}

// TestCPUHotplugAMLInOracle checks, for every oracle shape, that the CPU hotplug AML occurs
// verbatim in QEMU's DSDT, exactly once and right after the Scope(_GPE) declaration.
func TestCPUHotplugAMLInOracle(t *testing.T) {
	bc := blobCache{}
	built := map[string][]byte{}
	matched, total := 0, 0
	perProfile := map[string][2]int{}
	for _, o := range loadOracle(t) {
		if o.Error != "" {
			continue
		}
		cfg := o.machine(t)
		key := fmt.Sprintf("%s/%d/%v", cfg.QEMUVersion, cfg.CPUs, cfg.numaNodes())
		want, ok := built[key]
		if !ok {
			want = cpuHotplugBytes(t, &cfg)
			built[key] = want
		}
		tables := bc.get(t, o.SHA384["tables"])
		dsdt := oracleDSDT(t, tables, o.tableList())
		delete(bc, o.SHA384["tables"]) // tables blobs are rarely shared; keep memory flat

		total++
		c := perProfile[o.Config.QEMUVersion]
		c[1]++
		at := bytes.Index(dsdt, want)
		gpe := gpeScopeBytes()
		switch {
		case at < 0:
			t.Errorf("%s: CPU hotplug AML (%d bytes) not found in the DSDT; %s", o.name(), len(want), describeMiss(dsdt, want, "oracle", "ours"))
		case bytes.Count(dsdt, want) != 1:
			t.Errorf("%s: CPU hotplug AML occurs %d times", o.name(), bytes.Count(dsdt, want))
		case at < len(gpe) || !bytes.Equal(dsdt[at-len(gpe):at], gpe):
			t.Errorf("%s: CPU hotplug AML at DSDT offset %d does not follow Scope(_GPE)", o.name(), at)
		default:
			matched++
			c[0]++
		}
		perProfile[o.Config.QEMUVersion] = c
	}
	t.Logf("CPU hotplug AML matched %d/%d oracle DSDTs (per profile: %v)", matched, total, perProfile)
}

// describeMiss explains why needle is not in hay: where the bytes of hay that start like
// needle first depart from it.
func describeMiss(hay, needle []byte, hayName, needleName string) string {
	prefix := needle[:min(len(needle), 16)]
	at := bytes.Index(hay, prefix)
	if at < 0 {
		return "even its first 16 bytes are missing"
	}
	got := hay[at:]
	i := firstDiff(got, needle)
	return fmt.Sprintf("first difference %d bytes in (offset %d): %s % x, %s % x", i, at+i,
		hayName, got[i:min(len(got), i+16)], needleName, needle[i:min(len(needle), i+16)])
}

// amlPkgObject returns the object at b[at:] whose opcode takes opLen bytes and is followed by
// a PkgLength covering the rest of the object (ACPI 6.5 section 20.2.4).
func amlPkgObject(b []byte, at, opLen int) ([]byte, error) {
	p := at + opLen
	if p >= len(b) {
		return nil, fmt.Errorf("no PkgLength at %d", p)
	}
	extra := int(b[p] >> 6)
	n := int(b[p] & 0x3F)
	if extra > 0 {
		n = int(b[p] & 0x0F)
		if p+extra >= len(b) {
			return nil, fmt.Errorf("PkgLength at %d runs past the end", p)
		}
		for i := 1; i <= extra; i++ {
			n |= int(b[p+i]) << (4 + 8*(i-1))
		}
	}
	end := p + n
	if n < extra+1 || end > len(b) {
		return nil, fmt.Errorf("PkgLength %d at %d does not fit %d bytes", n, p, len(b))
	}
	return b[at:end], nil
}

// namedObject finds the package-framed object with opcode op named name (a NameSeg right after
// its PkgLength), e.g. Device (5B 82) CFFF.
func namedObject(t testing.TB, b, op []byte, name string) []byte {
	t.Helper()
	for at := bytes.Index(b, op); at >= 0; {
		obj, err := amlPkgObject(b, at, len(op))
		if err == nil {
			rest := obj[len(op):]
			rest = rest[1+int(rest[0]>>6):] // skip the PkgLength
			if bytes.HasPrefix(rest, []byte(name)) {
				return obj
			}
		}
		next := bytes.Index(b[at+1:], op)
		if next < 0 {
			break
		}
		at += 1 + next
	}
	t.Fatalf("no %x object named %s", op, name)
	return nil
}

var (
	opProcessor = []byte{0x5B, 0x83}
	opDevice    = []byte{0x5B, 0x82}
	opMethod    = []byte{0x14}
	opIf        = []byte{0xA0}
	opWhile     = []byte{0xA2}
)

// TestCPUHotplugAML4096 checks the shape no oracle reaches (it stops at 256 vCPUs): the 4096
// vCPUs q35 allows from QEMU 9.0, against testdata/acpi-cpu/cpus-4096.asl, hand-written from
// QEMU's source (the reasoning is in that file) and compiled by iasl.
func TestCPUHotplugAML4096(t *testing.T) {
	golden := readGoldenAML(t, "../testdata/acpi-cpu/cpus-4096.aml")
	cfg := MachineConfig{CPUs: 4096, QEMUVersion: Version{9, 2, 1}}
	terms, err := cpuHotplugAML(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	sb := terms[0].Bytes()

	// vCPUs 254..256 are consecutive children of \_SB.CPUS: the Processor-to-Device switch.
	boundary := slices.Concat(
		namedObject(t, golden, opProcessor, "C0FE"),
		namedObject(t, golden, opDevice, "C0FF"),
		namedObject(t, golden, opDevice, "C100"))
	if !bytes.Contains(sb, boundary) {
		t.Errorf("C0FE, C0FF, C100 do not match %s", describeMiss(sb, boundary, "ours", "golden"))
	}
	// vCPU 4095 closes \_SB.CPUS, which closes Scope(_SB).
	if last := namedObject(t, golden, opDevice, "CFFF"); !bytes.HasSuffix(sb, last) {
		t.Errorf("Scope(_SB) does not end with CFFF; %s", describeMiss(sb, last, "ours", "golden"))
	}
	// CTFY's last test is for uid 0xFFF.
	ctfyGolden := namedObject(t, golden, opMethod, "CTFY")
	wantIf, err := amlPkgObject(ctfyGolden, bytes.LastIndex(ctfyGolden, opIf), 1)
	if err != nil {
		t.Fatal(err)
	}
	if ctfy := namedObject(t, sb, opMethod, "CTFY"); !bytes.HasSuffix(ctfy, wantIf) {
		t.Errorf("CTFY does not end with If (Arg0 == 0x0FFF) { Notify (CFFF, Arg1) }")
	}
	// CSCN's scan loop is bounded by the number of possible vCPUs.
	bnd := namedObject(t, golden, opMethod, "BND0")
	while, err := amlPkgObject(bnd, bytes.Index(bnd, opWhile), 1)
	if err != nil {
		t.Fatal(err)
	}
	pred := while[2:] // the While's body is empty: after op and 1-byte PkgLength, its predicate
	if cscn := namedObject(t, sb, opMethod, "CSCN"); !bytes.Contains(cscn, pred) {
		t.Errorf("CSCN lacks the scan bound (Local0 == One) && (Local3 < 0x1000)")
	}

	if n := bytes.Count(sb, []byte("_MAT\x11\x0b\x0a\x08\x00\x08")); n != 255 {
		t.Errorf("%d Local APIC _MAT buffers, want 255 (APIC IDs 0..254)", n)
	}
	if n := bytes.Count(sb, []byte("_MAT\x11\x13\x0a\x10\x09\x10")); n != 4096-255 {
		t.Errorf("%d x2APIC _MAT buffers, want %d", n, 4096-255)
	}
}

func readGoldenAML(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < tableHeaderLen || int(binary.LittleEndian.Uint32(b[4:])) != len(b) {
		t.Fatalf("%s: not an AML table", path)
	}
	return b[tableHeaderLen:]
}

// TestCPUHotplugAMLLimits: "C%.03X" names only 4096 vCPUs in a NameSeg (QEMU would assert).
func TestCPUHotplugAMLLimits(t *testing.T) {
	for _, tc := range []struct {
		cpus int
		ok   bool
	}{{0, false}, {1, true}, {3, true}, {255, true}, {4096, true}, {4097, false}, {-1, false}} {
		cfg := MachineConfig{CPUs: tc.cpus, QEMUVersion: Version{9, 2, 1}}
		_, err := cpuHotplugAML(&cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%d vCPUs: err = %v, want ok=%v", tc.cpus, err, tc.ok)
		}
	}
}

func BenchmarkCPUHotplugAML256(b *testing.B) {
	cfg := MachineConfig{CPUs: 256, QEMUVersion: Version{8, 2, 0}}
	for b.Loop() {
		terms, err := cpuHotplugAML(&cfg)
		if err != nil {
			b.Fatal(err)
		}
		_ = terms[0].Bytes()
	}
}
