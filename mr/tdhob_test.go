package mr

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
)

// The td-hob digest a real dstack CVM logged (dstack cc-eventlog/samples/ccel.bin, first
// RTMR0 event; its payload places the HOB at 0x809000). dstack's firmware has the same
// TD_HOB/TEMP_MEM sections as the 2025 Debian OVMF, and a 1 GiB VM is the only RAM size (in
// whole MiB up to 1 TiB) whose HOB has this digest.
const realCVMHOBDigest1G = "2b630fa1d8fa9b6e8c6507d2256803ed227888f7d1f62ca5cfbddfe495338b1c6a0fc339ea64700f0835c0897a662789"

func TestTDHOBRealCVM(t *testing.T) {
	fw, err := ParseFirmware(readInput(t, firmware2025))
	if err != nil {
		t.Fatal(err)
	}
	hob, err := fw.TDHOB(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sha384(hob)); got != realCVMHOBDigest1G {
		t.Errorf("TD HOB digest %s, want %s", got, realCVMHOBDigest1G)
	}
}

// TestRAMEntries checks the HOB's RAM description against QEMU's rules for every layout and
// memory size around the q35 split points, without restating any particular answer.
func TestRAMEntries(t *testing.T) {
	const mib = 1 << 20
	sizes := []uint64{
		64 * mib, 512 * mib, 2047 * mib, 2048 * mib, 2049 * mib, 2815 * mib,
		0xb0000000 - 4096, 2816 * mib, 2816*mib + 4096, 3072 * mib, 4096 * mib, 256 << 30,
	}
	for _, name := range []string{firmware2022, firmware2025} {
		fw, err := ParseFirmware(readInput(t, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, mem := range sizes {
			entries, err := fw.RAMEntries(mem)
			if err != nil {
				t.Fatalf("%s %d: %v", name, mem, err)
			}
			// q35: below 0xb0000000 all RAM is low; from there only 2 GiB stays below 4 GiB.
			lowEnd, highLen := mem, uint64(0)
			if mem >= 0xb0000000 {
				lowEnd, highLen = 0x80000000, mem-0x80000000
			}
			var total, next uint64
			var sawHigh bool
			accepted := map[uint64]uint64{}
			for i, e := range entries {
				if e.Length == 0 {
					t.Errorf("%s %d: empty entry %d", name, mem, i)
				}
				if e.Address == fourGiB {
					if next != lowEnd {
						t.Errorf("%s %d: low RAM ends at 0x%x, want 0x%x", name, mem, next, lowEnd)
					}
					sawHigh, next = true, fourGiB
				}
				if e.Address != next {
					t.Fatalf("%s %d: entry %d at 0x%x, want 0x%x (sorted, contiguous): %+v", name, mem, i, e.Address, next, entries)
				}
				next = e.Address + e.Length
				total += e.Length
				if e.Accepted {
					accepted[e.Address] = e.Length
				}
			}
			if sawHigh != (highLen > 0) || (sawHigh && next != fourGiB+highLen) || (!sawHigh && next != lowEnd) {
				t.Errorf("%s %d: RAM ends at 0x%x, high part %v", name, mem, next, sawHigh)
			}
			if total != mem {
				t.Errorf("%s %d: entries cover %d bytes", name, mem, total)
			}
			// Exactly the TD_HOB and TEMP_MEM sections are accepted, each as its own entry.
			var want int
			for _, s := range fw.Sections() {
				if s.Type != SectionTDHOB && s.Type != SectionTempMem {
					continue
				}
				want++
				if accepted[s.MemoryAddress] != s.MemoryDataSize {
					t.Errorf("%s %d: section %s at 0x%x not accepted as one entry", name, mem, s.Type, s.MemoryAddress)
				}
			}
			if len(accepted) != want {
				t.Errorf("%s %d: %d accepted entries, want %d", name, mem, len(accepted), want)
			}

			hob, err := fw.TDHOB(mem)
			if err != nil {
				t.Fatal(err)
			}
			checkHOBEncoding(t, fw, hob, entries)
		}
	}
}

func checkHOBEncoding(t *testing.T, fw *Firmware, hob []byte, entries []RAMEntry) {
	t.Helper()
	le := binary.LittleEndian
	if len(hob) != hobHandoffLen+hobResourceLen*len(entries) {
		t.Fatalf("HOB is %d bytes for %d entries", len(hob), len(entries))
	}
	if le.Uint16(hob) != 1 || le.Uint16(hob[2:]) != 56 || le.Uint32(hob[8:]) != 9 {
		t.Errorf("handoff header % x", hob[:12])
	}
	td, _ := firstSection(fw.Sections(), SectionTDHOB)
	// EfiEndOfHobList points past the 8-byte end-of-list HOB that follows the measured bytes.
	if got, want := le.Uint64(hob[48:]), td.MemoryAddress+uint64(len(hob))+8; got != want {
		t.Errorf("EfiEndOfHobList 0x%x, want 0x%x", got, want)
	}
	for i, e := range entries {
		r := hob[hobHandoffLen+i*hobResourceLen:]
		typ := uint32(7) // EFI_RESOURCE_MEMORY_UNACCEPTED
		if e.Accepted {
			typ = 0 // EFI_RESOURCE_SYSTEM_MEMORY
		}
		if le.Uint16(r) != 3 || le.Uint16(r[2:]) != 48 || le.Uint32(r[24:]) != typ || le.Uint32(r[28:]) != 7 ||
			le.Uint64(r[32:]) != e.Address || le.Uint64(r[40:]) != e.Length {
			t.Errorf("resource HOB %d: % x", i, r[:48])
		}
	}
}

func TestRAMEntriesErrors(t *testing.T) {
	fw, err := ParseFirmware(readInput(t, firmware2025))
	if err != nil {
		t.Fatal(err)
	}
	// TEMP_MEM at 8 MiB+ must be inside RAM; QEMU refuses to start otherwise.
	for _, mem := range []uint64{4 << 20, 0x80a000} {
		if _, err := fw.TDHOB(mem); err == nil || !strings.Contains(err.Error(), "QEMU fails") {
			t.Errorf("memory 0x%x: error %v", mem, err)
		}
	}
}

func TestAcceptRangeSplits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		entries  []RAMEntry
		addr, n  uint64
		wantErr  bool
		wantLens int
	}{
		{"middle", []RAMEntry{{0, 0x10000, false}}, 0x4000, 0x1000, false, 3},
		{"head", []RAMEntry{{0, 0x10000, false}}, 0, 0x1000, false, 2},
		{"tail", []RAMEntry{{0, 0x10000, false}}, 0xf000, 0x1000, false, 2},
		{"whole", []RAMEntry{{0, 0x10000, false}}, 0, 0x10000, false, 1},
		{"already accepted", []RAMEntry{{0, 0x10000, true}}, 0x1000, 0x1000, false, 1},
		{"straddles", []RAMEntry{{0, 0x10000, false}}, 0xf000, 0x2000, true, 0},
		{"outside", []RAMEntry{{0, 0x10000, false}}, 0x20000, 0x1000, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := acceptRange(append([]RAMEntry(nil), tc.entries...), tc.addr, tc.n)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if err == nil && len(got) != tc.wantLens {
				t.Errorf("%d entries: %+v", len(got), got)
			}
		})
	}
}

// The TD HOB witness of Debian 13's OVMF (TEMP_MEM at 0x811000/0xf000) is the value the lite
// document format expects for it, and rebuilding the TD HOB from it equals the one built from
// the sections for several memory sizes (verify.tdHOBFromWitness covers the rebuild).
func TestTDHobWitness(t *testing.T) {
	fw, err := ParseFirmware(readInput(t, firmware2025))
	if err != nil {
		t.Fatal(err)
	}
	w, err := fw.TDHobWitness()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(w); got != "80100904000609020b02110f" {
		t.Errorf("witness %s, want 80100904000609020b02110f", got)
	}
}
