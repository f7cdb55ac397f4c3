package acpi

// The BIOS linker/loader (hw/acpi/bios-linker-loader.c): QEMU cannot know where the firmware
// will place the ACPI tables, so it hands over the tables with intra-blob offsets in their
// pointer fields plus a script, etc/table-loader, telling the firmware to allocate each blob,
// add the allocation's address to each pointer, and compute each checksum. The script is
// measured too, so its commands, their order and their padding must match QEMU's exactly.

import (
	"encoding/binary"
	"fmt"
)

// fw_cfg file names of the three blobs.
const (
	FileTables = "etc/acpi/tables"
	FileRSDP   = "etc/acpi/rsdp"
	FileLoader = "etc/table-loader"
)

// Loader command encoding (BiosLinkerLoaderEntry).
const (
	loaderEntrySize    = 128
	loaderFileNameSize = 56 // BIOS_LINKER_LOADER_FILESZ

	loaderCmdAllocate    = 1
	loaderCmdAddPointer  = 2
	loaderCmdAddChecksum = 3

	// Allocation zones.
	loaderZoneHigh = 1 // anywhere in RAM below 4 GiB
	loaderZoneFSeg = 2 // the legacy 0xE0000-0xFFFFF segment, where the RSDP must live

	// acpi_build pads the command blob to a multiple of ACPI_BUILD_ALIGN_SIZE.
	loaderBlobAlign = 0x1000
)

// linker accumulates loader commands the way QEMU's BIOSLinker does, patching pointer fields
// in the registered blobs as it goes.
type linker struct {
	allocs []byte // ALLOCATE commands; QEMU prepends each new one ("must come first")
	cmds   []byte // ADD_POINTER / ADD_CHECKSUM commands in issue order
	files  map[string][]byte
}

func newLinker() *linker {
	return &linker{files: make(map[string][]byte)}
}

func loaderFileName(e []byte, name string) ([]byte, error) {
	if len(name) >= loaderFileNameSize { // the firmware needs a NUL terminator
		return nil, fmt.Errorf("loader: file name %q longer than %d bytes", name, loaderFileNameSize-1)
	}
	var f [loaderFileNameSize]byte
	copy(f[:], name)
	return append(e, f[:]...), nil
}

func padEntry(e []byte) []byte {
	return append(e, make([]byte, loaderEntrySize-len(e))...)
}

// alloc registers blob under name and issues ALLOCATE (bios_linker_loader_alloc).
func (l *linker) alloc(name string, blob []byte, align uint32, zone byte) error {
	if _, dup := l.files[name]; dup {
		return fmt.Errorf("loader: file %q allocated twice", name)
	}
	e := binary.LittleEndian.AppendUint32(make([]byte, 0, loaderEntrySize), loaderCmdAllocate)
	e, err := loaderFileName(e, name)
	if err != nil {
		return err
	}
	e = binary.LittleEndian.AppendUint32(e, align)
	e = append(e, zone)
	l.files[name] = blob
	l.allocs = append(padEntry(e), l.allocs...)
	return nil
}

// addPointer writes srcOffset into the size-byte field at dstOffset of dstFile and issues
// ADD_POINTER, which makes the firmware add srcFile's address to that field
// (bios_linker_loader_add_pointer).
func (l *linker) addPointer(dstFile string, dstOffset, size int, srcFile string, srcOffset int) error {
	dst, ok := l.files[dstFile]
	if !ok {
		return fmt.Errorf("loader: pointer into unallocated file %q", dstFile)
	}
	src, ok := l.files[srcFile]
	if !ok {
		return fmt.Errorf("loader: pointer to unallocated file %q", srcFile)
	}
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return fmt.Errorf("loader: pointer size %d not 1, 2, 4 or 8", size)
	}
	if dstOffset < 0 || dstOffset > len(dst)-size {
		return fmt.Errorf("loader: pointer field %d+%d outside %q (%d bytes)", dstOffset, size, dstFile, len(dst))
	}
	if srcOffset < 0 || srcOffset >= len(src) {
		return fmt.Errorf("loader: pointer target %d outside %q (%d bytes)", srcOffset, srcFile, len(src))
	}
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], uint64(srcOffset))
	copy(dst[dstOffset:dstOffset+size], v[:size])

	e := binary.LittleEndian.AppendUint32(make([]byte, 0, loaderEntrySize), loaderCmdAddPointer)
	e, err := loaderFileName(e, dstFile)
	if err != nil {
		return err
	}
	if e, err = loaderFileName(e, srcFile); err != nil {
		return err
	}
	e = binary.LittleEndian.AppendUint32(e, uint32(dstOffset))
	e = append(e, byte(size))
	l.cmds = append(l.cmds, padEntry(e)...)
	return nil
}

// addChecksum zeroes the checksum byte and issues ADD_CHECKSUM over [start, start+size) of file
// (bios_linker_loader_add_checksum).
func (l *linker) addChecksum(file string, start, size, checksumOffset int) error {
	blob, ok := l.files[file]
	if !ok {
		return fmt.Errorf("loader: checksum of unallocated file %q", file)
	}
	if start < 0 || size <= 0 || start > len(blob)-size {
		return fmt.Errorf("loader: checksum range %d+%d outside %q (%d bytes)", start, size, file, len(blob))
	}
	if checksumOffset < start || checksumOffset >= start+size {
		return fmt.Errorf("loader: checksum byte %d outside its range %d+%d", checksumOffset, start, size)
	}
	blob[checksumOffset] = 0

	e := binary.LittleEndian.AppendUint32(make([]byte, 0, loaderEntrySize), loaderCmdAddChecksum)
	e, err := loaderFileName(e, file)
	if err != nil {
		return err
	}
	e = binary.LittleEndian.AppendUint32(e, uint32(checksumOffset))
	e = binary.LittleEndian.AppendUint32(e, uint32(start))
	e = binary.LittleEndian.AppendUint32(e, uint32(size))
	l.cmds = append(l.cmds, padEntry(e)...)
	return nil
}

// blob returns etc/table-loader: allocations first, then the other commands, zero padded to
// a multiple of 4 KiB.
func (l *linker) blob() []byte {
	out := make([]byte, alignUp(len(l.allocs)+len(l.cmds), loaderBlobAlign))
	copy(out[copy(out, l.allocs):], l.cmds)
	return out
}

// alignUp rounds n up to a multiple of align (a power of two); 0 stays 0 as in QEMU's ROUND_UP.
func alignUp(n, align int) int {
	return (n + align - 1) &^ (align - 1)
}
