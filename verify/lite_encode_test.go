package verify

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/acpi"
	"github.com/dstack-mr/dstack-mr/images"
	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
)

func sampleImage(t *testing.T, normalized bool) *mr.Image {
	t.Helper()
	img, err := images.Open("../testdata/sample-image/metadata.json", images.Options{})
	if err != nil {
		t.Fatal(err)
	}
	im, err := mr.Prepare(mr.Inputs{Firmware: img.Firmware, Kernel: img.Kernel, Cmdline: img.Cmdline,
		Initrd: &mr.InitrdDigest{Size: img.Initrd.Size, SHA384: img.Initrd.SHA384}})
	if err != nil {
		t.Fatal(err)
	}
	im.KernelHeaderNormalized = normalized
	return im
}

// A document written for the sample image (Debian 13 OVMF, same firmware generation as
// dstack's) predicts, for every shape it supports, exactly the registers `measure` computes
// from the image itself; it survives decode and re-encode unchanged; its TD HOB witness is
// the one the format names for that firmware.
func TestLiteFromImagePredictsMeasure(t *testing.T) {
	for _, tc := range []struct {
		version    uint32
		normalized bool
	}{{LiteVersion4, false}, {LiteVersion, false}, {LiteVersion4, true}} {
		im := sampleImage(t, tc.normalized)
		doc, err := LiteFromImage(im, tc.version)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := EncodeLite(doc)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeLite(enc)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := EncodeLite(back)
		if !bytes.Equal(enc, again) {
			t.Fatal("document does not round-trip")
		}
		if w := hex.EncodeToString(back.TDVF.TDHobWitness); w != "80100904000609020b02110f" {
			t.Errorf("witness %s", w)
		}
		for _, shape := range []struct {
			mem uint64
			v   acpi.Version
			cpu int
		}{{2 << 30, acpi.Version{Major: 8, Minor: 2}, 1}, {4 << 30, acpi.Version{Major: 9, Minor: 2, Micro: 1}, 4}, {16 << 30, acpi.Version{Major: 9, Minor: 1}, 8}, {3 << 30, acpi.Version{Major: 11, Minor: 1}, 2}} {
			m := mr.Machine{MachineConfig: acpi.MachineConfig{CPUs: shape.cpu, MemoryBytes: shape.mem, QEMUVersion: shape.v, NumNICs: 1, RootVerity: true, HostShareMode: acpi.HostShare9p}}
			if !tc.normalized && shape.v.AtLeast(10, 2, 0) {
				// A non-normalized document carries only the patched digest: it describes QEMU
				// builds that patch the header (up to 10.1, and dstack's 9.2.1-based fork at any
				// declared version), not upstream >= 10.2, which measures the file as shipped.
				patch := false
				m.NoKernelPatch = &patch
			}
			want, err := im.Measure(m)
			if err != nil {
				t.Fatal(err)
			}
			b, err := acpi.Build(m.MachineConfig)
			if err != nil {
				t.Fatal(err)
			}
			digests := map[string][]byte{eventlog.LabelACPILoader: sha384(b.Loader), eventlog.LabelACPIRSDP: sha384(b.RSDP), eventlog.LabelACPITables: sha384(b.Tables)}
			var matched bool
			for _, c := range back.KernelCandidates(m.MemoryBytes) {
				e, err := LiteExpectedKernel(back, &m, digests, c.Digest)
				if err != nil {
					t.Fatal(err)
				}
				got := []string{hex.EncodeToString(e.MRTD), hex.EncodeToString(e.RTMR[0]), hex.EncodeToString(e.RTMR[1]), hex.EncodeToString(e.RTMR[2])}
				if got[0] == want.MRTD && got[1] == want.RTMR0 && got[2] == want.RTMR1 && got[3] == want.RTMR2 {
					matched = true
				}
			}
			if !matched {
				t.Errorf("v%d normalized %v, %d vCPU %d GiB QEMU %s: no kernel candidate of the document predicts what measure computes", tc.version, tc.normalized, shape.cpu, shape.mem>>30, shape.v)
			}
		}
	}
}

// Full mode on a declared QEMU 10.2.1 without a fixed build: when the registers are those of
// dstack's fork (kernel patched), verify takes that build's prediction and names it; with the
// build fixed by the caller it does not. (The registers come from a guest-agent Info made here
// from the sample image: this checks the choice, not the values, which TestLiteFromImage and the
// measure tests cover.)
func TestVerifyChoosesQEMUBuild(t *testing.T) {
	im := sampleImage(t, false)
	m := mr.Machine{MachineConfig: acpi.MachineConfig{CPUs: 2, MemoryBytes: 4 << 30, QEMUVersion: acpi.Version{Major: 10, Minor: 2, Micro: 1},
		NumNICs: 1, RootVerity: true, HostShareMode: acpi.HostShare9p, HugepagesBackend: acpi.HugepagesDstack}, QEMUBuild: mr.QEMUBuildDstackFork}
	meas, err := im.Measure(m)
	if err != nil {
		t.Fatal(err)
	}
	tcb, _ := json.Marshal(map[string]any{"mrtd": meas.MRTD, "rtmr0": meas.RTMR0, "rtmr1": meas.RTMR1, "rtmr2": meas.RTMR2, "rtmr3": strings.Repeat("00", 48), "event_log": []any{}})
	info, _ := json.Marshal(map[string]any{"tcb_info": string(tcb), "vm_config": `{"cpu_count":2,"memory_size":4294967296,"qemu_version":"10.2.1"}`})
	img, err := images.Open("../testdata/sample-image/metadata.json", images.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Info: info}
	if err := opts.UseImage(img); err != nil {
		t.Fatal(err)
	}
	r := mustVerify(t, opts)
	if c := findCheck(r, "qemu-build"); c == nil || !c.OK || !strings.Contains(c.Detail, "dstack-fork") || r.Shape.QEMUBuild != "dstack-fork" {
		t.Fatalf("qemu-build %+v, shape build %q", c, r.Shape.QEMUBuild)
	}
	for _, n := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2"} {
		if reg := r.Registers[n]; reg.Match == nil || !*reg.Match {
			t.Errorf("%s does not match", n)
		}
	}
	opts.OverrideMachine, opts.OverrideFields = func(m *mr.Machine) { m.QEMUBuild = mr.QEMUBuildUpstream }, []string{"qemu_build"}
	r = mustVerify(t, opts)
	if findCheck(r, "qemu-build") != nil || *r.Registers["rtmr1"].Match {
		t.Error("a build fixed by the caller was second-guessed")
	}
}
