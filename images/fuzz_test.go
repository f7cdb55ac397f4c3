package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
)

func FuzzParseMetadata(f *testing.F) {
	f.Add(readSample(f, MetadataFileName))
	f.Add([]byte(`{"bios":"./ovmf.fd","kernel":"bzImage","cmdline":"","is_dev":true,"x":null}`))
	f.Add([]byte(`{"bios":"a/../../b","kernel":"k","kernel":"k","cmdline":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetadata(data)
		if err != nil {
			return
		}
		for _, nf := range m.fileFields() {
			if clean, err := CleanName(nf.name); err != nil || clean != nf.name {
				t.Fatalf("field %s: accepted name %q is not clean (%v)", nf.field, nf.name, err)
			}
		}
	})
}

func FuzzParseChecksums(f *testing.F) {
	f.Add([]byte(strings.Repeat("ab", 32) + "  ovmf.fd\n" + strings.Repeat("CD", 32) + " *./x\r\n"))
	f.Add([]byte("\\" + strings.Repeat("0", 64) + "  a\\nb\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := ParseChecksums(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, l := range lines {
			if len(l.SHA256) != 64 || seen[l.Name] {
				t.Fatalf("bad line accepted: %+v", l)
			}
			if clean, err := CleanName(l.Name); err != nil || clean != l.Name {
				t.Fatalf("unclean name %q", l.Name)
			}
			seen[l.Name] = true
		}
	})
}

// tinyRelease is a valid release small enough for fuzzing.
func tinyRelease(t testing.TB) map[string][]byte {
	files := map[string][]byte{
		"ovmf.fd":           []byte("firmware"),
		"bzImage":           []byte("kernel"),
		"initramfs.cpio.gz": []byte("initrd"),
		releaseRootfs:       make([]byte, 1000),
		MetadataFileName:    []byte(`{"bios":"ovmf.fd","kernel":"bzImage","initrd":"initramfs.cpio.gz","cmdline":"c","rootfs":"rootfs.img.parted.verity"}`),
	}
	setChecksums(files, []string{"ovmf.fd", "bzImage", "initramfs.cpio.gz", MetadataFileName})
	return files
}

func FuzzReadRelease(f *testing.F) {
	files := tinyRelease(f)
	plain := tarBytes(f, entriesFor(files, releaseOrder, releaseTop+"/"))
	f.Add(plain)
	f.Add(tarBytes(f, entriesFor(files, nil, "./")))
	f.Add(compress(f, plain, "gz"))
	f.Add(compress(f, plain, "zst"))
	f.Add(tarBytes(f, []tarEntry{{name: "a/../b", typ: tar.TypeReg, data: []byte("x")}, {name: "l", typ: tar.TypeSymlink, link: "/"}}))
	opts := Options{VerifyChecksums: true, MaxMemberBytes: 1 << 20, MaxTotalBytes: 4 << 20, MaxBufferBytes: 64 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := ReadRelease(bytes.NewReader(data), "fuzz", opts)
		if err != nil {
			return
		}
		if img.Firmware == nil || img.Kernel == nil {
			t.Fatal("image without firmware or kernel")
		}
		for _, fi := range img.Files {
			if clean, err := CleanName(fi.Name); err != nil || clean != fi.Name || strings.Contains(fi.Name, "/") {
				t.Fatalf("member name %q escaped the checks", fi.Name)
			}
		}
	})
}

func FuzzListInitramfs(f *testing.F) {
	raw := gunzip(f, readSample(f, sampleInitrd))
	f.Add(raw[:4096])
	f.Add(compress(f, raw[:8192], "gz"))
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out := ListInitramfs(bytes.NewReader(data))
		if out.Count != len(out.Entries) || out.Count > maxCpioEntries {
			t.Fatalf("count %d entries %d", out.Count, len(out.Entries))
		}
	})
}

func FuzzCmdlinePins(f *testing.F) {
	f.Add(`console=ttyS0 dstack.rootfs_hash=ab dstack.rootfs_size=10 "a b"`)
	f.Fuzz(func(t *testing.T, s string) {
		p, _ := ParseCmdlinePins(s)
		if p.RootfsSize != nil && *p.RootfsSize < 0 {
			t.Fatal("negative size")
		}
	})
}

// BenchmarkOpenRelease streams a synthetic release with a 300 MiB root filesystem
// (each MiB: 128 KiB of random bytes, the rest zeros, like a sparse disk image),
// generated here and never committed.
func BenchmarkOpenRelease(b *testing.B) {
	const rootfsSize = 300 << 20
	files := releaseFiles(b, 0)
	delete(files, releaseRootfs)
	dir := b.TempDir()
	for _, kind := range []string{"tar", "gz"} {
		path := filepath.Join(dir, "dstack-bench."+kind)
		writeBenchRelease(b, path, files, rootfsSize, kind == "gz")
		b.Run(kind, func(b *testing.B) {
			b.SetBytes(rootfsSize)
			for b.Loop() {
				if _, err := Open(path, Options{VerifyChecksums: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func writeBenchRelease(b *testing.B, path string, files map[string][]byte, rootfsSize int64, gz bool) {
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	var w io.Writer = bw
	var zw *kgzip.Writer
	if gz {
		zw, _ = kgzip.NewWriterLevel(bw, kgzip.BestSpeed)
		w = zw
	}
	tw := tar.NewWriter(w)
	add := func(name string, size int64, body func(io.Writer) error) {
		if err := tw.WriteHeader(&tar.Header{Name: releaseTop + "/" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
			b.Fatal(err)
		}
		if err := body(tw); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewSource(3))
	chunk := make([]byte, 1<<20)
	add(releaseRootfs, rootfsSize, func(w io.Writer) error {
		for left := rootfsSize; left > 0; left -= int64(len(chunk)) {
			clear(chunk)
			rng.Read(chunk[:128<<10])
			if _, err := w.Write(chunk[:min(left, int64(len(chunk)))]); err != nil {
				return err
			}
		}
		return nil
	})
	for _, name := range releaseOrder[1:] {
		if d, ok := files[name]; ok {
			add(name, int64(len(d)), func(w io.Writer) error { _, err := w.Write(d); return err })
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			b.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(fmt.Errorf("writing %s: %w", path, err))
	}
}
