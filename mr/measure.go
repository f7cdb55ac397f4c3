package mr

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/dstack-mr/dstack-mr/acpi"
	"github.com/dstack-mr/dstack-mr/images"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/pe"
)

// InitrdDigest describes an initrd by what the measurement needs: its size (QEMU's setup
// header patch) and its SHA-384 (the EFI stub's RTMR2 event), so a huge initrd is streamed
// once by the caller.
type InitrdDigest struct {
	Size   uint64
	SHA384 []byte
}

// HashInitrd streams an initrd and returns its InitrdDigest.
func HashInitrd(r io.Reader) (*InitrdDigest, error) {
	h := sha512.New384()
	n, err := io.Copy(h, r)
	if err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	return &InitrdDigest{Size: uint64(n), SHA384: h.Sum(nil)}, nil
}

// Inputs are the boot components of an image.
type Inputs struct {
	Firmware []byte
	Kernel   []byte
	Cmdline  string        // as given to QEMU -append, without OVMF's "initrd=initrd"
	Initrd   *InitrdDigest // nil: no -initrd
	// KernelHeaderNormalized: see Image.KernelHeaderNormalized.
	KernelHeaderNormalized bool
}

// InputsFromImage takes the boot components of an image opened by package images: the files as
// read, the initrd by the digest the reader streamed, and metadata.json's declarations.
func InputsFromImage(img *images.Image) Inputs {
	in := Inputs{Firmware: img.Firmware, Kernel: img.Kernel, Cmdline: img.Cmdline, KernelHeaderNormalized: img.Metadata.KernelHeaderNormalized}
	if img.Initrd != nil {
		in.Initrd = &InitrdDigest{Size: img.Initrd.Size, SHA384: img.Initrd.SHA384}
	}
	return in
}

// Machine is the VM shape and QEMU behaviour a measurement is for.
type Machine struct {
	acpi.MachineConfig
	// TwoPassAddPages: MRTD with all pages of a section added before any is extended.
	// nil: the QEMU version's default (two-pass before 9.0).
	TwoPassAddPages *bool
	// NoKernelPatch: the firmware measures the kernel file as given, without QEMU's
	// setup-header patch. nil: derived (KernelPatched).
	NoKernelPatch *bool
	// QEMUBuild is which QEMU loads the kernel: QEMUBuildUpstream (the default; what real
	// captures on upstream QEMU 10.2.1 confirm) or QEMUBuildDstackFork (dstack's 9.2.1-based
	// production QEMU, which emulates the declared version's ACPI but loads the kernel as 9.2.1).
	QEMUBuild QEMUBuild
}

// QEMUBuild names a QEMU code base whose kernel loading differs.
type QEMUBuild string

const (
	QEMUBuildUpstream   QEMUBuild = "upstream"
	QEMUBuildDstackFork QEMUBuild = "dstack-fork"
)

// OrUpstream names the build an empty QEMUBuild means.
func (b QEMUBuild) OrUpstream() QEMUBuild {
	if b == "" {
		return QEMUBuildUpstream
	}
	return b
}

// TwoPass resolves the MRTD page-add order.
func (m *Machine) TwoPass() bool {
	if m.TwoPassAddPages != nil {
		return *m.TwoPassAddPages
	}
	return !m.QEMUVersion.AtLeast(9, 0, 0)
}

// Validate checks the parts of the shape the measurement itself depends on; acpi.Build
// checks the device model.
func (m *Machine) Validate() error {
	v := m.QEMUVersion
	if v == (acpi.Version{}) {
		return errors.New("QEMU version (qemu_version) is not set")
	}
	// q35 max_cpus per QEMU release: acpi.MaxCPUs (pc_q35.c: 288 up to the 8.0 machine
	// type, 1024 for 8.1/8.2, 4096 from 9.0).
	if max := acpi.MaxCPUs(v); m.CPUs < 1 || m.CPUs > max {
		return fmt.Errorf("vCPU count %d (cpu_count): QEMU %s's q35 machine accepts 1 to %d", m.CPUs, v, max)
	}
	switch {
	case m.MemoryBytes == 0:
		return errors.New("memory (memory_size) is 0")
	case m.MemoryBytes%pageSize != 0:
		return fmt.Errorf("memory %d bytes (memory_size) is not a multiple of 4 KiB", m.MemoryBytes)
	case m.MemoryBytes > acpi.MaxMemoryBytes:
		return fmt.Errorf("memory %s (memory_size) is above the %s supported", acpi.HumanBytes(m.MemoryBytes), acpi.HumanBytes(acpi.MaxMemoryBytes))
	}
	return nil
}

// Measurement is what a TD quote of the VM reports, with the events that produce RTMR0-2.
type Measurement struct {
	MRTD     string  `json:"mrtd"`
	RTMR0    string  `json:"rtmr0"`
	RTMR1    string  `json:"rtmr1"`
	RTMR2    string  `json:"rtmr2"`
	EventLog []Event `json:"event_log"` // grouped by RTMR, each in extend order
}

// ACPIBuilder produces the ACPI fw_cfg blobs of a machine.
type ACPIBuilder func(acpi.MachineConfig) (*acpi.Blobs, error)

// Image is a prepared set of boot components; measuring many machine shapes with it only
// redoes the per-shape work. Safe for concurrent use.
type Image struct {
	Firmware *Firmware
	Kernel   *Kernel
	Cmdline  string
	Initrd   *InitrdDigest
	// KernelHeaderNormalized: the image declares (metadata.json kernel_header_normalized) that
	// its kernel ships with the canonical setup header and its firmware normalizes the header
	// before measuring, so the kernel event is the shipped file's digest on every QEMU.
	KernelHeaderNormalized bool
	// ACPI builds the ACPI blobs; nil means acpi.Build.
	ACPI ACPIBuilder
}

// LiteKernelDigest is the kernel_authenticode of a lite measurement document: the shipped
// kernel's digest for a normalized image, else the digest of the kernel as QEMU patches it for
// RAM >= 0xB0000000 (the same bytes as at exactly 2 GiB; other sizes patch other bytes).
func (im *Image) LiteKernelDigest() ([]byte, error) {
	if im.KernelHeaderNormalized {
		return im.UnpatchedKernelDigest()
	}
	return im.Kernel.Digest(im.bootParams(canonicalHeaderMemory), true)
}

// UnpatchedKernelDigest is the Authenticode of the kernel file as shipped.
func (im *Image) UnpatchedKernelDigest() ([]byte, error) {
	return im.Kernel.Digest(pe.BootParams{}, false)
}

func (im *Image) bootParams(memoryBytes uint64) pe.BootParams {
	p := pe.BootParams{MemoryBytes: memoryBytes, ACPIDataSize: acpiDataSize, Cmdline: im.Cmdline, HasInitrd: im.Initrd != nil}
	if im.Initrd != nil {
		p.InitrdSize = im.Initrd.Size
	}
	return p
}

// Prepare parses the firmware and wraps the kernel.
func Prepare(in Inputs) (*Image, error) {
	fw, err := ParseFirmware(in.Firmware)
	if err != nil {
		return nil, err
	}
	k, err := PrepareKernel(in.Kernel)
	if err != nil {
		return nil, err
	}
	return NewImage(fw, k, in)
}

// NewImage assembles an Image from a firmware and kernel the caller prepared (concurrently,
// say) and the rest of in.
func NewImage(fw *Firmware, k *Kernel, in Inputs) (*Image, error) {
	if err := checkInitrd(in.Initrd); err != nil {
		return nil, err
	}
	return &Image{Firmware: fw, Kernel: k, Cmdline: in.Cmdline, Initrd: in.Initrd, KernelHeaderNormalized: in.KernelHeaderNormalized}, nil
}

// Measure computes all registers of one image on one machine.
func Measure(in Inputs, m Machine) (*Measurement, error) {
	im, err := Prepare(in)
	if err != nil {
		return nil, err
	}
	return im.Measure(m)
}

func checkInitrd(d *InitrdDigest) error {
	if d != nil && len(d.SHA384) != sha512.Size384 {
		return fmt.Errorf("initrd digest: SHA384 is %d bytes, want %d", len(d.SHA384), sha512.Size384)
	}
	return nil
}

// Measure computes MRTD and RTMR0-2 for machine m.
func (im *Image) Measure(m Machine) (*Measurement, error) {
	if im.Firmware == nil || im.Kernel == nil {
		return nil, errors.New("image: Firmware and Kernel are required")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := checkInitrd(im.Initrd); err != nil {
		return nil, err
	}
	rtmr0, err := im.RTMR0Events(m)
	if err != nil {
		return nil, err
	}
	rtmr1, err := im.RTMR1Events(m)
	if err != nil {
		return nil, err
	}
	rtmr2, err := im.RTMR2Events()
	if err != nil {
		return nil, err
	}
	log := append(append(rtmr0, rtmr1...), rtmr2...)
	out := &Measurement{MRTD: hex.EncodeToString(im.Firmware.MRTD(m.TwoPass())), EventLog: log}
	for i, dst := range []*string{&out.RTMR0, &out.RTMR1, &out.RTMR2} {
		v, err := replayEvents(log, i)
		if err != nil {
			return nil, err
		}
		*dst = hex.EncodeToString(v)
	}
	return out, nil
}

// RTMR0Events returns TDVF's RTMR0 events for machine m: TD HOB, CFV, Secure Boot
// variables, separator, the ACPI blobs in the order OVMF downloads them, BootOrder, Boot0000.
func (im *Image) RTMR0Events(m Machine) ([]Event, error) {
	hob, err := im.Firmware.TDHOB(m.MemoryBytes)
	if err != nil {
		return nil, err
	}
	fixed, err := im.Firmware.fixedRTMR0()
	if err != nil {
		return nil, err
	}
	build := im.ACPI
	if build == nil {
		build = acpi.Build
	}
	blobs, err := build(m.MachineConfig)
	if err != nil {
		return nil, fmt.Errorf("ACPI tables: %w", err)
	}
	acpiEvents, err := acpiEvents(blobs)
	if err != nil {
		return nil, err
	}

	tdhob := newEvent(0, EvEFIHandoffTables2, LabelTDHOB, sha384(hob))
	tdhob.Detail = fmt.Sprintf("TD HOB QEMU builds for %d bytes of RAM (%d bytes)", m.MemoryBytes, len(hob))
	ev := []Event{
		tdhob,
		fixed.cfv,
	}
	ev = append(ev, fixed.vars...)
	ev = append(ev, newEvent(0, EvSeparator, LabelSeparator, separatorDigest))
	ev = append(ev, acpiEvents...)
	ev = append(ev,
		bootOrderEvent(),
		fixed.boot0000,
	)
	return ev, nil
}

// RTMR1Events returns the kernel's Authenticode event and the boot manager's EFI actions.
func (im *Image) RTMR1Events(m Machine) ([]Event, error) {
	p := im.bootParams(m.MemoryBytes)
	patched, why, err := im.kernelPatched(m)
	if err != nil {
		return nil, err
	}
	d, err := im.Kernel.Digest(p, patched)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	kernel := newEvent(1, EvEFIBootServicesApplication, LabelKernel, d)
	kernel.Detail = "Authenticode SHA-384 of the bzImage as shipped (" + why + ")"
	if patched {
		kernel.Detail = "Authenticode SHA-384 of the bzImage, setup header patched by QEMU (" + why + ")"
	}
	return []Event{
		kernel,
		newEvent(1, EvEFIAction, LabelCallingEFI, sha384([]byte(eventlog.ActionCallingEFIApp))),
		newEvent(1, EvSeparator, LabelSeparator, separatorDigest),
		newEvent(1, EvEFIAction, LabelExitBS, sha384([]byte(eventlog.ActionExitBootServices))),
		newEvent(1, EvEFIAction, LabelExitBSReturn, sha384([]byte(eventlog.ActionExitBootSvcReturn))),
	}, nil
}

// KernelPatched reports whether the kernel OVMF measures carries QEMU's setup-header patch,
// and why. QEMU >= 10.2 leaves confidential guests' headers alone ("x86/loader: Don't update
// kernel header for CoCo VMs"); QEMU >= 10.0 also publishes the file as given in fw_cfg
// "etc/boot/kernel", which firmware fetching named blobs uses instead of the patched setup
// item. Machine.NoKernelPatch overrides both.
func (im *Image) KernelPatched(m Machine) (bool, error) {
	patched, _, err := im.kernelPatched(m)
	return patched, err
}

func (im *Image) kernelPatched(m Machine) (bool, string, error) {
	if m.NoKernelPatch != nil {
		return !*m.NoKernelPatch, "as set by the caller", nil
	}
	if im.KernelHeaderNormalized {
		return false, "the image's kernel header is normalized (kernel_header_normalized): its firmware measures the shipped header on every QEMU", nil
	}
	v := m.QEMUVersion
	switch m.QEMUBuild {
	case "", QEMUBuildUpstream:
	case QEMUBuildDstackFork:
		// kvinwang/qemu-tdx hw/i386/x86-common.c x86_load_linux: the 9.2.1 code patches the
		// header for every non-SEV guest and publishes no etc/boot/kernel, whatever version's
		// ACPI it emulates.
		return true, "dstack's 9.2.1-based QEMU fork patches the header for every TDX guest", nil
	default:
		return false, "", fmt.Errorf("machine: QEMU build %q: want %q or %q", m.QEMUBuild, QEMUBuildUpstream, QEMUBuildDstackFork)
	}
	if v.AtLeast(10, 2, 0) {
		return false, "QEMU >= 10.2 does not patch confidential guests' kernels", nil
	}
	if v.AtLeast(10, 0, 0) {
		traits, err := im.Firmware.Traits()
		if err != nil {
			return false, "", err
		}
		if traits.NamedKernelBlobs {
			return false, "the firmware reads QEMU >= 10.0's unpatched etc/boot/kernel", nil
		}
		return true, "the firmware predates etc/boot/kernel", nil
	}
	return true, "QEMU < 10.0", nil
}

// OtherQEMUBuild returns m under the other QEMU build, and whether the two builds measure its
// kernel differently (one patches the setup header, the other does not). Only RTMR1 can differ:
// vm_config declares a QEMU version, not which code base loads the kernel.
func (im *Image) OtherQEMUBuild(m Machine) (alt Machine, differs bool, err error) {
	alt = m
	alt.QEMUBuild = QEMUBuildDstackFork
	if m.QEMUBuild == QEMUBuildDstackFork {
		alt.QEMUBuild = QEMUBuildUpstream
	}
	p1, err := im.KernelPatched(m)
	if err != nil {
		return alt, false, err
	}
	p2, err := im.KernelPatched(alt)
	if err != nil {
		return alt, false, err
	}
	return alt, p1 != p2, nil
}

// RTMR1 computes RTMR1 alone, without building the ACPI tables RTMR0 needs.
func (im *Image) RTMR1(m Machine) (string, error) {
	ev, err := im.RTMR1Events(m)
	if err != nil {
		return "", err
	}
	v, err := replayEvents(ev, 1)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(v), nil
}

// RTMR2Events returns the Linux EFI stub's tagged events: its LoadOptions, laid out as the
// firmware's kernel loader builds them, then the initrd it loaded through OVMF's LoadFile2.
// OVMF offers no initrd when its size is 0 (and then adds no "initrd=initrd" either).
func (im *Image) RTMR2Events() ([]Event, error) {
	traits, err := im.Firmware.Traits()
	if err != nil {
		return nil, err
	}
	hasInitrd := im.Initrd != nil && im.Initrd.Size > 0
	var ev []Event
	if lo := LoadOptions(im.Cmdline, hasInitrd, traits.LoadOptions); lo != nil {
		e := newEvent(2, EvEventTag, LabelCmdline, sha384(lo))
		e.Detail = fmt.Sprintf("%q, each byte widened to UTF-16, NUL-terminated", measuredCmdline(im.Cmdline, hasInitrd, traits.LoadOptions))
		ev = append(ev, e)
	}
	if hasInitrd {
		e := newEvent(2, EvEventTag, LabelInitrd, im.Initrd.SHA384)
		e.Detail = fmt.Sprintf("initrd (%d bytes)", im.Initrd.Size)
		ev = append(ev, e)
	}
	return ev, nil
}

// QEMU's linker/loader script (hw/acpi/bios-linker-loader.c): 128-byte commands.
const (
	loaderEntryLen    = 128
	loaderCmdAllocate = 1
	loaderFileNameLen = 56

	fileACPITables = "etc/acpi/tables"
	fileACPIRSDP   = "etc/acpi/rsdp"
)

// acpiEvents returns the EV_PLATFORM_CONFIG_FLAGS events of OVMF's AcpiPlatformDxe: the
// loader script first, then every blob as its ALLOCATE command downloads it.
func acpiEvents(b *acpi.Blobs) ([]Event, error) {
	if b == nil || len(b.Loader) == 0 || len(b.Loader)%loaderEntryLen != 0 {
		return nil, errors.New("ACPI table-loader blob is missing or not a whole number of commands")
	}
	sums := b.SHA384()
	loader := newEvent(0, EvPlatformConfigFlags, LabelACPILoader, sums.Loader)
	loader.Detail = fmt.Sprintf("fw_cfg etc/table-loader (%d bytes)", len(b.Loader))
	ev := []Event{loader}
	seen := map[string]bool{}
	for off := 0; off < len(b.Loader); off += loaderEntryLen {
		e := b.Loader[off : off+loaderEntryLen]
		if binary.LittleEndian.Uint32(e) != loaderCmdAllocate {
			continue
		}
		name := e[4 : 4+loaderFileNameLen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		file := string(name)
		if seen[file] {
			return nil, fmt.Errorf("ACPI table-loader allocates %q twice", file)
		}
		seen[file] = true
		switch file {
		case fileACPITables:
			e := newEvent(0, EvPlatformConfigFlags, LabelACPITables, sums.Tables)
			e.Detail = fmt.Sprintf("fw_cfg %s (%d bytes: %d tables)", file, len(b.Tables), len(b.List))
			ev = append(ev, e)
		case fileACPIRSDP:
			e := newEvent(0, EvPlatformConfigFlags, LabelACPIRSDP, sums.RSDP)
			e.Detail = fmt.Sprintf("fw_cfg %s (%d bytes)", file, len(b.RSDP))
			ev = append(ev, e)
		default:
			return nil, fmt.Errorf("ACPI table-loader allocates fw_cfg file %q, whose content is not modelled: %w", file, ErrNotSupported)
		}
	}
	if !seen[fileACPITables] || !seen[fileACPIRSDP] {
		return nil, fmt.Errorf("ACPI table-loader does not allocate both %s and %s", fileACPITables, fileACPIRSDP)
	}
	return ev, nil
}

func bootOrderEvent() Event {
	e := newEvent(0, EvEFIVariableBoot, LabelBootOrder, sha384(bootOrderData))
	e.Detail = "BootOrder = 0000 (2 bytes)"
	return e
}

// MachineReport is how every output describes the machine a value was computed for, in
// vm_config's field names.
type MachineReport struct {
	CPUCount         int             `json:"cpu_count"`
	MemorySize       uint64          `json:"memory_size"`
	QEMUVersion      string          `json:"qemu_version"`
	ACPIProfile      string          `json:"acpi_profile"` // the release whose ACPI profile built the tables
	QEMUBuild        QEMUBuild       `json:"qemu_build"`
	TwoPassAddPages  bool            `json:"two_pass_add_pages"`
	PIC              bool            `json:"pic"`
	SMM              bool            `json:"smm"`
	NumNICs          int             `json:"num_nics"`
	NumVerityVolumes int             `json:"num_verity_volumes"`
	NumGPUs          int             `json:"num_gpus"`
	NumNVSwitches    int             `json:"num_nvswitches"`
	HotplugOff       bool            `json:"hotplug_off"`
	RootVerity       bool            `json:"root_verity"`
	PCIHole64Size    *uint64         `json:"pci_hole64_size"` // null: QEMU's default
	Hugepages        bool            `json:"hugepages"`
	HostShareMode    string          `json:"host_share_mode"`
	NUMANodes        []acpi.NUMANode `json:"numa_nodes"`
}

// Report describes m.
func (m *Machine) Report() MachineReport {
	r := MachineReport{
		CPUCount: m.CPUs, MemorySize: m.MemoryBytes, QEMUVersion: m.QEMUVersion.String(), ACPIProfile: m.ProfileVersion().String(),
		QEMUBuild: m.QEMUBuild.OrUpstream(), TwoPassAddPages: m.TwoPass(), PIC: m.PICEnabled(), SMM: m.SMM,
		NumNICs: m.NumNICs, NumVerityVolumes: m.NumVerityVolumes, NumGPUs: m.NumGPUs, NumNVSwitches: m.NumNVSwitches,
		HotplugOff: m.HotplugOff, RootVerity: m.RootVerity, Hugepages: m.Hugepages, HostShareMode: string(m.HostShareMode),
		NUMANodes: m.NUMANodes,
	}
	if m.PCIHole64SizeSet {
		v := m.PCIHole64Size
		r.PCIHole64Size = &v
	}
	return r
}
