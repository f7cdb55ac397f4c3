package snp

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// DefaultVCPUType is the -cpu model dstack-vmm hard-codes for SEV-SNP guests.
const DefaultVCPUType = "EPYC-v4"

// cpuSignatures maps QEMU's EPYC CPU models (lower case) to their CPUID leaf 1 EAX, which QEMU
// puts in RDX at reset: family, model, stepping of the model's definition.
var cpuSignatures = func() map[string]uint32 {
	m := map[string]uint32{}
	for _, c := range []struct {
		names                   []string
		family, model, stepping uint32
	}{
		{[]string{"epyc", "epyc-v1", "epyc-v2", "epyc-ibpb", "epyc-v3", "epyc-v4"}, 23, 1, 2},
		{[]string{"epyc-rome", "epyc-rome-v1", "epyc-rome-v2", "epyc-rome-v3"}, 23, 49, 0},
		{[]string{"epyc-milan", "epyc-milan-v1", "epyc-milan-v2"}, 25, 1, 1},
		{[]string{"epyc-genoa", "epyc-genoa-v1"}, 25, 17, 0},
	} {
		for _, n := range c.names {
			m[n] = cpuSignature(c.family, c.model, c.stepping)
		}
	}
	return m
}()

// cpuSignature encodes CPUID leaf 1 EAX: extended family above 15, extended model in bits 16-19.
func cpuSignature(family, model, stepping uint32) uint32 {
	famLow, famExt := family, uint32(0)
	if family > 0xf {
		famLow, famExt = 0xf, (family-0xf)&0xff
	}
	return famExt<<20 | (model>>4&0xf)<<16 | famLow<<8 | (model&0xf)<<4 | stepping&0xf
}

// VCPUSignature returns the CPUID signature of a QEMU EPYC CPU model name (case-insensitive).
func VCPUSignature(name string) (uint32, error) {
	sig, ok := cpuSignatures[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return 0, fmt.Errorf("vCPU type %q is not supported: want one of %s", name, strings.Join(VCPUTypes(), ", "))
	}
	return sig, nil
}

// VCPUTypes lists the CPU model names VCPUSignature knows.
func VCPUTypes() []string {
	var out []string
	for n := range cpuSignatures {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// bspEIP is the x86 reset vector, where the boot processor starts.
const bspEIP = 0xfffffff0

// vmsaPage is the VMSA QEMU gives a vCPU at reset (the values virtee's sev-snp-measure uses for
// QEMU): real mode with CS based at eip's upper half, the architectural reset registers, RDX the
// CPU signature and SEV_FEATURES the guest features.
func vmsaPage(eip uint32, sig uint32, features uint64) []byte {
	p := make([]byte, pageSize)
	seg := func(off int, sel, attr uint16, limit uint32, base uint64) {
		binary.LittleEndian.PutUint16(p[off:], sel)
		binary.LittleEndian.PutUint16(p[off+2:], attr)
		binary.LittleEndian.PutUint32(p[off+4:], limit)
		binary.LittleEndian.PutUint64(p[off+8:], base)
	}
	seg(0x000, 0, 0x0093, 0xffff, 0)                           // ES
	seg(0x010, 0xf000, 0x009b, 0xffff, uint64(eip)&0xffff0000) // CS
	seg(0x020, 0, 0x0093, 0xffff, 0)                           // SS
	seg(0x030, 0, 0x0093, 0xffff, 0)                           // DS
	seg(0x040, 0, 0x0093, 0xffff, 0)                           // FS
	seg(0x050, 0, 0x0093, 0xffff, 0)                           // GS
	seg(0x060, 0, 0x0000, 0xffff, 0)                           // GDTR
	seg(0x070, 0, 0x0082, 0xffff, 0)                           // LDTR
	seg(0x080, 0, 0x0000, 0xffff, 0)                           // IDTR
	seg(0x090, 0, 0x008b, 0xffff, 0)                           // TR
	for _, f := range []struct {
		off int
		v   uint64
	}{
		{0x0D0, 0x1000},               // EFER.SVME
		{0x148, 0x40},                 // CR4.MCE
		{0x158, 0x10},                 // CR0.ET
		{0x160, 0x400},                // DR7
		{0x168, 0xffff0ff0},           // DR6
		{0x170, 0x2},                  // RFLAGS
		{0x178, uint64(eip) & 0xffff}, // RIP
		{0x268, 0x0007040600070406},   // G_PAT
		{0x310, uint64(sig)},          // RDX
		{0x3B0, features},             // SEV_FEATURES
		{0x3E8, 0x1},                  // XCR0
	} {
		binary.LittleEndian.PutUint64(p[f.off:], f.v)
	}
	binary.LittleEndian.PutUint32(p[0x408:], 0x1f80) // MXCSR
	binary.LittleEndian.PutUint16(p[0x410:], 0x037f) // x87 FCW
	return p
}
