package images

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Image is what the measurement needs from an OS image, plus what an auditor wants to
// see about it.
type Image struct {
	Source   string   // the path the user gave
	Metadata Metadata // the image's metadata.json (synthesised by OpenRaw)
	Firmware []byte   // whole OVMF/TDVF image
	// FirmwareSEV is the whole bios-sev image (AmdSev OVMF), nil when metadata.json names none
	// or the file is absent.
	FirmwareSEV []byte
	Kernel      []byte // whole bzImage
	// Initrd is nil when the image has no initrd. Only its digests are kept: TDVF
	// measures the initrd as one blob.
	Initrd  *StreamDigest
	Cmdline string
	// Files lists every file of the image that was looked at, sorted by name. In a
	// tarball that is every member; in a directory, the files metadata.json names,
	// metadata.json, the checksum files and every file sha256sum.txt lists.
	Files []FileInfo
	// OSImageHash is the hex SHA-256 of sha256sum.txt (equal to digest.txt), the
	// os_image_hash dstack CVMs log; empty when the image has no sha256sum.txt.
	OSImageHash string
	Checksums   ChecksumReport

	initrdData []byte                        // kept when small, for Inspect
	openInitrd func() (io.ReadCloser, error) // re-reads the initrd from disk, for Inspect
}

// StreamDigest describes a file that was hashed while streaming and not kept.
type StreamDigest struct {
	Size   uint64
	SHA384 []byte
	SHA256 []byte
}

// Role says what a file is for.
type Role string

const (
	RoleFirmware Role = "firmware"
	// RoleFirmwareSEV is the AMD SEV firmware (bios-sev) unified images carry beside the TDX one.
	RoleFirmwareSEV Role = "firmware-sev"
	RoleKernel      Role = "kernel"
	RoleInitrd      Role = "initrd"
	RoleRootfs      Role = "rootfs"
	RoleMetadata    Role = "metadata"
	RoleChecksums   Role = "checksums"
	// RoleMeasurement is a measurement document (measurement.tdx.cbor, measurement.snp.cbor)
	// verifiers are given.
	RoleMeasurement Role = "measurement"
	RoleOther       Role = "other"
)

// FileInfo describes one file of the image.
type FileInfo struct {
	Name string `json:"name"` // relative to the image folder
	Size int64  `json:"size"`
	// SHA256 is hex; empty for files that were not read (a directory's root
	// filesystem that sha256sum.txt does not list).
	SHA256 string `json:"sha256,omitempty"`
	Role   Role   `json:"role"`
}

// Options bounds and directs Open. The zero value is usable: zero limits take the
// defaults below, and checksums are NOT verified (the CLI sets VerifyChecksums).
type Options struct {
	// VerifyChecksums makes a file whose SHA-256 differs from sha256sum.txt, or a
	// digest.txt that is not the SHA-256 of sha256sum.txt, an error. When false the
	// mismatches are only reported in Image.Checksums (status "skipped").
	VerifyChecksums bool
	// RequireChecksums refuses an image without sha256sum.txt, or whose sha256sum.txt does not
	// list every file a measurement depends on: firmware, kernel, initrd, metadata.json and, when
	// the image has one, measurement.tdx.cbor. Published values must be tied to os_image_hash.
	RequireChecksums bool
	// ChecksumsReportOnly checks sha256sum.txt and digest.txt fully and reports the status
	// ("ok" or "mismatch", with the problems) without failing: inspecting an image says what
	// its checksums say. VerifyChecksums and RequireChecksums must then be false.
	ChecksumsReportOnly bool
	// SEV says the caller measures the SEV-SNP launch: with RequireChecksums, sha256sum.txt
	// must also list bios-sev, and metadata.json must name one that is present.
	SEV bool
	// ExtractDir, when set, receives every member of a release tarball (without its
	// top-level folder). It must not exist or be empty; nothing is left there if Open
	// fails.
	ExtractDir string
	// MaxMemberBytes bounds the decompressed size of any one tarball member or file
	// (default DefaultMaxMemberBytes).
	MaxMemberBytes int64
	// MaxTotalBytes bounds the decompressed size of a whole tarball (default
	// DefaultMaxTotalBytes).
	MaxTotalBytes int64
	// MaxBufferBytes bounds each file kept in memory: firmware, kernel and the members
	// buffered before metadata.json says what they are (default
	// DefaultMaxBufferBytes; at most 4x that is buffered in total).
	MaxBufferBytes int64
	// Progress, when set, receives human-readable progress lines (bytes read / total).
	Progress io.Writer
	// BootFileRead, when set, is called with the firmware's or kernel's bytes as soon as
	// they are read, before the rest of the image is read and before any checksum is
	// verified, so that the caller can start parsing them while a large initrd is still being
	// hashed. The slice is the one the returned Image holds; it must not be modified. What
	// Open returns (an Image or an error) is still the only verdict on the image.
	BootFileRead func(role Role, data []byte)
}

// Default limits: a dstack root filesystem is 1-8 GiB; firmware 2-4 MiB, kernel ~15 MiB.
const (
	DefaultMaxMemberBytes = 32 << 30
	DefaultMaxTotalBytes  = 64 << 30
	DefaultMaxBufferBytes = 64 << 20
	maxSmallFileBytes     = 1 << 20 // metadata.json, sha256sum.txt, digest.txt
	maxMembers            = 1000
)

func (o Options) withDefaults() Options {
	if o.MaxMemberBytes <= 0 {
		o.MaxMemberBytes = DefaultMaxMemberBytes
	}
	if o.MaxTotalBytes <= 0 {
		o.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if o.MaxBufferBytes <= 0 {
		o.MaxBufferBytes = DefaultMaxBufferBytes
	}
	return o
}

// Open reads an image given as a metadata.json file, a directory holding one, or a
// release tarball (.tar.gz/.tgz, .tar.zst or .tar; recognised by content).
func Open(path string, opts Options) (*Image, error) {
	opts = opts.withDefaults()
	img, err := openAny(path, opts)
	if err != nil {
		return nil, err
	}
	img.Source = path
	return img, nil
}

func openAny(path string, opts Options) (*Image, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return openDir(path, filepath.Join(path, MetadataFileName), opts)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %s, not an image (a metadata.json, a directory or a release archive; a release streamed on stdin is read from \"-\")", path, FileKind(st.Mode()))
	}
	kind, err := sniffFile(path)
	if err != nil {
		return nil, err
	}
	if kind != archiveNone {
		return openTarball(path, kind, opts)
	}
	if looksLikeArchiveName(path) {
		return nil, fmt.Errorf("%s: not a tar, gzip or zstd archive", path)
	}
	return openDir(filepath.Dir(path), path, opts)
}

// OpenRaw reads loose boot files, for images without a metadata.json. initrd may be "".
func OpenRaw(firmware, kernel, initrd, cmdline string) (*Image, error) {
	opts := Options{}.withDefaults()
	img := &Image{
		Source:   firmware,
		Cmdline:  cmdline,
		Metadata: Metadata{Bios: firmware, Kernel: kernel, Initrd: initrd, Cmdline: cmdline},
	}
	var err error
	var sum []byte
	if img.Firmware, sum, err = readWholeFile(firmware, opts.MaxBufferBytes); err != nil {
		return nil, err
	}
	img.Files = append(img.Files, FileInfo{Name: firmware, Size: int64(len(img.Firmware)), SHA256: hex.EncodeToString(sum), Role: RoleFirmware})
	if img.Kernel, sum, err = readWholeFile(kernel, opts.MaxBufferBytes); err != nil {
		return nil, err
	}
	img.Files = append(img.Files, FileInfo{Name: kernel, Size: int64(len(img.Kernel)), SHA256: hex.EncodeToString(sum), Role: RoleKernel})
	if initrd != "" {
		open := func() (io.ReadCloser, error) { return os.Open(initrd) }
		d, err := digestFile(open, initrd, opts.MaxMemberBytes)
		if err != nil {
			return nil, err
		}
		img.Initrd = d
		img.openInitrd = open
		img.Files = append(img.Files, FileInfo{Name: initrd, Size: int64(d.Size), SHA256: hex.EncodeToString(d.SHA256), Role: RoleInitrd})
	}
	img.Checksums = ChecksumReport{Status: StatusAbsent}
	return img, nil
}

func readWholeFile(path string, limit int64) ([]byte, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, err := readBounded(f, path, limit)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(data)
	return data, sum[:], nil
}

// readBounded reads all of r, refusing more than limit bytes. A regular file is read into
// one buffer of its size rather than a growing one.
func readBounded(r io.Reader, name string, limit int64) ([]byte, error) {
	hint := int64(512)
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			hint = min(st.Size(), limit) + 1
		}
	}
	data := make([]byte, 0, hint)
	lr := io.LimitReader(r, limit+1)
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)] // grow as io.ReadAll does
		}
		n, err := lr.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than the %d-byte limit", name, limit)
	}
	return data, nil
}

func digestFile(open func() (io.ReadCloser, error), name string, limit int64) (*StreamDigest, error) {
	f, err := open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h256, h384 := sha256.New(), sha512.New384()
	pipe := newHashPipe(h256, h384)
	defer pipe.Close()
	n, err := io.Copy(pipe, io.LimitReader(f, limit+1))
	pipe.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%s: larger than the %d-byte limit", name, limit)
	}
	return &StreamDigest{Size: uint64(n), SHA256: h256.Sum(nil), SHA384: h384.Sum(nil)}, nil
}

// member is one file of an image as the readers see it.
type member struct {
	name   string
	size   int64
	sha256 []byte // nil if not read
	sha384 []byte // nil unless computed while streaming
	data   []byte // nil unless kept in memory
	kept   bool
	// announced: handed to Options.BootFileRead already.
	announced bool
}

// assemble turns the files a reader collected into an Image: it resolves
// metadata.json's names, checks the checksums and fills Files.
func assemble(source string, meta Metadata, members map[string]*member, inArchive bool, opts Options) (*Image, error) {
	where := "the image directory"
	if inArchive {
		where = "the archive"
	}
	img := &Image{Source: source, Metadata: meta, Cmdline: meta.Cmdline}
	roles := make(map[string]Role)
	for _, f := range meta.fileFields() {
		m := members[f.name]
		if m == nil {
			// A rootfs-free bundle (mr_<digest>.tar.gz) still names its rootfs.
			if f.role == RoleRootfs || f.role == RoleOther || (f.role == RoleFirmwareSEV && !opts.SEV) {
				continue
			}
			return nil, fmt.Errorf("%s field %q names %q, which is not in %s", MetadataFileName, f.field, f.name, where)
		}
		if _, seen := roles[f.name]; !seen {
			roles[f.name] = f.role
		}
		switch f.role {
		case RoleFirmware, RoleKernel, RoleFirmwareSEV:
			if f.role == RoleFirmwareSEV && !opts.SEV {
				break // not measured, not kept
			}
			if !m.kept {
				return nil, fmt.Errorf("%s %q (%d bytes) is larger than the %d-byte buffer limit", f.field, f.name, m.size, opts.MaxBufferBytes)
			}
			switch f.role {
			case RoleFirmware:
				img.Firmware = m.data
			case RoleFirmwareSEV:
				img.FirmwareSEV = m.data
			default:
				img.Kernel = m.data
			}
		case RoleInitrd:
			d := &StreamDigest{Size: uint64(m.size), SHA256: m.sha256, SHA384: m.sha384}
			if m.kept {
				s := sha512.Sum384(m.data)
				d.SHA384 = s[:]
				img.initrdData = m.data
			}
			if d.SHA384 == nil {
				return nil, fmt.Errorf("initrd %q came before %s under a root-filesystem name and was not hashed for measurement", f.name, MetadataFileName)
			}
			img.Initrd = d
		}
	}
	for name := range members {
		if _, ok := roles[name]; ok {
			continue
		}
		switch name {
		case MetadataFileName:
			roles[name] = RoleMetadata
		case sha256SumName, digestName, "md5sum.txt":
			roles[name] = RoleChecksums
		case MeasurementDocName, SNPMeasurementDocName:
			roles[name] = RoleMeasurement
		default:
			if isRootfsName(name) {
				roles[name] = RoleRootfs
			} else {
				roles[name] = RoleOther
			}
		}
	}
	for name, m := range members {
		fi := FileInfo{Name: name, Size: m.size, Role: roles[name]}
		if m.sha256 != nil {
			fi.SHA256 = hex.EncodeToString(m.sha256)
		}
		img.Files = append(img.Files, fi)
	}
	sort.Slice(img.Files, func(i, j int) bool { return img.Files[i].Name < img.Files[j].Name })

	rep, err := verifyChecksums(members, roles, opts.VerifyChecksums, opts.ChecksumsReportOnly)
	img.Checksums = rep
	if err != nil {
		return nil, err
	}
	if opts.RequireChecksums {
		if err := checksumsComplete(rep, members, roles, opts.SEV); err != nil {
			return nil, err
		}
	}
	img.OSImageHash = rep.OSImageHash
	return img, nil
}

func looksLikeArchiveName(path string) bool {
	for _, ext := range []string{".tar.gz", ".tgz", ".tar", ".tar.zst", ".tzst", ".gz", ".zst"} {
		if strings.HasSuffix(strings.ToLower(path), ext) {
			return true
		}
	}
	return false
}

// isRootfsName recognises the names dstack gives its big disk images, so that they
// are never buffered and not SHA-384-hashed before metadata.json is seen.
func isRootfsName(name string) bool {
	base := filepath.Base(name)
	return len(base) >= 6 && base[:6] == "rootfs" || base == "disk.raw"
}

var errNotRegular = errors.New("not a regular file")

func digestBytes(b []byte) StreamDigest {
	s256, s384 := sha256.Sum256(b), sha512.Sum384(b)
	return StreamDigest{Size: uint64(len(b)), SHA256: s256[:], SHA384: s384[:]}
}

// MeasurementDocName is the lite measurement document a release may carry.
const MeasurementDocName = "measurement.tdx.cbor"

// SNPMeasurementDocName is the SEV-SNP measurement document a unified release may carry.
const SNPMeasurementDocName = "measurement.snp.cbor"

// checksumsComplete requires sha256sum.txt to exist and to list every measured file (bios-sev
// too when sev is set).
func checksumsComplete(rep ChecksumReport, members map[string]*member, roles map[string]Role, sev bool) error {
	if rep.Status == StatusAbsent {
		return fmt.Errorf("no %s: the image's files cannot be checked and it has no os_image_hash (give --no-verify-checksums to measure it anyway)", sha256SumName)
	}
	listed := map[string]bool{}
	for _, f := range rep.Files {
		listed[f.Name] = true
	}
	var missing []string
	for name := range members {
		switch roles[name] {
		case RoleFirmware, RoleKernel, RoleInitrd, RoleMetadata:
		case RoleFirmwareSEV:
			if !sev {
				continue
			}
		default:
			continue
		}
		if !listed[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("%s does not list %s, which the measurement depends on (give --no-verify-checksums to measure it anyway)", sha256SumName, strings.Join(missing, ", "))
	}
	for _, doc := range []string{MeasurementDocName, SNPMeasurementDocName} {
		if members[doc] != nil && !listed[doc] {
			return fmt.Errorf("%s is present but %s does not list it, so a verifier given this document cannot bind it to the image's os_image_hash; "+
				"list it (and regenerate %s) or remove it (give --no-verify-checksums to measure anyway)", doc, sha256SumName, digestName)
		}
	}
	return nil
}

// FileKind names what a non-regular file is, for errors.
func FileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m.IsRegular():
		return "a regular file"
	}
	return "not a plain file"
}
