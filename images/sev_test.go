package images

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// sevRelease is a unified release: the small release plus bios-sev and measurement.snp.cbor.
func sevRelease(t *testing.T, listSEV bool) map[string][]byte {
	files := smallRelease(t)
	files["ovmf-sev.fd"] = bytes.Repeat([]byte("SEV!"), 4096)
	files["measurement.snp.cbor"] = []byte{0xa0}
	files[MetadataFileName] = bytes.Replace(files[MetadataFileName], []byte(`"bios": "ovmf.fd",`), []byte(`"bios": "ovmf.fd", "bios-sev": "ovmf-sev.fd",`), 1)
	listed := []string{"ovmf.fd", "bzImage", "initramfs.cpio.gz", MetadataFileName, "measurement.tdx.cbor", "measurement.snp.cbor"}
	if listSEV {
		listed = append(listed, "ovmf-sev.fd")
	}
	setChecksums(files, listed)
	return files
}

// With SEV set the SEV firmware is read (from a directory and from a tarball) and must be listed
// in sha256sum.txt; without it it is neither kept nor required, as before.
func TestSEVFirmware(t *testing.T) {
	order := append(append([]string{}, releaseOrder...), "ovmf-sev.fd", "measurement.snp.cbor")
	for _, form := range []string{"dir", "tar.gz"} {
		t.Run(form, func(t *testing.T) {
			for _, c := range []struct {
				listed, sev bool
				want        string // error substring; "" for success
			}{
				{true, true, ""},
				{false, true, "does not list ovmf-sev.fd"},
				{false, false, ""},
			} {
				files := sevRelease(t, c.listed)
				path := writeDir(t, filepath.Join(t.TempDir(), "img"), files)
				if form != "dir" {
					path = writeRelease(t, filepath.Join(t.TempDir(), "r.tar.gz"), files, order, releaseTop+"/", "gz")
				}
				img, err := Open(path, Options{VerifyChecksums: true, RequireChecksums: true, SEV: c.sev})
				switch {
				case c.want != "":
					if err == nil || !strings.Contains(err.Error(), c.want) {
						t.Errorf("listed %v, sev %v: error %v, want %q", c.listed, c.sev, err, c.want)
					}
				case err != nil:
					t.Errorf("listed %v, sev %v: %v", c.listed, c.sev, err)
				case c.sev && !bytes.Equal(img.FirmwareSEV, files["ovmf-sev.fd"]):
					t.Errorf("FirmwareSEV not read")
				case !c.sev && img.FirmwareSEV != nil:
					t.Errorf("FirmwareSEV kept without SEV")
				}
			}
		})
	}
	// An unlisted measurement.snp.cbor in a release is refused like an unlisted
	// measurement.tdx.cbor (a directory only looks at the files it is told about).
	files := sevRelease(t, true)
	setChecksums(files, []string{"ovmf.fd", "bzImage", "initramfs.cpio.gz", MetadataFileName, "measurement.tdx.cbor", "ovmf-sev.fd"})
	rel := writeRelease(t, filepath.Join(t.TempDir(), "r.tar.gz"), files, order, releaseTop+"/", "gz")
	if _, err := Open(rel, Options{VerifyChecksums: true, RequireChecksums: true}); err == nil || !strings.Contains(err.Error(), "measurement.snp.cbor") {
		t.Errorf("unlisted measurement.snp.cbor: %v", err)
	}
}
