package acpi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// firmwareImage is guest memory after a firmware ran etc/table-loader: each allocated file at
// its own base address, pointers relocated, checksums filled in.
type firmwareImage struct {
	base  map[string]uint64
	files map[string][]byte
}

// Arbitrary, distinct, suitably aligned placements, as a firmware would choose.
var testBases = map[string]uint64{FileRSDP: 0xf5a40, FileTables: 0x7ff2c000}

// runLoader plays the firmware's part (OVMF's QemuLoaderProcessFwCfg) on an independent
// reading of the command format, so a self-consistent but wrong linker cannot pass.
func runLoader(loader []byte, blobs map[string][]byte) (*firmwareImage, error) {
	img := &firmwareImage{base: map[string]uint64{}, files: map[string][]byte{}}
	if len(loader)%loaderEntrySize != 0 {
		return nil, fmt.Errorf("loader length %d not a multiple of %d", len(loader), loaderEntrySize)
	}
	name := func(b []byte) (string, error) {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return "", fmt.Errorf("file name not NUL terminated")
		}
		return string(b[:i]), nil
	}
	le := binary.LittleEndian
	for off := 0; off < len(loader); off += loaderEntrySize {
		e := loader[off : off+loaderEntrySize]
		switch cmd := le.Uint32(e); cmd {
		case 0:
			if !bytes.Equal(e, make([]byte, loaderEntrySize)) {
				return nil, fmt.Errorf("entry %d: command 0 with payload", off/loaderEntrySize)
			}
		case loaderCmdAllocate:
			f, err := name(e[4:60])
			if err != nil {
				return nil, err
			}
			align, zone := le.Uint32(e[60:]), e[64]
			blob, ok := blobs[f]
			if !ok {
				return nil, fmt.Errorf("allocate of unknown file %q", f)
			}
			base := testBases[f]
			if align == 0 || base%uint64(align) != 0 {
				return nil, fmt.Errorf("%q: alignment %d", f, align)
			}
			if (zone == loaderZoneFSeg) != (base >= 0xe0000 && base < 0x100000) {
				return nil, fmt.Errorf("%q: zone %d", f, zone)
			}
			img.base[f], img.files[f] = base, bytes.Clone(blob)
		case loaderCmdAddPointer:
			dst, err := name(e[4:60])
			if err != nil {
				return nil, err
			}
			src, err := name(e[60:116])
			if err != nil {
				return nil, err
			}
			at, size := int(le.Uint32(e[116:])), int(e[120])
			d, ok1 := img.files[dst]
			_, ok2 := img.files[src]
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("pointer %q -> %q before allocation", dst, src)
			}
			if size < 1 || size > 8 || at+size > len(d) {
				return nil, fmt.Errorf("pointer %q+%d size %d out of range", dst, at, size)
			}
			var v [8]byte
			copy(v[:], d[at:at+size])
			p := le.Uint64(v[:]) + img.base[src]
			le.PutUint64(v[:], p)
			copy(d[at:at+size], v[:size])
		case loaderCmdAddChecksum:
			f, err := name(e[4:60])
			if err != nil {
				return nil, err
			}
			at, start, n := int(le.Uint32(e[60:])), int(le.Uint32(e[64:])), int(le.Uint32(e[68:]))
			d, ok := img.files[f]
			if !ok || start+n > len(d) || at < start || at >= start+n {
				return nil, fmt.Errorf("checksum %q %d/%d+%d out of range", f, at, start, n)
			}
			d[at] = 0
			d[at] = checksum8(d[start : start+n])
		default:
			return nil, fmt.Errorf("entry %d: unknown command %d", off/loaderEntrySize, cmd)
		}
	}
	return img, nil
}

func sum8(b []byte) byte {
	var s byte
	for _, x := range b {
		s += x
	}
	return s
}

// table returns the table at guest address addr, checking its header.
func (img *firmwareImage) table(addr uint64, wantSig string) ([]byte, error) {
	t := img.files[FileTables]
	off := addr - img.base[FileTables]
	if addr < img.base[FileTables] || off+8 > uint64(len(t)) {
		return nil, fmt.Errorf("%s address %#x outside the tables", wantSig, addr)
	}
	if sig := string(t[off : off+4]); sig != wantSig {
		return nil, fmt.Errorf("address %#x holds %q, want %s", addr, sig, wantSig)
	}
	n := uint64(binary.LittleEndian.Uint32(t[off+4:]))
	if off+n > uint64(len(t)) {
		return nil, fmt.Errorf("%s length %d overruns the blob", wantSig, n)
	}
	tbl := t[off : off+n]
	if wantSig != "FACS" && sum8(tbl) != 0 {
		return nil, fmt.Errorf("%s checksum does not verify", wantSig)
	}
	return tbl, nil
}

// walkACPI follows the guest's view RSDP -> RSDT -> tables -> FACS/DSDT and returns the
// signatures the RSDT lists.
func walkACPI(img *firmwareImage) ([]string, error) {
	r := img.files[FileRSDP]
	if len(r) != rsdpLen || string(r[:8]) != rsdpSignature || sum8(r) != 0 {
		return nil, fmt.Errorf("bad RSDP %x", r)
	}
	rsdt, err := img.table(uint64(binary.LittleEndian.Uint32(r[16:])), "RSDT")
	if err != nil {
		return nil, err
	}
	var sigs []string
	for o := tableHeaderLen; o+4 <= len(rsdt); o += 4 {
		addr := uint64(binary.LittleEndian.Uint32(rsdt[o:]))
		off := addr - img.base[FileTables]
		if addr < img.base[FileTables] || off+4 > uint64(len(img.files[FileTables])) {
			return nil, fmt.Errorf("RSDT entry %#x outside the tables", addr)
		}
		sig := string(img.files[FileTables][off : off+4])
		tbl, err := img.table(addr, sig)
		if err != nil {
			return nil, err
		}
		if sig == "FACP" {
			le := binary.LittleEndian
			if _, err := img.table(uint64(le.Uint32(tbl[fadtFirmwareCtrlOffset:])), "FACS"); err != nil {
				return nil, fmt.Errorf("FADT.FIRMWARE_CTRL: %w", err)
			}
			if _, err := img.table(uint64(le.Uint32(tbl[fadtDSDTOffset:])), "DSDT"); err != nil {
				return nil, fmt.Errorf("FADT.DSDT: %w", err)
			}
			if _, err := img.table(le.Uint64(tbl[fadtXDSDTOffset:]), "DSDT"); err != nil {
				return nil, fmt.Errorf("FADT.X_DSDT: %w", err)
			}
		}
		sigs = append(sigs, sig)
	}
	return sigs, nil
}

// checkBlobs verifies everything about b that does not need a reference: sizes, the table
// list, and that a firmware running the loader ends up with a consistent ACPI tree.
func checkBlobs(t testing.TB, cfg *MachineConfig, b *Blobs) {
	t.Helper()
	if len(b.Tables) == 0 || len(b.Tables)%tablesBlobAlign != 0 {
		t.Fatalf("tables blob is %d bytes, not a positive multiple of 128 KiB", len(b.Tables))
	}
	if len(b.Loader) == 0 || len(b.Loader)%loaderBlobAlign != 0 {
		t.Fatalf("loader is %d bytes, not a positive multiple of 4 KiB", len(b.Loader))
	}
	want := []string{"FACS", "DSDT", "FACP", "APIC"}
	if cfg.Hugepages {
		want = append(want, "SRAT")
	}
	want = append(want, "MCFG", "WAET", "RSDT")
	var got []string
	end := 0
	for _, e := range b.List {
		got = append(got, e.Signature)
		if e.Offset != end {
			t.Fatalf("%s at %d, want it right after the previous table (%d)", e.Signature, e.Offset, end)
		}
		end = e.Offset + e.Length
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("tables %v, want %v", got, want)
	}
	if !bytes.Equal(b.Tables[end:], make([]byte, len(b.Tables)-end)) {
		t.Fatal("tables blob padding is not zero")
	}
	img, err := runLoader(b.Loader, map[string][]byte{FileTables: b.Tables, FileRSDP: b.RSDP})
	if err != nil {
		t.Fatalf("loader: %v", err)
	}
	listed, err := walkACPI(img)
	if err != nil {
		t.Fatalf("ACPI tree: %v", err)
	}
	if strings.Join(listed, ",") != strings.Join(want[2:len(want)-1], ",") {
		t.Fatalf("RSDT lists %v", listed)
	}
}

func TestLoaderConsistency(t *testing.T) {
	for _, cfg := range []MachineConfig{
		testConfig(),
		func() MachineConfig { c := testConfig(); c.Hugepages = true; c.NumGPUs = 8; return c }(),
		func() MachineConfig { c := testConfig(); c.CPUs = 4096; c.Hugepages = true; return c }(),
		func() MachineConfig { c := testConfig(); c.CPUs = 1024; c.QEMUVersion = Version{8, 2, 0}; return c }(),
	} {
		t.Run(fmt.Sprintf("cpu%d-hugepages%v", cfg.CPUs, cfg.Hugepages), func(t *testing.T) {
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			b, err := assemble(&cfg, newTable("DSDT", 1, bytes.Repeat([]byte{0x5b}, 3000)))
			if err != nil {
				t.Fatal(err)
			}
			checkBlobs(t, &cfg, b)
		})
	}
}

func TestLinkerErrors(t *testing.T) {
	l := newLinker()
	blob := make([]byte, 64)
	if err := l.alloc(FileTables, blob, 64, loaderZoneHigh); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"double alloc":        l.alloc(FileTables, blob, 64, loaderZoneHigh),
		"long name":           l.alloc(strings.Repeat("x", loaderFileNameSize), blob, 1, loaderZoneHigh),
		"pointer unallocated": l.addPointer("nope", 0, 4, FileTables, 0),
		"pointee unallocated": l.addPointer(FileTables, 0, 4, "nope", 0),
		"pointer size":        l.addPointer(FileTables, 0, 3, FileTables, 0),
		"pointer overrun":     l.addPointer(FileTables, 61, 4, FileTables, 0),
		"pointer negative":    l.addPointer(FileTables, -1, 4, FileTables, 0),
		"target overrun":      l.addPointer(FileTables, 0, 4, FileTables, 64),
		"checksum overrun":    l.addChecksum(FileTables, 10, 60, 20),
		"checksum byte":       l.addChecksum(FileTables, 10, 20, 30),
		"checksum empty":      l.addChecksum(FileTables, 0, 0, 0),
		"checksum file":       l.addChecksum("nope", 0, 1, 0),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
