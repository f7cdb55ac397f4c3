package testvectors

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
)

// ACPIMachine is the machine shape of a testdata/acpi-oracle or testdata/acpi-upstream index
// line, in the oracle's own field names.
type ACPIMachine struct {
	ID               int     `json:"id"`
	Name             string  `json:"name"`
	CPU              int     `json:"cpu"`
	MemoryMB         uint64  `json:"memory_mb"`
	NumNICs          int     `json:"num_nics"`
	NumVerityVolumes int     `json:"num_verity_volumes"`
	NumGPUs          int     `json:"num_gpus"`
	NumNVSwitches    int     `json:"num_nvswitches"`
	HotplugOff       bool    `json:"hotplug_off"`
	PCIHole64Size    *uint64 `json:"pci_hole64_size"`
	SMM              bool    `json:"smm"`
	PIC              *bool   `json:"pic"`
	RootVerity       bool    `json:"root_verity"`
	HostShareMode    string  `json:"host_share_mode"`
	QEMUVersion      string  `json:"qemu_version"`
	Hugepages        bool    `json:"hugepages"`
	HugepagesBackend string  `json:"hugepages_backend"`
}

// TablesRebuilt reports whether a guest of this shape reads other tables than a dump at
// acpi_setup shows, so acpi.Build refuses it: root ports on the root bus with ACPI PCI hotplug on
// (BSEL assigned at reset), or GPUs behind the hugepages expander (whose _CRS the firmware's
// resource assignment fills in).
func (m ACPIMachine) TablesRebuilt() bool {
	if m.Hugepages && m.NumGPUs > 0 {
		return true
	}
	return !m.HotplugOff && m.NumGPUs+m.NumNVSwitches > 0
}

// ReadJSONLGzip decodes a gzip'd JSON-lines file into one T per line.
func ReadJSONLGzip[T any](path string) ([]T, error) {
	raw, err := ReadGzip(path)
	if err != nil {
		return nil, err
	}
	return decodeJSONL[T](raw, path)
}

// decodeJSONL decodes one T per line of raw; path only names the input in errors.
func decodeJSONL[T any](raw []byte, path string) ([]T, error) {
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, len(out)+1, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
