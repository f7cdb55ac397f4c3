package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// gunzipTo writes a gzip'd fixture out uncompressed, as a user would have it.
func gunzipTo(t *testing.T, src string) string {
	t.Helper()
	b, err := testvectors.ReadGzip(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), ".gz"))
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestFirmwareInspectMeasurement(t *testing.T) {
	secureBoot := gunzipTo(t, "../../testdata/vectors/ovmf-inteltdx.ms-debian-2026.08+ds-2.fd.gz")
	for _, tc := range []struct {
		name, path string
		supported  bool
		contains   string
	}{
		{"sample", filepath.Join(sampleDir, "ovmf-debian-2025.02-8+deb13u1.fd"), true, ""},
		{"edk2 after stable202502 (fw_cfg measurement, Secure Boot)", secureBoot, false, "fw_cfg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI("firmware", "inspect", tc.path, "--json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var rep struct {
				Traits struct {
					CCMeasurement bool `json:"cc_measurement"`
				} `json:"measurement_traits"`
				Measurement struct {
					Supported bool   `json:"supported"`
					Error     string `json:"error"`
					Events    []struct {
						Label, Digest string
					} `json:"firmware_events"`
				} `json:"measurement"`
			}
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatal(err)
			}
			m := rep.Measurement
			if !rep.Traits.CCMeasurement || m.Supported != tc.supported || !strings.Contains(m.Error, tc.contains) {
				t.Errorf("traits %+v measurement %+v", rep.Traits, m)
			}
			if tc.supported && (len(m.Events) != 7 || m.Events[6].Label != "boot0000") {
				t.Errorf("firmware events %+v", m.Events)
			}
		})
	}
	// measure refuses the same firmware with exit 1 and nothing on stdout.
	code, stdout, stderr := runCLI("measure", "--firmware", secureBoot,
		"--kernel", filepath.Join(sampleDir, "bzImage-6.1.0-56-amd64"), "--cmdline", "console=ttyS0")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "not supported yet") {
		t.Errorf("measure: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
