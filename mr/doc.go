// Package mr computes, bit for bit, the Intel TDX measurement registers a dstack confidential
// VM reports: MRTD (the firmware image as QEMU/KVM adds it to the TD) and RTMR0-2 with the
// event log OVMF/TDVF and the Linux EFI stub extend into them.
//
// Work that depends only on the image is done once: ParseFirmware reads the TDVF metadata
// and caches MRTD, the CFV digest and the boot/Secure Boot variable digests; PrepareKernel
// keeps the kernel and memoizes its Authenticode digest per patched setup header. Measuring
// one more VM shape then costs a TD HOB, the ACPI blobs and at most one kernel hash.
//
// Sources for each register:
//   - MRTD: TDH.MEM.PAGE.ADD / TDH.MR.EXTEND of every TDVF section (Intel TDX module ABI;
//     QEMU target/i386/kvm/tdx.c tdx_init_fw_mem_region).
//   - RTMR0: TD HOB (QEMU hw/i386/tdvf-hob.c), CFV, Secure Boot variables, separator,
//     ACPI fw_cfg blobs, BootOrder and Boot0000 (OVMF TdTcg2Dxe, AcpiPlatformDxe, BDS).
//   - RTMR1: the kernel's Authenticode digest and the boot-manager EFI actions.
//   - RTMR2: the kernel's UEFI LoadOptions and the initrd (Linux EFI stub tagged events).
package mr
