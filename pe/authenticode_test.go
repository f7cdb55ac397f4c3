package pe

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type osslsigncodeFixture struct {
	CertTableFile      string `json:"cert_table_file"`
	CertTableOffset    uint32 `json:"cert_table_offset"`
	CertTableSize      uint32 `json:"cert_table_size"`
	PEChecksum         string `json:"pe_checksum"`
	SignedImageSHA256  string `json:"signed_image_sha256"`
	AuthenticodeSHA384 string `json:"authenticode_sha384"`
}

func loadOsslsigncodeFixture(t *testing.T) osslsigncodeFixture {
	t.Helper()
	raw, err := os.ReadFile("../testdata/pe/bzImage-6.1.0-56-amd64.osslsigncode.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx osslsigncodeFixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	return fx
}

// pe32PlusOffsets locates CheckSum and the certificate-table directory entry
// of a PE32+ image straight from the PE format specification.
func pe32PlusOffsets(img []byte) (checkSum, certDir int) {
	opt := int(binary.LittleEndian.Uint32(img[0x3c:])) + 4 + 20
	return opt + 64, opt + 112 + 4*8
}

// signImage appends certTable as the attribute certificate table the way a
// signing tool does: the data directory entry points at it, and the
// CheckSum is rewritten.
func signImage(img, certTable []byte, checkSum uint32) []byte {
	out := append(bytes.Clone(img), certTable...)
	cs, dir := pe32PlusOffsets(out)
	binary.LittleEndian.PutUint32(out[cs:], checkSum)
	binary.LittleEndian.PutUint32(out[dir:], uint32(len(img)))
	binary.LittleEndian.PutUint32(out[dir+4:], uint32(len(certTable)))
	return out
}

// TestAuthenticodeOsslsigncode compares against the digest osslsigncode
// signed into, and verified from, a signed copy of the sample kernel.
func TestAuthenticodeOsslsigncode(t *testing.T) {
	fx := loadOsslsigncodeFixture(t)
	kernel := sampleKernel(t)
	certTable, err := os.ReadFile(filepath.Join("../testdata/pe", fx.CertTableFile))
	if err != nil {
		t.Fatal(err)
	}
	if uint32(len(kernel)) != fx.CertTableOffset || uint32(len(certTable)) != fx.CertTableSize {
		t.Fatalf("fixture does not fit the sample kernel")
	}
	var checkSum uint32
	if _, err := hexUint32(fx.PEChecksum, &checkSum); err != nil {
		t.Fatal(err)
	}
	signed := signImage(kernel, certTable, checkSum)
	if sum := sha256.Sum256(signed); hex.EncodeToString(sum[:]) != fx.SignedImageSHA256 {
		t.Fatalf("reconstructed signed image differs from osslsigncode's output")
	}
	want := strings.ToLower(fx.AuthenticodeSHA384)
	for name, img := range map[string][]byte{"unsigned": kernel, "signed": signed} {
		got, err := AuthenticodeSHA384(img)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if hex.EncodeToString(got) != want {
			t.Errorf("%s: digest %x, osslsigncode says %s", name, got, want)
		}
	}
}

func hexUint32(s string, v *uint32) (int, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 4 {
		return 0, err
	}
	*v = binary.BigEndian.Uint32(b)
	return 4, nil
}

// TestAuthenticodeExcludesOnlyCertTable: data between the last section and
// the certificate table is covered; the table itself, the CheckSum and the
// directory entry are not.
func TestAuthenticodeExcludesOnlyCertTable(t *testing.T) {
	kernel := sampleKernel(t)
	base, err := AuthenticodeSHA384(kernel)
	if err != nil {
		t.Fatal(err)
	}
	extra := append(bytes.Clone(kernel), []byte("trailing data!!!")...)
	withExtra, err := AuthenticodeSHA384(extra)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(base, withExtra) {
		t.Fatal("trailing data after the last section is not hashed")
	}
	for _, tc := range []struct {
		name string
		img  []byte
		want []byte
	}{
		{"cert after sections", signImage(kernel, bytes.Repeat([]byte{0xa5}, 4096), 0x12345678), base},
		{"cert after trailing data", signImage(extra, bytes.Repeat([]byte{0x5a}, 24), 1), withExtra},
	} {
		got, err := AuthenticodeSHA384(tc.img)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: digest changed by signing", tc.name)
		}
	}
}

func TestAuthenticodeErrors(t *testing.T) {
	kernel := sampleKernel(t)
	lfanew := int(binary.LittleEndian.Uint32(kernel[0x3c:]))
	coff := lfanew + 4
	opt := coff + 20
	optLen := int(binary.LittleEndian.Uint16(kernel[coff+16:]))
	sect := opt + optLen
	_, certDir := pe32PlusOffsets(kernel)

	put16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint16(b[off:], v); return b }
	}
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
	}
	for _, tc := range []struct {
		name, field string
		mutate      func([]byte) []byte
	}{
		{"empty", "e_lfanew", func([]byte) []byte { return []byte("MZ") }},
		{"lfanew past end", "e_lfanew", put32(0x3c, 0xfffffff0)},
		{"truncated COFF", "COFF", func(b []byte) []byte { return b[:coff+10] }},
		{"bad PE signature", "PE signature", put32(lfanew, 0x4550454e)},
		{"bad magic", "Magic", put16(opt, 0x107)},
		{"optional header too small", "SizeOfOptionalHeader", put16(coff+16, 64)},
		{"optional header past end", "SizeOfOptionalHeader", func(b []byte) []byte { return b[:opt+100] }},
		{"too many data directories", "NumberOfRvaAndSizes", put32(opt+108, 17)},
		{"directories exceed optional header", "NumberOfRvaAndSizes", put32(opt+108, 16)},
		{"headers before section table", "SizeOfHeaders", put32(opt+60, uint32(sect))},
		{"headers past end", "SizeOfHeaders", put32(opt+60, 0xffffffff)},
		{"section count lies", "SizeOfHeaders", put16(coff+2, 0xffff)},
		{"section past end", "SizeOfRawData", put32(sect+16, 0xfffffff0)},
		{"section offset past end", "PointerToRawData", put32(sect+20, 0xfffffff0)},
		{"certificate table too big", "certificate table", func(b []byte) []byte {
			return put32(certDir+4, 0x1000)(append(b, make([]byte, 16)...))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := tc.mutate(bytes.Clone(kernel))
			d, err := AuthenticodeSHA384(img)
			if err == nil {
				t.Fatalf("no error, digest %x", d)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
		})
	}
}

func FuzzAuthenticode(f *testing.F) {
	kernel := sampleKernel(f)
	head := kernel[:64<<10]
	f.Add(head)
	f.Add(kernel[:0x200])
	// A header-only image whose sections are all cut off.
	hdrOnly := bytes.Clone(head[:0x1000])
	f.Add(hdrOnly)
	f.Add([]byte("MZ"))
	f.Add([]byte("PE\x00\x00"))
	f.Fuzz(func(t *testing.T, img []byte) {
		d, err := AuthenticodeSHA384(img)
		if err == nil && len(d) != 48 {
			t.Fatalf("digest of %d bytes", len(d))
		}
	})
}

func BenchmarkAuthenticodeSHA384(b *testing.B) {
	kernel := sampleKernel(b)
	b.SetBytes(int64(len(kernel)))
	for b.Loop() {
		if _, err := AuthenticodeSHA384(kernel); err != nil {
			b.Fatal(err)
		}
	}
}
