package mr

import (
	"bytes"
	"errors"
	"sync"

	"github.com/dstack-mr/dstack-mr/pe"
)

// QEMU's pc/q35 acpi_data_size (hw/i386/pc.c: 0x20000 + 0x8000), the RAM it keeps free below
// the top of low memory for ACPI, which decides where it places the initrd.
const acpiDataSize = 0x28000

// maxKernelMemo bounds the per-kernel memo: each entry is one distinct patched header.
const maxKernelMemo = 256

// Kernel is a bzImage prepared for measurement. The Authenticode digest depends on the
// patched setup header only; it is computed once per distinct header, and callers asking for
// one being computed wait for it. Safe for concurrent use.
type Kernel struct {
	data []byte

	mu   sync.Mutex
	memo map[string]*kernelDigest
}

type kernelDigest struct {
	done chan struct{}
	d    []byte
	err  error
}

// PrepareKernel wraps a bzImage. The data is retained, not copied: the caller must not
// modify it afterwards.
func PrepareKernel(data []byte) (*Kernel, error) {
	if len(data) == 0 {
		return nil, errors.New("kernel is empty")
	}
	return &Kernel{data: data, memo: make(map[string]*kernelDigest)}, nil
}

// Digest returns the Authenticode SHA-384 OVMF measures for the kernel started with boot
// parameters p, after QEMU's setup-header patch unless patch is false. The patched kernel is
// never copied: its patched first bytes are substituted while hashing.
func (k *Kernel) Digest(p pe.BootParams, patch bool) ([]byte, error) {
	var head []byte
	key := "unpatched"
	if patch {
		var err error
		if head, err = pe.PatchedSetupHeader(k.data, p); err != nil {
			return nil, err
		}
		key = "patched:" + string(head)
	}
	k.mu.Lock()
	e, ok := k.memo[key]
	if !ok {
		if len(k.memo) >= maxKernelMemo {
			clear(k.memo)
		}
		e = &kernelDigest{done: make(chan struct{})}
		k.memo[key] = e
	}
	k.mu.Unlock()
	if ok {
		<-e.done
		return bytes.Clone(e.d), e.err
	}
	e.d, e.err = pe.AuthenticodeSHA384Patched(k.data, head)
	close(e.done)
	return bytes.Clone(e.d), e.err
}

// canonicalHeaderMemory is the RAM size the canonical setup header is patched for.
const canonicalHeaderMemory = 0xB0000000

// CanonicalHeaderParams are the boot parameters of the canonical setup header: what QEMU up to
// 10.1 writes for this command line and initrd on a VM with at least 0xB0000000 bytes of RAM
// (the same bytes as at exactly 2 GiB). A normalized image ships its kernel with this header.
func CanonicalHeaderParams(cmdline string, hasInitrd bool, initrdSize uint64) pe.BootParams {
	return pe.BootParams{MemoryBytes: canonicalHeaderMemory, ACPIDataSize: acpiDataSize, Cmdline: cmdline, HasInitrd: hasInitrd, InitrdSize: initrdSize}
}
