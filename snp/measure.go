package snp

import (
	"crypto/sha256"
	"fmt"
)

// MaxVCPUs bounds the vCPU count (upstream dstack-mr's limit).
const MaxVCPUs = 512

// Launch is the VM shape the launch digest depends on beyond the image.
type Launch struct {
	// VCPUs is the count QEMU starts (dstack-vmm's effective count, see EffectiveVCPUs).
	VCPUs int
	// VCPUType is QEMU's -cpu model (dstack-vmm: EPYC-v4).
	VCPUType string
	// GuestFeatures is the VMSA's SEV_FEATURES (dstack: 1, SNPActive).
	GuestFeatures uint64
}

// DefaultLaunch is dstack-vmm's shape but for the vCPU count.
func DefaultLaunch(vcpus int) Launch {
	return Launch{VCPUs: vcpus, VCPUType: DefaultVCPUType, GuestFeatures: 1}
}

// EffectiveVCPUs is the vCPU count dstack-vmm gives QEMU (and the VMSA pages measured): at least
// one and, on a hugepages VM, rounded up to a multiple of its NUMA node count.
func EffectiveVCPUs(requested int, hugepages bool, numaNodes int) int {
	n := max(requested, 1)
	if hugepages {
		k := max(numaNodes, 1)
		n = (n + k - 1) / k * k
	}
	return n
}

// FromFirmware assembles the document of an image from its parsed SEV firmware, the command
// line as QEMU receives it and the kernel's and initrd's SHA-256 (nil initrd: none, which QEMU
// hashes as empty).
func FromFirmware(fw *Firmware, cmdline string, kernelSHA256, initrdSHA256 []byte) (*Measurement, error) {
	if initrdSHA256 == nil {
		e := sha256.Sum256(nil)
		initrdSHA256 = e[:]
	}
	m := &Measurement{
		Version:        Version,
		Cmdline:        cmdline,
		OVMFHash:       append(Hex(nil), fw.Digest[:]...),
		KernelHash:     append(Hex(nil), kernelSHA256...),
		InitrdHash:     append(Hex(nil), initrdSHA256...),
		HashesTableGPA: uint64(fw.HashesTableGPA),
		ResetEIP:       fw.ResetEIP,
		OVMFSections:   append([]Section(nil), fw.Sections...),
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// LaunchDigest is the MEASUREMENT an SNP attestation report of this image launched with l
// carries.
func (m *Measurement) LaunchDigest(l Launch) ([DigestSize]byte, error) {
	var out [DigestSize]byte
	if err := m.Validate(); err != nil {
		return out, err
	}
	if l.VCPUs < 1 || l.VCPUs > MaxVCPUs {
		return out, fmt.Errorf("vCPU count %d: want 1 to %d", l.VCPUs, MaxVCPUs)
	}
	sig, err := VCPUSignature(l.VCPUType)
	if err != nil {
		return out, err
	}
	if l.GuestFeatures&1 == 0 {
		return out, fmt.Errorf("guest features %#x: bit 0 (SNPActive) must be set for an SNP guest", l.GuestFeatures)
	}
	g := gctx{ld: [DigestSize]byte(m.OVMFHash)}
	for _, s := range m.OVMFSections {
		switch s.Type {
		case SectionSNPSecMemory, SectionSVSMCAA:
			g.zeroPages(s.GPA, s.Size)
		case SectionSNPSecrets:
			g.update(pageTypeSecrets, s.GPA, &zeroDigest)
		case SectionCPUID:
			g.update(pageTypeCPUID, s.GPA, &zeroDigest)
		case SectionSNPKernelHashes:
			g.normalPages(s.GPA, hashesPage(m.HashesTableGPA, m.Cmdline, m.KernelHash, m.InitrdHash))
		}
	}
	bsp := vmsaPage(bspEIP, sig, l.GuestFeatures)
	ap := vmsaPage(m.ResetEIP, sig, l.GuestFeatures)
	for i := range l.VCPUs {
		if i == 0 {
			g.vmsaPage(bsp)
		} else {
			g.vmsaPage(ap)
		}
	}
	return g.ld, nil
}
