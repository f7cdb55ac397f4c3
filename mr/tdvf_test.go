package mr

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

const (
	firmware2022 = "ovmf-debian-2022.11-6+deb12u2.fd"
	firmware2025 = "ovmf-debian-2025.02-8+deb13u1.fd"
	// SHA-384 of the 2025 firmware's CFV: the CFV digest real dstack CVMs log in RTMR0
	// (testdata/README.md; the dstack cc-eventlog sample in ../shared/real-attestations).
	cfvDigest2025 = "344bc51c980ba621aaa00da3ed7436f7d6e549197dfe699515dfa2c6583d95e6412af21c097d473155875ffd561d6790"
)

func TestParseRealFirmware(t *testing.T) {
	for _, tc := range []struct {
		name string
		// TEMP_MEM the shared README reports for the image.
		tempMem Section
	}{
		{firmware2022, Section{MemoryAddress: 0x810000, MemoryDataSize: 0x10000}},
		{firmware2025, Section{MemoryAddress: 0x811000, MemoryDataSize: 0xf000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := readInput(t, tc.name)
			fw, err := ParseFirmware(img)
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			count := map[SectionType]int{}
			for _, s := range fw.Sections() {
				count[s.Type]++
				if s.Type == SectionTempMem && s.MemoryAddress == tc.tempMem.MemoryAddress && s.MemoryDataSize == tc.tempMem.MemoryDataSize {
					found = true
				}
				if s.Type == SectionBFV || s.Type == SectionCFV {
					// Both volumes are mapped just below 4 GiB, ending where the image ends.
					if want := uint64(1<<32) - uint64(len(img)) + uint64(s.DataOffset); s.MemoryAddress != want {
						t.Errorf("%s at 0x%x, want 0x%x (flash mapped below 4 GiB)", s.Type, s.MemoryAddress, want)
					}
				}
			}
			if !found {
				t.Errorf("no TEMP_MEM section at 0x%x/0x%x: %+v", tc.tempMem.MemoryAddress, tc.tempMem.MemoryDataSize, fw.Sections())
			}
			if count[SectionBFV] != 1 || count[SectionCFV] != 1 || count[SectionTDHOB] != 1 {
				t.Errorf("section counts %v", count)
			}
		})
	}
}

func TestCFVDigest(t *testing.T) {
	fw, err := ParseFirmware(readInput(t, firmware2025))
	if err != nil {
		t.Fatal(err)
	}
	cfv, err := fw.CFV()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sha384(cfv)); got != cfvDigest2025 {
		t.Errorf("CFV digest %s, want %s", got, cfvDigest2025)
	}
}

// metadataOffset returns where the TDVF descriptor of img starts (via the parser's own table
// walk, which TestParseRealFirmware checks).
func metadataOffset(t *testing.T, img []byte) int {
	loc, found, err := ovmfTableEntry(img, tdxMetadataGUID)
	if err != nil || !found {
		t.Fatalf("no metadata entry: %v", err)
	}
	return len(img) - int(binary.LittleEndian.Uint32(loc[len(loc)-4:]))
}

func TestParseTDVFErrors(t *testing.T) {
	real := readInput(t, firmware2025)
	meta := metadataOffset(t, real)
	footer := len(real) - footerGUIDFromEnd
	// The entry nearest the footer, and the TDX metadata offset entry's 4 data bytes.
	entryTail := footer - 2
	metaLoc := bytes.LastIndex(real[:footer], tdxMetadataGUID[:]) - entryTailLen + guidLen - 4

	mutate := func(f func(b []byte)) []byte {
		b := bytes.Clone(real)
		f(b)
		return b
	}
	put32 := func(off int, v uint32) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint32(b[off:], v) }
	}
	put64 := func(off int, v uint64) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint64(b[off:], v) }
	}
	sec := func(i, field int) int { return meta + tdvfDescriptorLen + i*tdvfSectionEntryLen + field }

	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 1<<16)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}

	for _, tc := range []struct {
		name  string
		img   []byte
		want  string
		unsup bool
	}{
		{"empty", nil, "too small", false},
		{"truncated", real[:40], "too small", false},
		{"random", random, "no OVMF table footer", false},
		{"cut in half", real[:len(real)/2], "no OVMF table footer", false},
		// A CODE-only image (no variable store in front): offsets from the end still find the
		// metadata, but the volumes' DataOffsets point past the end.
		{"code only", real[0x84000:], "runs past the end", false},
		{"footer length past start", func() []byte {
			b := bytes.Clone(real[len(real)-0x800:])
			binary.LittleEndian.PutUint16(b[len(b)-footerGUIDFromEnd-2:], 0xffff)
			return b
		}(), "footer: length 65535", false},
		{"footer length small", mutate(func(b []byte) { binary.LittleEndian.PutUint16(b[footer-2:], 3) }), "footer: length 3", false},
		{"entry length 0", mutate(func(b []byte) { binary.LittleEndian.PutUint16(b[entryTail-18:], 0) }), "has length 0", false},
		{"entry length past table", mutate(func(b []byte) { binary.LittleEndian.PutUint16(b[entryTail-18:], 0x7fff) }), "has length 32767", false},
		{"metadata offset past start", mutate(func(b []byte) {
			binary.LittleEndian.PutUint32(b[metaLoc:], uint32(len(real)+1))
		}), "outside the", false},
		{"metadata offset at the end", mutate(put32(metaLoc, 8)), "outside the", false},
		{"metadata offset zero", mutate(put32(metaLoc, 0)), "outside the", false},
		{"signature", mutate(func(b []byte) { b[meta] = 'X' }), "Signature", false},
		{"version", mutate(put32(meta+8, 2)), "Version 2", true},
		{"one section", mutate(put32(meta+12, 1)), "NumberOfSectionEntries 1", false},
		{"absurd section count", mutate(put32(meta+12, 0xffffffff)), "NumberOfSectionEntries 4294967295", false},
		{"length mismatch", mutate(put32(meta+4, 17)), "Length 17", false},
		{"descriptor past end", mutate(func(b []byte) {
			binary.LittleEndian.PutUint32(b[meta+12:], 500)
			binary.LittleEndian.PutUint32(b[meta+4:], tdvfDescriptorLen+500*tdvfSectionEntryLen)
		}), "runs past the end", false},
		{"unaligned address", mutate(put64(sec(0, 8), 0xffc84001)), "MemoryAddress 0xffc84001", false},
		{"unaligned size", mutate(put64(sec(0, 16), 0x37c001)), "not a multiple", false},
		{"raw larger than memory", mutate(put32(sec(0, 4), 0x37d000)), "smaller than RawDataSize", false},
		{"BFV past end", mutate(put32(sec(0, 0), 0x100000)), "runs past the end", false},
		{"BFV raw size 0", mutate(put32(sec(0, 4), 0)), "RawDataSize is 0", false},
		{"HOB with data", mutate(put32(sec(4, 4), 0x1000)), "want 0", false},
		{"unknown type", mutate(put32(sec(2, 24), 7)), "Type 7", false},
		{"PAGE.AUG", mutate(put32(sec(2, 28), AttrPageAug)), "Attributes 0x2", true},
		{"address wraps", mutate(put64(sec(2, 8), 0xfffffffffffff000)), "52-bit", false},
		{"overlap", mutate(put64(sec(3, 8), 0x800000)), "overlap", false},
		{"no TD_HOB", mutate(put32(sec(4, 24), uint32(SectionTempMem))), "no TD_HOB", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFirmware(tc.img)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if got := errors.Is(err, ErrNotSupported); got != tc.unsup {
				t.Errorf("errors.Is(ErrNotSupported) = %v: %v", got, err)
			}
		})
	}
}

func FuzzParseTDVFMetadata(f *testing.F) {
	real := readInput(f, firmware2025)
	// Seed with the real image's tail: footer table, metadata and the reset vector.
	f.Add(bytes.Clone(real[len(real)-0x1000:]))
	f.Add(bytes.Clone(real[len(real)-0x200:]))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ss, err := ParseTDVFMetadata(b)
		if err != nil {
			return
		}
		for _, s := range ss {
			if s.Type == SectionBFV || s.Type == SectionCFV {
				if uint64(s.DataOffset)+s.MemoryDataSize > uint64(len(b)) {
					t.Fatalf("accepted section past the end: %+v", s)
				}
			}
		}
		// Whatever is accepted must be measurable without panicking.
		_ = mrtd(b, ss, true)
		_, _ = tdHOB(ss, 1<<30)
	})
}
