package mr

import (
	"bytes"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/dstack-mr/dstack-mr/acpi"
	"github.com/dstack-mr/dstack-mr/pe"
	"github.com/dstack-mr/dstack-mr/uefi"
)

// Real Debian firmware (testdata/README.md): an Intel TDX OVMF built with Secure Boot and
// Microsoft's keys enrolled in its CFV, and Debian's enrolled-keys varstore template.
const (
	firmwareTDXSecureBoot = "ovmf-inteltdx.ms-debian-2026.08+ds-2.fd"
	varsMSWithBootOptions = "ovmf-vars-4m.ms-debian-2022.11-6+deb12u2.fd"
	cfvSize4M             = 0x84000 // the CFV of every 4 MiB image here, at offset 0
)

// withCFV returns a copy of a 4 MiB OVMF image whose CFV is replaced by store, the way
// Debian assembles its unified images (OVMF_VARS ‖ OVMF_CODE).
func withCFV(t *testing.T, image, store []byte) []byte {
	t.Helper()
	if len(store) != cfvSize4M {
		t.Fatalf("store is %#x bytes, want %#x", len(store), cfvSize4M)
	}
	fw, err := ParseFirmware(image)
	if err != nil {
		t.Fatal(err)
	}
	if cfv, err := fw.CFV(); err != nil || len(cfv) != cfvSize4M || &cfv[0] != &image[0] {
		t.Fatalf("image CFV is not its first %#x bytes (%v)", cfvSize4M, err)
	}
	out := bytes.Clone(image)
	copy(out, store)
	return out
}

// rawVariable finds a live variable in an authenticated store the simple way, independently
// of package uefi: its vendor GUID followed by its NUL-terminated UTF-16 name sits at offset
// 44 of a 60-byte AUTHENTICATED_VARIABLE_HEADER whose StartId is 0x55AA and State VAR_ADDED.
func rawVariable(t *testing.T, store []byte, vendor uefi.GUID, name string) []byte {
	t.Helper()
	pattern := append(vendor.Bytes(), utf16NUL(name)...)
	var found []byte
	for off := 0; ; {
		i := bytes.Index(store[off:], pattern)
		if i < 0 {
			break
		}
		h := off + i - 44
		off += i + 1
		if h < 0 || binary.LittleEndian.Uint16(store[h:]) != 0x55AA || store[h+2] != 0x3F {
			continue
		}
		nameSize := int(binary.LittleEndian.Uint32(store[h+36:]))
		dataSize := int(binary.LittleEndian.Uint32(store[h+40:]))
		data := store[h+60+nameSize : h+60+nameSize+dataSize]
		if found != nil {
			t.Fatalf("two live copies of %s", name)
		}
		found = data
	}
	return found
}

func utf16NUL(s string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return append(b, 0, 0)
}

// driverConfigDigest spells out UEFI_VARIABLE_DATA (TCG PC Client PFP, EV_EFI_VARIABLE_DRIVER_
// CONFIG): VariableName GUID, UINT64 name length in characters, UINT64 data length, the name
// without its NUL, the data.
func driverConfigDigest(vendor uefi.GUID, name string, data []byte) string {
	var b []byte
	b = append(b, vendor.Bytes()...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(utf16.Encode([]rune(name)))))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(data)))
	u := utf16NUL(name)
	b = append(b, u[:len(u)-2]...)
	b = append(b, data...)
	d := sha512.Sum384(b)
	return hex.EncodeToString(d[:])
}

// appendVariable writes one more live authenticated variable into the erased tail of a CFV
// store, as the variable driver appends them.
func appendVariable(t *testing.T, store []byte, vendor uefi.GUID, name string, attrs uint32, data []byte) []byte {
	t.Helper()
	out := bytes.Clone(store)
	hl := int(binary.LittleEndian.Uint16(out[48:]))
	size := int(binary.LittleEndian.Uint32(out[hl+16:]))
	end := hl + size
	free := end
	for free > hl && out[free-1] == 0xFF {
		free--
	}
	free = (free + 3) &^ 3
	n := utf16NUL(name)
	h := make([]byte, 60)
	binary.LittleEndian.PutUint16(h[0:], 0x55AA)
	h[2] = 0x3F
	h[3] = 0xFF
	binary.LittleEndian.PutUint32(h[4:], attrs)
	binary.LittleEndian.PutUint32(h[36:], uint32(len(n)))
	binary.LittleEndian.PutUint32(h[40:], uint32(len(data)))
	copy(h[44:], vendor.Bytes())
	rec := append(append(h, n...), data...)
	if free+len(rec) > end {
		t.Fatal("store full")
	}
	copy(out[free:], rec)
	return out
}

func storeOf(t *testing.T, name string) []byte {
	return readInput(t, name)[:cfvSize4M]
}

// measureFirmware measures the sample image with another firmware image. The Secure Boot
// variable events checked with it come from TdTcg2Dxe whatever SEC measured before, but the
// only Secure Boot TDX image at hand (Debian sid's) also measures QEMU fw_cfg items, whose
// events are not modelled and make the real measurement refuse (TestBootTraitsRealFirmware).
// The tests here therefore look at the variable events with that one trait cleared.
func measureFirmware(t *testing.T, image []byte) (*Measurement, error) {
	t.Helper()
	fw, err := ParseFirmwareWith(image, FirmwareOptions{Analyze: withoutFwCfgMeasurement})
	if err != nil {
		t.Fatal(err)
	}
	im := *sampleImage(t)
	im.Firmware = fw
	return im.Measure(sampleMachine(2, 2<<30))
}

func withoutFwCfgMeasurement(image []byte) (*uefi.BootAnalysis, error) {
	a, err := uefi.AnalyzeBoot(image)
	if err != nil {
		return nil, err
	}
	a.Traits.FwCfgMeasurement = false
	return a, nil
}

func eventsLabelled(log []Event, imr int) map[string]Event {
	out := map[string]Event{}
	for _, e := range log {
		if e.IMR == imr {
			out[e.Label] = e
		}
	}
	return out
}

func TestBootTraitsRealFirmware(t *testing.T) {
	for _, tc := range []struct {
		firmware          string
		cc, secureBoot    bool
		fwCfg             bool
		loadOptions       uefi.LoadOptionsForm
		measureErrContain string
	}{
		{firmware2025, true, false, false, uefi.InitrdSuffix, ""},
		{otherLayoutFirmware, false, true, false, uefi.InitrdSuffix, "TdTcg2Dxe"},
		{firmwareTDXSecureBoot, true, true, true, uefi.InitrdPrefix, "fw_cfg"},
	} {
		t.Run(tc.firmware, func(t *testing.T) {
			fw, err := ParseFirmware(readInput(t, tc.firmware))
			if err != nil {
				t.Fatal(err)
			}
			tr, err := fw.Traits()
			if tr == nil {
				t.Fatal(err)
			}
			if tr.CCMeasurement != tc.cc || tr.SecureBootCapable != tc.secureBoot || tr.FwCfgMeasurement != tc.fwCfg ||
				tr.LoadOptions != tc.loadOptions || tr.SMMRequired {
				t.Errorf("traits %+v", tr)
			}
			_, err = fw.fixedRTMR0()
			switch {
			case tc.measureErrContain == "" && err != nil:
				t.Errorf("firmware events: %v", err)
			case tc.measureErrContain != "" && (!errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), tc.measureErrContain)):
				t.Errorf("firmware events: err = %v, want ErrNotSupported mentioning %q", err, tc.measureErrContain)
			}
		})
	}
}

// Debian's TDX Secure Boot image as shipped: a PK is enrolled and there is no
// SecureBootEnable, so AuthVariableLib turns Secure Boot on; the kernel's authority events
// are not modelled, so the whole measurement is refused. Its enrolled keys are real
// certificates.
func TestSecureBootEnforcedIsRefused(t *testing.T) {
	img := readInput(t, firmwareTDXSecureBoot)
	_, err := measureFirmware(t, img)
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "SecureBootEnable absent") {
		t.Fatalf("err = %v, want Secure Boot enforced (PK enrolled, SecureBootEnable absent)", err)
	}
	pk := rawVariable(t, img[:cfvSize4M], efiGlobalVariable, "PK")
	// EFI_SIGNATURE_LIST: type GUID, list size, header size, entry size; then the entry's
	// owner GUID and an X.509 certificate.
	if len(pk) < 28+16 || uefi.GUID(pk[:16]) != uefi.MustParseGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072") {
		t.Fatalf("PK is not an EFI_CERT_X509 signature list (%d bytes)", len(pk))
	}
	if _, err := x509.ParseCertificate(pk[28+16:]); err != nil {
		t.Errorf("PK certificate: %v", err)
	}
}

// The same image with SecureBootEnable = 0 in its store: Secure Boot is configured but off,
// so the boot is the modelled one and RTMR0 holds the real PK, KEK, db and dbx.
func TestEnrolledKeysSecureBootDisabled(t *testing.T) {
	img := readInput(t, firmwareTDXSecureBoot)
	store := appendVariable(t, img[:cfvSize4M], secureBootEnableDisable, "SecureBootEnable", 0x3, []byte{0})
	for _, withDBT := range []bool{false, true} {
		s := store
		if withDBT {
			s = appendVariable(t, store, imageSecurityDatabase, "dbt", 0x27, rawVariable(t, store, imageSecurityDatabase, "dbx"))
		}
		got, err := measureFirmware(t, withCFV(t, img, s))
		if err != nil {
			t.Fatal(err)
		}
		ev := eventsLabelled(got.EventLog, 0)
		want := map[string]string{
			LabelSecureBoot: driverConfigDigest(efiGlobalVariable, "SecureBoot", []byte{0}),
			LabelPK:         driverConfigDigest(efiGlobalVariable, "PK", rawVariable(t, s, efiGlobalVariable, "PK")),
			LabelKEK:        driverConfigDigest(efiGlobalVariable, "KEK", rawVariable(t, s, efiGlobalVariable, "KEK")),
			LabelDB:         driverConfigDigest(imageSecurityDatabase, "db", rawVariable(t, s, imageSecurityDatabase, "db")),
			LabelDBX:        driverConfigDigest(imageSecurityDatabase, "dbx", rawVariable(t, s, imageSecurityDatabase, "dbx")),
		}
		if withDBT {
			want[LabelDBT] = driverConfigDigest(imageSecurityDatabase, "dbt", rawVariable(t, s, imageSecurityDatabase, "dbt"))
		}
		for label, d := range want {
			if ev[label].Digest != d {
				t.Errorf("dbt=%t: %s digest %s, want %s (%s)", withDBT, label, ev[label].Digest, d, ev[label].Detail)
			}
		}
		// Order: TD HOB, CFV, the variables, separator, 3 ACPI, BootOrder, Boot0000.
		var labels []string
		for _, e := range got.EventLog {
			if e.IMR == 0 {
				labels = append(labels, e.Label)
			}
		}
		wantLabels := "td-hob cfv secure-boot pk kek db dbx separator acpi-loader acpi-rsdp acpi-tables boot-order boot0000"
		if withDBT {
			wantLabels = strings.Replace(wantLabels, "dbx", "dbx dbt", 1)
		}
		if strings.Join(labels, " ") != wantLabels {
			t.Errorf("RTMR0 events %v, want %s", labels, wantLabels)
		}
		if len(rawVariable(t, s, efiGlobalVariable, "PK")) == 0 {
			t.Fatal("test store lost its PK")
		}
	}
}

// A Secure Boot build booted from an empty store (Debian's blank OVMF_VARS, which is the
// 2025 image's CFV) is in setup mode: SecureBoot exists with value 0, the keys are absent.
// This image's QEMU loader also puts "initrd=initrd " first.
func TestSecureBootBuildSetupMode(t *testing.T) {
	img := withCFV(t, readInput(t, firmwareTDXSecureBoot), storeOf(t, firmware2025))
	got, err := measureFirmware(t, img)
	if err != nil {
		t.Fatal(err)
	}
	ev := eventsLabelled(got.EventLog, 0)
	for label, d := range map[string]string{
		LabelSecureBoot: driverConfigDigest(efiGlobalVariable, "SecureBoot", []byte{0}),
		LabelPK:         realCVMDigests[LabelPK],
		LabelKEK:        realCVMDigests[LabelKEK],
		LabelDB:         realCVMDigests[LabelDB],
		LabelDBX:        realCVMDigests[LabelDBX],
	} {
		if ev[label].Digest != d {
			t.Errorf("%s digest %s, want %s (%s)", label, ev[label].Digest, d, ev[label].Detail)
		}
	}
	cmd := eventsLabelled(got.EventLog, 2)[LabelCmdline]
	im := sampleImage(t)
	if want := hex.EncodeToString(sha384(LoadOptions(im.Cmdline, true, uefi.InitrdPrefix))); cmd.Digest != want || !strings.HasPrefix(cmd.Detail, `"initrd=initrd `) {
		t.Errorf("cmdline event %+v, want the prefix layout %s", cmd, want)
	}
}

// Firmware without Secure Boot support never loads its CFV's variables: the enrolled keys
// of a store spliced into the 2025 image change the CFV event only.
func TestNonSecureBootBuildIgnoresStore(t *testing.T) {
	plain, err := measureFirmware(t, readInput(t, firmware2025))
	if err != nil {
		t.Fatal(err)
	}
	spliced, err := measureFirmware(t, withCFV(t, readInput(t, firmware2025), storeOf(t, firmwareTDXSecureBoot)))
	if err != nil {
		t.Fatal(err)
	}
	a, b := eventsLabelled(plain.EventLog, 0), eventsLabelled(spliced.EventLog, 0)
	for label := range a {
		if same := a[label].Digest == b[label].Digest; same == (label == LabelCFV) {
			t.Errorf("%s: digest equal = %t", label, same)
		}
	}
	if a[LabelPK].Digest != realCVMDigests[LabelPK] || b[LabelSecureBoot].Digest != realCVMDigests[LabelSecureBoot] {
		t.Error("variables of a firmware without Secure Boot support are not the empty ones real CVMs log")
	}
}

func TestSecureBootStoresRefused(t *testing.T) {
	sb := readInput(t, firmwareTDXSecureBoot)
	badState := bytes.Clone(storeOf(t, firmwareTDXSecureBoot))
	// The first variable's State: a value PlatformValidateNvVarStore rejects.
	hl := int(binary.LittleEndian.Uint16(badState[48:]))
	badState[hl+28+2] = 0x11
	for _, tc := range []struct {
		name, want string
		store      []byte
	}{
		{"Debian ms varstore with boot options", "already holds", readInput(t, varsMSWithBootOptions)},
		{"store OVMF would not load", "would not load", badState},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := measureFirmware(t, withCFV(t, sb, tc.store))
			if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrNotSupported mentioning %q", err, tc.want)
			}
		})
	}
}

// A hardware vector for the prefix layout (aleph-im/aleph-vm,
// rust/crates/aleph-tee/tests/fixtures/tdx/README.md: QEMU 10.2.4, edk2 202602 IntelTdxX64,
// Ubuntu kernel): the LoadOptions event digest and RTMR2 a real TD reported.
func TestLoadOptionsPrefixHardwareVector(t *testing.T) {
	const (
		cmdline       = "root=LABEL=cloudimg-rootfs ro console=ttyS0"
		loadOptions   = "b8c85d40a1d555a451571e24d7d7c4c331bc15721d6e4b2a5cb5093214c44174822a0916aa4d622d4309644de99cd59c"
		initrdDigest  = "88de90bedcc560064688c74ccd6609a25ed9d48b0a0e13d8b2a558212724d8755b2c8114dcf04b8d51ea4cf7782e3091"
		reportedRTMR2 = "972547466cb6bcb8a23cd479e9258c3affbbc4f0ba2805d732477200d0dff8432447c7a775e70453cdb51f018a306ece"
	)
	lo := sha384(LoadOptions(cmdline, true, uefi.InitrdPrefix))
	if hex.EncodeToString(lo) != loadOptions {
		t.Fatalf("LoadOptions digest %x, want %s", lo, loadOptions)
	}
	initrd, _ := hex.DecodeString(initrdDigest)
	if got := hex.EncodeToString(ReplayRTMR([][]byte{lo, initrd})); got != reportedRTMR2 {
		t.Errorf("RTMR2 %s, want %s", got, reportedRTMR2)
	}
}

// Whether the measured kernel carries QEMU's setup-header patch depends on QEMU and on the
// firmware: the 2025 OVMF fetches etc/boot/* (QEMU >= 10.0 puts the file as given there), the
// 2022 one does not.
func TestKernelPatchedByVersionAndFirmware(t *testing.T) {
	im := sampleImage(t)
	old, err := ParseFirmware(readInput(t, otherLayoutFirmware))
	if err != nil {
		t.Fatal(err)
	}
	imOld := *im
	imOld.Firmware = old
	unpatched, err := pe.AuthenticodeSHA384(im.Kernel.data)
	if err != nil {
		t.Fatal(err)
	}
	no, yes := true, false
	for _, tc := range []struct {
		name     string
		im       *Image
		version  acpi.Version
		override *bool
		patched  bool
	}{
		{"2025 OVMF, QEMU 9.2", im, acpi.Version{Major: 9, Minor: 2, Micro: 1}, nil, true},
		{"2025 OVMF, QEMU 10.0", im, acpi.Version{Major: 10}, nil, false},
		{"2025 OVMF, QEMU 10.1", im, acpi.Version{Major: 10, Minor: 1}, nil, false},
		{"2025 OVMF, QEMU 10.2", im, acpi.Version{Major: 10, Minor: 2}, nil, false},
		{"2025 OVMF, QEMU 10.0, patched by request", im, acpi.Version{Major: 10}, &yes, true},
		{"2025 OVMF, QEMU 9.2, unpatched by request", im, acpi.Version{Major: 9, Minor: 2}, &no, false},
		{"2022 OVMF, QEMU 10.1", &imOld, acpi.Version{Major: 10, Minor: 1}, nil, true},
		{"2022 OVMF, QEMU 10.2", &imOld, acpi.Version{Major: 10, Minor: 2}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := sampleMachine(1, 2<<30)
			m.QEMUVersion, m.NoKernelPatch = tc.version, tc.override
			got, err := tc.im.KernelPatched(m)
			if err != nil || got != tc.patched {
				t.Fatalf("KernelPatched = %t, %v; want %t", got, err, tc.patched)
			}
			if tc.im != im {
				return // RTMR1 of the 2022 firmware is refused with its RTMR0
			}
			ev, err := tc.im.RTMR1Events(m)
			if err != nil {
				t.Fatal(err)
			}
			if isRaw := ev[0].Digest == hex.EncodeToString(unpatched); isRaw == tc.patched {
				t.Errorf("kernel event %s (%s): unpatched = %t", ev[0].Digest, ev[0].Detail, isRaw)
			}
		})
	}
}
