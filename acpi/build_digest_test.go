package acpi

import (
	"bytes"
	"crypto/sha512"
	"testing"
)

// The memoized digests are those of the blobs, for built and hand-made Blobs alike, and a
// caller changing what it was given does not change the next answer.
func TestBlobsSHA384(t *testing.T) {
	b, err := Build(MachineConfig{CPUs: 1, MemoryBytes: 2 << 30, QEMUVersion: Version{Major: 9, Minor: 1}, NumNICs: 1, RootVerity: true, HostShareMode: HostShare9p})
	if err != nil {
		t.Fatal(err)
	}
	for _, blobs := range []*Blobs{b, {Tables: b.Tables, RSDP: b.RSDP, Loader: b.Loader}} {
		d := blobs.SHA384()
		for _, c := range []struct{ got, data []byte }{{d.Tables, blobs.Tables}, {d.RSDP, blobs.RSDP}, {d.Loader, blobs.Loader}} {
			if want := sha512.Sum384(c.data); !bytes.Equal(c.got, want[:]) {
				t.Errorf("digest %x, want %x", c.got, want)
			}
		}
		d.Tables[0] ^= 1
		if again := blobs.SHA384(); bytes.Equal(again.Tables, d.Tables) {
			t.Error("a caller's change reached the memo")
		}
	}
}
