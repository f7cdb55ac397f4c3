package snp

import (
	"crypto/sha256"
	"encoding/binary"
)

// QEMU's SEV hashes table (target/i386/sev.c, SevHashTable): a header GUID and length, then one
// {GUID, u16 length, SHA-256} entry each for the command line, the initrd and the kernel.
var (
	guidHashesHeader = mustGUID("9438d606-4f22-4cc9-b479-a793d411fd21")
	guidCmdlineEntry = mustGUID("97d02dd8-bd20-4c94-aa78-e7714d36ab2a")
	guidInitrdEntry  = mustGUID("44baf731-3a2f-4bd7-9af1-41e29169781d")
	guidKernelEntry  = mustGUID("4de79437-abd2-427f-b835-d5b172d2045b")
)

const (
	hashesEntrySize = 16 + 2 + sha256.Size
	hashesTableSize = 16 + 2 + 3*hashesEntrySize // 168
	// QEMU copies the table padded to 16 bytes; the padding is zero.
	paddedHashesTableSize = (hashesTableSize + 15) &^ 15
)

// hashesPage is the page QEMU measures for the SNP_KERNEL_HASHES section: zero but for the
// table at the hashes table GPA's offset within its page. The command line is hashed as QEMU
// gets it plus the terminating NUL; the kernel and the initrd (SHA-256 of nothing when there is
// none) as the files are.
func hashesPage(tableGPA uint64, cmdline string, kernelSHA256, initrdSHA256 []byte) []byte {
	page := make([]byte, pageSize)
	t := page[tableGPA%pageSize:]
	copy(t, guidHashesHeader[:])
	binary.LittleEndian.PutUint16(t[16:], hashesTableSize)
	cmd := sha256.Sum256(append([]byte(cmdline), 0))
	for i, e := range []struct {
		guid   [16]byte
		digest []byte
	}{{guidCmdlineEntry, cmd[:]}, {guidInitrdEntry, initrdSHA256}, {guidKernelEntry, kernelSHA256}} {
		en := t[18+i*hashesEntrySize:]
		copy(en, e.guid[:])
		binary.LittleEndian.PutUint16(en[16:], hashesEntrySize)
		copy(en[18:], e.digest)
	}
	return page
}
