package mr

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/dstack-mr/dstack-mr/acpi"
	"github.com/dstack-mr/dstack-mr/pe"
	"github.com/dstack-mr/dstack-mr/uefi"
)

// Digests a real dstack CVM logged (dstack cc-eventlog/samples/ccel.bin; event types in the
// comments). They pin the event encodings that do not depend on the image or machine.
var realCVMDigests = map[string]string{
	LabelSecureBoot:   "9dc3a1f80bcec915391dcda5ffbb15e7419f77eab462bbf72b42166fb70d50325e37b36f93537a863769bcf9bedae6fb", // EV_EFI_VARIABLE_DRIVER_CONFIG, empty
	LabelPK:           "6f2e3cbc14f9def86980f5f66fd85e99d63e69a73014ed8a5633ce56eca5b64b692108c56110e22acadcef58c3250f1b",
	LabelKEK:          "d607c0efb41c0d757d69bca0615c3a9ac0b1db06c557d992e906c6b7dee40e0e031640c7bfd7bcd35844ef9edeadc6f9",
	LabelDB:           "08a74f8963b337acb6c93682f934496373679dd26af1089cb4eaf0c30cf260a12e814856385ab8843e56a9acea19e127",
	LabelDBX:          "18cc6e01f0c6ea99aa23f8a280423e94ad81d96d0aeb5180504fc0f7a40cb3619dd39bd6a95ec1680a86ed6ab0f9828d",
	LabelSeparator:    "394341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0", // EV_SEPARATOR
	LabelBootOrder:    "1dd6f7b457ad880d840d41c961283bab688e94e4b59359ea45686581e90feccea3c624b1226113f824f315eb60ae0a7c", // EV_EFI_VARIABLE_BOOT
	LabelBoot0000:     "23ada07f5261f12f34a0bd8e46760962d6b4d576a416f1fea1c64bc656b1d28eacf7047ae6e967c58fd2a98bfa74c298",
	LabelCFV:          cfvDigest2025,
	LabelCallingEFI:   "77a0dab2312b4e1e57a84d865a21e5b2ee8d677a21012ada819d0a98988078d3d740f6346bfe0abaa938ca20439a8d71", // EV_EFI_ACTION
	LabelExitBS:       "214b0bef1379756011344877743fdc2a5382bac6e70362d624ccf3f654407c1b4badf7d8f9295dd3dabdef65b27677e0",
	LabelExitBSReturn: "0a2e01c85deae718a530ad8c6d20a84009babe6c8989269e950d8cf440c6e997695e64d455c4174a652cd080f6230b74",
}

func sampleImage(t testing.TB) *Image {
	return vectorImage(t, vector{
		Firmware: firmware2025, Kernel: "bzImage-6.1.0-56-amd64", Initrd: "initrd-small.cpio.gz",
		Cmdline: "console=ttyS0 init=/init",
	})
}

func sampleMachine(cpus int, mem uint64) Machine {
	return Machine{MachineConfig: acpi.MachineConfig{
		CPUs: cpus, MemoryBytes: mem, QEMUVersion: acpi.Version{Major: 9, Minor: 1},
		NumNICs: 1, RootVerity: true, HostShareMode: acpi.HostShare9p,
	}}
}

// measureOrStub measures with acpi.Build, or with stub blobs when it cannot build the shape.
func measureOrStub(t testing.TB, im *Image, m Machine) *Measurement {
	use := *im
	if _, err := acpi.Build(m.MachineConfig); err != nil {
		use.ACPI = stubACPI
	}
	got, err := use.Measure(m)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestEventLogShape(t *testing.T) {
	got := measureOrStub(t, sampleImage(t), sampleMachine(2, 2<<30))
	wantLabels := []string{
		LabelTDHOB, LabelCFV, LabelSecureBoot, LabelPK, LabelKEK, LabelDB, LabelDBX, LabelSeparator,
		LabelACPILoader, LabelACPIRSDP, LabelACPITables, LabelBootOrder, LabelBoot0000,
		LabelKernel, LabelCallingEFI, LabelSeparator, LabelExitBS, LabelExitBSReturn,
		LabelCmdline, LabelInitrd,
	}
	wantTypes := []uint32{
		EvEFIHandoffTables2, EvEFIPlatformFirmwareBlob2, EvEFIVariableDriverConfig, EvEFIVariableDriverConfig,
		EvEFIVariableDriverConfig, EvEFIVariableDriverConfig, EvEFIVariableDriverConfig, EvSeparator,
		EvPlatformConfigFlags, EvPlatformConfigFlags, EvPlatformConfigFlags, EvEFIVariableBoot, EvEFIVariableBoot,
		EvEFIBootServicesApplication, EvEFIAction, EvSeparator, EvEFIAction, EvEFIAction,
		EvEventTag, EvEventTag,
	}
	wantIMR := []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2}
	if len(got.EventLog) != len(wantLabels) {
		t.Fatalf("%d events: %+v", len(got.EventLog), got.EventLog)
	}
	for i, e := range got.EventLog {
		if e.Label != wantLabels[i] || e.EventType != wantTypes[i] || e.IMR != wantIMR[i] {
			t.Errorf("event %d = %+v, want %s type 0x%x imr %d", i, e, wantLabels[i], wantTypes[i], wantIMR[i])
		}
		if want, ok := realCVMDigests[e.Label]; ok && e.Digest != want {
			t.Errorf("event %d (%s) digest %s, want %s (real CVM)", i, e.Label, e.Digest, want)
		}
	}
	// Replaying the log reproduces the registers.
	for i, want := range []string{got.RTMR0, got.RTMR1, got.RTMR2} {
		if r, _ := replayEvents(got.EventLog, i); hex.EncodeToString(r) != want {
			t.Errorf("RTMR%d does not replay from the log", i)
		}
	}
	b, err := json.Marshal(got.EventLog[0])
	if err != nil || !strings.Contains(string(b), `"imr":0,"event_type":2147483659,"digest":"`) || !strings.Contains(string(b), `"label":"td-hob"`) {
		t.Errorf("JSON %s (%v)", b, err)
	}
}

func TestLoadOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cmdline string
		initrd  bool
		form    uefi.LoadOptionsForm
		want    []byte
	}{
		{"ascii", "a b", false, uefi.InitrdSuffix, []byte{'a', 0, ' ', 0, 'b', 0, 0, 0}},
		{"initrd suffix", "x", true, uefi.InitrdSuffix, append(widen("x initrd=initrd"), 0, 0)},
		{"only initrd", "", true, uefi.InitrdSuffix, append(widen(" initrd=initrd"), 0, 0)},
		{"empty", "", false, uefi.InitrdSuffix, nil},
		// X86QemuLoadImageLib after edk2-stable202502: "%a%a" with the prefix first.
		{"initrd prefix", "x", true, uefi.InitrdPrefix, append(widen("initrd=initrd x"), 0, 0)},
		{"prefix, only initrd", "", true, uefi.InitrdPrefix, append(widen("initrd=initrd "), 0, 0)},
		{"prefix, no initrd", "a b", false, uefi.InitrdPrefix, []byte{'a', 0, ' ', 0, 'b', 0, 0, 0}},
		{"prefix, empty", "", false, uefi.InitrdPrefix, nil},
		// UTF-8 "é" is two bytes; OVMF widens each byte, it does not decode UTF-8.
		{"non-ASCII bytes", "\u00e9", false, uefi.InitrdSuffix, []byte{0xc3, 0, 0xa9, 0, 0, 0}},
		{"invalid UTF-8", "\xff", false, uefi.InitrdSuffix, []byte{0xff, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LoadOptions(tc.cmdline, tc.initrd, tc.form); !bytes.Equal(got, tc.want) {
				t.Errorf("% x, want % x", got, tc.want)
			}
		})
	}
}

func widen(s string) []byte {
	var b []byte
	for i := 0; i < len(s); i++ {
		b = append(b, s[i], 0)
	}
	return b
}

func TestRTMR2Variants(t *testing.T) {
	base := sampleImage(t)
	m := sampleMachine(1, 1<<30)
	digestOf := func(im Image) []Event {
		ev, err := im.RTMR2Events()
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}

	noInitrd := *base
	noInitrd.Initrd = nil
	ev := digestOf(noInitrd)
	if len(ev) != 1 || ev[0].Label != LabelCmdline || ev[0].Digest != hex.EncodeToString(sha384(LoadOptions(base.Cmdline, false, uefi.InitrdSuffix))) {
		t.Errorf("no initrd: %+v", ev)
	}
	// An empty -initrd file: QEMU still patches the header, OVMF offers no initrd.
	empty := *base
	empty.Initrd = &InitrdDigest{Size: 0, SHA384: sha384(nil)}
	if ev := digestOf(empty); len(ev) != 1 || ev[0].Digest != hex.EncodeToString(sha384(LoadOptions(base.Cmdline, false, uefi.InitrdSuffix))) {
		t.Errorf("empty initrd: %+v", ev)
	}
	nonASCII := *base
	nonASCII.Cmdline = "console=ttyS0 label=\u00e9t\u00e9"
	got := measureOrStub(t, &nonASCII, m)
	want := ReplayRTMR([][]byte{sha384(LoadOptions(nonASCII.Cmdline, true, uefi.InitrdSuffix)), base.Initrd.SHA384})
	if got.RTMR2 != hex.EncodeToString(want) {
		t.Errorf("non-ASCII RTMR2 %s, want %s", got.RTMR2, want)
	}
	if r := measureOrStub(t, &noInitrd, m); r.RTMR1 == measureOrStub(t, base, m).RTMR1 {
		t.Error("RTMR1 does not depend on whether an initrd is loaded (setup header patch)")
	}
}

func TestMachineValidation(t *testing.T) {
	im := sampleImage(t)
	for _, tc := range []struct {
		name string
		edit func(*Machine)
		want string
	}{
		{"cpu 0", func(m *Machine) { m.CPUs = 0 }, "vCPU count 0 (cpu_count)"},
		{"cpu above q35 max", func(m *Machine) { m.CPUs = acpi.MaxCPUs(m.QEMUVersion) + 1 }, "accepts 1 to"},
		{"cpu above 8.0 max", func(m *Machine) { m.QEMUVersion = acpi.Version{Major: 8}; m.CPUs = 289 }, "1 to 288"},
		{"memory 0", func(m *Machine) { m.MemoryBytes = 0 }, "memory (memory_size) is 0"},
		{"memory unaligned", func(m *Machine) { m.MemoryBytes = 1<<30 + 1 }, "4 KiB"},
		{"memory huge", func(m *Machine) { m.MemoryBytes = 1 << 50 }, "above"},
		{"no version", func(m *Machine) { m.QEMUVersion = acpi.Version{} }, "qemu_version"},
		{"memory below TDVF", func(m *Machine) { m.MemoryBytes = 4 << 20 }, "QEMU fails"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := sampleMachine(1, 1<<30)
			tc.edit(&m)
			use := *im
			use.ACPI = stubACPI
			_, err := use.Measure(m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := Prepare(Inputs{Firmware: readInput(t, firmware2025), Kernel: []byte("k"),
		Initrd: &InitrdDigest{SHA384: []byte{1}}}); err == nil {
		t.Error("short initrd digest accepted")
	}
}

func TestTwoPassDefault(t *testing.T) {
	fw, err := ParseFirmware(readInput(t, firmware2025))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(fw.MRTD(true), fw.MRTD(false)) {
		t.Fatal("page-add order does not change MRTD")
	}
	for _, tc := range []struct {
		v    acpi.Version
		over *bool
		want bool
	}{
		{acpi.Version{Major: 8, Minor: 2}, nil, true},
		{acpi.Version{Major: 9}, nil, false},
		{acpi.Version{Major: 9, Minor: 2, Micro: 1}, new(true), true},
		{acpi.Version{Major: 8, Minor: 2}, new(false), false},
	} {
		m := Machine{MachineConfig: acpi.MachineConfig{QEMUVersion: tc.v}, TwoPassAddPages: tc.over}
		if m.TwoPass() != tc.want {
			t.Errorf("%s override %v: TwoPass %v", tc.v, tc.over, !tc.want)
		}
	}
}

func TestACPIEventOrder(t *testing.T) {
	b, _ := stubACPI(acpi.MachineConfig{})
	// Swap the two ALLOCATE commands: OVMF downloads (and measures) in command order.
	swapped := bytes.Clone(b.Loader)
	copy(swapped, b.Loader[loaderEntryLen:])
	copy(swapped[loaderEntryLen:], b.Loader[:loaderEntryLen])
	b.Tables, b.RSDP = []byte("tables"), []byte("rsdp")
	for _, tc := range []struct {
		loader []byte
		want   []string
	}{
		{b.Loader, []string{LabelACPILoader, LabelACPIRSDP, LabelACPITables}},
		{swapped, []string{LabelACPILoader, LabelACPITables, LabelACPIRSDP}},
	} {
		bb := *b
		bb.Loader = tc.loader
		ev, err := acpiEvents(&bb)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range ev {
			if e.Label != tc.want[i] {
				t.Errorf("event %d %s, want %s", i, e.Label, tc.want[i])
			}
		}
	}
	extra := append(bytes.Clone(b.Loader), make([]byte, loaderEntryLen)...)
	extra[2*loaderEntryLen] = loaderCmdAllocate
	copy(extra[2*loaderEntryLen+4:], "etc/other")
	if _, err := acpiEvents(&acpi.Blobs{Loader: extra}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("unknown allocated file: %v", err)
	}
	if _, err := acpiEvents(&acpi.Blobs{Loader: b.Loader[:10]}); err == nil {
		t.Error("truncated loader accepted")
	}
}

func TestReplayRTMR(t *testing.T) {
	if got := ReplayRTMR(nil); !bytes.Equal(got, make([]byte, 48)) {
		t.Errorf("empty replay %x", got)
	}
	d := sha384([]byte("x"))
	if got, want := ReplayRTMR([][]byte{d}), sha384(make([]byte, 48), d); !bytes.Equal(got, want) {
		t.Errorf("one extend %x, want %x", got, want)
	}
}

func TestFirmwareSourceErrors(t *testing.T) {
	img := readInput(t, firmware2025)
	boom := errors.New("boom")
	fw, err := ParseFirmwareWith(img, FirmwareOptions{Analyze: func([]byte) (*uefi.BootAnalysis, error) { return nil, boom }})
	if err != nil {
		t.Fatal(err)
	}
	im := *sampleImage(t)
	im.Firmware, im.ACPI = fw, stubACPI
	if _, err := im.Measure(sampleMachine(1, 1<<30)); !errors.Is(err, boom) {
		t.Errorf("firmware analysis error not surfaced: %v", err)
	}
}

// BenchmarkMeasureShape is the per-shape cost with a prepared image: a new memory size each
// time, so the TD HOB, ACPI blobs and the patched kernel's hash are all recomputed.
func BenchmarkMeasureShape(b *testing.B) {
	shared := sampleImage(b)
	k, err := PrepareKernel(shared.Kernel.data)
	if err != nil {
		b.Fatal(err)
	}
	im := &Image{Firmware: shared.Firmware, Kernel: k, Cmdline: shared.Cmdline, Initrd: shared.Initrd}
	sizes := []uint64{1 << 30, 2 << 30, 3 << 30, 4 << 30, 8 << 30}
	// Warm the per-image caches (MRTD, firmware events).
	measureOrStub(b, im, sampleMachine(1, sizes[0]))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		im.Kernel.memo = map[string]*kernelDigest{} // force the kernel hash
		measureOrStub(b, im, sampleMachine(1+i%4, sizes[i%len(sizes)]))
	}
}

// BenchmarkMeasureCold is a full measurement from raw inputs.
func BenchmarkMeasureCold(b *testing.B) {
	in := Inputs{
		Firmware: readInput(b, firmware2025),
		Kernel:   readInput(b, "bzImage-6.1.0-56-amd64"),
		Cmdline:  "console=ttyS0",
		Initrd:   &InitrdDigest{Size: 1 << 20, SHA384: sha384(nil)},
	}
	m := sampleMachine(2, 2<<30)
	for b.Loop() {
		im, err := Prepare(in)
		if err != nil {
			b.Fatal(err)
		}
		measureOrStub(b, im, m)
	}
}

// Which QEMU loads the kernel decides the patch from 10.0 on: upstream >= 10.2 leaves it as
// shipped, dstack's 9.2.1-based fork patches it at every declared version; a normalized image
// is measured as shipped whatever the build.
func TestQEMUBuildKernelPatch(t *testing.T) {
	im, err := Prepare(Inputs{Firmware: readInput(t, firmware2025), Kernel: readInput(t, "bzImage-6.1.0-56-amd64"), Cmdline: "console=ttyS0"})
	if err != nil {
		t.Fatal(err)
	}
	v := acpi.Version{Major: 10, Minor: 2, Micro: 1}
	for _, tc := range []struct {
		build      QEMUBuild
		normalized bool
		patched    bool
	}{
		{"", false, false}, {QEMUBuildUpstream, false, false}, {QEMUBuildDstackFork, false, true},
		{QEMUBuildDstackFork, true, false}, {QEMUBuildUpstream, true, false},
	} {
		im.KernelHeaderNormalized = tc.normalized
		got, err := im.KernelPatched(Machine{MachineConfig: acpi.MachineConfig{QEMUVersion: v}, QEMUBuild: tc.build})
		if err != nil || got != tc.patched {
			t.Errorf("build %q normalized %v: patched %v (%v), want %v", tc.build, tc.normalized, got, err, tc.patched)
		}
	}
	im.KernelHeaderNormalized = false
	if _, err := im.KernelPatched(Machine{MachineConfig: acpi.MachineConfig{QEMUVersion: v}, QEMUBuild: "qemu-kvm"}); err == nil {
		t.Error("unknown build accepted")
	}
}

// Concurrent callers of one kernel digest get the copy-and-patch digest; the memo computes
// it once and the others wait for it.
func TestKernelDigestConcurrent(t *testing.T) {
	data := readInput(t, "bzImage-6.1.0-56-amd64")
	p := pe.BootParams{MemoryBytes: 16 << 30, ACPIDataSize: acpiDataSize, Cmdline: "console=ttyS0", HasInitrd: true, InitrdSize: 96 << 20}
	full, err := pe.PatchSetupHeader(data, p)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pe.AuthenticodeSHA384(full)
	if err != nil {
		t.Fatal(err)
	}
	k, err := PrepareKernel(data)
	if err != nil {
		t.Fatal(err)
	}
	got := make([][]byte, 4)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			d, err := k.Digest(p, true)
			if err != nil {
				t.Error(err)
			}
			got[i] = d
		})
	}
	wg.Wait()
	for i, d := range got {
		if !bytes.Equal(d, want) {
			t.Fatalf("caller %d: digest %x, want %x", i, d, want)
		}
	}
	if len(k.memo) != 1 {
		t.Fatalf("%d memo entries, want 1", len(k.memo))
	}
}
