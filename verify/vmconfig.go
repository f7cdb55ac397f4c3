package verify

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/dstack-mr/dstack-mr/acpi"
	"github.com/dstack-mr/dstack-mr/mr"
)

// ErrNotSupported marks what this package cannot check yet; it is reported as not checked,
// never as a pass.
var ErrNotSupported = errors.New("not supported yet")

// maxVMConfigBytes bounds vm_config; real ones are ~1 KiB (with a lite document).
const maxVMConfigBytes = 1 << 20

// VMConfig is dstack's vm_config (dstack-types VmConfig): the VM shape dstack-vmm launched,
// as the guest reports it. It is untrusted until the registers it predicts match the quote.
type VMConfig struct {
	SpecVersion            int     `json:"spec_version,omitempty"`
	OSImageHash            Hex     `json:"os_image_hash,omitempty"`
	CPUCount               uint32  `json:"cpu_count"`
	MemorySize             uint64  `json:"memory_size"`
	QEMUSinglePassAddPages *bool   `json:"qemu_single_pass_add_pages,omitempty"`
	PIC                    *bool   `json:"pic,omitempty"`
	QEMUVersion            *string `json:"qemu_version,omitempty"`
	PCIHole64Size          uint64  `json:"pci_hole64_size"`
	Hugepages              bool    `json:"hugepages"`
	NumGPUs                uint32  `json:"num_gpus"`
	NumNVSwitches          uint32  `json:"num_nvswitches"`
	NumNICs                uint32  `json:"num_nics"`
	NumVerityVolumes       uint32  `json:"num_verity_volumes"`
	SWTPM                  bool    `json:"swtpm"`
	HotplugOff             bool    `json:"hotplug_off"`
	Image                  *string `json:"image,omitempty"`
	HostShareMode          string  `json:"host_share_mode"`
	OVMFVariant            *string `json:"ovmf_variant,omitempty"`
	TDXAttestationVariant  string  `json:"tdx_attestation_variant,omitempty"`
	// NUMANodes is newer dstack-vmm's guest NUMA layout for GPU VMs (one expander bus per node).
	NUMANodes []acpi.NUMANode `json:"numa_nodes,omitempty"`
	// ExtraRootDevices (newest vm_configs): devices on the root bus; kept raw, refused when set.
	ExtraRootDevices json.RawMessage `json:"extra_root_devices,omitempty"`
	// TDXMeasurement is the lite document (sha256sum.txt + measurement.tdx.cbor), when the
	// image provides one.
	TDXMeasurement *LiteDocument `json:"-"`
	// Unknown lists keys this package does not interpret; a shape field added upstream later
	// would show up here instead of being silently ignored.
	Unknown []string `json:"unknown_fields,omitempty"`

	// present records the keys the JSON carried (with a non-null value), so a report can say
	// which shape fields came from vm_config and which from defaults.
	present map[string]bool
}

// knownVMConfigKeys are the keys ParseVMConfig reads, plus the non-TDX measurement documents
// that a TDX verification has no use for.
var knownVMConfigKeys = map[string]bool{
	"spec_version": true, "os_image_hash": true, "cpu_count": true, "memory_size": true,
	"qemu_single_pass_add_pages": true, "pic": true, "qemu_version": true, "pci_hole64_size": true,
	"hugepages": true, "num_gpus": true, "num_nvswitches": true, "num_nics": true,
	"num_verity_volumes": true, "swtpm": true, "hotplug_off": true, "image": true,
	"host_share_mode": true, "ovmf_variant": true, "tdx_attestation_variant": true,
	"tdx_measurement": true, "gcp_measurement": true, "aws_measurement": true,
	"numa_nodes": true, "extra_root_devices": true,
	// Read by the MRCONFIGID v3 check (app_checks.go), not a shape field.
	"mr_config": true,
}

// ParseVMConfig decodes vm_config: a JSON object, or a JSON string holding one (the way
// GetQuote carries it).
func ParseVMConfig(data []byte) (*VMConfig, error) {
	if len(data) > maxVMConfigBytes {
		return nil, fmt.Errorf("vm_config: %d bytes, over the %d-byte limit", len(data), maxVMConfigBytes)
	}
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, fmt.Errorf("vm_config: %w", err)
		}
		data = []byte(s)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("vm_config: want a JSON object: %w", err)
	}
	vm := &VMConfig{NumNICs: 1, present: map[string]bool{}} // dstack omits num_nics when it is 1
	for k, raw := range fields {
		if string(raw) != "null" {
			vm.present[k] = true
		}
		if !knownVMConfigKeys[k] {
			vm.Unknown = append(vm.Unknown, k)
			continue
		}
		if err := vm.setField(k, raw); err != nil {
			return nil, fmt.Errorf("vm_config.%s: %w", k, err)
		}
	}
	sort.Strings(vm.Unknown)
	return vm, nil
}

func (vm *VMConfig) setField(k string, raw json.RawMessage) error {
	if string(raw) == "null" {
		return nil
	}
	var target any
	switch k {
	case "spec_version":
		target = &vm.SpecVersion
	case "os_image_hash":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
		if err != nil {
			return fmt.Errorf("not hex: %w", err)
		}
		vm.OSImageHash = b
		return nil
	case "cpu_count":
		target = &vm.CPUCount
	case "memory_size":
		target = &vm.MemorySize
	case "qemu_single_pass_add_pages":
		target = &vm.QEMUSinglePassAddPages
	case "pic":
		target = &vm.PIC
	case "qemu_version":
		target = &vm.QEMUVersion
	case "pci_hole64_size":
		target = &vm.PCIHole64Size
	case "hugepages":
		target = &vm.Hugepages
	case "num_gpus":
		target = &vm.NumGPUs
	case "num_nvswitches":
		target = &vm.NumNVSwitches
	case "num_nics":
		target = &vm.NumNICs
	case "num_verity_volumes":
		target = &vm.NumVerityVolumes
	case "swtpm":
		target = &vm.SWTPM
	case "hotplug_off":
		target = &vm.HotplugOff
	case "image":
		target = &vm.Image
	case "host_share_mode":
		target = &vm.HostShareMode
	case "ovmf_variant":
		target = &vm.OVMFVariant
	case "tdx_attestation_variant":
		target = &vm.TDXAttestationVariant
	case "numa_nodes":
		target = &vm.NUMANodes
	case "extra_root_devices":
		vm.ExtraRootDevices = append(json.RawMessage(nil), raw...)
		return nil
	case "tdx_measurement":
		var d struct {
			Version      *int   `json:"version"`
			OSImageHash  string `json:"os_image_hash"`
			ChecksumFile string `json:"checksum_file"`
			Measurement  string `json:"measurement"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return err
		}
		if d.Version != nil {
			if *d.Version != 2 {
				return fmt.Errorf("version %d: only version 2 (or the current form without a version) is known", *d.Version)
			}
			m, err := hex.DecodeString(d.Measurement)
			if err != nil {
				return fmt.Errorf("measurement: not hex: %w", err)
			}
			h, err := hex.DecodeString(d.OSImageHash)
			if err != nil || len(h) != 32 {
				return fmt.Errorf("os_image_hash: not a hex SHA-256")
			}
			vm.TDXMeasurement = &LiteDocument{Schema: 2, Measurement: m, OSImageHash: h}
			return nil
		}
		cf, err := decodeBase64(d.ChecksumFile)
		if err != nil {
			return fmt.Errorf("checksum_file: %w", err)
		}
		m, err := decodeBase64(d.Measurement)
		if err != nil {
			return fmt.Errorf("measurement: %w", err)
		}
		vm.TDXMeasurement = &LiteDocument{ChecksumFile: cf, Measurement: m}
		return nil
	default:
		return nil // gcp_measurement, aws_measurement: not TDX
	}
	return inVMConfigTerms(json.Unmarshal(raw, target), raw)
}

// inVMConfigTerms says what a vm_config field wants in JSON's terms, with the value it got,
// instead of naming the Go type it was to be decoded into.
func inVMConfigTerms(err error, raw json.RawMessage) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err
	}
	t := te.Type
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	want := "a " + t.Kind().String()
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "a whole number, 0 or more"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		want = "a whole number"
	case reflect.Bool:
		want = "true or false"
	case reflect.String:
		want = "a string"
	case reflect.Slice:
		want = "a list"
	case reflect.Struct, reflect.Map:
		want = "an object"
	}
	got := strings.TrimSpace(string(raw))
	if len(got) > 40 {
		got = got[:40] + "…"
	}
	return fmt.Errorf("want %s, got %s", want, got)
}

// decodeBase64 accepts standard base64 with or without padding.
func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// defaultQEMUVersion is what dstack-mr assumes when vm_config does not say.
const defaultQEMUVersion = "9.1.0"

// Machine derives the measured machine shape from vm_config the way dstack's verifier does:
// root disk as virtio-blk (verity), SMM off, the QEMU version's PIC/page-add defaults unless
// vm_config overrides them.
func (vm *VMConfig) Machine() (*mr.Machine, error) {
	if vm.SWTPM {
		return nil, fmt.Errorf("vm_config.swtpm: a software TPM adds ACPI devices that are not modelled: %w", ErrNotSupported)
	}
	if vm.OVMFVariant != nil && *vm.OVMFVariant != OVMFPre202505 {
		return nil, fmt.Errorf("vm_config.ovmf_variant %q: only %q is defined: %w", *vm.OVMFVariant, OVMFPre202505, ErrNotSupported)
	}
	if len(vm.ExtraRootDevices) > 0 && !bytes.Equal(bytes.TrimSpace(vm.ExtraRootDevices), []byte("[]")) {
		// dstack-vmm itself always writes [] (make_vm_config); upstream's qemu-acpi crate
		// describes entries as endpoints or root ports a host QEMU wrapper appends to the root
		// bus after dstack's own. No QEMU dump shows such a machine here.
		return nil, fmt.Errorf("vm_config.extra_root_devices: devices a host QEMU wrapper appends to the root PCIe bus (dstack-vmm itself always writes []), whose tables no QEMU dump has shown: %w", ErrNotSupported)
	}
	vs := defaultQEMUVersion
	if vm.QEMUVersion != nil {
		vs = *vm.QEMUVersion
	}
	ver, err := acpi.ParseVersion(vs)
	if err != nil {
		return nil, fmt.Errorf("vm_config.qemu_version: %w", err)
	}
	share := acpi.HostShare9p
	switch vm.HostShareMode {
	case "", "9p":
	case "vvfat", "vhd": // both attach a second read-only virtio-blk disk
		share = acpi.HostShareVVFAT
	default:
		return nil, fmt.Errorf("vm_config.host_share_mode %q: want 9p, vvfat or vhd", vm.HostShareMode)
	}
	memory := vm.MemorySize
	if vm.Hugepages {
		if memory, err = mr.HugepagesLaunchMemory(vm.MemorySize, len(vm.NUMANodes)); err != nil {
			return nil, fmt.Errorf("vm_config.memory_size: %w", err)
		}
	}
	m := &mr.Machine{MachineConfig: acpi.MachineConfig{
		CPUs:             int(vm.CPUCount),
		MemoryBytes:      memory,
		QEMUVersion:      ver,
		PIC:              vm.PIC,
		NumNICs:          int(vm.NumNICs),
		NumVerityVolumes: int(vm.NumVerityVolumes),
		NumGPUs:          int(vm.NumGPUs),
		NumNVSwitches:    int(vm.NumNVSwitches),
		HotplugOff:       vm.HotplugOff,
		PCIHole64Size:    vm.PCIHole64Size,
		PCIHole64SizeSet: vm.PCIHole64Size > 0, // dstack passes it to QEMU only when non-zero
		RootVerity:       true,
		HostShareMode:    share,
		Hugepages:        vm.Hugepages,
		// dstack-vmm binds hugepages to host NUMA nodes (host-nodes=N,policy=bind).
		HugepagesBackend: acpi.HugepagesDstack,
		NUMANodes:        vm.NUMANodes,
	}}
	// Upstream dstack (dstack-mr tdx.rs, verifier) feeds qemu_single_pass_add_pages into its
	// two-pass option unchanged; real configs say false on QEMU 9.x, whose default is
	// single-pass. Follow the verifier of record so both accept the same quotes.
	m.TwoPassAddPages = vm.QEMUSinglePassAddPages
	// Whether the kernel is measured patched follows from the QEMU version and the firmware
	// (mr.Image.KernelPatched).
	return m, nil
}
