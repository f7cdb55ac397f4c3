package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/images"
	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/pe"
	"github.com/dstack-mr/dstack-mr/verify"
)

func TestImageMeasurementCommand(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"3", "4"} {
		out := filepath.Join(dir, "m"+v+".cbor")
		code, stdout, stderr := runCLI("image", "measurement", "../../testdata/sample-image", "--out", out, "--format-version", v, "--json")
		if code != 0 {
			t.Fatalf("v%s: exit %d: %s", v, code, stderr)
		}
		var res struct {
			SHA256      string `json:"sha256"`
			Line        string `json:"sha256sum_line"`
			ToolVersion string `json:"tool_version"`
		}
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if res.SHA256 != hex.EncodeToString(sum[:]) || res.Line != res.SHA256+"  measurement.tdx.cbor" || res.ToolVersion == "" {
			t.Errorf("v%s: %+v", v, res)
		}
		doc, err := verify.DecodeLite(b)
		if err != nil || doc.Version != map[string]uint32{"3": 3, "4": 4}[v] {
			t.Fatalf("v%s: written document: %v %+v", v, err, doc)
		}
		if (doc.Image.Cmdline != nil) != (v == "4") {
			t.Errorf("v%s: cmdline %v / cmdline_sha384 %x", v, doc.Image.Cmdline, []byte(doc.Image.CmdlineSHA384))
		}
		// An existing --out is never overwritten.
		if code, _, stderr := runCLI("image", "measurement", "../../testdata/sample-image", "--out", out); code != 1 || !strings.Contains(stderr, "exists") {
			t.Errorf("existing --out: exit %d: %s", code, stderr)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--format-version", "5"}, "want 3 or 4"},
		{nil, "out"},
	} {
		args := append([]string{"image", "measurement", "../../testdata/sample-image"}, tc.args...)
		if len(tc.args) > 0 {
			args = append(args, "--out", filepath.Join(dir, "x.cbor"))
		}
		code, stdout, stderr := runCLI(args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, stdout, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.cbor")); !os.IsNotExist(err) {
		t.Error("a refused run left a file")
	}
}

// metadata.json's firmware generation and normalized-kernel flag: stable202505 is refused by
// name; kernel_header_normalized measures the kernel as shipped on every QEMU version.
func TestMetadataFirmwareGenerationAndNormalizedKernel(t *testing.T) {
	dir := copySample(t, nil, "ovmf-debian-2025.02-8+deb13u1.fd", "bzImage-6.1.0-56-amd64", "initrd-small.cpio.gz")
	meta, err := os.ReadFile("../../testdata/sample-image/metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	write := func(extra string) string {
		m := strings.Replace(string(meta), "{", "{"+extra+",", 1)
		if err := os.WriteFile(filepath.Join(dir, "metadata.json"), []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	code, stdout, stderr := runCLI("measure", write(`"ovmf_variant": "stable202505"`), "--no-verify-checksums")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "stable202505") || !strings.Contains(stderr, "17 events") {
		t.Errorf("stable202505: exit %d, stderr %q", code, stderr)
	}
	rtmr1 := func(args ...string) string {
		code, stdout, stderr := runCLI(append([]string{"measure", "--json", "--no-verify-checksums"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var r struct {
			RTMR1 string `json:"rtmr1"`
		}
		json.Unmarshal([]byte(stdout), &r)
		return r.RTMR1
	}
	img := write(`"kernel_header_normalized": true, "sealed_env": {"keys": ["A"]}`)
	normalized := []string{rtmr1(img, "--qemu-version", "8.2.0"), rtmr1(img, "--qemu-version", "9.2.1", "-m", "3G"), rtmr1(img, "--qemu-version", "10.2.1")}
	if normalized[0] != normalized[1] || normalized[1] != normalized[2] {
		t.Errorf("normalized kernel: RTMR1 differs across QEMU versions and memory sizes: %v", normalized)
	}
	plain := write(`"kernel_header_normalized": false`)
	if rtmr1(plain, "--qemu-version", "10.2.1") != normalized[0] || rtmr1(plain, "--qemu-version", "8.2.0") == normalized[0] {
		t.Error("normalized RTMR1 should equal the unpatched one and differ from the patched one")
	}
	if code, _, stderr := runCLI("measure", plain, "--kernel-header-normalized", "--no-verify-checksums"); code != 1 || !strings.Contains(stderr, "contradicts") {
		t.Errorf("contradicting flag: exit %d: %s", code, stderr)
	}
}

// On a QEMU where upstream and dstack's fork load the kernel differently, measure answers for
// the chosen build and names the other build's RTMR1 in its warnings.
func TestMeasureQEMUBuildWarning(t *testing.T) {
	type res struct {
		RTMR1    string   `json:"rtmr1"`
		Warnings []string `json:"warnings"`
		Machine  struct {
			QEMUBuild string `json:"qemu_build"`
			Patched   bool   `json:"kernel_setup_header_patched"`
		} `json:"machine"`
	}
	run := func(build string) res {
		code, stdout, stderr := runCLI("measure", "../../testdata/sample-image", "--qemu-version", "10.2.1", "--qemu-build", build, "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", build, code, stderr)
		}
		var r res
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	up, fork := run("upstream"), run("dstack-fork")
	if up.Machine.Patched || !fork.Machine.Patched || up.Machine.QEMUBuild != "upstream" || fork.Machine.QEMUBuild != "dstack-fork" {
		t.Fatalf("upstream %+v, fork %+v", up.Machine, fork.Machine)
	}
	if len(up.Warnings) != 1 || !strings.Contains(up.Warnings[0], fork.RTMR1) || len(fork.Warnings) != 1 || !strings.Contains(fork.Warnings[0], up.RTMR1) {
		t.Errorf("warnings do not name the other build's RTMR1: %q / %q", up.Warnings, fork.Warnings)
	}
	if code, _, stderr := runCLI("measure", "../../testdata/sample-image", "--qemu-build", "qemu-kvm"); code != 1 || !strings.Contains(stderr, "upstream or dstack-fork") {
		t.Errorf("bad build: exit %d: %s", code, stderr)
	}
}

// A kernel shipped with the canonical header (as normalized images ship it) is reported so by
// image inspect, and the sample's plain kernel is not.
func TestImageInspectKernelHeader(t *testing.T) {
	dir := copySample(t, func(name string, b []byte) []byte {
		if name == "metadata.json" {
			return []byte(strings.Replace(string(b), "{", `{"kernel_header_normalized": true,`, 1))
		}
		return b
	}, "ovmf-debian-2025.02-8+deb13u1.fd", "initrd-small.cpio.gz", "metadata.json")
	kernel, err := os.ReadFile("../../testdata/sample-image/bzImage-6.1.0-56-amd64")
	if err != nil {
		t.Fatal(err)
	}
	img, err := images.Open("../../testdata/sample-image/metadata.json", images.Options{})
	if err != nil {
		t.Fatal(err)
	}
	canonical, err := pe.PatchSetupHeader(kernel, mr.CanonicalHeaderParams(img.Cmdline, true, img.Initrd.Size))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "bzImage-6.1.0-56-amd64"), canonical, 0o644)
	for _, tc := range []struct {
		dir       string
		canonical bool
	}{{dir, true}, {"../../testdata/sample-image", false}} {
		code, stdout, stderr := runCLI("image", "inspect", tc.dir, "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var r struct {
			KernelHeader struct {
				Canonical bool `json:"canonical"`
			} `json:"kernel_header"`
		}
		json.Unmarshal([]byte(stdout), &r)
		if r.KernelHeader.Canonical != tc.canonical {
			t.Errorf("%s: canonical %v", tc.dir, r.KernelHeader.Canonical)
		}
	}
}

// copySample copies the named files of the bundled sample image into a new directory, each
// through edit when given.
func copySample(t *testing.T, edit func(name string, b []byte) []byte, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range names {
		b, err := os.ReadFile(filepath.Join("../../testdata/sample-image", f))
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			b = edit(f, b)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
