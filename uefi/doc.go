// Package uefi parses the parts of an OVMF/TDVF firmware image that decide
// RTMR0 firmware events: PI firmware volumes (FV/FFS/sections, including the
// LZMA-compressed main volume), the boot-manager-menu load option OVMF's BDS
// registers as Boot0000, and the EFI variable store in the CFV.
//
// The package imports nothing else from the project so that it can be used
// (and fuzzed) on its own.
package uefi
