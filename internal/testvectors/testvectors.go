// Package testvectors reads test data shared by several packages' tests:
// testdata/vectors/expected-kv.jsonl, the end-to-end reference measurements (provenance:
// testdata/README.md), and the gzip'd firmware inputs.
package testvectors

import (
	"bufio"
	"encoding/json"
	"fmt"
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
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var vs []Vector
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var v Vector
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		v.Line = line
		vs = append(vs, v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return vs, nil
}
