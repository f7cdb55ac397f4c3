package uefi

// A minimal, independent PI firmware-volume writer for tests: it lays out
// headers field by field from the PI spec so that the parser is checked
// against bytes it did not produce itself.

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/ulikunitz/xz/lzma"
)

type fvSpec struct {
	fileSystem GUID
	name       *GUID
	erase1     bool // EFI_FVB2_ERASE_POLARITY
	blockSize  uint32
	files      [][]byte
	badSum     bool
}

func (s fvSpec) bytes() []byte {
	const hdrLen = 0x48 // 56 + one block-map entry + terminator
	var body bytes.Buffer
	if s.name != nil {
		body.Write(s.name[:])
		binary.Write(&body, binary.LittleEndian, uint32(20))
		for body.Len()%8 != 0 {
			body.WriteByte(0xFF)
		}
	}
	for _, f := range s.files {
		for (hdrLen+body.Len())%8 != 0 {
			body.WriteByte(pad(s.erase1))
		}
		body.Write(f)
	}
	bs := s.blockSize
	if bs == 0 {
		bs = 0x10
	}
	total := hdrLen + body.Len()
	for total%int(bs) != 0 {
		body.WriteByte(pad(s.erase1))
		total++
	}
	h := make([]byte, hdrLen)
	copy(h[16:], s.fileSystem[:])
	binary.LittleEndian.PutUint64(h[32:], uint64(total))
	copy(h[40:], "_FVH")
	attr := uint32(0x0004feff) &^ 0x800
	if s.erase1 {
		attr |= 0x800
	}
	binary.LittleEndian.PutUint32(h[44:], attr)
	binary.LittleEndian.PutUint16(h[48:], hdrLen)
	if s.name != nil {
		binary.LittleEndian.PutUint16(h[52:], hdrLen)
	}
	h[55] = 2 // revision
	binary.LittleEndian.PutUint32(h[56:], uint32(total)/bs)
	binary.LittleEndian.PutUint32(h[60:], bs)
	var sum uint16
	for i := 0; i < hdrLen; i += 2 {
		sum += binary.LittleEndian.Uint16(h[i:])
	}
	sum = -sum
	if s.badSum {
		sum++
	}
	binary.LittleEndian.PutUint16(h[50:], sum)
	return append(h, body.Bytes()...)
}

func pad(erase1 bool) byte {
	if erase1 {
		return 0xFF
	}
	return 0
}

// ffs builds a file whose state is "data valid" for the given polarity.
func ffs(name GUID, typ uint8, erase1 bool, sections ...[]byte) []byte {
	return ffsState(name, typ, erase1, 0x07, sections...)
}

// ffsState writes state bits (set bits = states reached, positive logic).
func ffsState(name GUID, typ uint8, erase1 bool, state uint8, sections ...[]byte) []byte {
	var body []byte
	for _, s := range sections {
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
		body = append(body, s...)
	}
	h := make([]byte, 24)
	copy(h, name[:])
	h[18] = typ
	size := 24 + len(body)
	h[20], h[21], h[22] = byte(size), byte(size>>8), byte(size>>16)
	if erase1 {
		state = ^state
	}
	h[23] = state
	return append(h, body...)
}

// ffsLarge builds an FFS3 large file (32-byte header, 64-bit size).
func ffsLarge(name GUID, typ uint8, erase1 bool, sections ...[]byte) []byte {
	var body []byte
	for _, s := range sections {
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
		body = append(body, s...)
	}
	h := make([]byte, 32)
	copy(h, name[:])
	h[18] = typ
	h[19] = 0x01
	h[23] = 0x07
	if erase1 {
		h[23] = ^h[23]
	}
	binary.LittleEndian.PutUint64(h[24:], uint64(32+len(body)))
	return append(h, body...)
}

func section(typ uint8, payload []byte) []byte {
	size := 4 + len(payload)
	return append([]byte{byte(size), byte(size >> 8), byte(size >> 16), typ}, payload...)
}

func uiSection(name string) []byte { return section(SectionUserInterface, utf16zEncode(name)) }

func guidedSection(g GUID, attr uint16, data []byte) []byte {
	p := append(g[:0:0], g[:]...)
	p = binary.LittleEndian.AppendUint16(p, 4+20)
	p = binary.LittleEndian.AppendUint16(p, attr)
	return section(SectionGUIDDefined, append(p, data...))
}

func lzmaCompress(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	w, err := lzma.WriterConfig{SizeInHeader: true, Size: int64(len(data))}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func concatSections(secs ...[]byte) []byte {
	var b []byte
	for _, s := range secs {
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		b = append(b, s...)
	}
	return b
}

var (
	testAppGUID  = MustParseGUID("11111111-2222-3333-4444-555555555555")
	testBdsGUID  = MustParseGUID("6d33944a-ec75-4855-a54d-809c75241f6c")
	testDxeName  = MustParseGUID("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1")
	testOuterFV  = MustParseGUID("48db5e17-707c-472d-91cd-1613e7ef51b0")
	testOuterFFS = MustParseGUID("9e21fd93-9c72-4c15-8c4b-e77f1db2d792")
)

// miniOVMF mimics OVMF's shape: an outer volume whose FV-image file holds
// an LZMA section wrapping a named inner volume with BdsDxe and UiApp.
func miniOVMF(t testing.TB, withUI bool) []byte {
	ui := [][]byte{section(SectionPE32, []byte("MZ-uiapp"))}
	if withUI {
		ui = append(ui, uiSection("UiApp"))
	}
	inner := fvSpec{
		fileSystem: FileSystem2GUID, name: &testDxeName, erase1: true,
		files: [][]byte{
			ffs(testBdsGUID, 0x07, true, section(SectionPE32, append([]byte("MZ-bds"), DefaultBootManagerMenu[:]...)), uiSection("BdsDxe")),
			ffs(DefaultBootManagerMenu, FileTypeApplication, true, ui...),
		},
	}.bytes()
	packed := lzmaCompress(t, section(SectionFVImage, inner))
	outer := fvSpec{
		fileSystem: FileSystem2GUID, name: &testOuterFV, erase1: true,
		files: [][]byte{ffs(testOuterFFS, FileTypeFVImage, true, guidedSection(LzmaCustomDecompressGUID, guidedAttribProcess, packed))},
	}.bytes()
	nv := fvSpec{fileSystem: NVRAMGUID, erase1: true, blockSize: 0x100}.bytes()
	return append(append(nv, bytes.Repeat([]byte{0xFF}, 0x30)...), outer...)
}
