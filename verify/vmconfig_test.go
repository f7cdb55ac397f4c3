package verify

import (
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/mr"
)

func TestVMConfigHugepagesMemory(t *testing.T) {
	vm, err := ParseVMConfig([]byte(`{"cpu_count": 4, "memory_size": 2684354560, "hugepages": true, "qemu_version": "9.2.1"}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := vm.Machine()
	if err != nil {
		t.Fatal(err)
	}
	if m.MemoryBytes != 2<<30 {
		t.Errorf("hugepages VM of 2560 MiB measured with %d bytes, want 2 GiB as dstack-vmm launches it", m.MemoryBytes)
	}
	vm, err = ParseVMConfig([]byte(`{"cpu_count": 4, "memory_size": 2684354560, "qemu_version": "9.2.1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if m, err = vm.Machine(); err != nil || m.MemoryBytes != 2684354560 {
		t.Errorf("without hugepages memory_size is QEMU's: %v, %v", m, err)
	}
	vm, err = ParseVMConfig([]byte(`{"cpu_count": 4, "memory_size": 536870912, "hugepages": true}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Machine(); err == nil || !strings.Contains(err.Error(), "vm_config.memory_size") {
		t.Errorf("hugepages VM under 1 GiB: error %v, want one naming vm_config.memory_size", err)
	}
}

// A memory size given as an override is QEMU's, so with hugepages it must be whole GiB.
func TestOverriddenHugepagesMemory(t *testing.T) {
	vm, err := ParseVMConfig([]byte(`{"cpu_count": 4, "memory_size": 4294967296, "hugepages": true, "qemu_version": "9.2.1"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		memory  uint64
		errPart string
	}{{3 << 30, ""}, {2560 << 20, "whole GiB"}} {
		opts := &Options{OverrideMachine: func(m *mr.Machine) { m.MemoryBytes = tc.memory }, OverrideFields: []string{"memory_size"}}
		m, err := machine(opts, vm)
		switch {
		case tc.errPart == "" && (err != nil || m.MemoryBytes != tc.memory):
			t.Errorf("%d bytes: %v", tc.memory, err)
		case tc.errPart != "" && (err == nil || !strings.Contains(err.Error(), tc.errPart)):
			t.Errorf("%d bytes: error %v, want %q", tc.memory, err, tc.errPart)
		}
	}
}

// A vm_config value of the wrong JSON type is reported in vm_config's terms, with the value.
func TestVMConfigTypeErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"cpu_count": "four"}`, `vm_config.cpu_count: want a whole number, 0 or more, got "four"`},
		{`{"cpu_count": -1}`, `vm_config.cpu_count: want a whole number, 0 or more, got -1`},
		{`{"hugepages": "yes"}`, `vm_config.hugepages: want true or false, got "yes"`},
		{`{"numa_nodes": 5}`, `vm_config.numa_nodes: want a list, got 5`},
		{`{"qemu_version": 10}`, `vm_config.qemu_version: want a string, got 10`},
	} {
		_, err := ParseVMConfig([]byte(tc.doc))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.doc, err, tc.want)
		}
	}
}
