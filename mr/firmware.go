package mr

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/dstack-mr/dstack-mr/uefi"
)

// FirmwareOptions replaces the sources of firmware-derived RTMR0 data. The zero value uses
// the uefi package, which derives both from the image itself.
type FirmwareOptions struct {
	// BootOption returns the EFI_LOAD_OPTION OVMF's BDS stores as Boot0000 (its boot manager
	// menu). nil: uefi.BootManagerLoadOptionQuick.
	BootOption func(image []byte) ([]byte, error)
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

// firmwareEvents are the RTMR0 events that depend only on the firmware image.
type firmwareEvents struct {
	cfv      Event
	vars     []Event // SecureBoot, PK, KEK, db, dbx
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
	if opts.BootOption == nil {
		opts.BootOption = uefi.BootManagerLoadOptionQuick
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

// Secure Boot variables TdTcg2Dxe measures (MeasureAllSecureVariables), in order.
var (
	efiGlobalVariable     = uefi.MustParseGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
	imageSecurityDatabase = uefi.MustParseGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")

	secureBootVariables = []struct {
		vendor uefi.GUID
		name   string
		label  string
	}{
		{efiGlobalVariable, "SecureBoot", LabelSecureBoot},
		{efiGlobalVariable, "PK", LabelPK},
		{efiGlobalVariable, "KEK", LabelKEK},
		{imageSecurityDatabase, "db", LabelDB},
		{imageSecurityDatabase, "dbx", LabelDBX},
	}
)

// bootOrderData is BootOrder as OVMF's BDS leaves it for a -kernel boot: Boot0000 only.
var bootOrderData = []byte{0x00, 0x00}

func (f *Firmware) fixedRTMR0() (firmwareEvents, error) {
	f.rtmr0Once.Do(func() { f.rtmr0Fixed, f.rtmr0Failed = f.buildFixedRTMR0() })
	return f.rtmr0Fixed, f.rtmr0Failed
}

func (f *Firmware) buildFixedRTMR0() (firmwareEvents, error) {
	var ev firmwareEvents
	cfv, err := f.CFV()
	if err != nil {
		return ev, err
	}
	ev.cfv = newEvent(0, EvEFIPlatformFirmwareBlob2, LabelCFV, sha384(cfv))
	ev.cfv.Detail = fmt.Sprintf("TDVF CFV section (%d bytes)", len(cfv))

	vars, err := f.opts.Variables(cfv)
	if err != nil {
		return ev, fmt.Errorf("firmware CFV variable store: %w", err)
	}
	if pk := uefi.FindVariable(vars, efiGlobalVariable, "PK"); pk != nil && len(pk.Data) > 0 {
		// With a PK enrolled, AuthVariableLib creates the volatile SecureBoot variable from
		// SecureBootEnable and the platform mode; that is not modelled.
		return ev, fmt.Errorf("firmware variable store has a PK enrolled: the SecureBoot variable's value: %w", ErrNotSupported)
	}
	if dbt := uefi.FindVariable(vars, imageSecurityDatabase, "dbt"); dbt != nil {
		// TdTcg2Dxe measures dbt as one more event when it exists.
		return ev, fmt.Errorf("firmware variable store has a dbt variable: %w", ErrNotSupported)
	}
	for _, sv := range secureBootVariables {
		var data []byte
		detail := fmt.Sprintf("EFI variable %s:%s (absent)", sv.vendor, sv.name)
		// SecureBoot is volatile, never in the store; absent variables are measured empty.
		if v := uefi.FindVariable(vars, sv.vendor, sv.name); v != nil && sv.name != "SecureBoot" {
			data = v.Data
			detail = fmt.Sprintf("EFI variable %s:%s (%d bytes)", sv.vendor, sv.name, len(data))
		}
		e := newEvent(0, EvEFIVariableDriverConfig, sv.label,
			variableDriverConfigDigest(sv.vendor, sv.name, data))
		e.Detail = detail
		ev.vars = append(ev.vars, e)
	}

	lo, err := f.opts.BootOption(f.image)
	if err != nil {
		return ev, fmt.Errorf("firmware Boot0000 load option: %w", err)
	}
	if len(lo) == 0 {
		return ev, errors.New("firmware Boot0000 load option is empty")
	}
	// EV_EFI_VARIABLE_BOOT digests cover the variable data only.
	ev.boot0000 = newEvent(0, EvEFIVariableBoot, LabelBoot0000, sha384(lo))
	ev.boot0000.Detail = fmt.Sprintf("Boot0000: EFI_LOAD_OPTION of the boot manager menu application found in the firmware (%d bytes; see firmware inspect)", len(lo))
	return ev, nil
}
