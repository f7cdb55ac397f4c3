package mr

// DeriveEvents computes the RTMR0 events that come from the firmware image itself (CFV,
// Secure Boot variables, Boot0000) now instead of on the first Measure. Deriving Boot0000
// decompresses the firmware's DXE volume, the slowest step of a cold measurement, so callers
// start it alongside their other work (hashing a large initrd). Safe to call more than once.
func (f *Firmware) DeriveEvents() error {
	_, err := f.fixedRTMR0()
	return err
}
