package mr

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/dstack-mr/dstack-mr/pe"
)

// QEMU's pc/q35 acpi_data_size (hw/i386/pc.c: 0x20000 + 0x8000), the RAM it keeps free below
// the top of low memory for ACPI, which decides where it places the initrd.
const acpiDataSize = 0x28000

// kernelHeaderRegion bounds where QEMU's setup-header patch can write (boot sector and setup
// header end at 0x238); digests are memoized per content of this region.
const kernelHeaderRegion = 0x1000

// maxKernelMemo bounds the per-kernel memo: each entry is one distinct patched header.
const maxKernelMemo = 256

// Kernel is a bzImage prepared for measurement. The Authenticode digest depends on the
// patched setup header only; it is computed once per distinct header. Safe for concurrent use.
type Kernel struct {
	data []byte

	mu   sync.Mutex
	memo map[string][]byte
}

// PrepareKernel wraps a bzImage. The data is retained, not copied: the caller must not
// modify it afterwards.
func PrepareKernel(data []byte) (*Kernel, error) {
	if len(data) == 0 {
		return nil, errors.New("kernel is empty")
	}
	return &Kernel{data: data, memo: make(map[string][]byte)}, nil
}

// Digest returns the Authenticode SHA-384 OVMF measures for the kernel started with boot
// parameters p, after QEMU's setup-header patch unless patch is false.
func (k *Kernel) Digest(p pe.BootParams, patch bool) ([]byte, error) {
	img := k.data
	key := "unpatched"
	// The patched image is a function of the parameters: a repeat finds its digest without the
	// copy of the whole kernel that patching makes (a service measures one image for many CVMs).
	paramsKey := ""
	if patch {
		paramsKey = fmt.Sprintf("params:%#v", p)
		if d, ok := k.lookup(paramsKey); ok {
			return d, nil
		}
		var err error
		if img, err = pe.PatchSetupHeader(k.data, p); err != nil {
			return nil, err
		}
		key = "" // not memoizable unless only the header region changed
		n := min(len(img), kernelHeaderRegion)
		if len(img) == len(k.data) && bytes.Equal(img[n:], k.data[n:]) {
			key = "patched:" + string(img[:n])
		}
	}
	if key != "" {
		if d, ok := k.lookup(key); ok {
			k.store(paramsKey, d)
			return d, nil
		}
	}
	d, err := pe.AuthenticodeSHA384(img)
	if err != nil {
		return nil, err
	}
	k.store(key, d)
	k.store(paramsKey, d)
	return d, nil
}

func (k *Kernel) lookup(key string) ([]byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, ok := k.memo[key]
	return bytes.Clone(d), ok
}

func (k *Kernel) store(key string, d []byte) {
	if key == "" {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.memo) >= maxKernelMemo {
		clear(k.memo)
	}
	k.memo[key] = bytes.Clone(d)
}

// canonicalHeaderMemory is the RAM size the canonical setup header is patched for.
const canonicalHeaderMemory = 0xB0000000

// CanonicalHeaderParams are the boot parameters of the canonical setup header: what QEMU up to
// 10.1 writes for this command line and initrd on a VM with at least 0xB0000000 bytes of RAM
// (the same bytes as at exactly 2 GiB). A normalized image ships its kernel with this header.
func CanonicalHeaderParams(cmdline string, hasInitrd bool, initrdSize uint64) pe.BootParams {
	return pe.BootParams{MemoryBytes: canonicalHeaderMemory, ACPIDataSize: acpiDataSize, Cmdline: cmdline, HasInitrd: hasInitrd, InitrdSize: initrdSize}
}
