package uefi

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/ulikunitz/xz/lzma"
)

// referenceLZMA decodes with ulikunitz/xz, an independent implementation (test-only).
func referenceLZMA(src []byte, want int) ([]byte, error) {
	r, err := lzma.NewReader(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	out := make([]byte, want)
	if _, err := io.ReadFull(r, out); err != nil {
		return nil, err
	}
	return out, nil
}

// lzmaStreams finds every LZMA-compressed section of a firmware image (EDK2 GUID-defined
// sections with the LZMA GUID), by walking the image as the parser does.
func lzmaStreams(image []byte) ([][]byte, error) {
	var out [][]byte
	p := &parser{fw: &Firmware{}}
	p.onLZMA = func(src []byte) { out = append(out, bytes.Clone(src)) }
	err := p.parseImage(image)
	return out, err
}

// lzmaImages are the real firmware images whose LZMA sections are checked.
var lzmaImages = []string{
	"../testdata/sample-image/ovmf-debian-2025.02-8+deb13u1.fd",
	"../testdata/vectors/ovmf-debian-2022.11-6+deb12u2.fd.gz",
	"../testdata/vectors/ovmf-inteltdx.ms-debian-2026.08+ds-2.fd.gz",
}

// The decoder writing straight into the output equals ulikunitz/xz on every LZMA section of
// the real firmware images, whole and as prefixes.
func TestLZMAMatchesReferenceOnRealFirmware(t *testing.T) {
	n := 0
	for _, name := range lzmaImages {
		streams, err := lzmaStreams(loadImage(t, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range streams {
			size := int(binary.LittleEndian.Uint64(s[5:13]))
			for _, want := range []int{size, size / 2, 1, 0} {
				got, err := decodeLZMAAlone(s, want)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				ref, err := referenceLZMA(s, want)
				if err != nil {
					t.Fatalf("%s: reference: %v", name, err)
				}
				if !bytes.Equal(got, ref) {
					t.Fatalf("%s: %d of %d bytes differ from the reference", name, want, size)
				}
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no LZMA section found")
	}
	t.Logf("%d LZMA sections decoded identically", n)
}

// FuzzLZMA: on any input, the decoder never panics, and whatever it decodes the reference
// decodes to the same bytes.
func FuzzLZMA(f *testing.F) {
	if streams, err := lzmaStreams(loadImage(f, lzmaImages[0])); err == nil {
		for _, s := range streams {
			f.Add(s[:min(len(s), 4096)])
		}
	}
	f.Add([]byte{0x5d, 0, 0, 1, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) < 13 {
			return
		}
		size := binary.LittleEndian.Uint64(src[5:13])
		want := int(min(size, 1<<16))
		// A small dictionary keeps each run cheap; both decoders see the same header.
		src = bytes.Clone(src)
		binary.LittleEndian.PutUint32(src[1:5], uint32(max(want, 4096)))
		got, err := decodeLZMAAlone(src, want)
		if err != nil {
			return
		}
		ref, rerr := referenceLZMA(src, want)
		if rerr == nil && !bytes.Equal(got, ref) {
			t.Fatalf("decoded %d bytes differ from the reference", want)
		}
	})
}

// BenchmarkDecodeLZMA decodes every LZMA section of the Debian 2025.02 OVMF (the DXE volume
// is nearly all of it): the largest fixed cost of a cold measurement.
func BenchmarkDecodeLZMA(b *testing.B) {
	streams, err := lzmaStreams(loadImage(b, lzmaImages[0]))
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, s := range streams {
		total += int64(binary.LittleEndian.Uint64(s[5:13]))
	}
	b.SetBytes(total)
	for b.Loop() {
		for _, s := range streams {
			if _, err := decodeLZMAAlone(s, int(binary.LittleEndian.Uint64(s[5:13]))); err != nil {
				b.Fatal(err)
			}
		}
	}
}
