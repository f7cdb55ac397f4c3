package uefi

import (
	"bytes"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add(miniOVMF(f, true))
	f.Add(miniOVMF(f, false))
	f.Add(fvSpec{fileSystem: FileSystem3GUID, erase1: true, files: [][]byte{
		ffsLarge(testAppGUID, FileTypeFreeform, true, uiSection("large")),
		ffs(testBdsGUID, FileTypeFreeform, true, nestCompression(20, uiSection("deep"))),
	}}.bytes())
	bomb := lzmaCompress(f, make([]byte, 1<<20))
	f.Add(fvSpec{fileSystem: FileSystem2GUID, files: [][]byte{
		ffs(testAppGUID, FileTypeFreeform, false, guidedSection(LzmaCustomDecompressGUID, 1, bomb)),
	}}.bytes())
	// Nested FV image sections, uncompressed.
	inner := fvSpec{fileSystem: FileSystem2GUID, name: &testDxeName}.bytes()
	f.Add(fvSpec{fileSystem: FileSystem2GUID, files: [][]byte{
		ffs(testAppGUID, FileTypeFVImage, false, section(SectionFVImage, inner)),
	}}.bytes())
	f.Fuzz(func(t *testing.T, image []byte) {
		fw, err := Parse(image)
		if err != nil {
			return
		}
		if tr, err := fw.BootTraits(); err == nil && tr.LoadOptionsForm == "" {
			t.Fatal("traits without a load-options description")
		}
		if lo, err := fw.BootManagerMenu(); err == nil && len(lo.Data) < 6+2+44 {
			t.Fatalf("load option too short: %x", lo.Data)
		}
		if cfv, err := fw.VariableStoreVolume(); err == nil {
			ReadVariables(cfv)
		}
		if _, err := Inspect(image); err != nil {
			t.Fatalf("Inspect failed where Parse succeeded: %v", err)
		}
	})
}

func FuzzParseSections(f *testing.F) {
	f.Add(concatSections(uiSection("UiApp"), section(SectionPE32, []byte("MZ"))))
	f.Add(nestCompression(30, uiSection("x")))
	f.Add(guidedSection(LzmaCustomDecompressGUID, 1, lzmaCompress(f, uiSection("packed"))))
	f.Add(guidedSection(Crc32GuidedSectionGUID, 1, append([]byte{1, 2, 3, 4}, uiSection("crc")...)))
	f.Add([]byte{0xff, 0xff, 0xff, 0x19, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, secs []byte) {
		p := &parser{fw: &Firmware{}}
		file := &File{Volume: &Volume{}}
		out, err := p.sections(file, secs, 0)
		if err == nil {
			checkSectionBounds(t, out, len(secs))
		}
	})
}

func checkSectionBounds(t *testing.T, secs []*Section, n int) {
	for _, s := range secs {
		if s.Offset < 0 || s.Offset+s.Size > n || len(s.Data) > s.Size {
			t.Fatalf("section at %d size %d outside %d bytes", s.Offset, s.Size, n)
		}
	}
}

func FuzzReadVariables(f *testing.F) {
	f.Add(writeStore(true, 0x1000, []testVar{
		{GlobalVariableGUID, "PK", authAttrs, VarAdded, certList(testAppGUID, 64), 1},
		{ImageSecurityDatabase, "db", authAttrs, 0x3E, []byte("db"), 2},
	}))
	f.Add(writeStore(false, 0x1000, []testVar{{GlobalVariableGUID, "Lang", 7, VarAdded, []byte("eng"), 0}}))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, cfv []byte) {
		// The validator must hold its own bounds whatever the reader thinks of the input.
		ValidateCFVForEmulatedStore(cfv)
		vars, err := ReadVariables(cfv)
		if err != nil {
			return
		}
		total := 0
		for _, v := range vars {
			total += len(v.Data)
		}
		if total > len(cfv) {
			t.Fatalf("%d data bytes from a %d-byte store", total, len(cfv))
		}
	})
}
