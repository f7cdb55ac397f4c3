package verify

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/dstack-mr/dstack-mr/images"
	"github.com/dstack-mr/dstack-mr/mr"
)

// TestPreparedImageAndResolver: an image prepared once and shared (PreparedImage), or supplied
// by ResolveImage for the hash the attestation names, gives the report the image given directly
// gives; the resolver is asked with that hash.
func TestPreparedImageAndResolver(t *testing.T) {
	img, err := images.Open("../testdata/sample-image/metadata.json", images.Options{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := loadFixture(t, fullFixture)
	at := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	direct := Options{Attestation: raw, QuoteTime: at}
	if err := direct.UseImage(img); err != nil {
		t.Fatal(err)
	}
	want := mustVerify(t, direct)

	prepared, err := mr.Prepare(*direct.Image)
	if err != nil {
		t.Fatal(err)
	}
	shared := direct
	shared.PreparedImage = prepared
	for i := 0; i < 2; i++ { // the shared image is not changed by a verification
		if got := mustVerify(t, shared); !reflect.DeepEqual(got, want) {
			t.Fatalf("with PreparedImage the report differs")
		}
	}

	var asked []byte
	resolved := Options{Attestation: raw, QuoteTime: at, ResolveImage: func(h []byte, o *Options) error {
		asked = h
		o.Image, o.PreparedImage, o.ImageOSImageHash, o.ImageName = direct.Image, prepared, direct.ImageOSImageHash, direct.ImageName
		return nil
	}}
	got := mustVerify(t, resolved)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("with ResolveImage the report differs")
	}
	named := want.App.VMConfigOSImageHash
	if want.RTMR3 != nil && want.RTMR3.OSImageHash != nil {
		named = want.RTMR3.OSImageHash
	}
	if !bytes.Equal(asked, named) {
		t.Errorf("resolver asked for %x, the attestation names %x", asked, named)
	}
}
