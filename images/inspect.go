package images

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Inspection is what `dstack-mr image inspect` prints.
type Inspection struct {
	Source      string         `json:"source"`
	Version     string         `json:"version,omitempty"`
	Metadata    Metadata       `json:"metadata"`
	OSImageHash string         `json:"os_image_hash,omitempty"`
	Files       []FileInfo     `json:"files"`
	Firmware    BlobSummary    `json:"firmware"`
	Kernel      BlobSummary    `json:"kernel"`
	Initrd      *BlobSummary   `json:"initrd,omitempty"`
	Cmdline     string         `json:"cmdline"`
	Pins        CmdlinePins    `json:"pins"`
	Initramfs   *Initramfs     `json:"initramfs,omitempty"`
	Checksums   ChecksumReport `json:"checksums"`
	Notes       []string       `json:"notes,omitempty"`
}

// BlobSummary gives a boot file's size and digests (hex).
type BlobSummary struct {
	Size   uint64 `json:"size"`
	SHA256 string `json:"sha256"`
	SHA384 string `json:"sha384,omitempty"`
}

// CmdlinePins are the parts of the kernel command line that pin the root
// filesystem: dstack's initramfs checks the rootfs against them.
type CmdlinePins struct {
	RootfsHash string `json:"rootfs_hash,omitempty"` // dstack.rootfs_hash= (dm-verity root hash; SHA-256 of rootfs.iso before 2025)
	RootfsSize *int64 `json:"rootfs_size,omitempty"` // dstack.rootfs_size= (verity data size in bytes)
}

// Initramfs lists the initramfs (a compressed newc cpio archive, possibly several
// concatenated).
type Initramfs struct {
	Compression string      `json:"compression"`
	Entries     []CpioEntry `json:"entries"`
	Count       int         `json:"count"`
	TotalBytes  int64       `json:"total_bytes"` // sum of file sizes
	Truncated   bool        `json:"truncated,omitempty"`
	Error       string      `json:"error,omitempty"` // listing stopped here; the measurement does not depend on it
}

// CpioEntry is one initramfs member.
type CpioEntry struct {
	Name     string `json:"name"`
	Type     string `json:"type"` // file, dir, symlink, char, block, fifo, socket
	Mode     string `json:"mode"` // permission bits, octal
	Size     int64  `json:"size"`
	Linkname string `json:"linkname,omitempty"`
}

// Limits on listing an initramfs.
const (
	maxCpioEntries = 100000
	maxCpioBytes   = 4 << 30
)

// Inspect opens an image (see Open) and describes it.
func Inspect(path string, opts Options) (*Inspection, error) {
	img, err := Open(path, opts)
	if err != nil {
		return nil, err
	}
	return img.Inspect(), nil
}

// Inspect describes an opened image; the initramfs is listed when it can be re-read
// (a file on disk, or a tarball member small enough to have been kept).
func (img *Image) Inspect() *Inspection {
	in := &Inspection{
		Source:      img.Source,
		Version:     img.Metadata.Version,
		Metadata:    img.Metadata,
		OSImageHash: img.OSImageHash,
		Files:       img.Files,
		Firmware:    summarize(img.Firmware),
		Kernel:      summarize(img.Kernel),
		Cmdline:     img.Cmdline,
		Checksums:   img.Checksums,
	}
	var notes []string
	in.Pins, notes = ParseCmdlinePins(img.Cmdline)
	in.Notes = append(in.Notes, notes...)
	if m := img.Metadata.RootfsHash; m != "" && in.Pins.RootfsHash != "" && !strings.EqualFold(m, in.Pins.RootfsHash) {
		in.Notes = append(in.Notes, fmt.Sprintf("metadata rootfs_hash %s differs from the command line's dstack.rootfs_hash %s", m, in.Pins.RootfsHash))
	}
	for _, f := range img.Files {
		if f.Role == RoleRootfs && img.Metadata.RootfsHash != "" && f.SHA256 != "" {
			if strings.EqualFold(f.SHA256, img.Metadata.RootfsHash) {
				in.Notes = append(in.Notes, fmt.Sprintf("%s matches metadata rootfs_hash (SHA-256)", f.Name))
			}
		}
	}
	if img.Initrd != nil {
		in.Initrd = &BlobSummary{Size: img.Initrd.Size, SHA256: hex.EncodeToString(img.Initrd.SHA256), SHA384: hex.EncodeToString(img.Initrd.SHA384)}
		switch {
		case img.initrdData != nil:
			in.Initramfs = ListInitramfs(bytes.NewReader(img.initrdData))
		case img.openInitrd != nil:
			if r, err := img.openInitrd(); err != nil {
				in.Notes = append(in.Notes, "initramfs not listed: "+err.Error())
			} else {
				in.Initramfs = ListInitramfs(r)
				r.Close()
			}
		default:
			in.Notes = append(in.Notes, "initramfs not listed: too large to keep while streaming the archive")
		}
	}
	for _, doc := range []string{MeasurementDocName, SNPMeasurementDocName} {
		if img.hasFile(doc) && img.Checksums.OSImageHash != "" && !img.listsFile(doc) {
			in.Notes = append(in.Notes, fmt.Sprintf("%s (the measurement document verifiers will be given) is not listed in %s: "+
				"no verifier can bind it to os_image_hash, and measure refuses the image until it is listed (and %s regenerated) or removed",
				doc, sha256SumName, digestName))
		}
	}
	if img.Metadata.Rootfs != "" && !img.hasFile(img.Metadata.Rootfs) {
		in.Notes = append(in.Notes, fmt.Sprintf("rootfs %q is not present (rootfs-free bundle)", img.Metadata.Rootfs))
	}
	return in
}

func (img *Image) listsFile(name string) bool {
	for _, f := range img.Checksums.Files {
		if f.Name == name {
			return true
		}
	}
	return false
}

func (img *Image) hasFile(name string) bool {
	for _, f := range img.Files {
		if f.Name == name {
			return true
		}
	}
	return false
}

func summarize(b []byte) BlobSummary {
	d := digestBytes(b)
	return BlobSummary{Size: d.Size, SHA256: hex.EncodeToString(d.SHA256), SHA384: hex.EncodeToString(d.SHA384)}
}

// ParseCmdlinePins finds dstack.rootfs_hash= and dstack.rootfs_size= on a kernel
// command line. Notes report repeated or malformed values.
func ParseCmdlinePins(cmdline string) (CmdlinePins, []string) {
	var p CmdlinePins
	var notes []string
	seen := map[string]int{}
	for _, tok := range splitCmdline(cmdline) {
		key, val, ok := strings.Cut(tok, "=")
		if !ok {
			continue
		}
		switch key {
		case "dstack.rootfs_hash":
			seen[key]++
			if _, err := hex.DecodeString(val); err != nil || val == "" {
				notes = append(notes, fmt.Sprintf("dstack.rootfs_hash=%q is not hex", val))
			}
			p.RootfsHash = strings.ToLower(val)
		case "dstack.rootfs_size":
			seen[key]++
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				notes = append(notes, fmt.Sprintf("dstack.rootfs_size=%q is not a byte count", val))
				continue
			}
			p.RootfsSize = &n
		}
	}
	for _, k := range []string{"dstack.rootfs_hash", "dstack.rootfs_size"} {
		if seen[k] > 1 {
			notes = append(notes, fmt.Sprintf("%s appears %d times; the last one is reported", k, seen[k]))
		}
	}
	return p, notes
}

// splitCmdline splits like the kernel's next_arg: on spaces, with double quotes
// grouping (and removed).
func splitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// ListInitramfs lists a gzip'd, zstd'd or uncompressed newc cpio stream, following
// concatenated archives. It never fails: a problem ends the listing and is recorded
// in Error.
func ListInitramfs(r io.Reader) *Initramfs {
	out := &Initramfs{Entries: []CpioEntry{}}
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(6)
	var src io.Reader
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		out.Compression = "gzip"
		gz, err := gzip.NewReader(br)
		if err != nil {
			out.Error = "gzip: " + err.Error()
			return out
		}
		defer gz.Close()
		src = gz
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		out.Compression = "zstd"
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(maxZstdWindow*2))
		if err != nil {
			out.Error = "zstd: " + err.Error()
			return out
		}
		defer zr.Close()
		src = zr
	case bytes.HasPrefix(head, []byte("07070")):
		out.Compression = "none"
		src = br
	default:
		out.Error = "not a gzip, zstd or newc cpio stream"
		return out
	}
	bounded := bufio.NewReaderSize(&boundedReader{r: src, limit: maxCpioBytes}, 64<<10)
	if err := listCpio(bounded, out); err != nil {
		out.Error = err.Error()
	}
	out.Count = len(out.Entries)
	return out
}

func listCpio(r *bufio.Reader, out *Initramfs) (err error) {
	// github.com/cavaliergopher/cpio trusts header fields (a negative size panics inside
	// Reader.Read); a hostile initramfs must yield an error, not a crash.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cpio entry %d: malformed header (%v)", len(out.Entries)+1, p)
		}
	}()
	for {
		// The cpio reader reports both its trailer and a short read as io.EOF; the
		// bytes just read tell them apart.
		tail := &tailReader{r: r}
		cr := cpio.NewReader(tail)
		for {
			hdr, err := cr.Next()
			if err == io.EOF && tail.endsWith(cpioTrailer) {
				break
			}
			if err != nil {
				return fmt.Errorf("cpio entry %d: %w", len(out.Entries)+1, describeCpioErr(err))
			}
			if len(out.Entries) >= maxCpioEntries {
				out.Truncated = true
				return nil
			}
			if hdr.Size < 0 {
				return fmt.Errorf("cpio entry %q: negative size %d", hdr.Name, hdr.Size)
			}
			if n, err := io.Copy(io.Discard, cr); err != nil || n != hdr.Size {
				if err == nil {
					err = io.ErrUnexpectedEOF
				}
				return fmt.Errorf("cpio entry %q: %w", hdr.Name, describeCpioErr(eofIsUnexpected(err)))
			}
			out.Entries = append(out.Entries, CpioEntry{
				Name:     hdr.Name,
				Type:     cpioType(hdr.Mode),
				Mode:     fmt.Sprintf("%04o", uint32(hdr.Mode&(cpio.ModePerm|cpio.ModeSetuid|cpio.ModeSetgid|cpio.ModeSticky))),
				Size:     hdr.Size,
				Linkname: hdr.Linkname,
			})
			out.TotalBytes += hdr.Size
		}
		// The trailer is followed by NUL padding, then maybe another archive (the
		// kernel accepts concatenations, e.g. early microcode + main initramfs).
		for {
			b, err := r.ReadByte()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return describeCpioErr(err)
			}
			if b != 0 {
				r.UnreadByte()
				break
			}
		}
	}
}

var cpioTrailer = []byte("TRAILER!!!\x00")

// tailReader remembers the last bytes read through it.
type tailReader struct {
	r    io.Reader
	tail []byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	got := p[:n]
	if len(got) > 16 {
		got = got[len(got)-16:]
	}
	t.tail = append(t.tail, got...)
	if len(t.tail) > 32 {
		t.tail = append(t.tail[:0], t.tail[len(t.tail)-16:]...)
	}
	return n, err
}

func (t *tailReader) endsWith(b []byte) bool { return bytes.HasSuffix(t.tail, b) }

func describeCpioErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated: %w", err)
	}
	return err
}

func cpioType(m cpio.FileMode) string {
	switch m & cpio.ModeType {
	case cpio.TypeReg:
		return "file"
	case cpio.TypeDir:
		return "dir"
	case cpio.TypeSymlink:
		return "symlink"
	case cpio.TypeChar:
		return "char"
	case cpio.TypeBlock:
		return "block"
	case cpio.TypeFifo:
		return "fifo"
	case cpio.TypeSocket:
		return "socket"
	}
	return fmt.Sprintf("unknown(%o)", uint32(m&cpio.ModeType))
}
