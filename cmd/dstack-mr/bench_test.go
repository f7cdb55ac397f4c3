package main

import (
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkMeasure100MiBInitrd is a whole cold `measure` run in raw mode: read and parse the
// firmware, derive its events, hash a 100 MiB initrd, patch and hash the kernel, build the
// ACPI tables. Compare with `sha384sum` on the same three files.
func BenchmarkMeasure100MiBInitrd(b *testing.B) {
	initrd := filepath.Join(b.TempDir(), "initrd")
	f, err := os.Create(initrd)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.New(rand.NewSource(1)), 100<<20); err != nil {
		b.Fatal(err)
	}
	f.Close()
	args := []string{"measure", "--firmware", filepath.Join(sampleDir, "ovmf-debian-2025.02-8+deb13u1.fd"),
		"--kernel", filepath.Join(sampleDir, "bzImage-6.1.0-56-amd64"), "--initrd", initrd, "--cmdline", "console=ttyS0"}
	b.SetBytes(100 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if code, _, stderr := runCLI(args...); code != 0 {
			b.Fatal(stderr)
		}
	}
}
