package pe

import (
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// tinyPE32 builds a small PE32 (not PE32+) image whose section table is not
// in file order and which carries data after its last section, so that the
// sort and the trailing-data rule are exercised too.
func tinyPE32() []byte {
	const (
		lfanew  = 0x40
		optLen  = 96 + 16*8
		hdrSize = 0x200
	)
	img := make([]byte, 0x600+0x48)
	le := binary.LittleEndian
	le.PutUint16(img, 0x5a4d)
	le.PutUint32(img[0x3c:], lfanew)
	le.PutUint32(img[lfanew:], 0x4550)
	coff := lfanew + 4
	le.PutUint16(img[coff:], 0x14c) // i386
	le.PutUint16(img[coff+2:], 2)
	le.PutUint16(img[coff+16:], optLen)
	le.PutUint16(img[coff+18:], 0x0102) // executable, 32-bit
	opt := coff + 20
	le.PutUint16(img[opt:], 0x10b)
	le.PutUint32(img[opt+4:], 0x200)     // SizeOfCode
	le.PutUint32(img[opt+16:], 0x1000)   // AddressOfEntryPoint
	le.PutUint32(img[opt+28:], 0x400000) // ImageBase
	le.PutUint32(img[opt+32:], 0x1000)   // SectionAlignment
	le.PutUint32(img[opt+36:], 0x200)    // FileAlignment
	le.PutUint16(img[opt+48:], 4)        // MajorSubsystemVersion
	le.PutUint32(img[opt+56:], 0x3000)   // SizeOfImage
	le.PutUint32(img[opt+60:], hdrSize)
	le.PutUint32(img[opt+64:], 0xdeadbeef) // CheckSum: excluded from the digest
	le.PutUint16(img[opt+68:], 10)         // EFI application
	le.PutUint32(img[opt+92:], 16)
	sect := opt + optLen
	for i, s := range []struct {
		name          string
		va, raw, char uint32
	}{
		{".text", 0x1000, 0x400, 0x60000020},
		{".data", 0x2000, 0x200, 0xc0000040},
	} {
		sh := img[sect+i*40:]
		copy(sh, s.name)
		le.PutUint32(sh[8:], 0x200)
		le.PutUint32(sh[12:], s.va)
		le.PutUint32(sh[16:], 0x200)
		le.PutUint32(sh[20:], s.raw)
		le.PutUint32(sh[36:], s.char)
	}
	for i := hdrSize; i < len(img); i++ {
		img[i] = byte(i * 7)
	}
	return img
}

// TestAuthenticodePE32 checks the PE32 field offsets against the digest
// osslsigncode reported for tinyPE32 (osslsigncode 2.9 sign -h sha384, then
// verify: "Calculated message digest"). Set PE_WRITE_TINY_PE32=file to
// write the image for re-checking with osslsigncode.
func TestAuthenticodePE32(t *testing.T) {
	img := tinyPE32()
	if path := os.Getenv("PE_WRITE_TINY_PE32"); path != "" {
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile("../testdata/pe/tiny-pe32.osslsigncode-sha384.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ToLower(strings.TrimSpace(string(raw)))
	got, err := AuthenticodeSHA384(img)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != want {
		t.Errorf("digest %x, osslsigncode says %s", got, want)
	}
}
