package mr

import "github.com/dstack-mr/dstack-mr/uefi"

// DeriveEvents computes the RTMR0 events that come from the firmware image itself (CFV,
// Secure Boot variables, Boot0000) now instead of on the first Measure. Deriving Boot0000
// decompresses the firmware's DXE volume, the slowest step of a cold measurement, so callers
// start it alongside their other work (hashing a large initrd). Safe to call more than once.
func (f *Firmware) DeriveEvents() error {
	_, err := f.fixedRTMR0()
	return err
}

// VariableDriverConfigDigest is the EV_EFI_VARIABLE_DRIVER_CONFIG digest TDVF logs for an EFI
// variable: SHA-384 of UEFI_VARIABLE_DATA (vendor GUID, name length, data length, UTF-16 name,
// data). An absent variable is measured with empty data.
func VariableDriverConfigDigest(vendor uefi.GUID, name string, data []byte) []byte {
	return variableDriverConfigDigest(vendor, name, data)
}

// FirmwareEvents returns the RTMR0 events that depend on the firmware image alone (CFV,
// Secure Boot variables, Boot0000), or why this firmware's RTMRs cannot be computed.
func (f *Firmware) FirmwareEvents() ([]Event, error) {
	ev, err := f.fixedRTMR0()
	if err != nil {
		return nil, err
	}
	out := append([]Event{ev.cfv}, ev.vars...)
	return append(out, ev.boot0000), nil
}

// Prefetch starts, in the background, the per-image work measuring machine m will ask for:
// the MRTD of m's page-add order and the kernel digests of m's setup header and, where the
// other QEMU build measures the kernel differently, of that build's. A caller still hashing a
// large initrd overlaps them with it; Measure then finds them done (or waits for them). im's
// Initrd need only carry the expected size: a digest computed for another size is simply not
// used. Errors are left for Measure to report.
func (im *Image) Prefetch(m Machine) {
	go im.Firmware.MRTD(m.TwoPass())
	go func() {
		alt := m
		alt.QEMUBuild = QEMUBuildDstackFork
		if m.QEMUBuild == QEMUBuildDstackFork {
			alt.QEMUBuild = QEMUBuildUpstream
		}
		for _, mb := range []Machine{m, alt} {
			if patched, _, err := im.kernelPatched(mb); err == nil {
				im.Kernel.Digest(im.bootParams(m.MemoryBytes), patched)
			}
		}
	}()
}
