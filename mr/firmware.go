package mr

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/dstack-mr/dstack-mr/uefi"
)

// FirmwareOptions replaces the sources of firmware-derived data. The zero value uses the
// uefi package, which derives everything from the image itself.
type FirmwareOptions struct {
	// Analyze reads the image's build traits and its Boot0000 load option. nil:
	// uefi.AnalyzeBoot.
	Analyze func(image []byte) (*uefi.BootAnalysis, error)
	// Variables returns the live variables of the CFV's variable store (the CFV section's raw
	// data is passed). nil: uefi.ReadVariables.
	Variables func(cfv []byte) ([]uefi.Variable, error)
}

// Firmware is a parsed OVMF/TDVF image. Everything that depends only on the image is
// computed at most once; a Firmware is safe for concurrent use.
type Firmware struct {
	image    []byte
	sections []Section
	opts     FirmwareOptions

	mrtdOnce [2]sync.Once
	mrtd     [2][]byte

	rtmr0Once   sync.Once
	rtmr0Fixed  firmwareEvents
	rtmr0Failed error
}

// firmwareEvents are the RTMR0 events that depend only on the firmware image, and the
// traits that shape the other registers' events.
type firmwareEvents struct {
	traits   *uefi.BootTraits
	cfv      Event
	vars     []Event // SecureBoot, PK, KEK, db, dbx, then dbt when present
	boot0000 Event
}

// ParseFirmware validates the TDVF metadata of an OVMF image. The image is retained, not
// copied: the caller must not modify it afterwards.
func ParseFirmware(image []byte) (*Firmware, error) {
	return ParseFirmwareWith(image, FirmwareOptions{})
}

// ParseFirmwareWith is ParseFirmware with replaced data sources.
func ParseFirmwareWith(image []byte, opts FirmwareOptions) (*Firmware, error) {
	sections, err := ParseTDVFMetadata(image)
	if err != nil {
		return nil, err
	}
	if opts.Analyze == nil {
		opts.Analyze = uefi.AnalyzeBoot
	}
	if opts.Variables == nil {
		opts.Variables = uefi.ReadVariables
	}
	return &Firmware{image: image, sections: sections, opts: opts}, nil
}

// Sections returns a copy of the TDVF sections in metadata order.
func (f *Firmware) Sections() []Section { return append([]Section(nil), f.sections...) }

// MRTD returns the TD measurement of the firmware for the given page-add order.
func (f *Firmware) MRTD(twoPass bool) []byte {
	i := 0
	if twoPass {
		i = 1
	}
	f.mrtdOnce[i].Do(func() { f.mrtd[i] = mrtd(f.image, f.sections, twoPass) })
	return bytes.Clone(f.mrtd[i])
}

// CFV returns the raw data of the firmware's configuration firmware volume section (a
// sub-slice of the image: do not modify it).
func (f *Firmware) CFV() ([]byte, error) {
	var found []Section
	for _, s := range f.sections {
		if s.Type == SectionCFV {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		// TDVF measures one CFV (TdxHelperMeasureCfvImage); with none or several we cannot
		// tell which bytes it hashed.
		return nil, fmt.Errorf("firmware has %d CFV sections, want 1: %w", len(found), ErrNotSupported)
	}
	s := found[0]
	return f.image[s.DataOffset : uint64(s.DataOffset)+uint64(s.RawDataSize)], nil
}

// TDHOB returns the TD HOB bytes TDVF measures for a VM with memoryBytes of RAM.
func (f *Firmware) TDHOB(memoryBytes uint64) ([]byte, error) {
	return tdHOB(f.sections, memoryBytes)
}

// RAMEntries returns the guest RAM ranges QEMU reports in the TD HOB, accepted or not.
func (f *Firmware) RAMEntries(memoryBytes uint64) ([]RAMEntry, error) {
	return ramEntries(f.sections, memoryBytes)
}

// Secure Boot variables TdTcg2Dxe measures (MeasureAllSecureVariables), in order; dbt follows
// only when it exists.
var (
	efiGlobalVariable     = uefi.MustParseGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
	imageSecurityDatabase = uefi.MustParseGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
	// gEfiSecureBootEnableDisableGuid: AuthVariableLib's SecureBootEnable switch.
	secureBootEnableDisable = uefi.MustParseGUID("f0a30bc7-af08-4556-99c4-001009c93a44")

	secureBootVariables = []secureBootVariable{
		{efiGlobalVariable, "SecureBoot", LabelSecureBoot},
		{efiGlobalVariable, "PK", LabelPK},
		{efiGlobalVariable, "KEK", LabelKEK},
		{imageSecurityDatabase, "db", LabelDB},
		{imageSecurityDatabase, "dbx", LabelDBX},
	}
	dbtVariable = secureBootVariable{imageSecurityDatabase, "dbt", LabelDBT}
)

type secureBootVariable struct {
	vendor uefi.GUID
	name   string
	label  string
}

// bootOrderData is BootOrder as OVMF's BDS leaves it for a -kernel boot: Boot0000 only.
var bootOrderData = []byte{0x00, 0x00}

// Traits returns the firmware's measurement-relevant build traits (see uefi.BootTraits).
func (f *Firmware) Traits() (*uefi.BootTraits, error) {
	ev, err := f.fixedRTMR0()
	if ev.traits == nil {
		return nil, err
	}
	return ev.traits, nil
}

func (f *Firmware) fixedRTMR0() (firmwareEvents, error) {
	f.rtmr0Once.Do(func() { f.rtmr0Fixed, f.rtmr0Failed = f.buildFixedRTMR0() })
	return f.rtmr0Fixed, f.rtmr0Failed
}

func (f *Firmware) buildFixedRTMR0() (firmwareEvents, error) {
	var ev firmwareEvents
	a, err := f.opts.Analyze(f.image)
	if err != nil {
		return ev, fmt.Errorf("firmware volumes: %w", err)
	}
	ev.traits = a.Traits
	switch {
	case !a.Traits.CCMeasurement:
		return ev, fmt.Errorf("firmware has no TdTcg2Dxe, so its DXE phase extends no RTMR (no variable, ACPI, kernel, command-line or initrd events); what such firmware leaves in RTMR0-2 is not modelled: %w", ErrNotSupported)
	case a.Traits.FwCfgMeasurement:
		// The same edk2 window (stable202505..202511) also measures QEMU's SMBIOS tables
		// (EV_EFI_HANDOFF_TABLES) and adds a BootManagerMenuApp boot option
		// (virtee/tdx-measure#35 lists the commits); none of that is modelled.
		return ev, fmt.Errorf("firmware measures QEMU fw_cfg items into RTMR0 (QemuFwCfgLib cache, edk2 after stable202502); "+
			"such firmware also measures QEMU's SMBIOS tables and logs more boot options, and that RTMR0 event sequence is not modelled: %w", ErrNotSupported)
	case a.Traits.SMMRequired:
		return ev, fmt.Errorf("firmware is built with SMM_REQUIRE (VariableSmm), which needs SMM that TDX guests do not have: %w", ErrNotSupported)
	case a.Traits.LoadOptions == 0:
		return ev, fmt.Errorf("firmware has no recognisable QEMU kernel loader (neither %s nor %s layout of \"initrd=initrd\"): %w",
			uefi.InitrdSuffix, uefi.InitrdPrefix, ErrNotSupported)
	}

	cfv, err := f.CFV()
	if err != nil {
		return ev, err
	}
	ev.cfv = newEvent(0, EvEFIPlatformFirmwareBlob2, LabelCFV, sha384(cfv))
	ev.cfv.Detail = fmt.Sprintf("TDVF CFV section (%d bytes)", len(cfv))

	if ev.vars, err = f.secureBootEvents(a.Traits, cfv); err != nil {
		return ev, err
	}

	if a.BootManagerMenu == nil || len(a.BootManagerMenu.Data) == 0 {
		return ev, errors.New("firmware Boot0000 load option is empty")
	}
	lo := a.BootManagerMenu
	// EV_EFI_VARIABLE_BOOT digests cover the variable data only.
	ev.boot0000 = newEvent(0, EvEFIVariableBoot, LabelBoot0000, sha384(lo.Data))
	ev.boot0000.Detail = fmt.Sprintf("Boot0000: EFI_LOAD_OPTION %q Fv(%s)/FvFile(%s), attributes %#x (%d bytes)",
		lo.Description, lo.VolumeName, lo.FileGUID, lo.Attributes, len(lo.Data))
	return ev, nil
}

// secureBootEvents returns TdTcg2Dxe's EV_EFI_VARIABLE_DRIVER_CONFIG events: SecureBoot, PK,
// KEK, db, dbx (absent ones with empty data), then dbt if it exists.
//
// Which variables exist depends on the build. Without Secure Boot support a TD's emulated
// variable store starts empty (OVMF copies the CFV into it only when PcdSecureBootSupported)
// and AuthVariableLibNull creates no SecureBoot variable, so all five are absent. With it,
// the store is the CFV's and AuthVariableLib creates SecureBoot: 1 when a PK is enrolled and
// SecureBootEnable is not 0, else 0.
func (f *Firmware) secureBootEvents(t *uefi.BootTraits, cfv []byte) ([]Event, error) {
	var vars []uefi.Variable
	source := "empty emulated store: firmware without Secure Boot support does not load the CFV's variables"
	if t.SecureBootCapable {
		if err := uefi.ValidateCFVForEmulatedStore(cfv); err != nil {
			return nil, fmt.Errorf("firmware CFV: OVMF would not load it as the variable store (%v), and booting from an empty store is not modelled: %w", err, ErrNotSupported)
		}
		var err error
		if vars, err = f.opts.Variables(cfv); err != nil {
			return nil, fmt.Errorf("firmware CFV variable store: %w", err)
		}
		if err := checkNoBootOptions(vars); err != nil {
			return nil, err
		}
		source = "CFV variable store"
	}
	secureBoot, why := secureBootMode(t.SecureBootCapable, vars)
	if len(secureBoot) == 1 && secureBoot[0] == 1 {
		return nil, fmt.Errorf("firmware enforces Secure Boot (%s): OVMF then verifies the kernel against db and logs EV_EFI_VARIABLE_AUTHORITY events, which are not modelled: %w", why, ErrNotSupported)
	}

	var out []Event
	add := func(sv secureBootVariable, data []byte, detail string) {
		e := newEvent(0, EvEFIVariableDriverConfig, sv.label, variableDriverConfigDigest(sv.vendor, sv.name, data))
		e.Detail = detail
		out = append(out, e)
	}
	for _, sv := range secureBootVariables {
		if sv.name == "SecureBoot" {
			if secureBoot == nil {
				add(sv, nil, fmt.Sprintf("EFI variable %s:%s (absent: %s)", sv.vendor, sv.name, why))
			} else {
				add(sv, secureBoot, fmt.Sprintf("EFI variable %s:%s = %d (volatile: %s)", sv.vendor, sv.name, secureBoot[0], why))
			}
			continue
		}
		if v := uefi.FindVariable(vars, sv.vendor, sv.name); v != nil {
			add(sv, v.Data, fmt.Sprintf("EFI variable %s:%s (%d bytes, %s)", sv.vendor, sv.name, len(v.Data), source))
		} else {
			add(sv, nil, fmt.Sprintf("EFI variable %s:%s (absent; %s)", sv.vendor, sv.name, source))
		}
	}
	if v := uefi.FindVariable(vars, dbtVariable.vendor, dbtVariable.name); v != nil {
		add(dbtVariable, v.Data, fmt.Sprintf("EFI variable %s:%s (%d bytes, %s; measured because it exists)", dbtVariable.vendor, dbtVariable.name, len(v.Data), source))
	}
	return out, nil
}

// secureBootMode returns the SecureBoot variable's data as AuthVariableLibInitialize
// creates it (nil when the build has no AuthVariableLib) and the reason, for reports.
func secureBootMode(capable bool, vars []uefi.Variable) ([]byte, string) {
	if !capable {
		return nil, "no AuthVariableLib in this build"
	}
	pk := uefi.FindVariable(vars, efiGlobalVariable, "PK")
	if pk == nil || len(pk.Data) == 0 {
		return []byte{0}, "no PK: setup mode"
	}
	enable := uefi.FindVariable(vars, secureBootEnableDisable, "SecureBootEnable")
	switch {
	case enable == nil:
		// User mode without the switch: AuthVariableLib creates it enabled.
		return []byte{1}, "PK enrolled, SecureBootEnable absent (created as 1)"
	case len(enable.Data) == 0 || enable.Data[0] != 1:
		return []byte{0}, "PK enrolled, SecureBootEnable is not 1"
	}
	return []byte{1}, "PK enrolled, SecureBootEnable = 1"
}

// checkNoBootOptions refuses a store that already holds boot options: OVMF's BDS then
// refreshes and reorders them, and BootOrder and the Boot#### it measures are no longer
// the single boot-manager-menu option this package models.
func checkNoBootOptions(vars []uefi.Variable) error {
	for _, v := range vars {
		if v.VendorGUID != efiGlobalVariable {
			continue
		}
		for _, prefix := range []string{"Boot", "Driver", "SysPrep", "PlatformRecovery"} {
			rest, ok := strings.CutPrefix(v.Name, prefix)
			if ok && (rest == "Order" || rest == "Next" || isLoadOptionNumber(rest)) {
				return fmt.Errorf("firmware CFV variable store already holds %s: how BDS then rebuilds BootOrder and Boot#### is not modelled: %w", v.Name, ErrNotSupported)
			}
		}
	}
	return nil
}

func isLoadOptionNumber(s string) bool {
	if len(s) != 4 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789ABCDEF", c) {
			return false
		}
	}
	return true
}
