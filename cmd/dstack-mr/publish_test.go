package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Published artefacts get the permissions the user's umask gives any new file (0644 under the
// usual 022), not os.CreateTemp's 0600, and no temporary file is left beside them.
func TestPublishedFilesAreReadable(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	doc := filepath.Join(dir, "measurement.tdx.cbor")
	acpiDir := filepath.Join(dir, "acpi")
	for _, args := range [][]string{
		{"image", "measurement", "../../testdata/sample-image", "--out", doc},
		{"acpi", "--out", acpiDir},
	} {
		if code, _, stderr := runCLI(args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
	}
	for _, p := range []string{doc, filepath.Join(acpiDir, "tables.bin"), filepath.Join(acpiDir, "rsdp.bin"), filepath.Join(acpiDir, "loader.bin")} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", p, st.Mode().Perm())
		}
	}
	for _, d := range []string{dir, acpiDir} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.Name()[0] == '.' {
				t.Errorf("temporary file left behind: %s", filepath.Join(d, e.Name()))
			}
		}
	}
}

// An image directory as a release engineer leaves it: a measurement document sha256sum.txt
// does not list is named by image inspect (role measurement) and refused by measure; a stale
// digest.txt is reported by image inspect, which exits 0, with how to regenerate it.
func TestImageDirectoryPublishingMistakes(t *testing.T) {
	all := []string{"metadata.json", "sha256sum.txt", "digest.txt", "ovmf-debian-2025.02-8+deb13u1.fd", "bzImage-6.1.0-56-amd64", "initrd-small.cpio.gz"}
	dir := copySample(t, nil, all...)
	if code, _, stderr := runCLI("image", "measurement", dir, "--out", filepath.Join(dir, "measurement.tdx.cbor")); code != 0 {
		t.Fatalf("image measurement: %s", stderr)
	}
	code, stdout, stderr := runCLI("image", "inspect", dir)
	if code != 0 || !strings.Contains(stdout, "measurement.tdx.cbor") || !strings.Contains(stdout, " measurement ") ||
		!strings.Contains(stdout, "not listed in sha256sum.txt") {
		t.Errorf("inspect with an unlisted document: exit %d, stdout %s, stderr %s", code, stdout, stderr)
	}
	if strings.Contains(stderr, "no-verify-checksums") {
		t.Errorf("inspect warns about a flag nobody gave: %s", stderr)
	}
	if code, stdout, stderr := runCLI("measure", dir); code != 1 || stdout != "" || !strings.Contains(stderr, "does not list it") {
		t.Errorf("measure with an unlisted document: exit %d, stderr %s", code, stderr)
	}

	stale := copySample(t, func(name string, b []byte) []byte {
		if name == "digest.txt" {
			return []byte(strings.Repeat("0", 64) + "\n")
		}
		return b
	}, all...)
	code, stdout, stderr = runCLI("image", "inspect", stale)
	if code != 0 || !strings.Contains(stdout, "checksums: mismatch") || !strings.Contains(stdout, "regenerate digest.txt") {
		t.Errorf("inspect with a stale digest.txt: exit %d, stdout %s, stderr %s", code, stdout, stderr)
	}
	if code, _, stderr := runCLI("measure", stale); code != 1 || !strings.Contains(stderr, "regenerate digest.txt") {
		t.Errorf("measure with a stale digest.txt: exit %d, stderr %s", code, stderr)
	}
}
