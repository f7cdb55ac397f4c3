// Package snp computes the AMD SEV-SNP launch MEASUREMENT of a dstack CVM ahead of time and
// reads and writes measurement.snp.cbor, the image's SNP measurement document.
//
// On an AMD EPYC host dstack-vmm launches the image's SEV firmware (metadata.json "bios-sev", an
// EDK2 OvmfPkg/AmdSev build) with QEMU's sev-snp-guest object and kernel-hashes=on. The PSP then
// measures, in order, into one SHA-384 chain of PAGE_INFO records (SEV-SNP ABI, SNP_LAUNCH_UPDATE):
// every page of the firmware at 4 GiB minus its size; the pages the firmware's SEV metadata
// describes (zero pages, the secrets and CPUID pages, and the page holding QEMU's table of the
// kernel's, initrd's and command line's SHA-256); and one VMSA page per vCPU with QEMU's reset
// state. The firmware part depends only on the file, so dstack stores that intermediate digest
// (ovmf_hash) in the document; the rest is recomputed from the document and the VM shape.
//
// The model follows QEMU as virtee's sev-snp-measure and upstream dstack-mr (sev.rs) describe it,
// and is proven against a real capture (see the tests).
package snp
