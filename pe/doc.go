// Package pe computes the digest OVMF/TDVF extends into RTMR1 for a Linux
// kernel started by QEMU's x86 direct kernel boot (-kernel/-initrd).
//
// Two steps reproduce that digest:
//
//  1. PatchSetupHeader rewrites the Linux boot-protocol setup header the way
//     QEMU's x86_load_linux (hw/i386/x86.c, later hw/i386/x86-common.c) does
//     before handing the kernel to the firmware through fw_cfg. OVMF's
//     QemuKernelLoaderFsDxe glues the (patched) setup blob and the kernel
//     blob back into one file, and that file is what gets measured.
//  2. AuthenticodeSHA384 hashes the resulting PE/COFF image exactly as
//     EDK2's MeasurePeImageAndExtend (OvmfPkg/Tcg/TdTcg2Dxe/MeasureBootPeCoff.c,
//     SecurityPkg/Tcg/Tcg2Dxe/MeasureBootPeCoff.c) does.
//
// # When the kernel is measured unpatched
//
// Newer stacks measure the kernel file byte for byte as given to -kernel.
// Callers model that by skipping PatchSetupHeader and passing the original
// file to AuthenticodeSHA384. This happens when:
//
//   - QEMU >= 10.2 runs a confidential guest (TDX, SEV): commit
//     "x86/loader: Don't update kernel header for CoCo VMs" (Xiaoyao Li,
//     pulled 2025-08-27 for the 10.2 cycle; stable backports unchecked)
//     changed the condition that copies the patched header into the fw_cfg
//     setup blob from !sev_enabled() to !machine->cgs, so TDX guests get the
//     unpatched setup blob. Before that only SEV guests were exempt; TDX guests on QEMU
//     8.x-10.1 measure the patched header.
//   - QEMU >= 10.0 also publishes the unpatched file as fw_cfg
//     "etc/boot/kernel" ("x86/loader: expose unpatched kernel", Gerd
//     Hoffmann, pulled 2024-12-16). An OVMF whose QemuKernelLoaderFsDxe
//     fetches the etc/boot/* named blobs first (QemuKernelFetchNamedBlobs)
//     takes its "kernel" file from there and ignores the patched setup blob,
//     so it measures the unpatched kernel even where QEMU still patches.
//     The Debian 2025.02 OVMF in testdata has that code (its DXE volume holds
//     the "etc/boot/" prefix string); the Debian 2022.11 one does not.
//
// So a TDX guest measures the patched kernel only when QEMU is older than
// 10.2 and either QEMU is older than 10.0 or the firmware predates named
// blobs. That is a property of the QEMU/firmware pair, decided by the
// caller (package mr reads the firmware's trait, Image.KernelPatched);
// nothing else in the digest changes. The vectors in testdata (QEMU
// 8.2) all measure the patched kernel.
package pe
