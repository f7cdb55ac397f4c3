package uefi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/uefi")

// bootManagerMenuDigest is the SHA-384 of Boot0000 that real dstack CVMs
// log in RTMR0 (EV_EFI_VARIABLE_BOOT).
const bootManagerMenuDigest = "23ada07f5261f12f34a0bd8e46760962d6b4d576a416f1fea1c64bc656b1d28eacf7047ae6e967c58fd2a98bfa74c298"

type realImage struct {
	name, path string
	// Facts from OvmfPkg.fdf and the Debian packages, not from this parser.
	nvSize        uint64
	mainOffset    int
	secOffset     int
	wantBootMenu  string // SHA-384 of Boot0000
	wantVariables int
}

var realImages = []realImage{
	{
		name: "debian-2025.02", path: "../testdata/sample-image/ovmf-debian-2025.02-8+deb13u1.fd",
		nvSize: 0x84000, mainOffset: 0x84000, secOffset: 0x3cc000,
		wantBootMenu: bootManagerMenuDigest,
	},
	{
		// Computed, not observed on a CVM: see TestBootManagerMenuRealImages.
		name: "debian-2022.11", path: "../testdata/vectors/ovmf-debian-2022.11-6+deb12u2.fd.gz",
		nvSize: 0x20000, mainOffset: 0x20000, secOffset: 0x1cc000,
		wantBootMenu: bootManagerMenuDigest,
	},
}

var imageCache sync.Map

func loadImage(t testing.TB, path string) []byte {
	if b, ok := imageCache.Load(path); ok {
		return b.([]byte)
	}
	read := os.ReadFile
	if strings.HasSuffix(path, ".gz") {
		read = testvectors.ReadGzip
	}
	b, err := read(path)
	if err != nil {
		t.Fatal(err)
	}
	imageCache.Store(path, b)
	return b
}

func TestGUIDEncoding(t *testing.T) {
	tests := []struct {
		text string
		efi  string // bytes as firmware stores them
	}{
		{"fff12b8d-7696-4c8b-a985-2747075b4f50", "8d2bf1ff96768b4ca9852747075b4f50"},
		{"8be4df61-93ca-11d2-aa0d-00e098032b8c", "61dfe48bca93d211aa0d00e098032b8c"},
	}
	for _, tc := range tests {
		g, err := ParseGUID(tc.text)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(g.Bytes()); got != tc.efi {
			t.Errorf("ParseGUID(%s) bytes = %s, want %s", tc.text, got, tc.efi)
		}
		if g.String() != tc.text {
			t.Errorf("String() = %s, want %s", g, tc.text)
		}
		var u GUID
		if err := json.Unmarshal([]byte(`"`+strings.ToUpper(tc.text)+`"`), &u); err != nil || u != g {
			t.Errorf("JSON round trip of %s: %v %v", tc.text, u, err)
		}
	}
	for _, bad := range []string{"", "fff12b8d-7696-4c8b-a985-2747075b4f5", "fff12b8d76964c8ba9852747075b4f50", "gff12b8d-7696-4c8b-a985-2747075b4f50"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) succeeded", bad)
		}
	}
}

// The NVRAM GUID sits at offset 16 of every OVMF.fd (the first FV header).
func TestGUIDMatchesImage(t *testing.T) {
	img := loadImage(t, realImages[0].path)
	if guidAt(img, 16) != NVRAMGUID {
		t.Fatalf("image bytes 16..32 = %x, want NVRAM GUID %x", img[16:32], NVRAMGUID[:])
	}
}

func TestParseRealImages(t *testing.T) {
	for _, ri := range realImages {
		t.Run(ri.name, func(t *testing.T) {
			fw, err := Parse(loadImage(t, ri.path))
			if err != nil {
				t.Fatal(err)
			}
			if len(fw.Unsupported) != 0 {
				t.Errorf("undecoded encapsulations: %v", fw.Unsupported)
			}
			type want struct {
				fs     GUID
				name   string // "" for no extended header
				offset int    // -1: nested
				size   uint64 // 0: don't check
				depth  int
			}
			// OvmfPkg.fdf: NV varstore, FVMAIN_COMPACT holding PEIFV and
			// DXEFV inside an LZMA section, SECFV at the top of flash.
			wants := []want{
				{NVRAMGUID, "", 0, ri.nvSize, 0},
				{FileSystem2GUID, "48db5e17-707c-472d-91cd-1613e7ef51b0", ri.mainOffset, 0, 0},
				{FileSystem2GUID, "6938079b-b503-4e3d-9d24-b28337a25806", -1, 0, 1},
				{FileSystem2GUID, "7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1", -1, 0, 1},
				{FileSystem2GUID, "763bed0d-de9f-48f5-81f1-3e90e1b1a015", ri.secOffset, 0, 0},
			}
			if len(fw.Volumes) != len(wants) {
				t.Fatalf("%d volumes, want %d", len(fw.Volumes), len(wants))
			}
			for i, w := range wants {
				v := fw.Volumes[i]
				name := ""
				if v.Name != nil {
					name = v.Name.String()
				}
				if v.FileSystem != w.fs || name != w.name || v.Depth != w.depth || !v.ChecksumValid {
					t.Errorf("volume %d: fs %s name %q depth %d checksum %v; want fs %s name %q depth %d",
						i, v.FileSystem, name, v.Depth, v.ChecksumValid, w.fs, w.name, w.depth)
				}
				if w.offset >= 0 && v.Offset != w.offset {
					t.Errorf("volume %d at %#x, want %#x", i, v.Offset, w.offset)
				}
				if w.size != 0 && v.Length != w.size {
					t.Errorf("volume %d size %#x, want %#x", i, v.Length, w.size)
				}
				if w.depth > 0 && (v.Container == nil || v.Container.Name != testOuterFFS) {
					t.Errorf("volume %d not inside FVMAIN_COMPACT's file %s", i, testOuterFFS)
				}
			}
			// Module GUIDs from their EDK2 .inf files.
			for guid, ui := range map[string]string{
				"6d33944a-ec75-4855-a54d-809c75241f6c": "BdsDxe",
				"462caa21-7614-4503-836e-8ab6f4662331": "UiApp",
				"df1ccef6-f301-4a63-9661-fc6030dcc880": "SecMain",
				"d6a2cb7f-6a18-4e2f-b43b-9920a733700a": "DxeCore",
			} {
				f := fw.fileByGUID(MustParseGUID(guid))
				if f == nil || f.UIName != ui {
					t.Errorf("file %s: got %+v, want UI name %q", guid, f, ui)
				}
			}
		})
	}
}

func TestBootManagerMenuRealImages(t *testing.T) {
	for _, ri := range realImages {
		t.Run(ri.name, func(t *testing.T) {
			lo, err := BootManagerMenu(loadImage(t, ri.path))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha512.Sum384(lo.Data)
			t.Logf("Boot0000 = %x (SHA-384 %x), %s", lo.Data, sum, lo.FoundBy)
			if got := hex.EncodeToString(sum[:]); got != ri.wantBootMenu {
				t.Errorf("Boot0000 digest %s, want %s", got, ri.wantBootMenu)
			}
			if lo.Description != "UiApp" || lo.UIName != "UiApp" || lo.Attributes != 0x109 ||
				lo.FileGUID != DefaultBootManagerMenu || lo.VolumeName != testDxeName {
				t.Errorf("load option %+v", lo)
			}
			data, err := BootManagerLoadOption(loadImage(t, ri.path))
			if err != nil || !bytes.Equal(data, lo.Data) {
				t.Errorf("BootManagerLoadOption disagrees: %v", err)
			}
		})
	}
}

func TestBootManagerMenuSynthetic(t *testing.T) {
	tests := []struct {
		name     string
		image    []byte
		wantDesc string
		wantErr  error
	}{
		{"with UI section", miniOVMF(t, true), "UiApp", nil},
		{"fallback description", miniOVMF(t, false), "Boot Manager Menu", nil},
		{"no volumes with the app", fvSpec{fileSystem: FileSystem2GUID, name: &testDxeName}.bytes(), "", ErrNotSupported},
		{"unnamed volume", fvSpec{fileSystem: FileSystem2GUID, files: [][]byte{
			ffs(DefaultBootManagerMenu, FileTypeApplication, false, section(SectionPE32, []byte("MZ"))),
		}}.bytes(), "", ErrNotSupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lo, err := BootManagerMenu(tc.image)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if lo.Description != tc.wantDesc || lo.VolumeName != testDxeName {
				t.Fatalf("got %+v", lo)
			}
			// EFI_LOAD_OPTION spelled out by hand from the UEFI spec.
			want := []byte{0x09, 0x01, 0, 0, 44, 0}
			want = append(want, utf16zEncode(tc.wantDesc)...)
			want = append(want, 4, 7, 20, 0)
			want = append(want, testDxeName[:]...)
			want = append(want, 4, 6, 20, 0)
			want = append(want, DefaultBootManagerMenu[:]...)
			want = append(want, 0x7f, 0xff, 4, 0)
			if !bytes.Equal(lo.Data, want) {
				t.Fatalf("load option\n got %x\nwant %x", lo.Data, want)
			}
		})
	}
}

func TestFileStatesAndLargeFiles(t *testing.T) {
	a := MustParseGUID("aaaaaaaa-0000-0000-0000-000000000001")
	b := MustParseGUID("aaaaaaaa-0000-0000-0000-000000000002")
	c := MustParseGUID("aaaaaaaa-0000-0000-0000-000000000003")
	d := MustParseGUID("aaaaaaaa-0000-0000-0000-000000000004")
	e := MustParseGUID("aaaaaaaa-0000-0000-0000-000000000005")
	for _, erase1 := range []bool{false, true} {
		img := fvSpec{fileSystem: FileSystem3GUID, erase1: erase1, files: [][]byte{
			ffsState(a, FileTypeFreeform, erase1, 0x07, uiSection("valid")),
			ffsState(b, FileTypeFreeform, erase1, 0x17, uiSection("deleted")),
			ffsState(c, FileTypeFreeform, erase1, 0x03, uiSection("header only")),
			ffsState(d, FileTypePad, erase1, 0x07),
			ffsState(e, FileTypeFreeform, erase1, 0x0f, uiSection("marked for update")),
			ffsLarge(c, FileTypeFreeform, erase1, section(0x19, make([]byte, 100)), uiSection("large")),
		}}.bytes()
		fw, err := Parse(img)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range fw.Volumes[0].Files {
			names = append(names, f.UIName)
		}
		if got := strings.Join(names, ","); got != "valid,marked for update,large" {
			t.Errorf("erase polarity %v: files %q", erase1, got)
		}
	}
}

func TestParseErrors(t *testing.T) {
	bomb := append([]byte{0x5d, 0, 0, 0, 1}, binaryLE64(MaxDecompressedSection+1)...)
	tests := []struct {
		name  string
		image []byte
		want  string
	}{
		{"empty", nil, "no firmware volume"},
		{"bad checksum is not an FV", fvSpec{fileSystem: FileSystem2GUID, badSum: true}.bytes(), "no firmware volume"},
		{"file larger than volume", fvSpec{fileSystem: FileSystem2GUID, files: [][]byte{
			func() []byte { f := ffs(testAppGUID, 2, false); f[21] = 0x10; return f }(),
		}}.bytes(), "size"},
		{"section larger than file", fvSpec{fileSystem: FileSystem2GUID, files: [][]byte{
			ffs(testAppGUID, 2, false, []byte{0x40, 0, 0, 0x19, 1, 2, 3, 4}),
		}}.bytes(), "section type 0x19"},
		{"LZMA bomb", fvSpec{fileSystem: FileSystem2GUID, files: [][]byte{
			ffs(testAppGUID, 2, false, guidedSection(LzmaCustomDecompressGUID, 1, append(bomb, 0, 0, 0, 0))),
		}}.bytes(), "exceeds the"},
		{"LZMA truncated", fvSpec{fileSystem: FileSystem2GUID, files: [][]byte{
			ffs(testAppGUID, 2, false, guidedSection(LzmaCustomDecompressGUID, 1, lzmaCompress(t, bytes.Repeat([]byte("abc"), 1000))[:30])),
		}}.bytes(), "LZMA"},
		{"deep nesting", fvSpec{fileSystem: FileSystem2GUID, files: [][]byte{
			ffs(testAppGUID, 2, false, nestCompression(40, uiSection("x"))),
		}}.bytes(), "nesting deeper"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.image)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func binaryLE64(v uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

// nestCompression wraps s in n "not compressed" compression sections.
func nestCompression(n int, s []byte) []byte {
	for i := 0; i < n; i++ {
		p := append(binaryLE64(uint64(len(s)))[:4], 0)
		s = section(SectionCompression, append(p, s...))
	}
	return s
}

func TestUnsupportedEncapsulation(t *testing.T) {
	img := fvSpec{fileSystem: FileSystem2GUID, name: &testDxeName, files: [][]byte{
		ffs(testAppGUID, 2, false, guidedSection(TianoCustomDecompressGUID, 1, []byte("xxxx"))),
	}}.bytes()
	fw, err := Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(fw.Unsupported) != 1 {
		t.Fatalf("unsupported = %v", fw.Unsupported)
	}
	if _, err := fw.BootManagerMenu(); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("err = %v, want ErrNotSupported", err)
	}
}

// TestInspectGolden pins the full report of both real images; regenerate
// with -update after checking the diff by hand.
func TestInspectGolden(t *testing.T) {
	for _, ri := range realImages {
		t.Run(ri.name, func(t *testing.T) {
			r, err := Inspect(loadImage(t, ri.path))
			if err != nil {
				t.Fatal(err)
			}
			if r.BootError != "" || r.VarError != "" || r.BootManager == nil {
				t.Fatalf("report errors: %q %q", r.BootError, r.VarError)
			}
			got, err := json.MarshalIndent(r, "", " ")
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("..", "testdata", "uefi", ri.name+".inspect.json.gz")
			if *update {
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				zw.Write(append(got, '\n'))
				zw.Close()
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := loadImage(t, golden)
			if !bytes.Equal(append(got, '\n'), want) {
				t.Fatalf("report differs from %s (run with -update and review the diff)", golden)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	img := loadImage(b, realImages[0].path)
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		if _, err := Parse(img); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBootManagerLoadOption(b *testing.B) {
	img := loadImage(b, realImages[0].path)
	for b.Loop() {
		if _, err := BootManagerLoadOption(img); err != nil {
			b.Fatal(err)
		}
	}
}
