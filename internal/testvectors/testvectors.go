// Package testvectors reads test data shared by several packages' tests:
// testdata/vectors/expected-kv.jsonl, the end-to-end reference measurements (provenance:
// testdata/README.md), the gzip'd firmware inputs and the gzip'd ACPI oracle/upstream-dump indexes.
package testvectors

import (
	"os"
)

// Vector is one row: boot components, VM shape and the expected registers.
type Vector struct {
	Line        int    `json:"-"` // 1-based line in the file
	Firmware    string `json:"firmware"`
	Kernel      string `json:"kernel"`
	Initrd      string `json:"initrd"`
	Cmdline     string `json:"cmdline"`
	CPU         int    `json:"cpu"`
	Memory      string `json:"memory"`
	MemoryBytes uint64 `json:"memory_bytes"`
	Flags       struct {
		QEMUVersion string `json:"qemu_version"`
		RootVerity  bool   `json:"root_verity"`
	} `json:"flags"`
	MRTD  string `json:"mrtd"`
	RTMR0 string `json:"rtmr0"`
	RTMR1 string `json:"rtmr1"`
	RTMR2 string `json:"rtmr2"`
}

// Load reads every row of the JSON-lines file at path.
func Load(path string) ([]Vector, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	vs, err := decodeJSONL[Vector](raw, path)
	if err != nil {
		return nil, err
	}
	for i := range vs {
		vs[i].Line = i + 1 // a blank or partial line is a decode error, so rows are lines
	}
	return vs, nil
}
