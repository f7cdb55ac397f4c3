package pe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// ErrNotSupported marks inputs QEMU would accept but this package does not
// model yet; callers must not treat a result as a measurement then.
var ErrNotSupported = errors.New("pe: not supported yet")

// BootParams are the parts of a QEMU x86 direct-kernel-boot invocation that
// end up in the kernel's setup header.
type BootParams struct {
	// MemoryBytes is the guest RAM size (-m) in bytes.
	MemoryBytes uint64
	// MaxRAMBelow4G is the q35 machine property max-ram-below-4g in bytes;
	// 0 means QEMU's default (4 GiB), which never lowers the RAM split.
	MaxRAMBelow4G uint64
	// ACPIDataSize is the PC machine class's acpi_data_size, the RAM QEMU
	// keeps free below the top of low memory for ACPI tables:
	// 0x20000 + 0x8000 = 0x28000 for every current pc/q35 machine type.
	ACPIDataSize uint64
	// Cmdline is the -append string exactly as QEMU receives it (without the
	// " initrd=..." suffix OVMF adds later). QEMU derives vid_mode from a
	// "vga=" option in it, and for kernels not loaded high also the command
	// line address from its length.
	Cmdline string
	// HasInitrd says whether -initrd was given. QEMU patches ramdisk_image
	// and ramdisk_size whenever it was, even for an empty file; without it
	// both fields keep the values from the file.
	HasInitrd bool
	// InitrdSize is the size in bytes of the -initrd file.
	InitrdSize uint64
}

// Setup header offsets, Documentation/arch/x86/boot.rst.
const (
	offCmdLineMagic  = 0x020 // pre-2.02 command line protocol
	offCmdLineOffset = 0x022
	offSetupSects    = 0x1f1
	offVidMode       = 0x1fa
	offHeaderMagic   = 0x202
	offVersion       = 0x206
	offTypeOfLoader  = 0x210
	offLoadFlags     = 0x211
	offRamdiskImage  = 0x218
	offRamdiskSize   = 0x21c
	offHeapEndPtr    = 0x224
	offCmdLinePtr    = 0x228
	offInitrdAddrMax = 0x22c
	offXLoadFlags    = 0x236
	setupHeaderEnd   = 0x238 // first byte after xloadflags

	headerMagic = 0x53726448 // "HdrS"

	loadedHigh    = 0x01 // loadflags: protected-mode code at 0x100000
	canUseHeap    = 0x80 // loadflags: heap_end_ptr is valid
	xlfInitrdHigh = 0x40 // xloadflags: XLF_CAN_BE_LOADED_ABOVE_4G

	qemuLoaderType = 0xb0 // high nibble B: QEMU, revision 0

	// initrd_max for kernels that do not state initrd_addr_max (< 2.03).
	legacyInitrdMax = 0x37ffffff
)

// PatchSetupHeader returns a copy of kernel (a bzImage) with its setup header
// changed exactly as QEMU 8.x-10.1 x86_load_linux changes it before passing
// the setup blob to the firmware through fw_cfg. The copy is what OVMF
// reassembles and measures. The input is not modified.
func PatchSetupHeader(kernel []byte, p BootParams) ([]byte, error) {
	head, err := PatchedSetupHeader(kernel, p)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(kernel))
	copy(out[copy(out, head):], kernel[len(head):])
	return out, nil
}

// PatchedSetupHeader returns only the bytes of the patched kernel that QEMU's patch can
// change: a patched copy of the boot sector and setup header (the first PatchedRegion bytes).
// Everything after them is the kernel as given; AuthenticodeSHA384Patched hashes the
// patched kernel from the two without copying the rest.
func PatchedSetupHeader(kernel []byte, p BootParams) ([]byte, error) {
	h, err := parseSetupHeader(kernel)
	if err != nil {
		return nil, err
	}
	lay := h.layout(len(p.Cmdline))

	out := make([]byte, PatchedRegion)
	copy(out, kernel)

	if h.version >= 0x202 {
		binary.LittleEndian.PutUint32(out[offCmdLinePtr:], lay.cmdlineAddr)
	} else {
		binary.LittleEndian.PutUint16(out[offCmdLineMagic:], 0xa33f)
		binary.LittleEndian.PutUint16(out[offCmdLineOffset:], uint16(lay.cmdlineAddr-lay.realAddr))
	}

	if mode, ok, err := vgaMode(p.Cmdline); err != nil {
		return nil, err
	} else if ok {
		binary.LittleEndian.PutUint16(out[offVidMode:], mode)
	}

	// version >= 0x200 is guaranteed by parseSetupHeader.
	out[offTypeOfLoader] = qemuLoaderType
	if h.version >= 0x201 {
		out[offLoadFlags] |= canUseHeap
		binary.LittleEndian.PutUint16(out[offHeapEndPtr:], uint16(lay.cmdlineAddr-lay.realAddr-0x200))
	}

	if p.HasInitrd {
		addr, err := initrdAddress(h, p)
		if err != nil {
			return nil, err
		}
		binary.LittleEndian.PutUint32(out[offRamdiskImage:], addr)
		binary.LittleEndian.PutUint32(out[offRamdiskSize:], uint32(p.InitrdSize))
	}
	return out, nil
}

// PatchedRegion is how many leading bytes of a bzImage QEMU's setup-header patch can
// change: the boot sector and the setup header up to xloadflags. Every bzImage that
// parseSetupHeader accepts is at least this long.
const PatchedRegion = setupHeaderEnd

// setupHeader holds the fields of a bzImage setup header QEMU reads.
type setupHeader struct {
	version       uint16
	loadFlags     uint8
	initrdAddrMax uint32
	xloadFlags    uint16
}

func parseSetupHeader(kernel []byte) (setupHeader, error) {
	var h setupHeader
	if len(kernel) < setupHeaderEnd {
		return h, fmt.Errorf("pe: kernel is %d bytes, shorter than the %d-byte boot sector and setup header", len(kernel), setupHeaderEnd)
	}
	if m := binary.LittleEndian.Uint32(kernel[offHeaderMagic:]); m != headerMagic {
		return h, fmt.Errorf("pe: setup header field header at 0x%x is 0x%08x, not \"HdrS\": not a bzImage", offHeaderMagic, m)
	}
	h.version = binary.LittleEndian.Uint16(kernel[offVersion:])
	// Before 2.00 there is no type_of_loader and no initrd support; such
	// kernels also predate the EFI stub, so they can never be measured by
	// OVMF as PE images.
	if h.version < 0x200 {
		return h, fmt.Errorf("pe: setup header field version is %d.%02d, boot protocol 2.00 or later is required", h.version>>8, h.version&0xff)
	}
	h.loadFlags = kernel[offLoadFlags]
	h.initrdAddrMax = binary.LittleEndian.Uint32(kernel[offInitrdAddrMax:])
	h.xloadFlags = binary.LittleEndian.Uint16(kernel[offXLoadFlags:])

	setupSects := int(kernel[offSetupSects])
	if setupSects == 0 {
		setupSects = 4 // boot.rst: 0 means 4
	}
	setupSize := (setupSects + 1) * 512
	if setupSize > len(kernel) {
		return h, fmt.Errorf("pe: setup header field setup_sects (%d) claims %d setup bytes, kernel is only %d bytes", kernel[offSetupSects], setupSize, len(kernel))
	}
	return h, nil
}

// loadLayout is where QEMU puts the real-mode setup and the command line.
type loadLayout struct {
	realAddr, cmdlineAddr uint32
}

func (h setupHeader) layout(cmdlineLen int) loadLayout {
	if h.version >= 0x202 && h.loadFlags&loadedHigh != 0 {
		return loadLayout{realAddr: 0x10000, cmdlineAddr: 0x20000}
	}
	// QEMU pads the command line to a 16-byte multiple, NUL included, and
	// places it just below 0x9a000.
	size := uint32((cmdlineLen + 16) &^ 15)
	return loadLayout{realAddr: 0x90000, cmdlineAddr: 0x9a000 - size}
}

// initrdAddress is QEMU's choice of ramdisk_image: the highest 4 KiB-aligned
// address at which the initrd fits below both the kernel's limit and the
// top of low RAM minus the ACPI area.
func initrdAddress(h setupHeader, p BootParams) (uint32, error) {
	var initrdMax uint32
	switch {
	case h.version >= 0x20c && h.xloadFlags&xlfInitrdHigh != 0:
		// QEMU only uses the 32-bit ramdisk_image, so "anywhere" is 4 GiB.
		initrdMax = 0xffffffff
	case h.version >= 0x203:
		initrdMax = h.initrdAddrMax
	default:
		initrdMax = legacyInitrdMax
	}

	below4G := lowMemSize(p.MemoryBytes, p.MaxRAMBelow4G)
	if p.ACPIDataSize >= below4G {
		return 0, fmt.Errorf("pe: ACPI data size 0x%x does not fit in the 0x%x bytes of RAM below 4 GiB", p.ACPIDataSize, below4G)
	}
	if top := below4G - p.ACPIDataSize; uint64(initrdMax) >= top {
		initrdMax = uint32(top - 1)
	}
	if p.InitrdSize >= uint64(initrdMax) {
		return 0, fmt.Errorf("pe: initrd of %d bytes does not fit below initrd_max 0x%x", p.InitrdSize, initrdMax)
	}
	return uint32((uint64(initrdMax) - p.InitrdSize) &^ 4095), nil
}

// lowMemSize is the q35 machine's below_4g_mem_size (hw/i386/pc_q35.c):
// RAM up to 2.75 GiB stays below 4 GiB whole; larger RAM is split at 2 GiB.
func lowMemSize(ram, maxBelow4G uint64) uint64 {
	lowmem := uint64(0xb0000000)
	if ram >= 0xb0000000 {
		lowmem = 0x80000000
	}
	if maxBelow4G == 0 {
		maxBelow4G = 1 << 32
	}
	lowmem = min(lowmem, maxBelow4G)
	return min(ram, lowmem)
}

// vgaMode mirrors QEMU's handling of the first "vga=" in the command line,
// which it writes to vid_mode.
func vgaMode(cmdline string) (mode uint16, ok bool, err error) {
	i := strings.Index(cmdline, "vga=")
	if i < 0 {
		return 0, false, nil
	}
	v := cmdline[i+len("vga="):]
	switch {
	case strings.HasPrefix(v, "normal"):
		return 0xffff, true, nil
	case strings.HasPrefix(v, "ext"):
		return 0xfffe, true, nil
	case strings.HasPrefix(v, "ask"):
		return 0xfffd, true, nil
	}
	n, rest, perr := parseCUint(v)
	if perr != nil {
		return 0, false, fmt.Errorf("pe: kernel command line vga=%q: %w", firstWord(v), perr)
	}
	if rest != "" && rest[0] != ' ' {
		// QEMU refuses to start with such a command line.
		return 0, false, fmt.Errorf("pe: kernel command line vga=%q is not a number", firstWord(v))
	}
	// QEMU stores the unsigned int with stw: the high half is dropped.
	return uint16(n), true, nil
}

func firstWord(s string) string {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}

// parseCUint parses an unsigned int the way strtoul with base 0 does
// (0x hex, 0 octal, else decimal), bounded to 32 bits like qemu_strtoui.
// Signs are not modelled: qemu_strtoui's treatment of "-" is a corner
// nobody passes as a video mode.
func parseCUint(s string) (uint64, string, error) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	if s != "" && (s[0] == '-' || s[0] == '+') {
		return 0, "", fmt.Errorf("signed video mode: %w", ErrNotSupported)
	}
	base := uint64(10)
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && digitVal(s[2]) < 16:
		base, s = 16, s[2:]
	case len(s) > 0 && s[0] == '0':
		base = 8
	}
	var n uint64
	i := 0
	for ; i < len(s) && digitVal(s[i]) < base; i++ {
		n = n*base + digitVal(s[i])
		if n > 0xffffffff {
			return 0, "", errors.New("video mode out of range")
		}
	}
	if i == 0 {
		return 0, "", errors.New("no digits")
	}
	return n, s[i:], nil
}

func digitVal(c byte) uint64 {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0')
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return uint64(c-'A') + 10
	}
	return 99
}
