package mr

import (
	"crypto/sha512"
	"encoding/binary"
	"hash"
)

// MRTD accumulates 128-byte records, as the TDX module does for TDH.MEM.PAGE.ADD and
// TDH.MR.EXTEND (Intel TDX Module ABI, "MRTD" in TDH.MEM.PAGE.ADD / TDH.MR.EXTEND).
const mrtdRecordLen = 128

// mrtd computes MRTD for the sections of image (already validated by ParseTDVFMetadata).
//
// twoPass selects the order the TD was built in. QEMU 8.x with the TDX KVM of that time added
// all pages of a section first and extended them afterwards; from QEMU 9 / upstream KVM
// (tdx_gmem_post_populate) each page is added and then extended before the next.
func mrtd(image []byte, sections []Section, twoPass bool) []byte {
	h := sha512.New384()
	var rec [mrtdRecordLen]byte
	for _, s := range sections {
		pages := s.MemoryDataSize / pageSize
		extend := s.Attributes&AttrMRExtend != 0
		if twoPass {
			for p := range pages {
				pageAdd(h, &rec, s.MemoryAddress+p*pageSize)
			}
			if extend {
				for p := range pages {
					extendPage(h, &rec, image, s, p)
				}
			}
			continue
		}
		for p := range pages {
			pageAdd(h, &rec, s.MemoryAddress+p*pageSize)
			if extend {
				extendPage(h, &rec, image, s, p)
			}
		}
	}
	return h.Sum(nil)
}

// pageAdd writes the TDH.MEM.PAGE.ADD record: "MEM.PAGE.ADD", the GPA at byte 16, zeros.
func pageAdd(h hash.Hash, rec *[mrtdRecordLen]byte, gpa uint64) {
	clear(rec[:])
	copy(rec[:], "MEM.PAGE.ADD")
	binary.LittleEndian.PutUint64(rec[16:], gpa)
	h.Write(rec[:])
}

// extendPage writes, for each 256-byte chunk of page p, the TDH.MR.EXTEND record ("MR.EXTEND",
// the chunk's GPA at byte 16) followed by the chunk's content as two more records.
func extendPage(h hash.Hash, rec *[mrtdRecordLen]byte, image []byte, s Section, p uint64) {
	for c := uint64(0); c < pageSize; c += extendChunk {
		clear(rec[:])
		copy(rec[:], "MR.EXTEND")
		binary.LittleEndian.PutUint64(rec[16:], s.MemoryAddress+p*pageSize+c)
		h.Write(rec[:])
		off := uint64(s.DataOffset) + p*pageSize + c
		h.Write(image[off : off+extendChunk])
	}
}
