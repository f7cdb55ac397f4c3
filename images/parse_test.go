package images

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// metadata.json as successive upstream build scripts wrote it (os/yocto/mkimage.sh,
// os/image/assemble.sh).
func TestParseMetadata(t *testing.T) {
	cases := []struct {
		name string
		json string
		want Metadata
		err  string
	}{
		{name: "2024-12 first release", json: `{"bios":"ovmf.fd","kernel":"bzImage","cmdline":"console=ttyS0 init=/init dstack.fde=1 panic=1","initrd":"initramfs.cpio.gz","rootfs":"rootfs.iso","rootfs_hash":"ab12","git_revision":"deadbeef"}`,
			want: Metadata{Bios: "ovmf.fd", Kernel: "bzImage", Cmdline: "console=ttyS0 init=/init dstack.fde=1 panic=1", Initrd: "initramfs.cpio.gz", Rootfs: "rootfs.iso", RootfsHash: "ab12", GitRevision: "deadbeef"}},
		{name: "2025-03 with version and is_dev", json: `{"bios":"ovmf.fd","kernel":"bzImage","cmdline":"c","initrd":"initramfs.cpio.gz","rootfs":"rootfs.iso","rootfs_hash":"ab","version":"0.4.1","git_revision":"g","shared_ro":true,"is_dev":true}`,
			want: Metadata{Bios: "ovmf.fd", Kernel: "bzImage", Cmdline: "c", Initrd: "initramfs.cpio.gz", Rootfs: "rootfs.iso", RootfsHash: "ab", Version: "0.4.1", GitRevision: "g", SharedRO: true, IsDev: true}},
		{name: "2026 with bios-sev and ovmf_variant", json: `{
    "bios": "ovmf.fd",
    "bios-sev": "ovmf-sev.fd",
    "kernel": "bzImage",
    "cmdline": "console=ttyS0",
    "initrd": "initramfs.cpio.gz",
    "rootfs": "rootfs.img.parted.verity",
    "version": "0.6.0",
    "git_revision": "g",
    "shared_ro": true,
    "is_dev": false,
    "ovmf_variant": "pre202505"
}`, want: Metadata{Bios: "ovmf.fd", BiosSEV: "ovmf-sev.fd", Kernel: "bzImage", Cmdline: "console=ttyS0", Initrd: "initramfs.cpio.gz", Rootfs: "rootfs.img.parted.verity", Version: "0.6.0", GitRevision: "g", SharedRO: true, OVMFVariant: "pre202505"}},
		{name: "unknown fields ignored, ./ names cleaned, null optional", json: `{"bios":"./ovmf.fd","kernel":"bzImage","cmdline":"","initrd":null,"hda":"disk.img","future":{"x":[1]},"also":1}`,
			want: Metadata{Bios: "ovmf.fd", Kernel: "bzImage", Hda: "disk.img", Unknown: []string{"also", "future"}}},
		{name: "missing required", json: `{"initrd":"i"}`, err: "missing required field(s): bios, kernel, cmdline"},
		{name: "null required", json: `{"bios":null,"kernel":"k","cmdline":""}`, err: "missing required field(s): bios"},
		{name: "wrong type string", json: `{"bios":1,"kernel":"k","cmdline":""}`, err: `field "bios": want a string, got 1`},
		{name: "wrong type bool", json: `{"bios":"b","kernel":"k","cmdline":"","is_dev":"false"}`, err: `field "is_dev": want true or false`},
		{name: "duplicate key", json: `{"bios":"b","kernel":"k","kernel":"evil","cmdline":""}`, err: `field "kernel" appears more than once`},
		{name: "escaping name", json: `{"bios":"b","kernel":"a/../../k","cmdline":""}`, err: `field "kernel": file name "a/../../k" leaves the image folder`},
		{name: "absolute name", json: `{"bios":"/b","kernel":"k","cmdline":""}`, err: `field "bios": file name "/b" is an absolute path`},
		{name: "empty name", json: `{"bios":"","kernel":"k","cmdline":""}`, err: `field "bios": empty file name`},
		{name: "not an object", json: `[1]`, err: "not a JSON object"},
		{name: "trailing data", json: `{"bios":"b","kernel":"k","cmdline":""} {}`, err: "trailing data"},
		{name: "truncated", json: `{"bios":"b",`, err: "not JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMetadata([]byte(tc.json))
			if !wantErr(t, err, tc.err) {
				return
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseChecksums(t *testing.T) {
	h := strings.Repeat("ab", 32)
	H := strings.ToUpper(h)
	cases := []struct {
		name string
		in   string
		want []ChecksumLine
		err  string
	}{
		{name: "sha256sum text mode", in: h + "  ovmf.fd\n" + h + "  bzImage\n", want: []ChecksumLine{{h, "ovmf.fd"}, {h, "bzImage"}}},
		{name: "binary mode, ./ names, CRLF, blank lines, upper case", in: H + " *./rootfs.iso\r\n\n" + h + "  ./md5sum.txt\n", want: []ChecksumLine{{h, "rootfs.iso"}, {h, "md5sum.txt"}}},
		{name: "escaped name", in: `\` + h + `  a\\b` + "\n", err: "backslash"},
		{name: "short digest", in: "abcd  x\n", err: "line 1: not"},
		{name: "not hex", in: strings.Repeat("zz", 32) + "  x\n", err: "line 1: digest is not hex"},
		{name: "one space", in: h + " x\n", err: "line 1: not"},
		{name: "escape", in: h + "  ../x\n", err: "line 1: file name \"../x\" leaves"},
		{name: "lists itself", in: h + "  ./sha256sum.txt\n", err: "line 1: lists itself"},
		{name: "duplicate", in: h + "  x\n" + h + "  ./x\n", err: `line 2: "x" already listed on line 1`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseChecksums([]byte(tc.in))
			if !wantErr(t, err, tc.err) {
				return
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v want %v", got, tc.want)
			}
		})
	}
}

func TestParseCmdlinePins(t *testing.T) {
	size := func(n int64) *int64 { return &n }
	cases := []struct {
		cmdline string
		want    CmdlinePins
		notes   int
	}{
		{"console=ttyS0 dstack.rootfs_hash=CC8D dstack.rootfs_size=1000000", CmdlinePins{RootfsHash: "cc8d", RootfsSize: size(1000000)}, 0},
		{"console=ttyS0 init=/init", CmdlinePins{}, 0},
		{`a="x dstack.rootfs_hash=ff" dstack.rootfs_hash=aa`, CmdlinePins{RootfsHash: "aa"}, 0},
		{"dstack.rootfs_hash=aa dstack.rootfs_hash=bb", CmdlinePins{RootfsHash: "bb"}, 1},
		{"dstack.rootfs_size=-1 dstack.rootfs_hash=xyz", CmdlinePins{RootfsHash: "xyz"}, 2},
	}
	for _, tc := range cases {
		got, notes := ParseCmdlinePins(tc.cmdline)
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(tc.want)
		if string(g) != string(w) || len(notes) != tc.notes {
			t.Errorf("%q: got %s %q, want %s with %d notes", tc.cmdline, g, notes, w, tc.notes)
		}
	}
}

// The initramfs listing is checked against testdata/images/initrd-small.listing.txt,
// written by an independent Python newc reader (see testdata/README.md).
func TestInspectSample(t *testing.T) {
	golden, err := os.ReadFile("../testdata/images/initrd-small.listing.txt")
	if err != nil {
		t.Fatal(err)
	}
	files := releaseFiles(t, 1<<20)
	tmp := t.TempDir()
	dir := writeDir(t, filepath.Join(tmp, "dir"), files)
	tgz := writeRelease(t, filepath.Join(tmp, "r.tar.gz"), files, releaseOrder, releaseTop+"/", "gz")
	for _, p := range []string{dir, tgz, filepath.Join(sampleDir, MetadataFileName)} {
		in, err := Inspect(p, Options{VerifyChecksums: true})
		if err != nil {
			t.Fatal(err)
		}
		if in.Initramfs == nil || in.Initramfs.Error != "" || in.Initramfs.Compression != "gzip" {
			t.Fatalf("%s: initramfs %+v", p, in.Initramfs)
		}
		var b strings.Builder
		for _, e := range in.Initramfs.Entries {
			fmt.Fprintf(&b, "%s %s %d %s", e.Type, e.Mode, e.Size, e.Name)
			if e.Linkname != "" {
				fmt.Fprintf(&b, " -> %s", e.Linkname)
			}
			b.WriteString("\n")
		}
		if b.String() != string(golden) {
			t.Errorf("%s: initramfs listing differs from the golden listing", p)
		}
		if p == filepath.Join(sampleDir, MetadataFileName) {
			continue
		}
		if in.Pins.RootfsHash != "cc8dd83ee7399610b44d9780305bf477d6dd1da8590732689f11442d7969ec1a" || in.Pins.RootfsSize == nil || *in.Pins.RootfsSize != 1000000 {
			t.Errorf("%s: pins %+v", p, in.Pins)
		}
		if _, err := json.Marshal(in); err != nil {
			t.Error(err)
		}
		if in.Version != "0.5.5" || in.OSImageHash != strings.TrimSpace(string(files[digestName])) || in.Checksums.Status != StatusOK {
			t.Errorf("%s: %s %s %+v", p, in.Version, in.OSImageHash, in.Checksums)
		}
	}
}

func TestListInitramfsConcatenatedAndBroken(t *testing.T) {
	raw := gunzip(t, readSample(t, sampleInitrd))
	// Two archives back to back, the second after 512 bytes of NUL padding, and an
	// uncompressed copy: the kernel accepts both.
	double := append(append(append([]byte{}, raw...), make([]byte, 512)...), raw...)
	got := ListInitramfs(bytes.NewReader(double))
	one := ListInitramfs(bytes.NewReader(raw))
	if got.Error != "" || one.Error != "" || one.Compression != "none" || got.Count != 2*one.Count || one.Count != 300 {
		t.Errorf("double %d %q, single %d %q", got.Count, got.Error, one.Count, one.Error)
	}
	if tr := ListInitramfs(bytes.NewReader(raw[:len(raw)/2])); !strings.Contains(tr.Error, "truncated") {
		t.Errorf("truncated: %q", tr.Error)
	}
	if bad := ListInitramfs(strings.NewReader("hello")); bad.Error == "" {
		t.Error("garbage listed")
	}
}

func gunzip(t testing.TB, b []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := out.ReadFrom(bufio.NewReader(zr)); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// wantErr checks err against a table case's expected error substring ("" for none) and
// reports whether the case goes on to check its result.
func wantErr(t *testing.T, err error, want string) bool {
	t.Helper()
	if want != "" {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want %q", err, want)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}
