package uefi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf16"
)

// Limits that keep hostile images from exhausting memory or the stack.
const (
	// MaxDecompressedSection bounds one LZMA section's output; OVMF's
	// FVMAIN_COMPACT expands to well under 16 MiB.
	MaxDecompressedSection = 64 << 20
	// maxTotalDecompressed bounds all decompression done for one image.
	maxTotalDecompressed = 128 << 20
	// maxNesting bounds FV -> file -> section -> ... recursion.
	maxNesting = 16
	// maxObjects bounds the number of files+sections recorded for one image.
	maxObjects = 1 << 18
)

// PI FV header layout (PI spec vol. 3, EFI_FIRMWARE_VOLUME_HEADER).
const (
	fvHeaderMinLen      = 56 // through the first block-map entry
	fvSignatureOffset   = 40
	fvAttribErasePolar  = 0x00000800 // EFI_FVB2_ERASE_POLARITY
	fvExtHeaderMinLen   = 20         // FvName + ExtHeaderSize
	ffsHeaderLen        = 24
	ffsHeader2Len       = 32
	ffsAttribLargeFile  = 0x01
	sectionHeaderLen    = 4
	sectionHeader2Len   = 8
	guidedAttribProcess = 0x01 // EFI_GUIDED_SECTION_PROCESSING_REQUIRED
)

// FFS file states (bits are cleared/set in order as the file is written).
const (
	FileHeaderConstruction = 0x01
	FileHeaderValid        = 0x02
	FileDataValid          = 0x04
	FileMarkedForUpdate    = 0x08
	FileDeleted            = 0x10
	FileHeaderInvalid      = 0x20
)

// FFS file types used here (PI spec EFI_FV_FILETYPE_*).
const (
	FileTypeRaw         = 0x01
	FileTypeFreeform    = 0x02
	FileTypeApplication = 0x09
	FileTypeFVImage     = 0x0B
	FileTypePad         = 0xF0
)

// Section types (PI spec EFI_SECTION_*).
const (
	SectionCompression   = 0x01
	SectionGUIDDefined   = 0x02
	SectionDisposable    = 0x03
	SectionPE32          = 0x10
	SectionUserInterface = 0x15
	SectionFVImage       = 0x17
)

// Volume is one parsed firmware volume.
type Volume struct {
	// Offset of the header inside the buffer it was found in: the image for
	// top-level volumes, the decompressed section otherwise.
	Offset        int
	Length        uint64
	FileSystem    GUID
	Name          *GUID // from the extended header, when there is one
	Attributes    uint32
	ChecksumValid bool
	Depth         int   // 0 for volumes in the flash image
	Container     *File // file holding the FV image section, nil at top level
	Files         []*File
	Data          []byte `json:"-"`
}

// File is one FFS file that is in a valid state.
type File struct {
	Name       GUID
	Type       uint8
	Attributes uint8
	State      uint8 // highest valid state bit after erase-polarity correction
	Offset     int   // inside the volume
	Size       uint64
	UIName     string
	uiRaw      []byte // first user-interface section's payload, as firmware reads it
	Sections   []*Section
	Volume     *Volume
}

// Section is one leaf or encapsulation section.
type Section struct {
	Type     uint8
	Offset   int // inside its parent's payload
	Size     int
	GUID     *GUID // for GUID-defined sections
	Children []*Section
	Volume   *Volume // for firmware-volume-image sections
	Note     string  // why an encapsulation was not opened
	Data     []byte  `json:"-"` // payload after the header
}

// Firmware is the parsed form of a whole flash image.
type Firmware struct {
	Volumes []*Volume // all volumes, top-level and nested, in discovery order
	// Unsupported lists encapsulations that could not be opened; anything
	// inside them is invisible to lookups.
	Unsupported []string
}

type parser struct {
	fw           *Firmware
	decompressed int64
	objects      int
	// decodeLimit, when positive, stops every LZMA decode after that many bytes; the
	// parser then reads what it got as a prefix (see prefix) and records truncated.
	decodeLimit int64
	truncated   bool
	// inPrefix counts the cut-short LZMA outputs being parsed: inside one, volumes, files
	// and sections that run past the end are cut short instead of rejected.
	inPrefix int
	// onLZMA, when set (tests), sees every LZMA stream before it is decoded.
	onLZMA func(src []byte)
}

func (p *parser) prefix() bool { return p.inPrefix > 0 }

// Parse finds every firmware volume in a flash image (scanning for valid FV
// headers anywhere, since OVMF's layout differs by build) and opens every
// file, section and nested volume in it.
func Parse(image []byte) (*Firmware, error) {
	p := &parser{fw: &Firmware{}}
	if err := p.parseImage(image); err != nil {
		return nil, err
	}
	return p.fw, nil
}

func (p *parser) parseImage(image []byte) error {
	for off := 0; off+fvHeaderMinLen <= len(image); {
		i := bytes.Index(image[off+fvSignatureOffset:], []byte("_FVH"))
		if i < 0 {
			break
		}
		start := off + i
		if l, ok := plausibleFV(image[start:]); ok {
			if _, err := p.volume(image[start:start+int(l)], start, 0, nil); err != nil {
				return fmt.Errorf("uefi: volume at image offset %#x: %w", start, err)
			}
			off = start + int(l)
			continue
		}
		off = start + 1
	}
	if len(p.fw.Volumes) == 0 {
		return fmt.Errorf("uefi: no firmware volume found in %d-byte image", len(image))
	}
	return nil
}

// plausibleFV reports whether b starts with a complete FV whose header
// checksum holds; scanning needs the checksum to reject stray "_FVH" bytes.
func plausibleFV(b []byte) (uint64, bool) {
	if len(b) < fvHeaderMinLen || string(b[fvSignatureOffset:fvSignatureOffset+4]) != "_FVH" {
		return 0, false
	}
	l := binary.LittleEndian.Uint64(b[32:])
	hl := int(binary.LittleEndian.Uint16(b[48:]))
	if l > uint64(len(b)) || hl < fvHeaderMinLen || uint64(hl) > l || hl%2 != 0 {
		return 0, false
	}
	return l, checksum16(b[:hl]) == 0
}

func checksum16(b []byte) uint16 {
	var s uint16
	for i := 0; i+1 < len(b); i += 2 {
		s += binary.LittleEndian.Uint16(b[i:])
	}
	return s
}

func (p *parser) count() error {
	p.objects++
	if p.objects > maxObjects {
		return fmt.Errorf("more than %d files and sections", maxObjects)
	}
	return nil
}

// volume parses an FV that occupies exactly b.
// depth counts every FV/file/section level above, to bound recursion.
func (p *parser) volume(b []byte, offset, depth int, container *File) (*Volume, error) {
	if depth > maxNesting {
		return nil, fmt.Errorf("nesting deeper than %d", maxNesting)
	}
	if len(b) < fvHeaderMinLen {
		return nil, fmt.Errorf("FV header truncated: %d bytes", len(b))
	}
	if string(b[fvSignatureOffset:fvSignatureOffset+4]) != "_FVH" {
		return nil, fmt.Errorf("FV signature %q, want \"_FVH\"", b[fvSignatureOffset:fvSignatureOffset+4])
	}
	length := binary.LittleEndian.Uint64(b[32:])
	if length < fvHeaderMinLen || (length > uint64(len(b)) && !p.prefix()) {
		return nil, fmt.Errorf("FvLength %#x outside the %#x bytes available", length, len(b))
	}
	if length <= uint64(len(b)) {
		b = b[:length]
	}
	hl := int(binary.LittleEndian.Uint16(b[48:]))
	if hl < fvHeaderMinLen || hl > len(b) {
		return nil, fmt.Errorf("HeaderLength %d outside [%d, %d]", hl, fvHeaderMinLen, len(b))
	}
	if err := checkBlockMap(b[:hl], length); err != nil {
		return nil, err
	}
	v := &Volume{
		Offset:        offset,
		Length:        length,
		FileSystem:    guidAt(b, 16),
		Attributes:    binary.LittleEndian.Uint32(b[44:]),
		ChecksumValid: checksum16(b[:hl]) == 0,
		Depth:         volumeDepth(container),
		Container:     container,
		Data:          b,
	}
	p.fw.Volumes = append(p.fw.Volumes, v)
	filesStart := hl
	if ext := int(binary.LittleEndian.Uint16(b[52:])); ext != 0 {
		if ext < hl || ext+fvExtHeaderMinLen > len(b) {
			return nil, fmt.Errorf("ExtHeaderOffset %#x outside the volume", ext)
		}
		name := guidAt(b, ext)
		v.Name = &name
		extSize := int(binary.LittleEndian.Uint32(b[ext+16:]))
		if extSize < fvExtHeaderMinLen || extSize > len(b)-ext {
			return nil, fmt.Errorf("ExtHeaderSize %#x outside the volume", extSize)
		}
		filesStart = align(ext+extSize, 8)
	}
	if v.FileSystem != FileSystem2GUID && v.FileSystem != FileSystem3GUID {
		return v, nil // e.g. the NV varstore: not an FFS volume
	}
	erase := byte(0)
	if v.Attributes&fvAttribErasePolar != 0 {
		erase = 0xFF
	}
	return v, p.files(v, filesStart, erase, depth)
}

// checkBlockMap verifies the {NumBlocks, Length} list ends with {0,0} inside
// the header and describes exactly the volume's length.
func checkBlockMap(h []byte, length uint64) error {
	var total uint64
	for off := 56; ; off += 8 {
		if off+8 > len(h) {
			return fmt.Errorf("FV block map not terminated within HeaderLength %d", len(h))
		}
		n := uint64(binary.LittleEndian.Uint32(h[off:]))
		l := uint64(binary.LittleEndian.Uint32(h[off+4:]))
		if n == 0 && l == 0 {
			break
		}
		total += n * l
	}
	if total != length {
		return fmt.Errorf("FV block map covers %#x bytes, FvLength is %#x", total, length)
	}
	return nil
}

func align(n, a int) int { return (n + a - 1) &^ (a - 1) }

func (p *parser) files(v *Volume, off int, erase byte, depth int) error {
	b := v.Data
	for off = align(off, 8); off+ffsHeaderLen <= len(b); {
		hdr := b[off : off+ffsHeaderLen]
		if allBytes(hdr, erase) {
			break // free space runs to the end of the volume
		}
		if err := p.count(); err != nil {
			return err
		}
		name := guidAt(hdr, 0)
		attr := hdr[19]
		size := uint64(hdr[20]) | uint64(hdr[21])<<8 | uint64(hdr[22])<<16
		hl := ffsHeaderLen
		if attr&ffsAttribLargeFile != 0 {
			if off+ffsHeader2Len > len(b) {
				return fmt.Errorf("file %s at %#x: large-file header truncated", name, off)
			}
			size = binary.LittleEndian.Uint64(b[off+ffsHeaderLen:])
			hl = ffsHeader2Len
		}
		if size >= uint64(hl) && size > uint64(len(b)-off) && p.prefix() {
			break // the rest of the volume was not decoded
		}
		if size < uint64(hl) || size > uint64(len(b)-off) {
			return fmt.Errorf("file %s at %#x: size %#x outside [%#x, %#x]", name, off, size, hl, len(b)-off)
		}
		f := &File{
			Name:       name,
			Type:       hdr[18],
			Attributes: attr,
			State:      fileState(hdr[23], erase),
			Offset:     off,
			Size:       size,
			Volume:     v,
		}
		next := align(off+int(size), 8)
		// Only files whose data were completely written exist for the DXE
		// core; deleted, half-written and padding files are skipped.
		if (f.State == FileDataValid || f.State == FileMarkedForUpdate) && f.Type != FileTypePad {
			v.Files = append(v.Files, f)
			if f.Type != FileTypeRaw && f.Type < 0xC0 {
				secs, err := p.sections(f, b[off+hl:off+int(size)], depth+1)
				if err != nil {
					return fmt.Errorf("file %s at %#x: %w", name, off, err)
				}
				f.Sections = secs
			}
		}
		off = next
	}
	return nil
}

// fileState returns the highest set state bit, which is the state a file
// reached (EDK2 GetFileState); with erase polarity 1 the bits are inverted.
func fileState(s, erase byte) uint8 {
	if erase != 0 {
		s = ^s
	}
	for bit := uint8(0x80); bit != 0; bit >>= 1 {
		if s&bit != 0 {
			return bit
		}
	}
	return 0
}

func allBytes(b []byte, v byte) bool {
	for _, c := range b {
		if c != v {
			return false
		}
	}
	return true
}

func (p *parser) sections(f *File, b []byte, depth int) ([]*Section, error) {
	if depth > maxNesting {
		return nil, fmt.Errorf("nesting deeper than %d", maxNesting)
	}
	var out []*Section
	for off := 0; off+sectionHeaderLen <= len(b); {
		if err := p.count(); err != nil {
			return nil, err
		}
		size := int(b[off]) | int(b[off+1])<<8 | int(b[off+2])<<16
		typ := b[off+3]
		hl := sectionHeaderLen
		if size == 0xFFFFFF {
			if off+sectionHeader2Len > len(b) {
				return nil, fmt.Errorf("section at %#x: extended header truncated", off)
			}
			size64 := uint64(binary.LittleEndian.Uint32(b[off+4:]))
			if size64 > uint64(len(b)-off) {
				return nil, fmt.Errorf("section at %#x: size %#x exceeds the %#x bytes left", off, size64, len(b)-off)
			}
			size = int(size64)
			hl = sectionHeader2Len
		}
		if size >= hl && size > len(b)-off && p.prefix() {
			// A section cut short by a partial decode: only a volume image is worth
			// reading as a prefix, since the files sought may sit at its start.
			if typ == SectionFVImage {
				s := &Section{Type: typ, Offset: off, Size: size, Data: b[off+hl:]}
				if err := p.openSection(f, s, b[off:], hl, depth); err != nil {
					return nil, fmt.Errorf("section type %#x at %#x: %w", typ, off, err)
				}
				out = append(out, s)
			}
			break
		}
		if size < hl || size > len(b)-off {
			return nil, fmt.Errorf("section type %#x at %#x: size %#x outside [%d, %#x]", typ, off, size, hl, len(b)-off)
		}
		s := &Section{Type: typ, Offset: off, Size: size, Data: b[off+hl : off+size]}
		if err := p.openSection(f, s, b[off:off+size], hl, depth); err != nil {
			return nil, fmt.Errorf("section type %#x at %#x: %w", typ, off, err)
		}
		out = append(out, s)
		off = align(off+size, 4)
	}
	return out, nil
}

// openSection decodes encapsulations and records leaf information.
func (p *parser) openSection(f *File, s *Section, whole []byte, hl, depth int) error {
	var err error
	switch s.Type {
	case SectionUserInterface:
		if f.uiRaw == nil {
			f.uiRaw = s.Data
			f.UIName = utf16z(s.Data)
		}
	case SectionFVImage:
		s.Volume, err = p.volume(s.Data, 0, depth+1, f)
	case SectionCompression:
		if len(s.Data) < 5 {
			return fmt.Errorf("compression header truncated")
		}
		switch s.Data[4] {
		case 0: // EFI_NOT_COMPRESSED
			s.Children, err = p.sections(f, s.Data[5:], depth+1)
		default:
			p.unsupported(f, s, fmt.Sprintf("compression type %d", s.Data[4]))
		}
	case SectionGUIDDefined:
		err = p.openGUIDed(f, s, whole, hl, depth)
	}
	return err
}

func (p *parser) openGUIDed(f *File, s *Section, whole []byte, hl, depth int) error {
	if len(s.Data) < 20 {
		return fmt.Errorf("GUID-defined header truncated")
	}
	g := guidAt(s.Data, 0)
	s.GUID = &g
	dataOff := int(binary.LittleEndian.Uint16(s.Data[16:]))
	attr := binary.LittleEndian.Uint16(s.Data[18:])
	if dataOff < hl+20 || dataOff > len(whole) {
		return fmt.Errorf("GUID-defined DataOffset %#x outside [%#x, %#x]", dataOff, hl+20, len(whole))
	}
	content := whole[dataOff:]
	var err error
	switch {
	case g == LzmaCustomDecompressGUID:
		var out []byte
		var cut bool
		if out, cut, err = p.lzma(content); err != nil {
			return fmt.Errorf("LZMA section: %w", err)
		}
		if cut {
			p.inPrefix++
			defer func() { p.inPrefix-- }()
		}
		s.Children, err = p.sections(f, out, depth+1)
	case g == Crc32GuidedSectionGUID || attr&guidedAttribProcess == 0:
		s.Children, err = p.sections(f, content, depth+1)
	default:
		p.unsupported(f, s, "GUID-defined encapsulation "+g.String())
	}
	return err
}

func (p *parser) unsupported(f *File, s *Section, what string) {
	s.Note = what + " not decoded"
	p.fw.Unsupported = append(p.fw.Unsupported, fmt.Sprintf("file %s: %s", f.Name, s.Note))
}

// lzma decodes EDK2's LzmaCompress output: a standard LZMA "alone" stream
// (properties byte, 32-bit dictionary size, 64-bit uncompressed size).
func (p *parser) lzma(src []byte) (out []byte, cut bool, err error) {
	if p.onLZMA != nil {
		p.onLZMA(src)
	}
	const headerLen = 13
	if len(src) < headerLen {
		return nil, false, fmt.Errorf("header truncated: %d bytes", len(src))
	}
	size := binary.LittleEndian.Uint64(src[5:])
	if size == ^uint64(0) {
		return nil, false, fmt.Errorf("stream without a declared size: %w", ErrNotSupported)
	}
	if size > MaxDecompressedSection {
		return nil, false, fmt.Errorf("declared size %#x exceeds the %#x limit", size, MaxDecompressedSection)
	}
	if int64(size) > maxTotalDecompressed-p.decompressed {
		return nil, false, fmt.Errorf("image decompresses to more than %#x bytes", maxTotalDecompressed)
	}
	want := int64(size)
	if p.decodeLimit > 0 && want > p.decodeLimit {
		want, cut = p.decodeLimit, true
		p.truncated = true
	}
	out, err = decodeLZMAAlone(src, int(want))
	if err != nil {
		return nil, false, err
	}
	p.decompressed += want
	return out, cut, nil
}

// utf16z decodes a NUL-terminated UTF-16LE string (a user-interface section).
func utf16z(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

func volumeDepth(container *File) int {
	if container == nil {
		return 0
	}
	return container.Volume.Depth + 1
}
