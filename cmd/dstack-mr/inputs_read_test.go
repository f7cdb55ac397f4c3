package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readOpened reads into one buffer of the stat size, and still reads a file that grew after
// stat whole, or refuses it past the limit; one that shrank is read as it is.
func TestReadOpenedSizeChanges(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		size, limit int64
		want        []byte
		err         string
	}{
		{"as stat said", int64(len(data)), 1 << 20, data, ""},
		{"grew after stat", 100, 1 << 20, data, ""},
		{"grew past the limit", 100, 1000, nil, "grew past the 0 MiB limit"},
		{"empty at stat", 0, 1 << 20, data, ""},
		{"shrank after stat", int64(len(data)) + 10, 1 << 20, data, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := readOpened("kernel", path, f, tc.size, tc.limit)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--kernel "+path) {
					t.Fatalf("error %v, want one naming --kernel %s and %q", err, path, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("read %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
}
