package pe

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
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
	hdr, err := parsePEHeaders(image)
	if err != nil {
		return nil, err
	}
	secs, err := hdr.rawSections(image)
	if err != nil {
		return nil, err
	}

	h := sha512.New384()
	h.Write(image[:hdr.checkSum])
	if hdr.numDataDirs > certTableDirIdx {
		h.Write(image[hdr.checkSum+4 : hdr.certDirEntry])
		h.Write(image[hdr.certDirEntry+dataDirLen : hdr.sizeOfHeaders])
	} else {
		h.Write(image[hdr.checkSum+4 : hdr.sizeOfHeaders])
	}

	hashed := uint64(hdr.sizeOfHeaders)
	for _, s := range secs {
		h.Write(image[s.offset : s.offset+s.size])
		hashed += s.size
	}

	// The spec's step 16: the bytes after SUM_OF_BYTES_HASHED up to the
	// certificate table, which signing tools append at the end.
	size := uint64(len(image))
	if size > hashed {
		end := hashed + uint64(hdr.certSize)
		switch {
		case size > end:
			h.Write(image[hashed : size-uint64(hdr.certSize)])
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

func parsePEHeaders(image []byte) (peHeaders, error) {
	var p peHeaders
	// EDK2 accepts a bare PE image without a DOS stub.
	peOff := 0
	if len(image) >= 2 && binary.LittleEndian.Uint16(image) == dosMagic {
		if len(image) < offLfanew+4 {
			return p, fmt.Errorf("pe: image is %d bytes, too short for the DOS header field e_lfanew", len(image))
		}
		lfanew := uint64(binary.LittleEndian.Uint32(image[offLfanew:]))
		if lfanew > uint64(len(image)) {
			return p, fmt.Errorf("pe: DOS header field e_lfanew 0x%x points past the end of the %d-byte image", lfanew, len(image))
		}
		peOff = int(lfanew)
	}
	coff := peOff + 4
	opt := coff + coffHeaderLen
	if len(image)-peOff < 4+coffHeaderLen+2 {
		return p, fmt.Errorf("pe: image is %d bytes, too short for the PE signature and COFF header at 0x%x", len(image), peOff)
	}
	if sig := binary.LittleEndian.Uint32(image[peOff:]); sig != peSignature {
		return p, fmt.Errorf("pe: PE signature at 0x%x is 0x%08x, not \"PE\\0\\0\"", peOff, sig)
	}
	p.numSections = int(binary.LittleEndian.Uint16(image[coff+offNumberOfSections:]))
	optLen := int(binary.LittleEndian.Uint16(image[coff+offSizeOfOptionalHeader:]))

	var numRvaOff int
	switch magic := binary.LittleEndian.Uint16(image[opt:]); magic {
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
	if len(image)-opt < optLen {
		return p, fmt.Errorf("pe: optional header (SizeOfOptionalHeader %d at 0x%x) runs past the end of the %d-byte image", optLen, opt, len(image))
	}
	p.numDataDirs = binary.LittleEndian.Uint32(image[opt+numRvaOff:])
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
		p.certSize = binary.LittleEndian.Uint32(image[p.certDirEntry+4:])
	}

	p.sectionTable = opt + optLen
	soh := uint64(binary.LittleEndian.Uint32(image[opt+offSizeOfHeaders:]))
	tableEnd := uint64(p.sectionTable) + uint64(p.numSections)*sectionHeaderLen
	if soh < tableEnd {
		return p, fmt.Errorf("pe: optional header field SizeOfHeaders 0x%x ends before the %d section headers (end 0x%x)", soh, p.numSections, tableEnd)
	}
	if soh > uint64(len(image)) {
		return p, fmt.Errorf("pe: optional header field SizeOfHeaders 0x%x is beyond the end of the %d-byte image", soh, len(image))
	}
	p.sizeOfHeaders = int(soh)
	return p, nil
}

type rawSection struct {
	offset, size uint64
}

// rawSections returns the sections with file data, in file order: EDK2
// sorts by PointerToRawData with a stable insertion sort.
func (p peHeaders) rawSections(image []byte) ([]rawSection, error) {
	secs := make([]rawSection, 0, p.numSections)
	for i := range p.numSections {
		sh := image[p.sectionTable+i*sectionHeaderLen:]
		s := rawSection{
			offset: uint64(binary.LittleEndian.Uint32(sh[offPointerToRawData:])),
			size:   uint64(binary.LittleEndian.Uint32(sh[offSizeOfRawData:])),
		}
		if s.size == 0 {
			continue
		}
		if s.offset+s.size > uint64(len(image)) {
			return nil, fmt.Errorf("pe: section %d (%q) PointerToRawData 0x%x + SizeOfRawData 0x%x runs past the end of the %d-byte image",
				i, sectionName(sh), s.offset, s.size, len(image))
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
