package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

const sampleDir = "../../testdata/sample-image"

type vector = testvectors.Vector

// sampleVectors are the end-to-end vectors whose inputs are all in the bundled sample image.
func sampleVectors(t *testing.T) []vector {
	t.Helper()
	all, err := testvectors.Load("../../testdata/vectors/expected-kv.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var out []vector
	for _, v := range all {
		if _, err := os.Stat(filepath.Join(sampleDir, v.Firmware)); err == nil {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		t.Fatal("no vector uses the sample image's firmware")
	}
	return out
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(append([]string{"dstack-mr"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func vectorArgs(v vector) []string {
	return []string{"measure",
		"--firmware", filepath.Join(sampleDir, v.Firmware),
		"--kernel", filepath.Join(sampleDir, v.Kernel),
		"--initrd", filepath.Join(sampleDir, v.Initrd),
		"--cmdline", v.Cmdline,
		"--qemu-version", v.Flags.QEMUVersion,
		"--root-verity=" + map[bool]string{true: "true", false: "false"}[v.Flags.RootVerity],
	}
}

// TestMeasureVectorsThroughCLI runs the sample firmware's vectors through the command line,
// all memory sizes of one CPU count in one invocation (the list form).
func TestMeasureVectorsThroughCLI(t *testing.T) {
	byCPU := map[int][]vector{}
	for _, v := range sampleVectors(t) {
		byCPU[v.CPU] = append(byCPU[v.CPU], v)
	}
	for cpu, vs := range byCPU {
		var mems []string
		for _, v := range vs {
			mems = append(mems, v.Memory)
		}
		args := append(vectorArgs(vs[0]), "--cpu", itoa(cpu), "--memory", strings.Join(mems, ","), "--json")
		code, stdout, stderr := runCLI(args...)
		if code != 0 {
			t.Fatalf("cpu %d: exit %d: %s", cpu, code, stderr)
		}
		var got []measureResult
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("cpu %d: output is not a JSON array: %v", cpu, err)
		}
		if len(got) != len(vs) {
			t.Fatalf("cpu %d: %d results for %d shapes", cpu, len(got), len(vs))
		}
		for i, v := range vs {
			g := got[i]
			if g.Machine.CPUCount != cpu || g.Machine.MemorySize != v.MemoryBytes {
				t.Errorf("result %d is for cpu %d memory %d, want cpu %d memory %d", i, g.Machine.CPUCount, g.Machine.MemorySize, cpu, v.MemoryBytes)
			}
			for name, pair := range map[string][2]string{"mrtd": {g.MRTD, v.MRTD}, "rtmr0": {g.RTMR0, v.RTMR0}, "rtmr1": {g.RTMR1, v.RTMR1}, "rtmr2": {g.RTMR2, v.RTMR2}} {
				if pair[0] != pair[1] {
					t.Errorf("cpu %d memory %s: %s = %s, want %s", cpu, v.Memory, name, pair[0], pair[1])
				}
			}
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestSingleShapeJSONIsAnObject(t *testing.T) {
	v := sampleVectors(t)[0]
	code, stdout, stderr := runCLI(append(vectorArgs(v), "--cpu", itoa(v.CPU), "--memory", v.Memory, "--json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(stdout), &obj); err != nil {
		t.Fatalf("not a JSON object: %v", err)
	}
	for _, k := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2", "event_log", "inputs"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("missing %q", k)
		}
	}
	var labels []string
	for _, e := range obj["event_log"].([]any) {
		labels = append(labels, e.(map[string]any)["label"].(string))
	}
	want := "td-hob cfv secure-boot pk kek db dbx separator acpi-loader acpi-rsdp acpi-tables boot-order boot0000"
	if got := strings.Join(labels[:13], " "); got != want {
		t.Errorf("RTMR0 labels %q, want %q", got, want)
	}
}

// TestBadInputFails: every bad input exits non-zero, names the culprit on stderr and prints
// nothing on stdout.
func TestBadInputFails(t *testing.T) {
	dir := t.TempDir()
	fw := filepath.Join(sampleDir, "ovmf-debian-2025.02-8+deb13u1.fd")
	kernel := filepath.Join(sampleDir, "bzImage-6.1.0-56-amd64")
	fwData, err := os.ReadFile(fw)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.fd")
	os.WriteFile(truncated, fwData[:len(fwData)/2], 0o644)
	notPE := filepath.Join(dir, "notpe")
	os.WriteFile(notPE, bytes.Repeat([]byte{0x5a}, 64<<10), 0o644)
	raw := func(extra ...string) []string {
		return append([]string{"measure", "--firmware", fw, "--kernel", kernel, "--cmdline", "console=ttyS0"}, extra...)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cpu zero", raw("--cpu", "0"), "--cpu"},
		{"cpu above QEMU limit", raw("--cpu", "5000"), "CPU"},
		{"memory zero", raw("--memory", "0"), "--memory"},
		{"memory garbage", raw("--memory", "lots"), "--memory"},
		{"qemu too old", raw("--qemu-version", "7.2.0"), "--qemu-version"},
		{"missing firmware", []string{"measure", "--firmware", filepath.Join(dir, "nope.fd"), "--kernel", kernel}, "nope.fd"},
		{"truncated firmware", []string{"measure", "--firmware", truncated, "--kernel", kernel}, ""},
		{"kernel not PE", []string{"measure", "--firmware", fw, "--kernel", notPE}, ""},
		{"nothing to measure", []string{"measure"}, "nothing to measure"},
		{"unknown share mode", raw("--host-share-mode", "nfs"), "--host-share-mode"},
		{"nvswitch without gpu", raw("--num-nvswitches", "2"), "NVSwitch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(tc.args...)
			if code == 0 {
				t.Fatalf("exit 0, want failure; stdout %q", stdout)
			}
			if stdout != "" {
				t.Errorf("stdout not empty on error: %q", stdout)
			}
			if !strings.Contains(stderr, "error") || (tc.want != "" && !strings.Contains(stderr, tc.want)) {
				t.Errorf("stderr %q does not name %q", stderr, tc.want)
			}
		})
	}
}

func TestFormatToolVersion(t *testing.T) {
	const rev = "9e913fc18b3092e6e5d614d021f71cd24c8ed407"
	pseudo := "v0.0.0-20261130171819-9e913fc18b30"
	for _, tc := range []struct {
		name, ldflags, module, rev string
		modified                   bool
		want                       string
	}{
		{"no build info", "dev", "", "", false, "dev"},
		{"go run", "dev", "(devel)", rev, false, "dev (" + rev + ")"},
		{"go run, dirty", "dev", "(devel)", rev, true, "dev (" + rev + "+dirty)"},
		{"pseudo-version names the revision", "dev", pseudo, rev, false, pseudo},
		{"dirty pseudo-version stamped by Go", "dev", pseudo + "+dirty", rev, true, pseudo + "+dirty"},
		{"dirty pseudo-version not stamped", "dev", pseudo, rev, true, pseudo + "+dirty"},
		{"release via -ldflags", "v1.2.0", pseudo, rev, false, "v1.2.0 (" + rev + ")"},
		{"tagged module", "dev", "v1.2.0", rev, false, "v1.2.0 (" + rev + ")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := formatToolVersion(tc.ldflags, tc.module, tc.rev, tc.modified); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
