package uefi

import (
	"bytes"
	"testing"
)

// TestBootManagerMenuQuickMatchesFullParse: decoding a prefix of the DXE volume gives the
// load option the full parse gives, for both real firmware images.
func TestBootManagerMenuQuickMatchesFullParse(t *testing.T) {
	for _, ri := range realImages {
		t.Run(ri.name, func(t *testing.T) {
			img := loadImage(t, ri.path)
			full, err := BootManagerMenu(img)
			if err != nil {
				t.Fatal(err)
			}
			quick, err := BootManagerMenuQuick(img)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(full.Data, quick.Data) || full.FoundBy != quick.FoundBy || full.VolumeName != quick.VolumeName {
				t.Fatalf("quick %+v, full %+v", quick, full)
			}
		})
	}
}

func BenchmarkBootManagerMenuQuick(b *testing.B) {
	img := loadImage(b, realImages[0].path)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := BootManagerMenuQuick(img); err != nil {
			b.Fatal(err)
		}
	}
}
