package verify

import (
	"encoding/hex"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/uefi"
)

// liteEncMode writes measurement.tdx.cbor the way upstream's dstack-types does (ciborium over
// serde): a map per struct with the keys in declaration order, definite lengths, the shortest
// integer and length forms, optional keys omitted. os_image_hash covers these exact bytes.
var liteEncMode = func() cbor.EncMode {
	m, err := cbor.EncOptions{
		Sort:          cbor.SortNone,
		IndefLength:   cbor.IndefLengthForbidden,
		ShortestFloat: cbor.ShortestFloat16,
	}.EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// EncodeLite validates m and returns its canonical encoding.
func EncodeLite(m *LiteMeasurement) ([]byte, error) {
	check := *m
	if check.Version == 0 {
		check.Version = LiteVersion // the unversioned schema 2 form carries version 3's fields
	}
	if err := check.Validate(); err != nil {
		return nil, err
	}
	b, err := liteEncMode.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", LiteFileName, err)
	}
	return b, nil
}

// LiteFromImage builds the measurement document of an image in the given schema version (3 or
// 4). The firmware must be of the generation the document's RTMR0 model names (pre202505):
// CC-measuring, without Secure Boot support or fw_cfg measurement, suffix load options.
func LiteFromImage(im *mr.Image, version uint32) (*LiteMeasurement, error) {
	if version != LiteVersion && version != LiteVersion4 {
		return nil, fmt.Errorf("%s: format version %d: want %d or %d", LiteFileName, version, LiteVersion, LiteVersion4)
	}
	tr, err := im.Firmware.Traits()
	if err != nil {
		return nil, fmt.Errorf("%s: firmware: %w", LiteFileName, err)
	}
	if !tr.CCMeasurement || tr.SecureBootCapable || tr.FwCfgMeasurement || tr.LoadOptions != uefi.InitrdSuffix {
		return nil, fmt.Errorf("%s: the firmware is not of the %q generation a lite document describes (CC measurement %v, Secure Boot support %v, fw_cfg measurement %v, load options %v): %w",
			LiteFileName, OVMFPre202505, tr.CCMeasurement, tr.SecureBootCapable, tr.FwCfgMeasurement, tr.LoadOptions, ErrNotSupported)
	}
	// The document carries no CFV or boot option: a verifier uses the pre-202505 generation's
	// (dstack's OVMF; Debian 13's has the same). Another firmware's would be predicted wrongly.
	fwEvents, err := im.Firmware.FirmwareEvents()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", LiteFileName, err)
	}
	for _, e := range fwEvents {
		want := map[string][]byte{eventlog.LabelCFV: pre202505CFV, eventlog.LabelBoot0000: pre202505Boot0000}[e.Label]
		if want != nil && e.Digest != hex.EncodeToString(want) {
			return nil, fmt.Errorf("%s: the firmware's %s digest %s is not the %q generation's %x, which a verifier of the document assumes: %w",
				LiteFileName, e.Label, e.Digest, OVMFPre202505, want, ErrNotSupported)
		}
	}
	if im.Initrd == nil {
		return nil, fmt.Errorf("%s: the image has no initrd; the document requires initrd_sha384", LiteFileName)
	}
	if version == LiteVersion && im.KernelHeaderNormalized {
		return nil, fmt.Errorf("%s: a normalized kernel needs format version 4 (version 3 has no kernel_header_normalized)", LiteFileName)
	}
	w, err := im.Firmware.TDHobWitness()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", LiteFileName, err)
	}
	kernel, err := im.LiteKernelDigest()
	if err != nil {
		return nil, fmt.Errorf("%s: kernel: %w", LiteFileName, err)
	}
	m := &LiteMeasurement{
		Version: version,
		Image: LiteImage{
			KernelAuthenticode:     kernel,
			KernelHeaderNormalized: im.KernelHeaderNormalized,
			InitrdSHA384:           im.Initrd.SHA384,
		},
		TDVF: LiteTDVF{
			OVMF:         OVMFPre202505,
			MRTD:         LiteMRTD{SinglePass: im.Firmware.MRTD(false), TwoPass: im.Firmware.MRTD(true)},
			TDHobWitness: w,
		},
	}
	if version == LiteVersion4 {
		cmdline := im.Cmdline
		m.Image.Cmdline = &cmdline
	} else {
		m.Image.CmdlineSHA384 = liteCmdlineDigest(im.Cmdline)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}
