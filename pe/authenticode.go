package pe

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
)

// PE/COFF layout, Microsoft PE format specification.
const (
	dosMagic      = 0x5a4d     // "MZ"
	offLfanew     = 0x3c       // e_lfanew in the DOS header
	peSignature   = 0x00004550 // "PE\0\0"
	coffHeaderLen = 20

	offNumberOfSections     = 2 // within the COFF header
	offSizeOfOptionalHeader = 16

	magicPE32     = 0x10b
	magicPE32Plus = 0x20b

	offSizeOfHeaders = 60 // within the optional header, same for both kinds
	offCheckSum      = 64

	// NumberOfRvaAndSizes and the data directories follow the fields that
	// differ in width between PE32 and PE32+.
	offNumRvaPE32     = 92
	offNumRvaPE32Plus = 108

	dataDirLen       = 8
	maxDataDirs      = 16
	certTableDirIdx  = 4 // IMAGE_DIRECTORY_ENTRY_SECURITY
	sectionHeaderLen = 40

	offSizeOfRawData    = 16 // within a section header
	offPointerToRawData = 20
)

// AuthenticodeSHA384 returns the SHA-384 Authenticode digest of a PE/COFF
// image the way EDK2's MeasurePeImageAndExtend computes it for the TCG/CC
// event log: the headers up to SizeOfHeaders without the CheckSum field and
// the certificate-table directory entry, then every section's raw data in
// file order, then whatever follows the last hashed byte except the
// certificate table's size at the end. Unlike signing tools, EDK2 pads
// nothing, so neither does this.
func AuthenticodeSHA384(image []byte) ([]byte, error) {
	return authenticodeSHA384(peView{image: image})
}

// AuthenticodeSHA384Patched is AuthenticodeSHA384 of image with its first len(head) bytes
// replaced by head (PatchedSetupHeader's output), computed without copying image: the
// patched bytes are substituted as the ranges are hashed.
func AuthenticodeSHA384Patched(image, head []byte) ([]byte, error) {
	if len(head) > len(image) {
		return nil, fmt.Errorf("pe: %d patched bytes for a %d-byte image", len(head), len(image))
	}
	return authenticodeSHA384(peView{head: head, image: image})
}

// peView is image with its first len(head) bytes replaced by head.
type peView struct {
	head, image []byte
}

func (v peView) len() int { return len(v.image) }

// bytes returns the view's bytes [lo, hi): a sub-slice where the range lies on one side of
// the boundary, a small copy where it straddles it (only header fields do).
func (v peView) bytes(lo, hi int) []byte {
	switch {
	case lo >= len(v.head):
		return v.image[lo:hi]
	case hi <= len(v.head):
		return v.head[lo:hi]
	}
	out := make([]byte, 0, hi-lo)
	return append(append(out, v.head[lo:]...), v.image[len(v.head):hi]...)
}

func (v peView) u16(off int) uint16 { return binary.LittleEndian.Uint16(v.bytes(off, off+2)) }
func (v peView) u32(off int) uint32 { return binary.LittleEndian.Uint32(v.bytes(off, off+4)) }

// hash writes the view's bytes [lo, hi) to w.
func (v peView) hash(w io.Writer, lo, hi int) {
	if lo < len(v.head) {
		w.Write(v.head[lo:min(hi, len(v.head))])
		lo = min(hi, len(v.head))
	}
	w.Write(v.image[lo:hi])
}

func authenticodeSHA384(image peView) ([]byte, error) {
	hdr, err := parsePEHeaders(image)
	if err != nil {
		return nil, err
	}
	secs, err := hdr.rawSections(image)
	if err != nil {
		return nil, err
	}

	h := sha512.New384()
	image.hash(h, 0, hdr.checkSum)
	if hdr.numDataDirs > certTableDirIdx {
		image.hash(h, hdr.checkSum+4, hdr.certDirEntry)
		image.hash(h, hdr.certDirEntry+dataDirLen, hdr.sizeOfHeaders)
	} else {
		image.hash(h, hdr.checkSum+4, hdr.sizeOfHeaders)
	}

	hashed := uint64(hdr.sizeOfHeaders)
	for _, s := range secs {
		image.hash(h, int(s.offset), int(s.offset+s.size))
		hashed += s.size
	}

	// The spec's step 16: the bytes after SUM_OF_BYTES_HASHED up to the
	// certificate table, which signing tools append at the end.
	size := uint64(image.len())
	if size > hashed {
		end := hashed + uint64(hdr.certSize)
		switch {
		case size > end:
			image.hash(h, int(hashed), int(size-uint64(hdr.certSize)))
		case size < end:
			return nil, fmt.Errorf("pe: certificate table size %d is larger than the %d bytes after the last section", hdr.certSize, size-hashed)
		}
	}
	return h.Sum(nil), nil
}

// peHeaders holds file offsets (and values) of the PE header fields the
// Authenticode digest depends on; every offset is validated against the image.
type peHeaders struct {
	checkSum      int // offset of the CheckSum field
	certDirEntry  int // offset of the certificate-table data directory entry
	numDataDirs   uint32
	certSize      uint32 // 0 when the image has no certificate-table entry
	sizeOfHeaders int
	sectionTable  int
	numSections   int
}

func parsePEHeaders(image peView) (peHeaders, error) {
	var p peHeaders
	size := image.len()
	// EDK2 accepts a bare PE image without a DOS stub.
	peOff := 0
	if size >= 2 && image.u16(0) == dosMagic {
		if size < offLfanew+4 {
			return p, fmt.Errorf("pe: image is %d bytes, too short for the DOS header field e_lfanew", size)
		}
		lfanew := uint64(image.u32(offLfanew))
		if lfanew > uint64(size) {
			return p, fmt.Errorf("pe: DOS header field e_lfanew 0x%x points past the end of the %d-byte image", lfanew, size)
		}
		peOff = int(lfanew)
	}
	coff := peOff + 4
	opt := coff + coffHeaderLen
	if size-peOff < 4+coffHeaderLen+2 {
		return p, fmt.Errorf("pe: image is %d bytes, too short for the PE signature and COFF header at 0x%x", size, peOff)
	}
	if sig := image.u32(peOff); sig != peSignature {
		return p, fmt.Errorf("pe: PE signature at 0x%x is 0x%08x, not \"PE\\0\\0\"", peOff, sig)
	}
	p.numSections = int(image.u16(coff + offNumberOfSections))
	optLen := int(image.u16(coff + offSizeOfOptionalHeader))

	var numRvaOff int
	switch magic := image.u16(opt); magic {
	case magicPE32:
		numRvaOff = offNumRvaPE32
	case magicPE32Plus:
		numRvaOff = offNumRvaPE32Plus
	default:
		return p, fmt.Errorf("pe: optional header field Magic is 0x%x, neither PE32 (0x10b) nor PE32+ (0x20b)", magic)
	}
	if optLen < numRvaOff+4 {
		return p, fmt.Errorf("pe: COFF header field SizeOfOptionalHeader %d is too small for the fixed optional header (%d bytes)", optLen, numRvaOff+4)
	}
	if size-opt < optLen {
		return p, fmt.Errorf("pe: optional header (SizeOfOptionalHeader %d at 0x%x) runs past the end of the %d-byte image", optLen, opt, size)
	}
	p.numDataDirs = image.u32(opt + numRvaOff)
	if p.numDataDirs > maxDataDirs {
		return p, fmt.Errorf("pe: optional header field NumberOfRvaAndSizes is %d, more than %d", p.numDataDirs, maxDataDirs)
	}
	dirs := opt + numRvaOff + 4
	if optLen < dirs-opt+int(p.numDataDirs)*dataDirLen {
		return p, fmt.Errorf("pe: COFF header field SizeOfOptionalHeader %d cannot hold NumberOfRvaAndSizes %d data directories", optLen, p.numDataDirs)
	}
	p.checkSum = opt + offCheckSum
	p.certDirEntry = dirs + certTableDirIdx*dataDirLen
	if p.numDataDirs > certTableDirIdx {
		p.certSize = image.u32(p.certDirEntry + 4)
	}

	p.sectionTable = opt + optLen
	soh := uint64(image.u32(opt + offSizeOfHeaders))
	tableEnd := uint64(p.sectionTable) + uint64(p.numSections)*sectionHeaderLen
	if soh < tableEnd {
		return p, fmt.Errorf("pe: optional header field SizeOfHeaders 0x%x ends before the %d section headers (end 0x%x)", soh, p.numSections, tableEnd)
	}
	if soh > uint64(size) {
		return p, fmt.Errorf("pe: optional header field SizeOfHeaders 0x%x is beyond the end of the %d-byte image", soh, size)
	}
	p.sizeOfHeaders = int(soh)
	return p, nil
}

type rawSection struct {
	offset, size uint64
}

// rawSections returns the sections with file data, in file order: EDK2
// sorts by PointerToRawData with a stable insertion sort.
func (p peHeaders) rawSections(image peView) ([]rawSection, error) {
	secs := make([]rawSection, 0, p.numSections)
	for i := range p.numSections {
		sh := image.bytes(p.sectionTable+i*sectionHeaderLen, p.sectionTable+(i+1)*sectionHeaderLen)
		s := rawSection{
			offset: uint64(binary.LittleEndian.Uint32(sh[offPointerToRawData:])),
			size:   uint64(binary.LittleEndian.Uint32(sh[offSizeOfRawData:])),
		}
		if s.size == 0 {
			continue
		}
		if s.offset+s.size > uint64(image.len()) {
			return nil, fmt.Errorf("pe: section %d (%q) PointerToRawData 0x%x + SizeOfRawData 0x%x runs past the end of the %d-byte image",
				i, sectionName(sh), s.offset, s.size, image.len())
		}
		secs = append(secs, s)
	}
	sort.SliceStable(secs, func(a, b int) bool { return secs[a].offset < secs[b].offset })
	return secs, nil
}

func sectionName(sh []byte) string {
	name := sh[:8]
	for i, c := range name {
		if c == 0 {
			return string(name[:i])
		}
	}
	return string(name)
}
