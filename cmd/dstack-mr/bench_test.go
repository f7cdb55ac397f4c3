package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// randomFile writes size bytes of seeded random data (incompressible, like a real initrd's
// compressed cpio) to path.
func randomFile(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.New(rand.NewSource(1)), size); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMeasure100MiBInitrd is a whole cold `measure` run in raw mode: read and parse the
// firmware, derive its events, hash a 100 MiB initrd, patch and hash the kernel, build the
// ACPI tables. Compare with `sha384sum` on the same three files
// (scripts/speed-vs-sha384sum.sh does, as whole processes).
func BenchmarkMeasure100MiBInitrd(b *testing.B) {
	initrd := filepath.Join(b.TempDir(), "initrd")
	randomFile(b, initrd, 100<<20)
	args := []string{"measure", "--json", "--firmware", filepath.Join(sampleDir, "ovmf-debian-2025.02-8+deb13u1.fd"),
		"--kernel", filepath.Join(sampleDir, "bzImage-6.1.0-56-amd64"), "--initrd", initrd, "--cmdline", "console=ttyS0",
		"--cpu", "8", "--memory", "16G"}
	b.SetBytes(100 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if code, _, stderr := runCLI(args...); code != 0 {
			b.Fatal(stderr)
		}
	}
}

// BenchmarkMeasureImageDir100MiBInitrd is the same measurement from an image directory
// whose sha256sum.txt is verified: every file's SHA-256 is computed too.
func BenchmarkMeasureImageDir100MiBInitrd(b *testing.B) {
	dir := b.TempDir()
	var sums strings.Builder
	for _, name := range []string{"ovmf-debian-2025.02-8+deb13u1.fd", "bzImage-6.1.0-56-amd64", "metadata.json", "initrd-small.cpio.gz"} {
		path := filepath.Join(dir, name)
		if name == "initrd-small.cpio.gz" {
			randomFile(b, path, 100<<20)
		} else {
			data, err := os.ReadFile(filepath.Join(sampleDir, name))
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(sum[:]), name)
	}
	if err := os.WriteFile(filepath.Join(dir, "sha256sum.txt"), []byte(sums.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	args := []string{"measure", "--json", dir, "--cpu", "8", "--memory", "16G"}
	b.SetBytes(100 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		code, stdout, stderr := runCLI(args...)
		if code != 0 {
			b.Fatal(stderr)
		}
		if !strings.Contains(stdout, `"checksums_verified": true`) {
			b.Fatal("checksums not verified")
		}
	}
}
