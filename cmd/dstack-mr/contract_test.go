package main

import (
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
