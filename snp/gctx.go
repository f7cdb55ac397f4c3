package snp

import (
	"crypto/sha512"
	"encoding/binary"
)

// DigestSize is the size of a launch digest (SHA-384).
const DigestSize = sha512.Size384

const pageSize = 4096

// PAGE_INFO page types (SEV-SNP ABI, SNP_LAUNCH_UPDATE).
const (
	pageTypeNormal  = 0x01
	pageTypeVMSA    = 0x02
	pageTypeZero    = 0x03
	pageTypeSecrets = 0x05
	pageTypeCPUID   = 0x06
)

// vmsaGPA is where the PSP records VMSA pages: the last page below 2^52 (KVM gives every VMSA
// the GPA -1, page aligned, with the bits above 51 cleared).
const vmsaGPA = 0x0000_FFFF_FFFF_F000

// pageInfoSize is the length of a PAGE_INFO record, which the record also carries.
const pageInfoSize = 0x70

// gctx is the guest context's launch digest: each page measured extends it with the SHA-384 of
// a PAGE_INFO record (current digest, contents digest, length, page type, 5 zero bytes of
// permissions and reserved fields, GPA; little-endian).
type gctx struct {
	ld [DigestSize]byte
}

var zeroDigest [DigestSize]byte

func (g *gctx) update(pageType byte, gpa uint64, contents *[DigestSize]byte) {
	var rec [pageInfoSize]byte
	copy(rec[0:], g.ld[:])
	copy(rec[DigestSize:], contents[:])
	binary.LittleEndian.PutUint16(rec[96:], pageInfoSize)
	rec[98] = pageType
	binary.LittleEndian.PutUint64(rec[104:], gpa)
	g.ld = sha512.Sum384(rec[:])
}

// normalPages measures data page by page from gpa; a short last page is hashed as it is, as
// QEMU only ever hands whole pages (the firmware size and the hashes page are page multiples).
func (g *gctx) normalPages(gpa uint64, data []byte) {
	for off := 0; off < len(data); off += pageSize {
		end := min(off+pageSize, len(data))
		d := sha512.Sum384(data[off:end])
		g.update(pageTypeNormal, gpa+uint64(off), &d)
	}
}

func (g *gctx) zeroPages(gpa, size uint64) {
	for off := uint64(0); off < size; off += pageSize {
		g.update(pageTypeZero, gpa+off, &zeroDigest)
	}
}

func (g *gctx) vmsaPage(page []byte) {
	d := sha512.Sum384(page)
	g.update(pageTypeVMSA, vmsaGPA, &d)
}
