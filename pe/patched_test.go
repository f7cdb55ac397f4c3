package pe

import (
	"bytes"
	"testing"
)

// The streaming path (hash the kernel with the patched bytes substituted) equals hashing the
// patched copy, on the real kernel, for every shape of patch QEMU makes.
func TestAuthenticodePatchedMatchesCopy(t *testing.T) {
	kernel := sampleKernel(t)
	orig := bytes.Clone(kernel)
	n := 0
	for _, mem := range []uint64{512 << 20, 2 << 30, 0xb0000000 - 1<<20, 0xb0000000, 16 << 30} {
		for _, initrd := range []uint64{0, 1, 4166507, 96 << 20} {
			for _, cmdline := range []string{"", "console=ttyS0", "vga=0x317 quiet"} {
				p := BootParams{MemoryBytes: mem, ACPIDataSize: q35ACPIDataSize, Cmdline: cmdline, HasInitrd: initrd != 0, InitrdSize: initrd}
				full, err := PatchSetupHeader(kernel, p)
				if err != nil {
					t.Fatal(err)
				}
				want, err := AuthenticodeSHA384(full)
				if err != nil {
					t.Fatal(err)
				}
				head, err := PatchedSetupHeader(kernel, p)
				if err != nil {
					t.Fatal(err)
				}
				if len(head) != PatchedRegion || !bytes.Equal(head, full[:PatchedRegion]) {
					t.Fatalf("%+v: PatchedSetupHeader differs from PatchSetupHeader's first %d bytes", p, PatchedRegion)
				}
				got, err := AuthenticodeSHA384Patched(kernel, head)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%+v: streamed digest %x, copy-and-patch digest %x", p, got, want)
				}
				n++
			}
		}
	}
	if !bytes.Equal(kernel, orig) {
		t.Fatal("kernel modified")
	}
	t.Logf("%d patches hashed identically", n)
}

// FuzzAuthenticodePatched: for any image and any replacement of its first bytes, the
// streamed digest (or error) equals that of the copy with the bytes replaced, including
// replacements that rewrite PE header fields and ranges that straddle the boundary.
func FuzzAuthenticodePatched(f *testing.F) {
	kernel := sampleKernel(f)
	img := kernel[:64<<10]
	if head, err := PatchedSetupHeader(img, BootParams{MemoryBytes: 2 << 30, ACPIDataSize: q35ACPIDataSize, HasInitrd: true, InitrdSize: 1 << 20}); err == nil {
		f.Add(img, head)
	}
	// Replacements that end inside the PE signature, the optional header and the section
	// table, with a field changed.
	for _, n := range []int{0x42, 0x90, 0x120, 0x1f0, 0x300} {
		h := bytes.Clone(img[:n])
		h[n-1] ^= 0xff
		f.Add(img, h)
	}
	f.Add(img[:0x200], img[:0x10])
	f.Add([]byte("MZ"), []byte("M"))
	f.Fuzz(func(t *testing.T, image, head []byte) {
		if len(head) > len(image) {
			if _, err := AuthenticodeSHA384Patched(image, head); err == nil {
				t.Fatal("a replacement longer than the image was accepted")
			}
			return
		}
		full := bytes.Clone(image)
		copy(full, head)
		want, werr := AuthenticodeSHA384(full)
		got, gerr := AuthenticodeSHA384Patched(image, head)
		switch {
		case (werr == nil) != (gerr == nil):
			t.Fatalf("copy: %v; streamed: %v", werr, gerr)
		case werr != nil && werr.Error() != gerr.Error():
			t.Fatalf("errors differ: copy %q, streamed %q", werr, gerr)
		case !bytes.Equal(got, want):
			t.Fatalf("streamed digest %x, copy digest %x", got, want)
		}
	})
}
