package verify

import (
	"encoding/hex"
	"fmt"

	"github.com/dstack-mr/dstack-mr/images"
	"github.com/dstack-mr/dstack-mr/mr"
)

// UseImage selects full mode with an image opened by package images (metadata.json,
// directory or release tarball), and, when the image has a sha256sum.txt, checks
// vm_config.os_image_hash against its os_image_hash.
func (o *Options) UseImage(img *images.Image) error {
	in := mr.InputsFromImage(img)
	o.Image = &in
	o.ImageOSImageHash = nil
	o.ImageName = ExpectedImage{Source: img.Source, Version: img.Metadata.Version}
	if img.OSImageHash != "" {
		h, err := hex.DecodeString(img.OSImageHash)
		if err != nil {
			return fmt.Errorf("image %s: os_image_hash %q: %w", img.Source, img.OSImageHash, err)
		}
		o.ImageOSImageHash = h
	}
	return nil
}
