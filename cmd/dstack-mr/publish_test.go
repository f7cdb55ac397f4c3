package main

import (
	"os"
	"path/filepath"
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
