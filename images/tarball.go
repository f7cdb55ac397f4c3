package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

type archiveKind int

const (
	archiveNone archiveKind = iota
	archiveTar
	archiveGzip
	archiveZstd
)

func (k archiveKind) String() string {
	return [...]string{"not an archive", "tar", "gzip", "zstd"}[k]
}

// maxZstdWindow bounds the zstd window a frame may ask for (zstd --ultra -22 uses
// 128 MiB); a larger one is a memory bomb, not a release.
const maxZstdWindow = 128 << 20

// maxTrailingBytes bounds what may follow the tar end marker (tar pads to 10 KiB
// records; gzip readers need the rest to check the CRC).
const maxTrailingBytes = 1 << 20

func sniffFile(path string) (archiveKind, error) {
	f, err := os.Open(path)
	if err != nil {
		return archiveNone, err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return archiveNone, fmt.Errorf("%s: %w", path, err)
	}
	return sniffBytes(head[:n]), nil
}

func sniffBytes(b []byte) archiveKind {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return archiveGzip
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return archiveZstd
	case len(b) >= 263 && bytes.Equal(b[257:262], []byte("ustar")):
		return archiveTar
	}
	return archiveNone
}

// openTarball reads a release tarball in one pass.
func openTarball(path string, kind archiveKind, opts Options) (img *Image, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var total int64 = -1
	if st, err := f.Stat(); err == nil {
		total = st.Size()
	}
	var src io.Reader = f
	var prog *progressReader
	if opts.Progress != nil {
		prog = newProgressReader(f, total, filepath.Base(path), opts.Progress)
		src = prog
	}
	ext, err := newExtractor(opts.ExtractDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ext.abort()
		}
	}()
	members, meta, err := readRelease(src, kind, opts, ext)
	if prog != nil {
		prog.done(err == nil)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	img, err = assemble(path, meta, members, true, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err = ext.finish(); err != nil {
		return nil, err
	}
	return img, nil
}

// ReadRelease reads a release archive (tar, gzip'd tar or zstd'd tar, recognised by
// content) from r without extracting it, and returns the image with Source set to
// name. It is Open for streams.
func ReadRelease(r io.Reader, name string, opts Options) (*Image, error) {
	opts = opts.withDefaults()
	opts.ExtractDir = ""
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(512)
	kind := sniffBytes(head)
	if kind == archiveNone {
		return nil, fmt.Errorf("%s: not a tar, gzip or zstd archive", name)
	}
	members, meta, err := readRelease(br, kind, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	img, err := assemble(name, meta, members, true, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	img.Source = name
	return img, nil
}

func decompressor(r io.Reader, kind archiveKind) (io.Reader, func(), error) {
	switch kind {
	case archiveGzip:
		gz, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("not a valid gzip stream: %w", err)
		}
		return gz, func() { gz.Close() }, nil
	case archiveZstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(maxZstdWindow*2))
		if err != nil {
			return nil, nil, fmt.Errorf("not a valid zstd stream: %w", err)
		}
		return zr, zr.Close, nil
	case archiveTar:
		return r, func() {}, nil
	}
	return nil, nil, errors.New("not a tar, gzip or zstd archive")
}

// releaseReader holds the state of one pass over a release archive.
type releaseReader struct {
	opts       Options
	ext        *extractor
	layout     layout
	members    map[string]*member
	meta       *Metadata
	keptBytes  int64
	declared   int64
	copyBuffer []byte
}

func readRelease(r io.Reader, kind archiveKind, opts Options, ext *extractor) (map[string]*member, Metadata, error) {
	dec, closeDec, err := decompressor(r, kind)
	if err != nil {
		return nil, Metadata{}, err
	}
	defer closeDec()
	bounded := &boundedReader{r: dec, limit: opts.MaxTotalBytes}
	rr := &releaseReader{opts: opts, ext: ext, members: make(map[string]*member), copyBuffer: make([]byte, 1<<20)}
	tr := tar.NewReader(bounded)
	for count := 0; ; count++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, Metadata{}, fmt.Errorf("reading %s archive: %w", kind, describeReadErr(err))
		}
		if count >= maxMembers {
			return nil, Metadata{}, fmt.Errorf("more than %d members", maxMembers)
		}
		if err := rr.member(hdr, tr); err != nil {
			return nil, Metadata{}, err
		}
	}
	// Reading to the end makes the gzip/zstd reader check its trailer (CRC, sizes).
	n, err := io.Copy(io.Discard, io.LimitReader(bounded, maxTrailingBytes+1))
	if err != nil {
		return nil, Metadata{}, fmt.Errorf("checking the end of the compressed stream: %w", describeReadErr(err))
	}
	if n > maxTrailingBytes {
		return nil, Metadata{}, fmt.Errorf("more than %d bytes of data after the tar end marker", maxTrailingBytes)
	}
	if rr.meta == nil {
		return nil, Metadata{}, fmt.Errorf("no %s in the archive", MetadataFileName)
	}
	return rr.members, *rr.meta, nil
}

func describeReadErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated or corrupt archive: %w", err)
	}
	return err
}

// member reads one tar entry: checks its name, type and size, hashes it, keeps it if
// it is (or may be) needed, and extracts it when asked.
func (rr *releaseReader) member(hdr *tar.Header, r io.Reader) error {
	raw := hdr.Name
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
	case tar.TypeDir:
		return rr.layout.dir(raw)
	case tar.TypeXGlobalHeader:
		return nil // archive-wide PAX records (git archive writes one); no file
	case tar.TypeSymlink:
		return fmt.Errorf("member %q is a symlink (to %q): not allowed", raw, hdr.Linkname)
	case tar.TypeLink:
		return fmt.Errorf("member %q is a hard link (to %q): not allowed", raw, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		return fmt.Errorf("member %q is a device node: not allowed", raw)
	case tar.TypeFifo:
		return fmt.Errorf("member %q is a FIFO: not allowed", raw)
	default:
		return fmt.Errorf("member %q has unsupported tar type %q", raw, hdr.Typeflag)
	}
	name, err := rr.layout.file(raw)
	if err != nil {
		return err
	}
	if _, dup := rr.members[name]; dup {
		return fmt.Errorf("member %q appears more than once", raw)
	}
	if hdr.Size < 0 || hdr.Size > rr.opts.MaxMemberBytes {
		return fmt.Errorf("member %q: %d bytes, over the %d-byte member limit", raw, hdr.Size, rr.opts.MaxMemberBytes)
	}
	rr.declared += hdr.Size
	if rr.declared > rr.opts.MaxTotalBytes {
		return fmt.Errorf("member %q: archive content exceeds the %d-byte total limit", raw, rr.opts.MaxTotalBytes)
	}
	keep, want384, err := rr.plan(name, hdr.Size)
	if err != nil {
		return err
	}
	m := &member{name: name, size: hdr.Size}
	h256 := sha256.New()
	writers := []io.Writer{h256}
	var h384 hash.Hash
	var pipe *hashPipe
	if want384 {
		// Both digests side by side, behind the decompressor.
		h384 = sha512.New384()
		pipe = newHashPipe(h256, h384)
		defer pipe.Close()
		writers = []io.Writer{pipe}
	}
	var out *os.File
	if rr.ext != nil {
		if out, err = rr.ext.create(name); err != nil {
			return err
		}
		defer out.Close()
		writers = append(writers, out)
	}
	w := io.MultiWriter(writers...)
	if keep {
		m.data = make([]byte, hdr.Size)
		if _, err := io.ReadFull(r, m.data); err != nil {
			return fmt.Errorf("member %q: %w", raw, describeReadErr(eofIsUnexpected(err)))
		}
		if _, err := w.Write(m.data); err != nil {
			return fmt.Errorf("member %q: %w", raw, err)
		}
		m.kept = true
		rr.keptBytes += hdr.Size
	} else {
		n, err := io.CopyBuffer(w, r, rr.copyBuffer)
		if err == nil && n != hdr.Size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fmt.Errorf("member %q: %w", raw, describeReadErr(err))
		}
	}
	if out != nil {
		if err := out.Close(); err != nil {
			return fmt.Errorf("extracting %q: %w", name, err)
		}
	}
	if pipe != nil {
		pipe.Close()
	}
	m.sha256 = h256.Sum(nil)
	if h384 != nil {
		m.sha384 = h384.Sum(nil)
	}
	rr.members[name] = m
	if name == MetadataFileName {
		meta, err := ParseMetadata(m.data)
		if err != nil {
			return err
		}
		rr.meta = &meta
		rr.releaseUnneeded()
		for _, f := range rr.meta.fileFields() {
			rr.announce(f.name)
		}
	} else {
		rr.announce(name)
	}
	return nil
}

// announce hands a kept firmware or kernel to Options.BootFileRead, once metadata.json has
// said which member it is.
func (rr *releaseReader) announce(name string) {
	m := rr.members[name]
	if rr.opts.BootFileRead == nil || rr.meta == nil || m == nil || !m.kept || m.announced {
		return
	}
	for _, f := range rr.meta.fileFields() {
		if f.name == name && (f.role == RoleFirmware || f.role == RoleKernel) {
			m.announced = true
			rr.opts.BootFileRead(f.role, m.data)
			return
		}
	}
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// plan decides, before reading a member, whether to keep it in memory and whether to
// SHA-384 it. Once metadata.json has been read the decision is exact; before, small
// members are buffered and big ones that do not look like a root filesystem are
// SHA-384'd in case they turn out to be the initrd.
func (rr *releaseReader) plan(name string, size int64) (keep, want384 bool, err error) {
	switch name {
	case MetadataFileName, sha256SumName, digestName:
		if size > maxSmallFileBytes {
			return false, false, fmt.Errorf("member %q: %d bytes, over the %d-byte limit", name, size, maxSmallFileBytes)
		}
		return true, false, nil
	}
	limit := rr.opts.MaxBufferBytes
	if rr.meta != nil {
		for _, f := range rr.meta.fileFields() {
			if f.name != name {
				continue
			}
			switch f.role {
			case RoleFirmware, RoleKernel, RoleFirmwareSEV:
				if f.role == RoleFirmwareSEV && !rr.opts.SEV {
					return false, false, nil
				}
				if size > limit {
					return false, false, fmt.Errorf("%s %q: %d bytes, over the %d-byte buffer limit", f.field, name, size, limit)
				}
				return true, false, nil
			case RoleInitrd:
				return size <= limit && rr.keptBytes+size <= 4*limit, true, nil
			}
		}
		return false, false, nil
	}
	if isRootfsName(name) {
		return false, false, nil
	}
	if size <= limit && rr.keptBytes+size <= 4*limit {
		return true, false, nil
	}
	return false, true, nil
}

// releaseUnneeded drops buffered members metadata.json does not need.
func (rr *releaseReader) releaseUnneeded() {
	needed := map[string]bool{MetadataFileName: true, sha256SumName: true, digestName: true}
	for _, f := range rr.meta.fileFields() {
		switch f.role {
		case RoleFirmware, RoleKernel, RoleInitrd:
			needed[f.name] = true
		case RoleFirmwareSEV:
			needed[f.name] = rr.opts.SEV
		}
	}
	for name, m := range rr.members {
		if m.kept && !needed[name] {
			rr.keptBytes -= m.size
			m.data, m.kept = nil, false
		}
	}
}

// layout enforces "zero or one top-level folder": either every file is at the top
// (flattened mr_<digest> bundles, old "tar -C dir ." releases) or every file sits
// directly in the same single folder (dstack-X.Y.Z/).
type layout struct {
	top     string // the folder, once known
	flat    bool   // files seen at the top
	decided bool
}

func splitMember(raw string) ([]string, error) {
	if strings.HasPrefix(raw, "/") {
		return nil, fmt.Errorf("member %q: absolute path", raw)
	}
	name := raw
	for strings.HasPrefix(name, "./") {
		name = strings.TrimLeft(name[2:], "/")
	}
	name = strings.TrimSuffix(name, "/")
	if name == "" || name == "." {
		return nil, nil
	}
	if strings.ContainsAny(name, "\\\x00") {
		return nil, fmt.Errorf("member %q: backslash or NUL in name", raw)
	}
	parts := strings.Split(name, "/")
	for _, p := range parts {
		switch p {
		case "..":
			return nil, fmt.Errorf("member %q: path leaves the archive (..)", raw)
		case "", ".":
			return nil, fmt.Errorf("member %q: not a clean path", raw)
		}
	}
	return parts, nil
}

func (l *layout) dir(raw string) error {
	parts, err := splitMember(raw)
	if err != nil || parts == nil {
		return err
	}
	if len(parts) > 1 {
		return fmt.Errorf("member %q: nested folders are not part of a dstack release", raw)
	}
	return l.setTop(parts[0], raw)
}

func (l *layout) setTop(top, raw string) error {
	switch {
	case l.decided && l.flat:
		return fmt.Errorf("member %q: folder %q next to top-level files (more than one top-level entry)", raw, top)
	case l.decided && l.top != top:
		return fmt.Errorf("member %q: more than one top-level folder (%q and %q)", raw, l.top, top)
	}
	l.top, l.decided = top, true
	return nil
}

// file returns the member's name relative to the image folder.
func (l *layout) file(raw string) (string, error) {
	parts, err := splitMember(raw)
	if err != nil {
		return "", err
	}
	switch len(parts) {
	case 0:
		return "", fmt.Errorf("member %q: a file with no name", raw)
	case 1:
		if l.decided && !l.flat {
			return "", fmt.Errorf("member %q: file outside the top-level folder %q", raw, l.top)
		}
		l.flat, l.decided = true, true
		return parts[0], nil
	case 2:
		if err := l.setTop(parts[0], raw); err != nil {
			return "", err
		}
		return parts[1], nil
	}
	return "", fmt.Errorf("member %q: nested folders are not part of a dstack release", raw)
}

// boundedReader fails once more than limit bytes have been read: the decompression
// bomb guard for the archive as a whole.
type boundedReader struct {
	r     io.Reader
	read  int64
	limit int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.read > b.limit {
		return 0, fmt.Errorf("decompressed archive exceeds the %d-byte total limit", b.limit)
	}
	if room := b.limit - b.read + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	if b.read > b.limit {
		return n, fmt.Errorf("decompressed archive exceeds the %d-byte total limit", b.limit)
	}
	return n, err
}
