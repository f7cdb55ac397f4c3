package pe

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

const sampleDir = "../testdata/sample-image"

var (
	kernelOnce sync.Once
	kernelData []byte
	kernelErr  error
)

// sampleKernel is the real Debian bzImage every vector was computed for.
func sampleKernel(tb testing.TB) []byte {
	tb.Helper()
	kernelOnce.Do(func() {
		kernelData, kernelErr = os.ReadFile(filepath.Join(sampleDir, "bzImage-6.1.0-56-amd64"))
	})
	if kernelErr != nil {
		tb.Fatal(kernelErr)
	}
	return kernelData
}

type vectorRow = testvectors.Vector

func loadVectors(t *testing.T) []vectorRow {
	t.Helper()
	rows, err := testvectors.Load("../testdata/vectors/expected-kv.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// rtmr1 replays the five RTMR1 events OVMF logs for a direct kernel boot.
func rtmr1(kernelDigest []byte) []byte {
	events := [][]byte{kernelDigest}
	for _, e := range [][]byte{
		[]byte("Calling EFI Application from Boot Option"),
		{0, 0, 0, 0}, // separator
		[]byte("Exit Boot Services Invocation"),
		[]byte("Exit Boot Services Returned with Success"),
	} {
		d := sha512.Sum384(e)
		events = append(events, d[:])
	}
	mr := make([]byte, sha512.Size384)
	for _, d := range events {
		s := sha512.Sum384(append(mr, d...))
		mr = s[:]
	}
	return mr
}

// TestRTMR1Vectors checks every end-to-end vector's RTMR1, which depends on
// this package alone: the patched kernel's Authenticode digest.
func TestRTMR1Vectors(t *testing.T) {
	rows := loadVectors(t)
	if len(rows) != 176 {
		t.Fatalf("expected-kv.jsonl has %d rows, want 176", len(rows))
	}
	kernel := sampleKernel(t)
	sizes := map[string]uint64{}
	digests := map[BootParams][]byte{} // many rows share a memory size
	for _, r := range rows {
		t.Run(fmt.Sprintf("line%03d_%dMiB", r.Line, r.MemoryBytes>>20), func(t *testing.T) {
			if r.Kernel != "bzImage-6.1.0-56-amd64" {
				t.Fatalf("vector uses kernel %q, only the sample kernel is in testdata", r.Kernel)
			}
			size, ok := sizes[r.Initrd]
			if !ok {
				st, err := os.Stat(filepath.Join(sampleDir, r.Initrd))
				if err != nil {
					t.Fatal(err)
				}
				size = uint64(st.Size())
				sizes[r.Initrd] = size
			}
			p := BootParams{
				MemoryBytes:  r.MemoryBytes,
				ACPIDataSize: 0x28000,
				Cmdline:      r.Cmdline,
				HasInitrd:    true,
				InitrdSize:   size,
			}
			d, ok := digests[p]
			if !ok {
				patched, err := PatchSetupHeader(kernel, p)
				if err != nil {
					t.Fatal(err)
				}
				if d, err = AuthenticodeSHA384(patched); err != nil {
					t.Fatal(err)
				}
				digests[p] = d
			}
			if got := hex.EncodeToString(rtmr1(d)); got != r.RTMR1 {
				t.Errorf("rtmr1 = %s, want %s", got, r.RTMR1)
			}
		})
	}
	// The vectors span memory sizes on both sides of every branch of QEMU's
	// initrd placement; fewer distinct digests would mean a branch is dead.
	if len(digests) < 4 {
		t.Errorf("only %d distinct kernel digests across the vectors", len(digests))
	}
}
