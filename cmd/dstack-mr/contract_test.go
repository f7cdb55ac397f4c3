package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Usage mistakes print nothing on stdout, name the way to help on stderr, and exit 1.
func TestUsageErrorsKeepStdoutClean(t *testing.T) {
	for _, args := range [][]string{
		{"measure", "--bogus"},
		{"acpi", "--cpu"},
		{"quote", "verify", "--nope", "x"},
		{"image", "measurement", "--format-version", "x", "y"},
		{"measure", "--cpu", "1,,2", "../../testdata/sample-image"},
		{"measure", "--cpu", "1,2,1", "../../testdata/sample-image"},
		{"measure", "--memory", "2G,2048M", "../../testdata/sample-image"},
	} {
		code, stdout, stderr := runCLI(args...)
		if code != 1 || stdout != "" || stderr == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
		if strings.Count(stderr, "\n") > 2 {
			t.Errorf("%v: stderr is more than the error: %q", args, stderr)
		}
	}
}

// The original Go dstack-mr's command lines, as dstack's attestation guide prints them, give the
// same registers as the measure command they stand for, with a note naming it.
func TestLegacyCommandLines(t *testing.T) {
	const img = "../../testdata/sample-image/metadata.json"
	for _, tc := range []struct{ legacy, modern []string }{
		{[]string{"-cpu", "4", "-ram", "4096", "-metadata", img}, []string{"measure", "--cpu", "4", "--memory", "4G", img}},
		{[]string{"measure", "-cpu", "8", "-memory", "8G", "-json", "-metadata", img}, []string{"measure", "--cpu", "8", "--memory", "8G", "--json", img}},
	} {
		code, stdout, stderr := runCLI(tc.legacy...)
		if code != 0 || !strings.Contains(stderr, "the same as: dstack-mr measure") {
			t.Fatalf("%v: exit %d: %s", tc.legacy, code, stderr)
		}
		_, want, _ := runCLI(tc.modern...)
		if stdout != want {
			t.Errorf("%v: output differs from %v", tc.legacy, tc.modern)
		}
	}
}

// Every command's JSON names the tool that produced it.
func TestToolVersionInEveryJSON(t *testing.T) {
	for _, args := range [][]string{
		{"measure", "../../testdata/sample-image", "--json"},
		{"acpi", "--json"},
		{"image", "inspect", "../../testdata/sample-image", "--json"},
		{"firmware", "inspect", "../../testdata/sample-image/ovmf-debian-2025.02-8+deb13u1.fd", "--json"},
	} {
		code, stdout, stderr := runCLI(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var v struct {
			ToolVersion string `json:"tool_version"`
		}
		if err := json.Unmarshal([]byte(stdout), &v); err != nil || v.ToolVersion == "" {
			t.Errorf("%v: tool_version %q (%v)", args, v.ToolVersion, err)
		}
	}
	if code, stdout, _ := runCLI("--version"); code != 0 || !strings.Contains(stdout, "dstack-mr version") {
		t.Errorf("--version: exit %d, %q", code, stdout)
	}
}

// Raw inputs are checked before they are read: a device, a directory or an oversized file is
// refused at once, naming the flag.
func TestRawInputBounds(t *testing.T) {
	const fw = "../../testdata/sample-image/ovmf-debian-2025.02-8+deb13u1.fd"
	big := filepath.Join(t.TempDir(), "big.fd")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, maxFirmwareBytes+1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--firmware", fw, "--kernel", "/dev/zero"}, "--kernel /dev/zero: not a regular file (a character device)"},
		{[]string{"--firmware", big, "--kernel", fw}, "over the 64 MiB limit"},
		{[]string{"--firmware", fw, "--kernel", "../../testdata/sample-image/bzImage-6.1.0-56-amd64", "--initrd", "/dev/zero"}, "--initrd /dev/zero: not a regular file"},
		{[]string{"--firmware", "../../testdata", "--kernel", fw}, "a directory"},
	} {
		code, stdout, stderr := runCLI(append([]string{"measure"}, tc.args...)...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, stdout, stderr)
		}
	}
}

// Checksums are complete or refused: an image without sha256sum.txt, or whose sha256sum.txt
// leaves out a measured file, is refused naming it, unless --no-verify-checksums, which the JSON
// then records.
func TestChecksumPolicy(t *testing.T) {
	src := "../../testdata/sample-image"
	copyImage := func(t *testing.T, skip ...string) string {
		dir := t.TempDir()
		entries, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if e.Name() == "sha256sum.txt" {
				var kept []string
				for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
					drop := false
					for _, s := range skip {
						drop = drop || strings.HasSuffix(line, "  "+s)
					}
					if !drop {
						kept = append(kept, line)
					}
				}
				b = []byte(strings.Join(kept, "\n") + "\n")
				if len(skip) > 0 && skip[0] == "sha256sum.txt" {
					continue
				}
			}
			if e.Name() == "digest.txt" && len(skip) > 0 {
				continue // it no longer matches; digest.txt is optional
			}
			if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	type res struct {
		OSImageHash       string `json:"os_image_hash"`
		ChecksumsVerified *bool  `json:"checksums_verified"`
	}
	code, stdout, stderr := runCLI("measure", src, "--json")
	var ok res
	if code != 0 || json.Unmarshal([]byte(stdout), &ok) != nil || ok.ChecksumsVerified == nil || !*ok.ChecksumsVerified || ok.OSImageHash == "" {
		t.Fatalf("bundled sample: exit %d %s %s", code, stdout, stderr)
	}
	for _, tc := range []struct {
		skip []string
		want string
	}{
		{[]string{"sha256sum.txt"}, "no sha256sum.txt"},
		{[]string{"initrd-small.cpio.gz"}, "does not list initrd-small.cpio.gz"},
		{[]string{"metadata.json"}, "does not list metadata.json"},
	} {
		dir := copyImage(t, tc.skip...)
		code, stdout, stderr := runCLI("measure", dir, "--json")
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q", tc.skip, code, stderr)
		}
		code, stdout, _ = runCLI("measure", dir, "--json", "--no-verify-checksums")
		var r res
		if code != 0 || json.Unmarshal([]byte(stdout), &r) != nil || r.ChecksumsVerified == nil || *r.ChecksumsVerified {
			t.Errorf("%v with --no-verify-checksums: exit %d, checksums_verified %v", tc.skip, code, r.ChecksumsVerified)
		}
	}
}

// IMAGE "-" reads a release tarball from stdin in one pass and measures exactly what the
// same release on disk measures; a device where an image is expected is named as such.
func TestImageFromStdin(t *testing.T) {
	tgz := filepath.Join(t.TempDir(), "release.tar.gz")
	if err := writeTarGz(tgz, "../../testdata/sample-image"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out, errb bytes.Buffer
	code := runWithInput([]string{"dstack-mr", "measure", "-", "--json"}, f, &out, &errb)
	_, want, _ := runCLI("measure", tgz, "--json")
	var a, b map[string]any
	json.Unmarshal(out.Bytes(), &a)
	json.Unmarshal([]byte(want), &b)
	if code != 0 || a["rtmr0"] != b["rtmr0"] || a["rtmr1"] != b["rtmr1"] || a["os_image_hash"] != b["os_image_hash"] || a["os_image_hash"] == nil {
		t.Fatalf("stdin: exit %d %s; %v vs %v", code, errb.String(), a["os_image_hash"], b["os_image_hash"])
	}
	if code, stdout, stderr := runCLI("measure", "/dev/zero"); code != 1 || stdout != "" || !strings.Contains(stderr, "a character device") {
		t.Errorf("/dev/zero: exit %d, stderr %q", code, stderr)
	}
}

func writeTarGz(path, dir string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	gz := gzip.NewWriter(out)
	tw := tar.NewWriter(gz)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: "release/" + e.Name(), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// Shape errors speak in the terms the user typed: the flag, a range, no Go field names, one
// prefix for a single shape.
func TestShapeErrorsInFlagTerms(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"measure", "../../testdata/sample-image", "--num-gpus", "1000"}, "1000 GPUs (--num-gpus): want 0 to 62"},
		{[]string{"measure", "../../testdata/sample-image", "--cpu", "5000"}, "vCPU count 5000 (--cpu): QEMU 9.1.0's q35 machine accepts 1 to 4096"},
		{[]string{"acpi", "--memory", "2T"}, "memory 2 TiB (--memory): want 1 MiB to 1 TiB"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "MachineConfig") || strings.Contains(stderr, "cpu 1, memory") {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, stderr)
		}
	}
}

// The small edges: acpi offers only the flags that reach the tables, verify's shape flags say
// their defaults are vm_config's, --extract refuses what it cannot extract, acpi --out never
// overwrites, image inspect lists initramfs members only on request, multi-shape output keeps the
// machine line and os_image_hash.
func TestCLIEdges(t *testing.T) {
	_, stdout, _ := runCLI("acpi", "--help")
	for _, f := range []string{"--no-kernel-patch", "--qemu-build", "--two-pass-add-pages", "comma-separated"} {
		if strings.Contains(stdout, f) {
			t.Errorf("acpi --help offers %s", f)
		}
	}
	_, help, _ := runCLI("verify", "--help")
	if !strings.Contains(help, `(default: vm_config's cpu_count)`) || !strings.Contains(help, `(default: vm_config's num_gpus)`) {
		t.Error("verify --help does not say its shape defaults are vm_config's")
	}
	// Flags vm_config has no key for keep their own defaults; --cpu and --memory take one value.
	for _, line := range strings.Split(help, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "--smm", "--root-verity", "--no-kernel-patch", "--assume-newest-acpi-profile", "--qemu-build":
			if strings.Contains(line, "vm_config's") {
				t.Errorf("verify --help: %s claims a vm_config default: %s", f[0], line)
			}
		case "--cpu", "--memory":
			if strings.Contains(line, "list") {
				t.Errorf("verify --help: %s offers a list: %s", f[0], line)
			}
		}
	}
	if code, _, stderr := runCLI("measure", "../../testdata/sample-image", "--extract", t.TempDir()); code != 1 || !strings.Contains(stderr, "already an unpacked image") {
		t.Errorf("--extract on a directory: exit %d: %s", code, stderr)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("x"), 0o644)
	if code, _, stderr := runCLI("acpi", "--out", dir); code != 1 || !strings.Contains(stderr, "not empty") {
		t.Errorf("acpi --out into a non-empty directory: exit %d: %s", code, stderr)
	}
	_, short, _ := runCLI("image", "inspect", "../../testdata/sample-image")
	_, long, _ := runCLI("image", "inspect", "../../testdata/sample-image", "--members")
	if !strings.Contains(short, "--members") || len(long) <= len(short) {
		t.Errorf("image inspect: default %d bytes, --members %d bytes", len(short), len(long))
	}
	_, multi, _ := runCLI("measure", "../../testdata/sample-image", "--cpu", "1,2")
	if strings.Count(multi, "machine: qemu") != 2 || !strings.Contains(multi, "os_image_hash: ") {
		t.Errorf("multi-shape output: %s", multi)
	}
}

// --log-level works after the subcommand too, and debug says what was read and why each value
// is what it is, on stderr only.
func TestDebugLog(t *testing.T) {
	_, plain, _ := runCLI("measure", "../../testdata/sample-image")
	code, stdout, stderr := runCLI("measure", "../../testdata/sample-image", "--log-level", "debug")
	if code != 0 || stdout != plain {
		t.Fatalf("exit %d; stdout changed by --log-level", code)
	}
	for _, want := range []string{"read firmware ovmf-debian-2025.02-8+deb13u1.fd: 4194304 bytes, sha256 ", "machine: qemu 9.1.0 (upstream build, ACPI profile 9.1.0)",
		"RTMR1 kernel", "setup header patched by QEMU (QEMU < 10.0)", "RTMR0 td-hob", "firmware traits: CC measurement true"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("debug log lacks %q", want)
		}
	}
}

func TestBareMemoryNumberHint(t *testing.T) {
	code, stdout, stderr := runCLI("measure", "../../testdata/sample-image", "-m", "4096")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "did you mean 4096M?") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCLI("measure", "../../testdata/sample-image", "-m", "4294967296"); code != 0 {
		t.Errorf("4 GiB in bytes: exit %d: %s", code, stderr)
	}
}
