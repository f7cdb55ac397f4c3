package pe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

const q35ACPIDataSize = 0x28000

// patchedFields lists every byte range QEMU may write; everything else must
// come through untouched.
var patchedFields = []struct{ off, len int }{
	{offCmdLineMagic, 4}, {offVidMode, 2}, {offTypeOfLoader, 2},
	{offRamdiskImage, 8}, {offHeapEndPtr, 2}, {offCmdLinePtr, 4},
}

func isPatchable(off int) bool {
	for _, f := range patchedFields {
		if off >= f.off && off < f.off+f.len {
			return true
		}
	}
	return false
}

// TestPatchSetupHeaderRealKernel checks each field against the boot
// protocol arithmetic of x86_load_linux, worked by hand for the sample
// kernel (protocol 2.15, LOADED_HIGH, XLF_CAN_BE_LOADED_ABOVE_4G).
func TestPatchSetupHeaderRealKernel(t *testing.T) {
	kernel := sampleKernel(t)
	orig := bytes.Clone(kernel)
	const initrd = 4166507
	// initrd_max = min(UINT32_MAX, below_4g - acpi - 1); addr = (max - size) & ~4095.
	place := func(below4G uint64) uint32 {
		return uint32((below4G - q35ACPIDataSize - 1 - initrd) &^ 4095)
	}
	for _, tc := range []struct {
		name       string
		p          BootParams
		ramdisk    uint32
		ramdiskLen uint32
		vidMode    uint16
	}{
		{"512MiB", BootParams{MemoryBytes: 512 << 20, HasInitrd: true, InitrdSize: initrd}, place(512 << 20), initrd, 0},
		{"2GiB", BootParams{MemoryBytes: 2 << 30, HasInitrd: true, InitrdSize: initrd}, place(2 << 30), initrd, 0},
		{"just below the 2.75GiB split", BootParams{MemoryBytes: 0xb0000000 - 1<<20, HasInitrd: true, InitrdSize: initrd}, place(0xb0000000 - 1<<20), initrd, 0},
		{"2.75GiB splits at 2GiB", BootParams{MemoryBytes: 0xb0000000, HasInitrd: true, InitrdSize: initrd}, place(2 << 30), initrd, 0},
		{"256GiB", BootParams{MemoryBytes: 256 << 30, HasInitrd: true, InitrdSize: initrd}, place(2 << 30), initrd, 0},
		{"max-ram-below-4g 1GiB", BootParams{MemoryBytes: 4 << 30, MaxRAMBelow4G: 1 << 30, HasInitrd: true, InitrdSize: initrd}, place(1 << 30), initrd, 0},
		{"empty initrd", BootParams{MemoryBytes: 1 << 30, HasInitrd: true}, uint32(((1 << 30) - q35ACPIDataSize - 1) &^ 4095), 0, 0},
		{"no initrd", BootParams{MemoryBytes: 1 << 30}, 0, 0, 0},
		{"vga=normal", BootParams{MemoryBytes: 1 << 30, Cmdline: "console=ttyS0 vga=normal"}, 0, 0, 0xffff},
		{"vga=ext", BootParams{MemoryBytes: 1 << 30, Cmdline: "vga=ext quiet"}, 0, 0, 0xfffe},
		{"vga=ask", BootParams{MemoryBytes: 1 << 30, Cmdline: "vga=ask"}, 0, 0, 0xfffd},
		{"vga hex", BootParams{MemoryBytes: 1 << 30, Cmdline: "vga=0x317 quiet"}, 0, 0, 0x317},
		{"vga octal", BootParams{MemoryBytes: 1 << 30, Cmdline: "vga=0317"}, 0, 0, 0317},
		{"vga decimal, truncated to 16 bits", BootParams{MemoryBytes: 1 << 30, Cmdline: "vga=65537"}, 0, 0, 1},
		{"first vga= wins, inside a word too", BootParams{MemoryBytes: 1 << 30, Cmdline: "xvga=791 vga=ask"}, 0, 0, 791},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.ACPIDataSize = q35ACPIDataSize
			out, err := PatchSetupHeader(kernel, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(kernel, orig) {
				t.Fatal("input kernel was modified")
			}
			if len(out) != len(kernel) {
				t.Fatalf("length %d, want %d", len(out), len(kernel))
			}
			le := binary.LittleEndian
			check := func(field string, got, want uint64) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %#x, want %#x", field, got, want)
				}
			}
			check("type_of_loader", uint64(out[0x210]), 0xb0)
			check("loadflags", uint64(out[0x211]), uint64(kernel[0x211]|0x80))
			check("heap_end_ptr", uint64(le.Uint16(out[0x224:])), 0x20000-0x10000-0x200)
			check("cmd_line_ptr", uint64(le.Uint32(out[0x228:])), 0x20000)
			wantVid := uint64(le.Uint16(kernel[0x1fa:]))
			if tc.vidMode != 0 {
				wantVid = uint64(tc.vidMode)
			}
			check("vid_mode", uint64(le.Uint16(out[0x1fa:])), wantVid)
			if tc.p.HasInitrd {
				check("ramdisk_image", uint64(le.Uint32(out[0x218:])), uint64(tc.ramdisk))
				check("ramdisk_size", uint64(le.Uint32(out[0x21c:])), uint64(tc.ramdiskLen))
			} else {
				check("ramdisk_image", uint64(le.Uint32(out[0x218:])), uint64(le.Uint32(kernel[0x218:])))
				check("ramdisk_size", uint64(le.Uint32(out[0x21c:])), uint64(le.Uint32(kernel[0x21c:])))
			}
			// Cheap on 8 MiB and catches stray writes anywhere.
			for i := range out {
				if out[i] != kernel[i] && !isPatchable(i) {
					t.Fatalf("byte 0x%x changed outside the setup header fields QEMU writes", i)
				}
			}
		})
	}
}

// synthHeader builds a minimal setup header for the protocol branches the
// real kernel does not take.
func synthHeader(version uint16, loadFlags uint8, initrdAddrMax uint32, xlf uint16) []byte {
	b := make([]byte, 5*512)
	b[offSetupSects] = 4
	binary.LittleEndian.PutUint32(b[offHeaderMagic:], headerMagic)
	binary.LittleEndian.PutUint16(b[offVersion:], version)
	b[offLoadFlags] = loadFlags
	binary.LittleEndian.PutUint32(b[offInitrdAddrMax:], initrdAddrMax)
	binary.LittleEndian.PutUint16(b[offXLoadFlags:], xlf)
	return b
}

func TestPatchSetupHeaderProtocolBranches(t *testing.T) {
	const mem = 1 << 30
	const size = 0x100000
	le := binary.LittleEndian
	for _, tc := range []struct {
		name                string
		kernel              []byte
		cmdline             string
		cmdlinePtr, heapEnd uint32
		oldCmdline          bool
		initrdMax           uint32 // before the low-memory cap
	}{
		{"2.12 with XLF above 4G", synthHeader(0x20c, loadedHigh, 0x7fffffff, xlfInitrdHigh), "", 0x20000, 0xfe00, false, 0xffffffff},
		{"2.12 without XLF uses initrd_addr_max", synthHeader(0x20c, loadedHigh, 0x1fffffff, 0), "", 0x20000, 0xfe00, false, 0x1fffffff},
		{"2.11 ignores XLF", synthHeader(0x20b, loadedHigh, 0x1fffffff, xlfInitrdHigh), "", 0x20000, 0xfe00, false, 0x1fffffff},
		{"2.03 initrd_addr_max", synthHeader(0x203, loadedHigh, 0x37ffffff, 0), "", 0x20000, 0xfe00, false, 0x37ffffff},
		{"2.02 legacy limit", synthHeader(0x202, loadedHigh, 0x1000, 0), "", 0x20000, 0xfe00, false, 0x37ffffff},
		// Not loaded high: cmdline just below 0x9a000, padded to 16 with its NUL.
		{"2.02 low kernel", synthHeader(0x202, 0, 0, 0), "0123456789abcdef", 0x9a000 - 32, 0x9a000 - 32 - 0x90000 - 0x200, false, 0x37ffffff},
		{"2.01 old cmdline protocol", synthHeader(0x201, loadedHigh, 0, 0), "abc", 0x9a000 - 16, 0x9a000 - 16 - 0x90000 - 0x200, true, 0x37ffffff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := BootParams{MemoryBytes: mem, ACPIDataSize: q35ACPIDataSize, Cmdline: tc.cmdline, HasInitrd: true, InitrdSize: size}
			out, err := PatchSetupHeader(tc.kernel, p)
			if err != nil {
				t.Fatal(err)
			}
			if tc.oldCmdline {
				if m, o := le.Uint16(out[0x20:]), le.Uint16(out[0x22:]); m != 0xa33f || uint32(o) != tc.cmdlinePtr-0x90000 {
					t.Errorf("cmd_line_magic/offset = %#x/%#x", m, o)
				}
				if p := le.Uint32(out[0x228:]); p != 0 {
					t.Errorf("cmd_line_ptr written for protocol < 2.02: %#x", p)
				}
			} else if got := le.Uint32(out[0x228:]); got != tc.cmdlinePtr {
				t.Errorf("cmd_line_ptr = %#x, want %#x", got, tc.cmdlinePtr)
			}
			if got := le.Uint16(out[0x224:]); uint32(got) != tc.heapEnd {
				t.Errorf("heap_end_ptr = %#x, want %#x", got, tc.heapEnd)
			}
			max := min(uint64(tc.initrdMax), mem-q35ACPIDataSize-1)
			if got, want := le.Uint32(out[0x218:]), uint32((max-size)&^4095); got != want {
				t.Errorf("ramdisk_image = %#x, want %#x", got, want)
			}
		})
	}
}

func TestPatchSetupHeaderErrors(t *testing.T) {
	kernel := sampleKernel(t)
	good := BootParams{MemoryBytes: 1 << 30, ACPIDataSize: q35ACPIDataSize, HasInitrd: true, InitrdSize: 1 << 20}
	with := func(f func(*BootParams)) BootParams { p := good; f(&p); return p }
	lying := bytes.Clone(kernel[:64<<10])
	lying[offSetupSects] = 255 // (255+1)*512 = 128 KiB of setup in a 64 KiB file
	for _, tc := range []struct {
		name, field string
		kernel      []byte
		p           BootParams
		notSupp     bool
	}{
		{"too short", "setup header", kernel[:0x200], good, false},
		{"no HdrS", "HdrS", append(bytes.Clone(kernel[:0x202]), make([]byte, 0x1000)...), good, false},
		{"protocol 1.x", "version", synthHeader(0x1ff, 0, 0, 0), good, false},
		{"setup_sects lying", "setup_sects", lying, good, false},
		{"initrd too large", "initrd", kernel, with(func(p *BootParams) { p.InitrdSize = 1 << 30 }), false},
		{"initrd_addr_max zero", "initrd", synthHeader(0x203, loadedHigh, 0, 0), good, false},
		{"ACPI larger than RAM", "ACPI", kernel, with(func(p *BootParams) { p.MemoryBytes = 0x20000 }), false},
		{"vga= garbage", "vga", kernel, with(func(p *BootParams) { p.Cmdline = "vga=foo" }), false},
		{"vga= trailing junk", "vga", kernel, with(func(p *BootParams) { p.Cmdline = "vga=12x" }), false},
		{"vga= out of range", "vga", kernel, with(func(p *BootParams) { p.Cmdline = "vga=0x100000000" }), false},
		{"vga= signed", "vga", kernel, with(func(p *BootParams) { p.Cmdline = "vga=-1" }), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := PatchSetupHeader(tc.kernel, tc.p)
			if err == nil {
				t.Fatalf("no error (%d bytes out)", len(out))
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
			if errors.Is(err, ErrNotSupported) != tc.notSupp {
				t.Errorf("errors.Is(ErrNotSupported) = %v", !tc.notSupp)
			}
		})
	}
}

func FuzzPatchSetupHeader(f *testing.F) {
	kernel := sampleKernel(f)
	head := kernel[:24<<10]
	f.Add(head, uint64(1<<30), uint64(4<<20), true, "console=ttyS0")
	f.Add(head, uint64(0xb0000000), uint64(0), false, "vga=0x317")
	low := bytes.Clone(head)
	low[offLoadFlags] &^= loadedHigh
	f.Add(low, uint64(512<<20), uint64(1<<20), true, "")
	old := bytes.Clone(head)
	binary.LittleEndian.PutUint16(old[offVersion:], 0x201)
	f.Add(old, uint64(1<<30), uint64(1), true, "vga=ask")
	lying := bytes.Clone(head)
	lying[offSetupSects] = 255
	f.Add(lying, uint64(1<<30), uint64(1), true, "")
	f.Add(head[:0x300], uint64(0x28000), uint64(0), true, "vga=")
	f.Fuzz(func(t *testing.T, k []byte, mem, initrd uint64, hasInitrd bool, cmdline string) {
		p := BootParams{MemoryBytes: mem, ACPIDataSize: q35ACPIDataSize, Cmdline: cmdline, HasInitrd: hasInitrd, InitrdSize: initrd}
		orig := bytes.Clone(k)
		out, err := PatchSetupHeader(k, p)
		if !bytes.Equal(k, orig) {
			t.Fatal("input modified")
		}
		if err != nil {
			return
		}
		if len(out) != len(k) {
			t.Fatalf("length %d, want %d", len(out), len(k))
		}
		if !bytes.Equal(out[setupHeaderEnd:], k[setupHeaderEnd:]) {
			t.Fatal("bytes after the setup header changed")
		}
		for i := range setupHeaderEnd {
			if out[i] != k[i] && !isPatchable(i) {
				t.Fatalf("byte 0x%x changed", i)
			}
		}
	})
}
