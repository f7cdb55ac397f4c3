package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// snpImage writes a unified image: the sample image plus Debian's AmdSev OVMF as bios-sev, with a
// complete sha256sum.txt (listSEV false leaves bios-sev out of it).
func snpImage(t *testing.T, listSEV bool) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"bzImage-6.1.0-56-amd64", "initrd-small.cpio.gz", "ovmf-debian-2025.02-8+deb13u1.fd"} {
		b, err := os.ReadFile(filepath.Join(sampleDir, n))
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(dir, n), b)
	}
	sev, err := testvectors.ReadGzip("../../testdata/vectors/ovmf-amdsev-debian-2026.08+ds-2.fd.gz")
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "ovmf-sev.fd"), sev)
	var meta map[string]any
	b, err := os.ReadFile(filepath.Join(sampleDir, "metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	meta["bios-sev"] = "ovmf-sev.fd"
	mb, _ := json.Marshal(meta)
	writeTestFile(t, filepath.Join(dir, "metadata.json"), mb)
	listed := []string{"bzImage-6.1.0-56-amd64", "initrd-small.cpio.gz", "ovmf-debian-2025.02-8+deb13u1.fd", "metadata.json"}
	if listSEV {
		listed = append(listed, "ovmf-sev.fd")
	}
	var sums strings.Builder
	for _, n := range listed {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(b), n)
	}
	writeTestFile(t, filepath.Join(dir, "sha256sum.txt"), []byte(sums.String()))
	return dir
}

func writeTestFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type snpOut struct {
	Measurement    string `json:"measurement"`
	CPU, VCPUs     int
	VCPUType       string `json:"vcpu_type"`
	DocumentSHA256 string `json:"document_sha256"`
	OSImageHash    string `json:"os_image_hash"`
}

func measureSNPJSON(t *testing.T, args ...string) []snpOut {
	t.Helper()
	code, stdout, stderr := runCLI(append([]string{"measure", "--platform", "sev-snp", "--json-lines"}, args...)...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, stderr)
	}
	var out []snpOut
	dec := json.NewDecoder(strings.NewReader(stdout))
	for dec.More() {
		var o snpOut
		if err := dec.Decode(&o); err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

// The unified image measures to what virtee's sev-snp-measure (commit 8f2b337e) computes from
// the same files: `--mode snp --ovmf ovmf-sev.fd --kernel bzImage-6.1.0-56-amd64 --initrd
// initrd-small.cpio.gz --append "<the sample's cmdline>" --guest-features 0x1` with
// `--vcpus 2 --vcpu-type EPYC-v4` and `--vcpus 1 --vcpu-type EPYC-Milan`. The written document,
// read back, and the raw files give the same values; so does a hugepages VM whose vCPUs
// dstack-vmm rounds up to that count.
func TestMeasureSNP(t *testing.T) {
	img := snpImage(t, true)
	want := map[string]string{
		"2 EPYC-v4":    "5a0d5682884bf512b256c1b0a80cc8fa6a8972edb931bb23969ee6e87addd09c2c15b93c6b29c96326e879dbc35aa9f4",
		"1 EPYC-Milan": "ecff47c1b853ac6ea27a5a904c9d02a7bc5e1d7286f841b6ba4ab0520aec183d08abc38093d48b502399a900eba107ca",
	}
	got := map[string]string{}
	for _, o := range measureSNPJSON(t, img, "--cpu", "1,2", "--vcpu-type", "EPYC-v4,EPYC-Milan") {
		got[fmt.Sprintf("%d %s", o.VCPUs, o.VCPUType)] = o.Measurement
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s, want %s", k, got[k], v)
		}
	}

	doc := filepath.Join(t.TempDir(), "measurement.snp.cbor")
	code, stdout, stderr := runCLI("image", "measurement", "--platform", "sev-snp", img, "--out", doc, "--sha256sum-line")
	if code != 0 {
		t.Fatalf("image measurement: %s", stderr)
	}
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if !strings.Contains(stdout, hex.EncodeToString(sum[:])+"  measurement.snp.cbor") {
		t.Errorf("sha256sum line missing: %s", stdout)
	}
	fromDoc := measureSNPJSON(t, "--measurement", doc, "--cpu", "2")
	sample := filepath.Join(sampleDir, "metadata.json")
	var meta struct{ Cmdline string }
	mb, _ := os.ReadFile(sample)
	json.Unmarshal(mb, &meta)
	raw := measureSNPJSON(t, "--firmware", filepath.Join(img, "ovmf-sev.fd"), "--kernel", filepath.Join(img, "bzImage-6.1.0-56-amd64"),
		"--initrd", filepath.Join(img, "initrd-small.cpio.gz"), "--cmdline", meta.Cmdline, "--cpu", "2")
	huge := measureSNPJSON(t, img, "--cpu", "1", "--hugepages", "--numa-nodes", "5,6")
	for name, o := range map[string]snpOut{"document": fromDoc[0], "raw": raw[0], "hugepages": huge[0]} {
		if o.Measurement != want["2 EPYC-v4"] || o.VCPUs != 2 {
			t.Errorf("%s: %d vCPUs, %s", name, o.VCPUs, o.Measurement)
		}
		if o.DocumentSHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: document sha256 %s, written %x", name, o.DocumentSHA256, sum)
		}
	}
}

// The real capture's measurement.snp.cbor, with its vm_config's 2 vCPUs, gives the MEASUREMENT
// of the report the Milan host's PSP signed.
func TestMeasureSNPRealDocument(t *testing.T) {
	doc := testvectors.Shared(t, "sev-snp/extracted/measurement.snp.cbor")
	report := testvectors.ReadShared(t, "sev-snp/extracted/sev_snp_report.bin")
	want := hex.EncodeToString(report[0x90 : 0x90+48])
	out := measureSNPJSON(t, "--measurement", doc, "--cpu", "2")
	if out[0].Measurement != want {
		t.Errorf("measurement %s, report %s", out[0].Measurement, want)
	}
}

func TestMeasureSNPRefuses(t *testing.T) {
	img := snpImage(t, true)
	unlisted := snpImage(t, false)
	tdxAsSEV := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"memory", []string{"measure", "--platform", "sev-snp", img, "--memory", "4G"}, "--memory: not part of the SEV-SNP launch measurement"},
		{"vcpu type with tdx", []string{"measure", img, "--vcpu-type", "EPYC-v4"}, "--vcpu-type applies to --platform sev-snp only"},
		{"platform", []string{"measure", "--platform", "sgx", img}, `--platform "sgx": want tdx or sev-snp`},
		{"vcpu type", []string{"measure", "--platform", "sev-snp", img, "--vcpu-type", "host"}, `vCPU type "host" is not supported`},
		{"features", []string{"measure", "--platform", "sev-snp", img, "--guest-features", "2"}, "SNPActive"},
		{"unlisted bios-sev", []string{"measure", "--platform", "sev-snp", unlisted}, "does not list ovmf-sev.fd"},
		{"numa without hugepages", []string{"measure", "--platform", "sev-snp", img, "--numa-nodes", "5,6"}, "--hugepages"},
		{"tdx firmware", []string{"measure", "--platform", "sev-snp", "--firmware", filepath.Join(sampleDir, "ovmf-debian-2025.02-8+deb13u1.fd"), "--kernel", filepath.Join(sampleDir, "bzImage-6.1.0-56-amd64")}, "needs an AmdSev build"},
		{"padded cmdline", []string{"measure", "--platform", "sev-snp", "--firmware", filepath.Join(img, "ovmf-sev.fd"), "--kernel", filepath.Join(sampleDir, "bzImage-6.1.0-56-amd64"), "--cmdline", "console=ttyS0 "}, "trailing whitespace"},
		{"format version", []string{"image", "measurement", "--platform", "sev-snp", img, "--out", filepath.Join(tdxAsSEV, "x"), "--format-version", "3"}, "--format-version: not part of"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(c.args...)
			if code != 1 || stdout != "" || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stdout %q, stderr %s; want exit 1 and %q", code, stdout, stderr, c.want)
			}
		})
	}
}

// Both SEV-SNP JSON outputs hold to their schemas.
func TestSNPOutputsMatchSchemas(t *testing.T) {
	img := snpImage(t, true)
	for _, c := range []struct {
		schema string
		args   []string
	}{
		{"measure-sev-snp", []string{"measure", "--platform", "sev-snp", img, "--json", "--cpu", "2"}},
		{"image-measurement-sev-snp", []string{"image", "measurement", "--platform", "sev-snp", img, "--out", filepath.Join(t.TempDir(), "m.cbor"), "--json"}},
	} {
		code, stdout, stderr := runCLI(c.args...)
		if code != 0 {
			t.Fatalf("%v: %s", c.args, stderr)
		}
		if errs := loadSchema(t, c.schema).Validate([]byte(stdout)); len(errs) > 0 {
			t.Errorf("%s: %s", c.schema, strings.Join(errs, "\n"))
		}
	}
	code, stdout, _ := runCLI("measure", "--platform", "sev-snp", img, "--json", "--cpu", "1,2")
	var items []json.RawMessage
	if code != 0 || json.Unmarshal([]byte(stdout), &items) != nil || len(items) != 2 {
		t.Fatalf("two shapes: exit %d, %d items", code, len(items))
	}
	for i, it := range items {
		if errs := loadSchema(t, "measure-sev-snp").Validate(it); len(errs) > 0 {
			t.Errorf("item %d: %v", i, errs)
		}
	}
}

func TestPinsRootfs(t *testing.T) {
	for cmd, want := range map[string]bool{
		"console=ttyS0 dstack.rootfs_hash=" + strings.Repeat("ab", 32): true,
		"console=ttyS0":                                  false,
		"dstack.rootfs_hash=abcd":                        false,
		"dstack.rootfs_hash=" + strings.Repeat("zz", 32): false,
	} {
		if pinsRootfs(cmd) != want {
			t.Errorf("%q: want %v", cmd, want)
		}
	}
}

// verify takes dstack's SEV-SNP attestation in both forms: the verifier JSON with its embedded
// chain, and the SCALE bytes with --vcek/--ask; exit 0 and schema-conforming JSON. A changed byte
// of the signed report, an image other than the one running, or a wrong --app-id: exit 3.
func TestVerifySNP(t *testing.T) {
	js := testvectors.Shared(t, "sev-snp/sev-snp-attestation.json")
	bin := testvectors.Shared(t, "sev-snp/sev_snp_attestation.bin")
	vcek, ask := testvectors.Shared(t, "sev-snp/sev_snp_vcek.pem"), testvectors.Shared(t, "sev-snp/sev_snp_ask.pem")
	const at = "2026-07-01T00:00:00Z"
	snpDoc := testvectors.Shared(t, "sev-snp/extracted/measurement.snp.cbor")
	// The relying party's pin: the SHA-256 of the capture's sha256sum.txt, which lists its document.
	sums := sha256.Sum256(testvectors.ReadShared(t, "sev-snp/extracted/sha256sum.snp-only.txt"))
	snpCaptureImageHash := hex.EncodeToString(sums[:])
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"json, pinned", []string{"--attestation", js, "--time", at, "--json", "--os-image-hash", snpCaptureImageHash}, 0, `"verified": true`},
		{"json, nothing pinned", []string{"--attestation", js, "--time", at}, 3, "os-image-identity"},
		{"scale, your document", []string{"--attestation", bin, "--vcek", vcek, "--ask", ask, "--time", at, "--measurement", snpDoc, "--app-id", "86e59625be93207bc2351c4d1bba20037cec8e16"}, 0, "VERIFIED (dstack-amd-sev-snp)"},
		{"scale, host's inputs only", []string{"--attestation", bin, "--vcek", vcek, "--ask", ask, "--time", at}, 3, "os-image-identity"},
		{"scale without certificates", []string{"--attestation", bin, "--time", at}, 1, "no VCEK/ASK"},
		{"wrong app id", []string{"--attestation", js, "--time", at, "--app-id", "00", "--os-image-hash", snpCaptureImageHash}, 3, "FAIL expected-app-id"},
		{"other image", []string{"--attestation", js, "--time", at, snpImage(t, true)}, 3, "FAIL measurement"},
		{"tdx flag", []string{"--attestation", js, "--memory", "4G"}, 1, "--memory does not apply to an SEV-SNP attestation"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(append([]string{"verify"}, c.args...)...)
			if code != c.code || !strings.Contains(stdout+stderr, c.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s\n%s", code, c.code, c.want, stdout, stderr)
			}
			if c.code != 1 && strings.Contains(strings.Join(c.args, " "), "--json") {
				if errs := loadSchema(t, "verify-sev-snp").Validate([]byte(stdout)); len(errs) > 0 {
					t.Errorf("schema: %s", strings.Join(errs, "\n"))
				}
			}
		})
	}
	// A report with one flipped signed byte, in a copy of the SCALE attestation.
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	raw[4+0x90] ^= 1 // the report starts after the two variant bytes and its 2-byte length
	bad := filepath.Join(t.TempDir(), "bad.bin")
	writeTestFile(t, bad, raw)
	code, stdout, _ := runCLI("verify", "--attestation", bad, "--vcek", vcek, "--ask", ask, "--time", at, "--json")
	if code != 3 || !strings.Contains(stdout, `"authentic": false`) {
		t.Errorf("flipped MEASUREMENT byte: exit %d\n%s", code, stdout)
	}
	if errs := loadSchema(t, "verify-sev-snp").Validate([]byte(stdout)); len(errs) > 0 {
		t.Errorf("schema: %s", strings.Join(errs, "\n"))
	}
}

// An image that ships measurement.snp.cbor is told whether it is the document its files give.
func TestMeasureSNPShippedDocument(t *testing.T) {
	img := snpImage(t, true)
	doc := filepath.Join(t.TempDir(), "m.cbor")
	if code, _, stderr := runCLI("image", "measurement", "--platform", "sev-snp", img, "--out", doc); code != 0 {
		t.Fatal(stderr)
	}
	good, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		doc     []byte
		matches bool
	}{{good, true}, {append(bytes.Clone(good[:len(good)-1]), 0x11), false}} {
		writeTestFile(t, filepath.Join(img, "measurement.snp.cbor"), c.doc)
		sums, _ := os.ReadFile(filepath.Join(img, "sha256sum.txt"))
		lines := strings.Split(strings.TrimSpace(string(sums)), "\n")
		var kept []string
		for _, l := range lines {
			if !strings.HasSuffix(l, "measurement.snp.cbor") {
				kept = append(kept, l)
			}
		}
		kept = append(kept, fmt.Sprintf("%x  measurement.snp.cbor", sha256.Sum256(c.doc)))
		writeTestFile(t, filepath.Join(img, "sha256sum.txt"), []byte(strings.Join(kept, "\n")+"\n"))
		code, stdout, stderr := runCLI("measure", "--platform", "sev-snp", img, "--json")
		if code != 0 {
			t.Fatal(stderr)
		}
		var out struct {
			Shipped  *shippedDocJSON `json:"shipped_document"`
			Warnings []string        `json:"warnings"`
		}
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatal(err)
		}
		if out.Shipped == nil || out.Shipped.Matches != c.matches || (len(out.Warnings) > 0) == c.matches {
			t.Errorf("shipped %+v, warnings %v; want matches %v", out.Shipped, out.Warnings, c.matches)
		}
	}
}
