package acpi

// QEMU ACPI profiles: everything in dstack's three ACPI blobs that depends on the QEMU release.
// dstack launches "-machine q35", i.e. the newest machine type of the QEMU it runs, so no
// machine-type compat property ever selects an older behaviour: the profile is a function of the
// QEMU version alone. The findings behind every field, with the QEMU commits, are in
// PROFILES.md next to this file; keep the two in step.
//
// One switch, acpiProfile, maps a version to its profile; supportedProfile decides whether
// Build may run for it. A builder that needs a version-dependent byte reads a field of the
// profile instead of comparing versions itself.

import "fmt"

// profile lists the version-dependent behaviours of QEMU's q35 ACPI builder that reach dstack's
// machine. Non-DSDT fields are used by this package's table builders; DSDT fields are for the
// DSDT builder (dsdt*.go).
type profile struct {
	// name is the release range the profile covers, for error messages.
	name string

	// --- etc/acpi/tables outside the DSDT, etc/acpi/rsdp, etc/table-loader ---

	// legacyISAOverrides: dstack's QEMU_ACPI_COMPAT_VER below 9.2 emits an edge/active-high
	// MADT Interrupt Source Override for every ISA IRQ (IRQ0 -> GSI 2 included) instead of
	// upstream's conforming IRQ0 override plus level/active-high ones for the PCI IRQs only.
	legacyISAOverrides bool
	// picDefault is "-machine pic=" left unset: on for the 8.x machine types, off from 9.0.
	picDefault bool
	// tdxRefusesPICAndSMM: from 10.1 upstream TDX (target/i386/kvm/tdx.c tdx_kvm_init) turns
	// pic/smm "auto" off and fails the launch on an explicit pic=on or smm=on.
	tdxRefusesPICAndSMM bool

	// --- DSDT (see PROFILES.md for the exact AML) ---

	// edgeTriggeredLinks: LNKx/GSIx/IQCR Interrupt() descriptors say Edge (dstack's pre-9.2
	// compatibility) instead of Level.
	edgeTriggeredLinks bool
	// pdsmFunc7Guarded: PDSM function 7 returns an uninitialised Package unless the slot has an
	// acpi-index (qemu/qemu@0b053391985abcc40b16ac8fc4a7f6588d1d95c1; present in every profile
	// from 9.2 in dstack's QEMU).
	pdsmFunc7Guarded bool
	// cpuHotplugEjectList: CSCN queues remove events in a second package CEJL and notifies them
	// after the insert events (qemu/qemu@8aa35bebeeaed19ae57afbc3e110b8e7fe8587d0, 10.0).
	cpuHotplugEjectList bool
	// cpuHotplugLegacyINI: \_SB.PCI0.PRES carries Method(_INI){CSEL = Zero}, which switches the
	// legacy CPU hotplug block to the modern one; QEMU 11.0 starts in modern mode and drops it.
	cpuHotplugLegacyINI bool
	// serialLevelIRQ: COMx _CRS describes its IRQ as IRQ(Level, ActiveLow, Shared) rather than
	// IRQNoFlags (11.1).
	serialLevelIRQ bool

	// hotplugRootPortsProven: the tables the firmware reads for root ports on pcie.0 with ACPI
	// PCI hotplug on (the BSEL hotplug AML the reset adds, dsdt_pci.go) are proven against this
	// profile's QEMU dumped at the firmware's first read (../testdata/acpi-firstread). Build
	// refuses those machines for the other profiles (checkTablesStable).
	hotplugRootPortsProven bool

	// openQuestion, when set, names bytes of this profile that the sources read so far do not pin
	// down; supportedProfile refuses the profile until it is answered (PROFILES.md).
	openQuestion string

	// dsdtSupported: this package's DSDT builder reproduces the profile. The DSDT builder's
	// owners flip it once their AML for the profile is done; until then Validate refuses the
	// profile with ErrNotSupported, because a DSDT with one stale byte is a wrong measurement.
	dsdtSupported bool
}

// Profile boundaries. QEMU releases outside [oldestProfile, newestProfile] have no profile.
var (
	oldestProfile = Version{8, 0, 0}
	// The newest release whose ACPI changes have been read (PROFILES.md). Anything newer may
	// change bytes nobody has looked at.
	newestProfile = Version{11, 1, 1000}
)

// NewestProfile is the first release of the newest ACPI profile (11.1.0).
func NewestProfile() Version { return Version{newestProfile.Major, newestProfile.Minor, 0} }

// NewerThanNewestProfile reports whether v is a release after every profile: its ACPI output
// has not been read, so building it is a guess.
func (v Version) NewerThanNewestProfile() bool { return newestProfile.Less(v) }

// acpiProfile is the single version switch of the package. Each case starts from the previous
// profile and applies what the release changed, so a new release is one more case.
func (v Version) acpiProfile() (profile, bool) {
	if v.Less(oldestProfile) || newestProfile.Less(v) {
		return profile{}, false
	}
	// 8.0 .. 9.1.x, as dstack's QEMU emulates them (QEMU_ACPI_COMPAT_VER below 9.2.0).
	p := profile{
		name:                "8.0-9.1",
		legacyISAOverrides:  true,
		picDefault:          true,
		edgeTriggeredLinks:  true,
		cpuHotplugLegacyINI: true,
		dsdtSupported:       true,
	}
	if v.AtLeast(9, 0, 0) {
		p.picDefault = false // pc_q35: pic=auto resolves to off from the 9.0 machine type
	}
	if !v.AtLeast(9, 2, 0) {
		return p, true
	}
	p.name = "9.2"
	p.legacyISAOverrides = false
	p.edgeTriggeredLinks = false
	p.pdsmFunc7Guarded = true
	if !v.AtLeast(10, 0, 0) {
		return p, true
	}
	p.name = "10.0"
	p.cpuHotplugEjectList = true // CSCN checked against QEMU's own q35 test DSDT (profile_dsdt_test.go)
	if !v.AtLeast(10, 1, 0) {
		return p, true
	}
	p.name = "10.1-10.2"
	p.tdxRefusesPICAndSMM = true
	// Dumped with QEMU 10.2.2 at the firmware's first read; hw/acpi/pcihp.c and the callers in
	// hw/i386/acpi-build.c are the same in 10.1 (PROFILES.md).
	p.hotplugRootPortsProven = true
	if !v.AtLeast(11, 0, 0) {
		return p, true
	}
	p.name = "11.0"
	// QEMU 11.0.3's hw/acpi/cpu.c no longer emits PRES._INI, and every q35 DSDT its test suite
	// expects is exactly those 13 bytes shorter than at 10.2.2; no other table changed
	// (profile_dsdt_test.go holds the two DSDTs; PROFILES.md has the source diff).
	p.cpuHotplugLegacyINI = false
	p.hotplugRootPortsProven = false // no 11.x QEMU dumped at first read yet
	if !v.AtLeast(11, 1, 0) {
		return p, true
	}
	p.name = "11.1"
	// COM1's _CRS IRQ becomes IRQ(Level, ActiveLow, Shared) {4}: dstack's production QEMU (its
	// 9.2.1-based fork with QEMU_ACPI_COMPAT_VER) switches it at 11.1.0, and upstream dstack's
	// qemu-acpi goldens captured from that fork hold it (profile_golden_test.go; PROFILES.md).
	p.serialLevelIRQ = true
	return p, true
}

// supportedProfile returns the profile of v, or an error: plain for releases dstack cannot run,
// wrapping ErrNotSupported for releases whose ACPI output this package cannot reproduce yet.
func supportedProfile(v Version) (profile, error) {
	switch {
	case v == Version{}:
		return profile{}, fmt.Errorf("QEMU version (qemu_version) is not set")
	case v.Less(oldestProfile):
		return profile{}, fmt.Errorf("QEMU %s (qemu_version): QEMU before %d.0 cannot run dstack TDX guests", v, oldestProfile.Major)
	}
	p, ok := v.acpiProfile()
	if !ok {
		return profile{}, fmt.Errorf("QEMU %s is newer than the newest ACPI profile (%d.%d, see acpi/PROFILES.md); its tables may differ: %w",
			v, newestProfile.Major, newestProfile.Minor, ErrNotSupported)
	}
	if p.openQuestion != "" {
		return profile{}, fmt.Errorf("QEMU %s: the QEMU %s ACPI profile is not settled (%s): %w", v, p.name, p.openQuestion, ErrNotSupported)
	}
	if !p.dsdtSupported {
		return profile{}, fmt.Errorf("QEMU %s: the DSDT of the QEMU %s ACPI profile: %w", v, p.name, ErrNotSupported)
	}
	return p, nil
}
