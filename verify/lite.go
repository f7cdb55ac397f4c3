package verify

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/fxamacker/cbor/v2"

	"github.com/dstack-mr/dstack-mr/images"
	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/uefi"
)

// LiteFileName is the measurement document's file name inside an image and in sha256sum.txt.
const LiteFileName = images.MeasurementDocName

// LiteVersion is the oldest measurement.tdx.cbor schema version with a version key; 4 is the
// current one (dstack-types), which adds the plain command line and the normalized-kernel flag.
const (
	LiteVersion  = 3
	LiteVersion4 = 4
	// maxLiteCmdline bounds the command line a version 4 document carries.
	maxLiteCmdline = 2048
)

// maxLiteDocBytes bounds a measurement document; real ones are ~300 bytes.
const maxLiteDocBytes = 1 << 20

// OVMF RTMR0 layouts a lite document may name (dstack-types OvmfVariant).
const OVMFPre202505 = "pre202505"

// LiteMeasurement is measurement.tdx.cbor (dstack-types TdxOsImageMeasurement, CBOR form):
// the image-static inputs of MRTD and RTMR0-2, without the VM shape.
type LiteMeasurement struct {
	// Version is 3 or 4; 0 for the unversioned document of tdx_measurement schema 2, which
	// otherwise reads as version 3.
	Version uint32    `cbor:"version,omitempty" json:"version"`
	Image   LiteImage `cbor:"image" json:"image"`
	TDVF    LiteTDVF  `cbor:"tdvf" json:"tdvf"`
}

// LiteImage holds the RTMR1/RTMR2 inputs of the kernel, its command line and the initrd. Which
// keys are present depends on the schema: version 3 has cmdline_sha384; version 4 the plain
// cmdline (the release candidates: cmdline_sha384 and patched_kernel_authenticode).
type LiteImage struct {
	// Cmdline is the image's command line, without OVMF's " initrd=initrd" (version 4).
	Cmdline *string `cbor:"cmdline,omitempty" json:"cmdline,omitempty"`
	// CmdlineSHA384 is the RTMR2 LoadOptions event: the image cmdline plus " initrd=initrd",
	// UTF-16LE with a trailing NUL.
	CmdlineSHA384 Hex `cbor:"cmdline_sha384,omitempty" json:"cmdline_sha384,omitempty"`
	// KernelAuthenticode is the Authenticode SHA-384 of the kernel: as shipped when the header
	// is normalized or a patched digest is given beside it; otherwise as QEMU patches it for a
	// guest with at least 0xB0000000 bytes of RAM (the same bytes as for exactly 2 GiB).
	KernelAuthenticode Hex `cbor:"kernel_authenticode" json:"kernel_authenticode"`
	// PatchedKernelAuthenticode (0.6.0 release candidates) is the digest as QEMU patches the
	// kernel for RAM >= 0xB0000000, beside the unpatched one.
	PatchedKernelAuthenticode Hex `cbor:"patched_kernel_authenticode,omitempty" json:"patched_kernel_authenticode,omitempty"`
	// KernelHeaderNormalized: the shipped kernel carries the canonical setup header and the
	// firmware normalizes it before measuring, so the digest holds on every QEMU and memory size.
	KernelHeaderNormalized bool `cbor:"kernel_header_normalized,omitempty" json:"kernel_header_normalized,omitempty"`
	InitrdSHA384           Hex  `cbor:"initrd_sha384" json:"initrd_sha384"`
}

// LiteTDVF holds what the firmware contributes.
type LiteTDVF struct {
	OVMF string   `cbor:"ovmf" json:"ovmf"`
	MRTD LiteMRTD `cbor:"mrtd" json:"mrtd"`
	// TDHobWitness is the compact TdHobWitnessV1 from which the TD HOB is rebuilt for any
	// memory size (see tdHOBFromWitness).
	TDHobWitness Hex `cbor:"td_hob" json:"td_hob"`
}

// LiteMRTD are the two MRTD candidates: QEMU's single-pass and two-pass page-add orders.
type LiteMRTD struct {
	SinglePass Hex `cbor:"single_pass" json:"single_pass"`
	TwoPass    Hex `cbor:"two_pass" json:"two_pass"`
}

var liteDecMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  8,
		MaxArrayElements: 64,
		MaxMapPairs:      64,
		// Unknown keys are refused by name: a field this package does not read could change
		// what the document means.
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// DecodeLite decodes and validates measurement.tdx.cbor. Every error names the field.
func DecodeLite(data []byte) (*LiteMeasurement, error) {
	return decodeLite(data, false)
}

// decodeLite also accepts, when unversioned is set, the document of tdx_measurement schema 2
// (the first "measurement" captures): the version 3 fields without the version key.
func decodeLite(data []byte, unversioned bool) (*LiteMeasurement, error) {
	if len(data) > maxLiteDocBytes {
		return nil, fmt.Errorf("%s: %d bytes, over the %d-byte limit", LiteFileName, len(data), maxLiteDocBytes)
	}
	if err := checkLiteKeys(data); err != nil {
		return nil, err
	}
	var m LiteMeasurement
	if err := liteDecMode.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", LiteFileName, err)
	}
	if unversioned {
		if m.Version != 0 {
			return nil, fmt.Errorf("%s: a tdx_measurement version 2 document has no version key, this one says %d", LiteFileName, m.Version)
		}
		v3 := m
		v3.Version = LiteVersion
		if err := v3.Validate(); err != nil {
			return nil, err
		}
		return &m, nil
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// liteKeys are the keys each map of a measurement document may have.
var liteKeys = map[string]map[string]bool{
	"":          {"version": true, "image": true, "tdvf": true},
	"image":     {"cmdline": true, "cmdline_sha384": true, "kernel_authenticode": true, "patched_kernel_authenticode": true, "kernel_header_normalized": true, "initrd_sha384": true},
	"tdvf":      {"ovmf": true, "mrtd": true, "td_hob": true},
	"tdvf.mrtd": {"single_pass": true, "two_pass": true},
}

// checkLiteKeys refuses, by name, any key the schema does not define.
func checkLiteKeys(data []byte) error {
	var walk func(raw cbor.RawMessage, path string) error
	walk = func(raw cbor.RawMessage, path string) error {
		known, isMap := liteKeys[path]
		if !isMap {
			return nil
		}
		var m map[string]cbor.RawMessage
		if err := liteDecMode.Unmarshal(raw, &m); err != nil {
			where := path
			if where == "" {
				where = "document"
			}
			return fmt.Errorf("%s: %s: want a map with text keys: %w", LiteFileName, where, err)
		}
		for k, v := range m {
			name := k
			if path != "" {
				name = path + "." + k
			}
			if !known[k] {
				return fmt.Errorf("%s: unknown key %q", LiteFileName, name)
			}
			if err := walk(v, name); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(data, "")
}

// Validate checks the version, the variant and every digest length.
func (m *LiteMeasurement) Validate() error {
	if m.Version != LiteVersion && m.Version != LiteVersion4 {
		return fmt.Errorf("%s: version %d, want %d or %d", LiteFileName, m.Version, LiteVersion, LiteVersion4)
	}
	im := &m.Image
	switch {
	case im.Cmdline != nil && im.CmdlineSHA384 != nil:
		return fmt.Errorf("%s: image has both cmdline and cmdline_sha384", LiteFileName)
	case im.Cmdline == nil && im.CmdlineSHA384 == nil:
		return fmt.Errorf("%s: image has neither cmdline nor cmdline_sha384", LiteFileName)
	case im.Cmdline != nil && m.Version != LiteVersion4:
		return fmt.Errorf("%s: image.cmdline needs version 4", LiteFileName)
	case im.Cmdline != nil && len(*im.Cmdline) > maxLiteCmdline:
		return fmt.Errorf("%s: image.cmdline is %d bytes, at most %d", LiteFileName, len(*im.Cmdline), maxLiteCmdline)
	case im.PatchedKernelAuthenticode != nil && len(im.PatchedKernelAuthenticode) != sha512.Size384:
		return fmt.Errorf("%s: image.patched_kernel_authenticode is %d bytes, want %d", LiteFileName, len(im.PatchedKernelAuthenticode), sha512.Size384)
	case im.PatchedKernelAuthenticode != nil && im.KernelHeaderNormalized:
		return fmt.Errorf("%s: a normalized kernel has no patched digest (image.patched_kernel_authenticode)", LiteFileName)
	}
	if m.TDVF.OVMF != OVMFPre202505 {
		return fmt.Errorf("%s: tdvf.ovmf %q: only %q is defined", LiteFileName, m.TDVF.OVMF, OVMFPre202505)
	}
	for _, f := range []struct {
		name string
		v    []byte
	}{
		{"image.kernel_authenticode", m.Image.KernelAuthenticode},
		{"image.initrd_sha384", m.Image.InitrdSHA384},
		{"tdvf.mrtd.single_pass", m.TDVF.MRTD.SinglePass},
		{"tdvf.mrtd.two_pass", m.TDVF.MRTD.TwoPass},
	} {
		if len(f.v) != sha512.Size384 {
			return fmt.Errorf("%s: %s is %d bytes, want %d", LiteFileName, f.name, len(f.v), sha512.Size384)
		}
	}
	if im.CmdlineSHA384 != nil && len(im.CmdlineSHA384) != sha512.Size384 {
		return fmt.Errorf("%s: image.cmdline_sha384 is %d bytes, want %d", LiteFileName, len(im.CmdlineSHA384), sha512.Size384)
	}
	if _, err := parseWitness(m.TDVF.TDHobWitness); err != nil {
		return fmt.Errorf("%s: tdvf.td_hob: %w", LiteFileName, err)
	}
	return nil
}

// LiteDocument is vm_config.tdx_measurement. Current schema: the image's sha256sum.txt and the
// raw bytes of measurement.tdx.cbor (both base64 in JSON). Schema 2 (the first captures):
// {"version": 2, "os_image_hash": hex, "measurement": hex CBOR without a version key}.
type LiteDocument struct {
	ChecksumFile []byte `json:"checksum_file,omitempty"`
	Measurement  []byte `json:"measurement"`
	// Schema is 2 for the old form, 0 for the current one.
	Schema int `json:"schema,omitempty"`
	// OSImageHash is the schema 2 document's own os_image_hash.
	OSImageHash Hex `json:"os_image_hash,omitempty"`
}

// Decode decodes the document's measurement, in the form its schema uses.
func (d *LiteDocument) Decode() (*LiteMeasurement, error) {
	return decodeLite(d.Measurement, d.Schema == 2)
}

// Binding names how CheckBinding ties this document to an os_image_hash.
func (d *LiteDocument) Binding() string {
	if d.Schema == 2 {
		return "tdx_measurement version 2: os_image_hash = SHA-256(measurement CBOR), as every capture of that era has it"
	}
	return "os_image_hash = SHA-256(sha256sum.txt), which lists SHA-256(measurement.tdx.cbor)"
}

// CheckBinding verifies the document belongs to the OS image osImageHash names: the image
// hash is SHA-256(sha256sum.txt), and sha256sum.txt lists SHA-256(measurement.tdx.cbor); for
// schema 2, the image hash is SHA-256 of the CBOR document itself and the document says so.
func (d *LiteDocument) CheckBinding(osImageHash []byte) error {
	if d.Schema == 2 {
		sum := sha256.Sum256(d.Measurement)
		if !bytes.Equal(sum[:], osImageHash) {
			return fmt.Errorf("os_image_hash %x is not SHA-256(measurement) = %x", osImageHash, sum)
		}
		if !bytes.Equal(d.OSImageHash, osImageHash) {
			return fmt.Errorf("tdx_measurement.os_image_hash %x differs from %x", []byte(d.OSImageHash), osImageHash)
		}
		return nil
	}
	sum := sha256.Sum256(d.ChecksumFile)
	if !bytes.Equal(sum[:], osImageHash) {
		return fmt.Errorf("os_image_hash %x is not SHA-256(sha256sum.txt) = %x", osImageHash, sum)
	}
	listed, err := checksumEntry(d.ChecksumFile, LiteFileName)
	if err != nil {
		return err
	}
	got := sha256.Sum256(d.Measurement)
	if !bytes.Equal(listed, got[:]) {
		return fmt.Errorf("sha256sum.txt lists %s as %x, the document's is %x", LiteFileName, listed, got)
	}
	return nil
}

// checksumEntry finds the one "<sha256>  <name>" line for name in a sha256sum.txt.
func checksumEntry(file []byte, name string) ([]byte, error) {
	var found []byte
	for i, line := range strings.Split(string(file), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 2 {
			return nil, fmt.Errorf("sha256sum.txt line %d: no file name", i+1)
		}
		if strings.TrimPrefix(fields[1], "*") != name {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("sha256sum.txt lists %s twice", name)
		}
		h, err := hex.DecodeString(fields[0])
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("sha256sum.txt line %d: %q is not a SHA-256", i+1, fields[0])
		}
		found = h
	}
	if found == nil {
		return nil, fmt.Errorf("sha256sum.txt does not list %s", name)
	}
	return found, nil
}

// Memory sizes for which QEMU patches the kernel setup header to the bytes whose
// Authenticode digest the document carries (dstack-mr kernel.rs): exactly 2 GiB, or at least
// the q35 low-memory split. Below, the patched header depends on the exact size.
const (
	liteMemory2G        = 0x80000000
	liteMemoryStableMin = 0xB0000000
)

// LiteSupportsMemory reports whether a patched kernel digest holds for memoryBytes.
func LiteSupportsMemory(memoryBytes uint64) bool {
	return memoryBytes == liteMemory2G || memoryBytes >= liteMemoryStableMin
}

// CmdlineDigest is the RTMR2 LoadOptions digest the document predicts: given, or computed from
// the plain command line the way the pre-202505 firmware lays it out (" initrd=initrd" appended,
// UTF-16LE, NUL-terminated).
func (m *LiteMeasurement) CmdlineDigest() []byte {
	if m.Image.Cmdline == nil {
		return m.Image.CmdlineSHA384
	}
	return liteCmdlineDigest(*m.Image.Cmdline)
}

// liteCmdlineDigest lays cmdline out as the pre-202505 firmware hands it to the kernel.
func liteCmdlineDigest(cmdline string) []byte {
	d := sha512.Sum384(mr.LoadOptions(cmdline, true, uefi.InitrdSuffix))
	return d[:]
}

// KernelCandidate is one digest the kernel event may carry, and when.
type KernelCandidate struct {
	Digest Hex    `json:"digest"`
	Form   string `json:"form"` // "normalized", "patched" or "unpatched"
}

// KernelCandidates lists the kernel digests the document allows for memoryBytes: the shipped
// digest of a normalized kernel (any size); the patched digest (only at exactly 2 GiB or from
// 0xB0000000, where QEMU's patch does not depend on the size); the unpatched digest when the
// document carries one beside the patched (QEMU >= 10.2, or firmware that reads etc/boot/kernel).
func (m *LiteMeasurement) KernelCandidates(memoryBytes uint64) []KernelCandidate {
	im := m.Image
	switch {
	case im.KernelHeaderNormalized:
		return []KernelCandidate{{im.KernelAuthenticode, "normalized"}}
	case im.PatchedKernelAuthenticode != nil:
		out := []KernelCandidate{{im.KernelAuthenticode, "unpatched"}}
		if LiteSupportsMemory(memoryBytes) {
			out = append(out, KernelCandidate{im.PatchedKernelAuthenticode, "patched"})
		}
		return out
	case LiteSupportsMemory(memoryBytes):
		return []KernelCandidate{{im.KernelAuthenticode, "patched"}}
	}
	return nil
}

// witness is a decoded TdHobWitnessV1: varuints base_page, td_hob_page_delta, range_count,
// then range_count (start_page_delta, page_count) pairs of memory QEMU accepted at build time.
type witness struct {
	hobBase uint64
	ranges  [][2]uint64 // [start, end)
}

func parseWitness(b []byte) (*witness, error) {
	r := bytes.NewReader(b)
	next := func(what string) (uint64, error) {
		v, err := binary.ReadUvarint(r)
		if err != nil {
			return 0, fmt.Errorf("witness %s: %w", what, err)
		}
		return v, nil
	}
	base, err := next("base page")
	if err != nil {
		return nil, err
	}
	hobDelta, err := next("TD HOB page delta")
	if err != nil {
		return nil, err
	}
	n, err := next("range count")
	if err != nil {
		return nil, err
	}
	if n > uint64(len(b)) {
		return nil, fmt.Errorf("witness range count %d exceeds its %d bytes", n, len(b))
	}
	const maxPage = 1 << 40 // 4 PiB: far beyond any guest, keeps page*4096 in range
	page := func(p, delta uint64, what string) (uint64, error) {
		if p > maxPage || delta > maxPage {
			return 0, fmt.Errorf("witness %s page out of range", what)
		}
		return (p + delta) * 4096, nil
	}
	w := &witness{}
	if w.hobBase, err = page(base, hobDelta, "TD HOB"); err != nil {
		return nil, err
	}
	for i := uint64(0); i < n; i++ {
		d, err := next(fmt.Sprintf("range %d start", i))
		if err != nil {
			return nil, err
		}
		c, err := next(fmt.Sprintf("range %d page count", i))
		if err != nil {
			return nil, err
		}
		start, err := page(base, d, fmt.Sprintf("range %d", i))
		if err != nil {
			return nil, err
		}
		if c == 0 || c > maxPage {
			return nil, fmt.Errorf("witness range %d: %d pages", i, c)
		}
		w.ranges = append(w.ranges, [2]uint64{start, start + c*4096})
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("witness has %d trailing bytes", r.Len())
	}
	return w, nil
}

// tdHOBFromWitness rebuilds the TD HOB QEMU hands TDVF for a guest of memoryBytes from the
// witness, with package mr's builder: the q35 RAM layout, the witness ranges accepted as
// QEMU accepted the TD_HOB/TEMP_MEM sections, and the HOB list at the witness's TD HOB base.
func tdHOBFromWitness(witnessBytes []byte, memoryBytes uint64) ([]byte, error) {
	w, err := parseWitness(witnessBytes)
	if err != nil {
		return nil, err
	}
	entries := mr.RAMLayout(memoryBytes)
	for _, a := range w.ranges {
		if a[1] > memoryBytes {
			return nil, fmt.Errorf("witness range 0x%x-0x%x lies beyond the %d bytes of RAM", a[0], a[1], memoryBytes)
		}
		if entries, err = mr.AcceptRAM(entries, a[0], a[1]-a[0]); err != nil {
			return nil, fmt.Errorf("witness range 0x%x-0x%x: %w", a[0], a[1], err)
		}
	}
	if entries[len(entries)-1].Accepted {
		return nil, errors.New("witness accepts the end of RAM")
	}
	return mr.BuildTDHOB(w.hobBase, entries), nil
}
