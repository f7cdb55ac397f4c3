package images

import (
	"archive/tar"
	"bytes"
	stdgzip "compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// The sample image's real boot files, under the names a dstack release gives them
// (os/image/assemble.sh: ovmf.fd, bzImage, initramfs.cpio.gz, rootfs.img.parted.verity).
const (
	sampleDir      = "../testdata/sample-image"
	sampleFirmware = "ovmf-debian-2025.02-8+deb13u1.fd"
	sampleKernel   = "bzImage-6.1.0-56-amd64"
	sampleInitrd   = "initrd-small.cpio.gz"
	releaseRootfs  = "rootfs.img.parted.verity"
	releaseTop     = "dstack-0.5.5"
)

// releaseOrder is the member order of assemble.sh's bare-metal tarball.
var releaseOrder = []string{releaseRootfs, "bzImage", "ovmf.fd", digestName, sha256SumName, "initramfs.cpio.gz", MetadataFileName, "measurement.tdx.cbor"}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sampleDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// releaseCmdline is what os/image/kernel-cmdline.sh emits, for a made-up root hash.
const releaseCmdline = "console=ttyS0 init=/init panic=1 net.ifnames=0 biosdevname=0 mce=off oops=panic pci=noearly pci=nommconf random.trust_cpu=y random.trust_bootloader=n tsc=reliable no-kvmclock dstack.rootfs_hash=cc8dd83ee7399610b44d9780305bf477d6dd1da8590732689f11442d7969ec1a dstack.rootfs_size=1000000"

// releaseFiles builds the files of a release the way assemble.sh does, with a fake
// rootfs of rootfsSize pseudo-random bytes.
func releaseFiles(t testing.TB, rootfsSize int) map[string][]byte {
	t.Helper()
	files := map[string][]byte{
		"ovmf.fd":              readSample(t, sampleFirmware),
		"bzImage":              readSample(t, sampleKernel),
		"initramfs.cpio.gz":    readSample(t, sampleInitrd),
		"measurement.tdx.cbor": {0xa1, 0x61, 0x76, 0x01},
	}
	files[MetadataFileName] = []byte(fmt.Sprintf(`{
    "bios": "ovmf.fd",
    "kernel": "bzImage",
    "cmdline": %q,
    "initrd": "initramfs.cpio.gz",
    "rootfs": %q,
    "version": "0.5.5",
    "git_revision": "0123456789abcdef0123456789abcdef01234567",
    "shared_ro": true,
    "is_dev": false,
    "ovmf_variant": "pre202505"
}
`, releaseCmdline, releaseRootfs))
	rootfs := make([]byte, rootfsSize)
	rand.New(rand.NewSource(1)).Read(rootfs[:rootfsSize/2])
	files[releaseRootfs] = rootfs
	setChecksums(files, []string{"ovmf.fd", "bzImage", "initramfs.cpio.gz", MetadataFileName, "measurement.tdx.cbor"})
	return files
}

// smallRelease is releaseFiles with small synthetic boot files, for the tests about
// archive handling rather than content.
func smallRelease(t testing.TB) map[string][]byte {
	files := releaseFiles(t, 256<<10)
	files["ovmf.fd"] = bytes.Repeat([]byte("OVMF"), 2048)
	files["bzImage"] = bytes.Repeat([]byte("bzIm"), 4096)
	files["initramfs.cpio.gz"] = bytes.Repeat([]byte("init"), 1024)
	setChecksums(files, []string{"ovmf.fd", "bzImage", "initramfs.cpio.gz", MetadataFileName, "measurement.tdx.cbor"})
	return files
}

// setChecksums writes sha256sum.txt and digest.txt as `sha256sum` and assemble.sh do.
func setChecksums(files map[string][]byte, listed []string) {
	var sums bytes.Buffer
	for _, name := range listed {
		fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(files[name]), name)
	}
	files[sha256SumName] = sums.Bytes()
	files[digestName] = []byte(fmt.Sprintf("%x\n", sha256.Sum256(sums.Bytes())))
}

type tarEntry struct {
	name string
	typ  byte
	data []byte
	link string
}

func entriesFor(files map[string][]byte, order []string, prefix string) []tarEntry {
	var out []tarEntry
	if strings.HasSuffix(prefix, "/") { // GNU tar writes the folder (or "./") first
		out = append(out, tarEntry{name: prefix, typ: tar.TypeDir})
	}
	seen := map[string]bool{}
	for _, n := range order {
		if d, ok := files[n]; ok {
			out = append(out, tarEntry{name: prefix + n, typ: tar.TypeReg, data: d})
			seen[n] = true
		}
	}
	var rest []string
	for n := range files {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	for _, n := range rest {
		out = append(out, tarEntry{name: prefix + n, typ: tar.TypeReg, data: files[n]})
	}
	return out
}

// tarBytes writes entries as an uncompressed tar with the standard library writer.
func tarBytes(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.data)), Linkname: e.link, Format: tar.FormatGNU}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// compress compresses with the standard library gzip (independent of the reader) or
// with klauspost zstd; "tar" leaves it as is.
func compress(t testing.TB, data []byte, kind string) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case "tar":
		return data
	case "gz":
		zw, _ := stdgzip.NewWriterLevel(&buf, stdgzip.BestSpeed)
		zw.Write(data)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case "zst":
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(data)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown compression %q", kind)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeDir(t testing.TB, dir string, files map[string][]byte) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, d := range files {
		writeFile(t, filepath.Join(dir, n), d)
	}
	return dir
}

func writeRelease(t testing.TB, path string, files map[string][]byte, order []string, prefix, kind string) string {
	t.Helper()
	return writeFile(t, path, compress(t, tarBytes(t, entriesFor(files, order, prefix)), kind))
}

// checkSample compares an opened image with the release files, computing every
// expected digest here from the files themselves.
func checkSample(t *testing.T, img *Image, files map[string][]byte) {
	t.Helper()
	if !bytes.Equal(img.Firmware, files["ovmf.fd"]) {
		t.Errorf("firmware differs from ovmf.fd")
	}
	if !bytes.Equal(img.Kernel, files["bzImage"]) {
		t.Errorf("kernel differs from bzImage")
	}
	initrd := files["initramfs.cpio.gz"]
	s384, s256 := sha512.Sum384(initrd), sha256.Sum256(initrd)
	if img.Initrd == nil || img.Initrd.Size != uint64(len(initrd)) || !bytes.Equal(img.Initrd.SHA384, s384[:]) || !bytes.Equal(img.Initrd.SHA256, s256[:]) {
		t.Errorf("initrd digest %+v, want size %d sha384 %x", img.Initrd, len(initrd), s384)
	}
	if img.Cmdline != releaseCmdline {
		t.Errorf("cmdline %q", img.Cmdline)
	}
	if want := strings.TrimSpace(string(files[digestName])); img.OSImageHash != want {
		t.Errorf("os_image_hash %q, want digest.txt %q", img.OSImageHash, want)
	}
	if img.Checksums.Status != StatusOK || img.Checksums.Digest == nil || !img.Checksums.Digest.OK {
		t.Errorf("checksums %+v", img.Checksums)
	}
	if img.Metadata.Version != "0.5.5" || img.Metadata.OVMFVariant != "pre202505" || !img.Metadata.SharedRO || img.Metadata.Rootfs != releaseRootfs {
		t.Errorf("metadata %+v", img.Metadata)
	}
	for _, f := range img.Files {
		if d, ok := files[f.Name]; ok && f.SHA256 != "" {
			if sum := sha256.Sum256(d); f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(d)) {
				t.Errorf("file %s: size %d sha256 %s", f.Name, f.Size, f.SHA256)
			}
		}
	}
	roles := map[string]Role{}
	for _, f := range img.Files {
		roles[f.Name] = f.Role
	}
	for name, want := range map[string]Role{"ovmf.fd": RoleFirmware, "bzImage": RoleKernel, "initramfs.cpio.gz": RoleInitrd, MetadataFileName: RoleMetadata, sha256SumName: RoleChecksums, digestName: RoleChecksums, "measurement.tdx.cbor": RoleMeasurement} {
		if roles[name] != want {
			t.Errorf("role of %s = %q, want %q", name, roles[name], want)
		}
	}
}

func TestOpenSameResultEverywhere(t *testing.T) {
	files := releaseFiles(t, 3<<20)
	tmp := t.TempDir()
	dir := writeDir(t, filepath.Join(tmp, releaseTop), files)
	cases := []struct {
		name string
		path string
	}{
		{"directory", dir},
		{"metadata.json", filepath.Join(dir, MetadataFileName)},
		{"tar.gz with folder", writeRelease(t, filepath.Join(tmp, "dstack-0.5.5.tar.gz"), files, releaseOrder, releaseTop+"/", "gz")},
		{"tgz flattened mr bundle", writeRelease(t, filepath.Join(tmp, "mr_x.tgz"), files, releaseOrder, "", "gz")},
		{"tar with ./ prefix", writeRelease(t, filepath.Join(tmp, "old.tar"), files, releaseOrder, "./", "tar")},
		{"tar.zst", writeRelease(t, filepath.Join(tmp, "dstack-0.5.5.tar.zst"), files, releaseOrder, releaseTop+"/", "zst")},
		{"no extension", writeRelease(t, filepath.Join(tmp, "release.bin"), files, releaseOrder, releaseTop+"/", "gz")},
	}
	var ref *Image
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &bootFileRecorder{}
			img, err := Open(tc.path, Options{VerifyChecksums: true, BootFileRead: rec.record})
			if err != nil {
				t.Fatal(err)
			}
			rec.check(t, img)
			if img.Source != tc.path {
				t.Errorf("source %q", img.Source)
			}
			checkSample(t, img, files)
			if ref == nil {
				ref = img
				return
			}
			if img.OSImageHash != ref.OSImageHash || !bytes.Equal(img.Initrd.SHA384, ref.Initrd.SHA384) || img.Cmdline != ref.Cmdline {
				t.Errorf("differs from the directory result")
			}
			if fmt.Sprint(img.Checksums.Files) != fmt.Sprint(ref.Checksums.Files) {
				t.Errorf("checksum report differs:\n%v\n%v", img.Checksums.Files, ref.Checksums.Files)
			}
		})
	}
}

func TestMemberOrderPermutations(t *testing.T) {
	files := releaseFiles(t, 1<<20)
	tmp := t.TempDir()
	orders := [][]string{
		releaseOrder,
		{MetadataFileName, sha256SumName, digestName, "ovmf.fd", "bzImage", "initramfs.cpio.gz", releaseRootfs},
		{releaseRootfs, "initramfs.cpio.gz", "bzImage", "ovmf.fd", sha256SumName, digestName, MetadataFileName},
		{digestName, "initramfs.cpio.gz", MetadataFileName, releaseRootfs, "ovmf.fd", "bzImage", sha256SumName},
	}
	r := rand.New(rand.NewSource(7))
	for i := 0; i < 4; i++ {
		o := slices.Clone(releaseOrder)
		r.Shuffle(len(o), func(a, b int) { o[a], o[b] = o[b], o[a] })
		orders = append(orders, o)
	}
	// With a 32 KiB buffer limit the 64 KiB initrd cannot be buffered: members seen
	// before metadata.json are then stream-hashed with SHA-384 as well.
	bigInitrd := smallRelease(t)
	bigInitrd["initramfs.cpio.gz"] = bytes.Repeat([]byte("initrd.."), 8192)
	setChecksums(bigInitrd, []string{"ovmf.fd", "bzImage", "initramfs.cpio.gz", MetadataFileName, "measurement.tdx.cbor"})
	sets := []struct {
		files map[string][]byte
		limit int64
	}{{files, 0}, {bigInitrd, 32 << 10}}
	for i, order := range orders {
		t.Run(strings.Join(order, ","), func(t *testing.T) {
			for j, set := range sets {
				p := writeRelease(t, filepath.Join(tmp, fmt.Sprintf("r%d-%d.tar", i, j)), set.files, order, releaseTop+"/", "tar")
				rec := &bootFileRecorder{}
				img, err := Open(p, Options{VerifyChecksums: true, MaxBufferBytes: set.limit, BootFileRead: rec.record})
				if err != nil {
					t.Fatalf("set %d: %v", j, err)
				}
				checkSample(t, img, set.files)
				rec.check(t, img)
			}
		})
	}
}

func TestFlippedByteRejected(t *testing.T) {
	tmp := t.TempDir()
	flip := func(files map[string][]byte, name string) {
		d := slices.Clone(files[name])
		switch name {
		case MetadataFileName:
			i := bytes.Index(d, []byte(`"0.5.5"`))
			d[i+5] = '6'
		case sha256SumName, digestName:
			d[3] ^= 1 // a hex digit stays a hex digit
		default:
			d[len(d)/2] ^= 0x40
		}
		files[name] = d
	}
	for i, name := range []string{"ovmf.fd", "bzImage", "initramfs.cpio.gz", MetadataFileName, "measurement.tdx.cbor", sha256SumName, digestName} {
		t.Run(name, func(t *testing.T) {
			files := releaseFiles(t, 64<<10)
			kind := []string{"tar", "gz"}[i%2]
			flip(files, name)
			want := name
			if name == sha256SumName {
				want = digestName // the listed digests no longer match either
			}
			dir := writeDir(t, filepath.Join(tmp, name, releaseTop), files)
			tgz := writeRelease(t, filepath.Join(tmp, name, "r."+kind), files, releaseOrder, releaseTop+"/", kind)
			for _, p := range []string{dir, tgz} {
				_, err := Open(p, Options{VerifyChecksums: true})
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s: error %v, want one naming %s", p, err, want)
				}
				img, err := Open(p, Options{VerifyChecksums: false})
				if err != nil {
					t.Fatalf("%s without verification: %v", p, err)
				}
				if img.Checksums.Status != StatusSkipped || !slices.Contains(img.Checksums.Mismatches, want) {
					t.Errorf("%s: checksums %+v", p, img.Checksums)
				}
			}
		})
	}
}

// hostile archives: every one must fail with an error naming the problem and leave
// ExtractDir (and its parent) as they were.
func TestHostileArchivesRejected(t *testing.T) {
	files := smallRelease(t)
	good := entriesFor(files, releaseOrder, releaseTop+"/")
	with := func(extra ...tarEntry) []tarEntry { return append(slices.Clone(good), extra...) }
	without := func(name string) []tarEntry {
		var out []tarEntry
		for _, e := range good {
			if e.name != releaseTop+"/"+name {
				out = append(out, e)
			}
		}
		return out
	}
	replace := func(name string, data []byte) []tarEntry {
		out := slices.Clone(good)
		for i := range out {
			if out[i].name == releaseTop+"/"+name {
				out[i].data = data
			}
		}
		return out
	}
	gz := compress(t, tarBytes(t, good), "gz")
	corrupt := slices.Clone(gz)
	for i := len(corrupt) / 2; i < len(corrupt)/2+64; i++ {
		corrupt[i] ^= 0xff
	}
	crcBroken := slices.Clone(gz)
	crcBroken[len(crcBroken)-6] ^= 1 // inside the CRC-32 trailer
	reg := func(name string) tarEntry { return tarEntry{name: name, typ: tar.TypeReg, data: []byte("x")} }
	cases := []struct {
		name    string
		entries []tarEntry
		raw     []byte // used instead of entries when set
		opts    Options
		want    string
	}{
		{name: "dotdot member", entries: with(reg(releaseTop + "/../evil")), want: "leaves the archive"},
		{name: "dotdot at top", entries: with(reg("../evil")), want: "leaves the archive"},
		{name: "absolute member", entries: with(reg("/tmp/evil")), want: "absolute path"},
		{name: "symlink", entries: with(tarEntry{name: releaseTop + "/link", typ: tar.TypeSymlink, link: "/etc/passwd"}), want: "symlink"},
		{name: "hard link", entries: with(tarEntry{name: releaseTop + "/link", typ: tar.TypeLink, link: releaseTop + "/bzImage"}), want: "hard link"},
		{name: "char device", entries: with(tarEntry{name: releaseTop + "/null", typ: tar.TypeChar}), want: "device"},
		{name: "fifo", entries: with(tarEntry{name: releaseTop + "/fifo", typ: tar.TypeFifo}), want: "FIFO"},
		{name: "duplicate member", entries: with(tarEntry{name: releaseTop + "/bzImage", typ: tar.TypeReg, data: []byte("evil")}), want: "more than once"},
		{name: "duplicate via ./", entries: with(tarEntry{name: "./" + releaseTop + "/ovmf.fd", typ: tar.TypeReg, data: []byte("evil")}), want: "more than once"},
		{name: "two top-level folders", entries: with(reg("other/file")), want: "more than one top-level folder"},
		{name: "top-level file next to folder", entries: with(reg("stray")), want: "outside the top-level folder"},
		{name: "nested folder", entries: with(reg(releaseTop + "/sub/file")), want: "nested"},
		{name: "missing metadata.json", entries: without(MetadataFileName), want: "no metadata.json"},
		{name: "metadata names missing kernel", entries: without("bzImage"), want: `"kernel" names "bzImage", which is not in the archive`},
		{name: "metadata kernel escapes", entries: replace(MetadataFileName, []byte(`{"bios":"ovmf.fd","kernel":"../bzImage","cmdline":""}`)), want: `field "kernel"`},
		{name: "metadata kernel absolute", entries: replace(MetadataFileName, []byte(`{"bios":"ovmf.fd","kernel":"/boot/vmlinuz","cmdline":""}`)), want: "absolute"},
		{name: "metadata missing fields", entries: replace(MetadataFileName, []byte(`{"initrd":"initramfs.cpio.gz"}`)), want: "missing required field(s): bios, kernel, cmdline"},
		{name: "metadata too big", entries: replace(MetadataFileName, make([]byte, 2<<20)), want: "over the 1048576-byte limit"},
		{name: "truncated gzip", raw: gz[:len(gz)*2/3], want: "truncated"},
		{name: "truncated gzip at end", raw: gz[:len(gz)-4], want: "unexpected EOF"},
		{name: "corrupt gzip", raw: corrupt, want: "gzip"},
		{name: "bad gzip CRC", raw: crcBroken, want: "checksum"},
		{name: "not an archive at all", raw: []byte("{}"), want: "not a tar, gzip or zstd archive"},
		{name: "not an archive tail", raw: append([]byte{0x1f, 0x8b}, make([]byte, 100)...), want: "gzip"},
		{name: "member bomb", entries: good, opts: Options{MaxMemberBytes: 10000}, want: `member "dstack-0.5.5/rootfs.img.parted.verity": 262144 bytes, over the 10000-byte member limit`},
		{name: "total bomb", entries: good, opts: Options{MaxTotalBytes: 100 << 10}, want: "exceeds the 102400-byte total limit"},
		{name: "zeros bomb", raw: compress(t, tarBytes(t, with(tarEntry{name: releaseTop + "/zeros", typ: tar.TypeReg, data: make([]byte, 16<<20)})), "gz"), opts: Options{MaxTotalBytes: 2 << 20}, want: "total limit"},
		{name: "kernel over buffer", entries: entriesFor(files, []string{MetadataFileName}, releaseTop+"/"), opts: Options{MaxBufferBytes: 10000}, want: `kernel "bzImage": 16384 bytes, over the 10000-byte buffer limit`},
		{name: "firmware over buffer, metadata last", entries: good, opts: Options{MaxBufferBytes: 4096}, want: `bios "ovmf.fd" (8192 bytes) is larger than the 4096-byte buffer limit`},
		{name: "too many members", entries: manyMembers(good, maxMembers+1), want: "more than 1000 members"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			data := tc.raw
			if data == nil {
				data = compress(t, tarBytes(t, tc.entries), "gz")
			}
			p := writeFile(t, filepath.Join(tmp, "evil.tar.gz"), data)
			opts := tc.opts
			opts.VerifyChecksums = true
			opts.ExtractDir = filepath.Join(tmp, "out")
			_, err := Open(p, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if testing.Verbose() {
				t.Log(err)
			}
			entries, _ := os.ReadDir(tmp)
			if len(entries) != 1 || entries[0].Name() != "evil.tar.gz" {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("left behind in %s: %v", tmp, names)
			}
		})
	}
}

func manyMembers(base []tarEntry, n int) []tarEntry {
	out := slices.Clone(base)
	for i := len(out); i < n; i++ {
		out = append(out, tarEntry{name: fmt.Sprintf("%s/f%04d", releaseTop, i), typ: tar.TypeReg})
	}
	return out
}

func TestExtractDir(t *testing.T) {
	files := releaseFiles(t, 1<<20)
	tmp := t.TempDir()
	p := writeRelease(t, filepath.Join(tmp, "r.tar.gz"), files, releaseOrder, releaseTop+"/", "gz")
	out := filepath.Join(tmp, "out")
	img, err := Open(p, Options{VerifyChecksums: true, ExtractDir: out})
	if err != nil {
		t.Fatal(err)
	}
	checkSample(t, img, files)
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("extracted %s: %v", name, err)
		}
	}
	again, err := Open(out, Options{VerifyChecksums: true})
	if err != nil {
		t.Fatal(err)
	}
	checkSample(t, again, files)
	// A checksum failure found after the last member removes everything extracted.
	bad := releaseFiles(t, 1<<20)
	bad["bzImage"] = append(slices.Clone(bad["bzImage"][:100]), bad["bzImage"][101:]...)
	pb := writeRelease(t, filepath.Join(tmp, "bad.tar.gz"), bad, releaseOrder, releaseTop+"/", "gz")
	badOut := filepath.Join(tmp, "bad-out")
	if _, err := Open(pb, Options{VerifyChecksums: true, ExtractDir: badOut}); err == nil || !strings.Contains(err.Error(), "bzImage") {
		t.Errorf("bad release: %v", err)
	}
	if _, err := os.Stat(badOut); !os.IsNotExist(err) {
		t.Errorf("extract dir left after failure: %v", err)
	}
	// A non-empty ExtractDir is refused before anything is written.
	if _, err := Open(p, Options{ExtractDir: out}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty extract dir: %v", err)
	}
}

func TestDirectoryPathsStayInside(t *testing.T) {
	files := releaseFiles(t, 1024)
	tmp := t.TempDir()
	outside := writeFile(t, filepath.Join(tmp, "outside-kernel"), files["bzImage"])
	cases := []struct {
		name  string
		setup func(dir string)
		want  string
	}{
		{"dotdot", func(dir string) {
			writeFile(t, filepath.Join(dir, MetadataFileName), []byte(`{"bios":"ovmf.fd","kernel":"../outside-kernel","cmdline":""}`))
		}, `field "kernel": file name "../outside-kernel" leaves the image folder`},
		{"absolute", func(dir string) {
			writeFile(t, filepath.Join(dir, MetadataFileName), []byte(`{"bios":"ovmf.fd","kernel":"`+outside+`","cmdline":""}`))
		}, `field "kernel": file name "` + outside + `" is an absolute path`},
		{"symlink escaping", func(dir string) {
			os.Remove(filepath.Join(dir, "bzImage"))
			if err := os.Symlink(outside, filepath.Join(dir, "bzImage")); err != nil {
				t.Fatal(err)
			}
		}, `field "kernel" ("bzImage"): must be a file inside the image directory`},
		{"relative symlink escaping", func(dir string) {
			os.Remove(filepath.Join(dir, "ovmf.fd"))
			if err := os.Symlink("../outside-kernel", filepath.Join(dir, "ovmf.fd")); err != nil {
				t.Fatal(err)
			}
		}, `field "bios" ("ovmf.fd"): must be a file inside the image directory`},
		{"directory as kernel", func(dir string) {
			os.Remove(filepath.Join(dir, "bzImage"))
			os.Mkdir(filepath.Join(dir, "bzImage"), 0o755)
		}, "not a regular file"},
		{"missing initrd", func(dir string) {
			os.Remove(filepath.Join(dir, "initramfs.cpio.gz"))
		}, `field "initrd" ("initramfs.cpio.gz")`},
		{"listed file escaping", func(dir string) {
			writeFile(t, filepath.Join(dir, sha256SumName), []byte(strings.Repeat("0", 64)+"  ../outside-kernel\n"))
		}, "sha256sum.txt line 1"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeDir(t, filepath.Join(tmp, fmt.Sprint(i)), files)
			tc.setup(dir)
			_, err := Open(dir, Options{VerifyChecksums: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if testing.Verbose() {
				t.Log(err)
			}
		})
	}
	// A symlink that stays inside the directory is fine.
	dir := writeDir(t, filepath.Join(tmp, "ok"), files)
	os.Rename(filepath.Join(dir, "bzImage"), filepath.Join(dir, "bzImage.real"))
	if err := os.Symlink("bzImage.real", filepath.Join(dir, "bzImage")); err != nil {
		t.Fatal(err)
	}
	img, err := Open(dir, Options{VerifyChecksums: true})
	if err != nil {
		t.Fatal(err)
	}
	checkSample(t, img, files)
}

// Releases before 2025-04 listed every file with "./" names, had no digest.txt, and
// were tarred from inside the folder ("tar -czf X.tar.gz ." : no top-level folder).
func TestOldReleaseLayout(t *testing.T) {
	files := releaseFiles(t, 128<<10)
	delete(files, "measurement.tdx.cbor")
	delete(files, releaseRootfs)
	delete(files, digestName)
	files["rootfs.iso"] = bytes.Repeat([]byte{7}, 4096)
	rootfsSum := sha256.Sum256(files["rootfs.iso"])
	files[MetadataFileName] = []byte(fmt.Sprintf(`{"bios":"ovmf.fd","kernel":"bzImage","cmdline":%q,"initrd":"initramfs.cpio.gz","rootfs":"rootfs.iso","rootfs_hash":"%x","git_revision":"abc","shared_ro":true}`, releaseCmdline, rootfsSum))
	var sums bytes.Buffer
	for _, n := range []string{"bzImage", "initramfs.cpio.gz", MetadataFileName, "ovmf.fd", "rootfs.iso"} {
		fmt.Fprintf(&sums, "%x  ./%s\n", sha256.Sum256(files[n]), n)
	}
	files[sha256SumName] = sums.Bytes()
	tmp := t.TempDir()
	dir := writeDir(t, filepath.Join(tmp, "dir"), files)
	tgz := writeRelease(t, filepath.Join(tmp, "old.tar.gz"), files, nil, "./", "gz")
	for _, p := range []string{dir, tgz} {
		img, err := Open(p, Options{VerifyChecksums: true})
		if err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(sums.Bytes())
		if img.OSImageHash != hex.EncodeToString(want[:]) || img.Checksums.Status != StatusOK || img.Checksums.Digest != nil || len(img.Checksums.Files) != 5 {
			t.Errorf("%s: %s %+v", p, img.OSImageHash, img.Checksums)
		}
		if img.Metadata.Version != "" || img.Metadata.IsDev || img.Metadata.RootfsHash != hex.EncodeToString(rootfsSum[:]) {
			t.Errorf("%s: metadata %+v", p, img.Metadata)
		}
	}
}

// A flattened rootfs-free bundle still names its rootfs in metadata.json.
func TestRootfsFreeBundle(t *testing.T) {
	files := releaseFiles(t, 1024)
	delete(files, releaseRootfs)
	p := writeRelease(t, filepath.Join(t.TempDir(), "mr_"+strings.TrimSpace(string(files[digestName]))+".tar.gz"), files, nil, "", "gz")
	img, err := Open(p, Options{VerifyChecksums: true})
	if err != nil {
		t.Fatal(err)
	}
	checkSample(t, img, files)
	in := img.Inspect()
	if !slices.ContainsFunc(in.Notes, func(s string) bool { return strings.Contains(s, "rootfs-free") }) {
		t.Errorf("notes %q", in.Notes)
	}
}

func TestOpenRaw(t *testing.T) {
	img, err := OpenRaw(filepath.Join(sampleDir, sampleFirmware), filepath.Join(sampleDir, sampleKernel), filepath.Join(sampleDir, sampleInitrd), "console=ttyS0")
	if err != nil {
		t.Fatal(err)
	}
	files := releaseFiles(t, 0)
	if !bytes.Equal(img.Firmware, files["ovmf.fd"]) || !bytes.Equal(img.Kernel, files["bzImage"]) || img.Cmdline != "console=ttyS0" {
		t.Error("raw files differ")
	}
	s384 := sha512.Sum384(files["initramfs.cpio.gz"])
	if !bytes.Equal(img.Initrd.SHA384, s384[:]) || img.Checksums.Status != StatusAbsent {
		t.Errorf("initrd %+v checksums %+v", img.Initrd, img.Checksums)
	}
	noInitrd, err := OpenRaw(filepath.Join(sampleDir, sampleFirmware), filepath.Join(sampleDir, sampleKernel), "", "")
	if err != nil || noInitrd.Initrd != nil {
		t.Errorf("no initrd: %v %+v", err, noInitrd)
	}
	if _, err := OpenRaw("/nonexistent/fw", filepath.Join(sampleDir, sampleKernel), "", ""); err == nil {
		t.Error("missing firmware accepted")
	}
}

func TestProgress(t *testing.T) {
	files := releaseFiles(t, 1<<20)
	p := writeRelease(t, filepath.Join(t.TempDir(), "r.tar.gz"), files, releaseOrder, releaseTop+"/", "gz")
	var buf bytes.Buffer
	if _, err := Open(p, Options{Progress: &buf}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "r.tar.gz: ") || !strings.HasSuffix(buf.String(), "(100%) done\n") {
		t.Errorf("progress %q", buf.String())
	}
}

// bootFileRecorder records Options.BootFileRead calls.
type bootFileRecorder struct {
	got map[Role][][]byte
}

func (r *bootFileRecorder) record(role Role, data []byte) {
	if r.got == nil {
		r.got = make(map[Role][][]byte)
	}
	r.got[role] = append(r.got[role], data)
}

// check: the firmware and the kernel were each handed over once, as the very slices the
// Image holds, and nothing else was.
func (r *bootFileRecorder) check(t *testing.T, img *Image) {
	t.Helper()
	same := func(a, b []byte) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }
	if len(r.got) != 2 {
		t.Fatalf("BootFileRead got roles %v, want firmware and kernel", slices.Collect(maps.Keys(r.got)))
	}
	for role, want := range map[Role][]byte{RoleFirmware: img.Firmware, RoleKernel: img.Kernel} {
		if got := r.got[role]; len(got) != 1 || !same(got[0], want) {
			t.Fatalf("BootFileRead(%s): %d calls, or not the Image's bytes", role, len(got))
		}
	}
}
