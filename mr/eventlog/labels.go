package eventlog

import (
	"bytes"
	"encoding/binary"
	"strings"
	"unicode/utf16"
)

// TCG PC Client event types that appear in the boot-time part of a dstack TDX log.
const (
	EvPostCode                 = 0x1
	EvSeparator                = 0x4
	EvEventTag                 = 0x6
	EvPlatformConfigFlags      = 0xa
	EvEFIVariableDriverConfig  = 0x80000001
	EvEFIVariableBoot          = 0x80000002
	EvEFIBootServicesApp       = 0x80000003
	EvEFIAction                = 0x80000007
	EvEFIHandoffTables         = 0x80000009
	EvEFIPlatformFirmwareBlob2 = 0x8000000a
	EvEFIHandoffTables2        = 0x8000000b
	acpiDataPayload            = "ACPI DATA"
)

// EV_EFI_ACTION strings the boot manager and DxeCore log into RTMR1 around starting the
// kernel (MdePkg/Include/Protocol/Tcg2Protocol.h EFI_CALLING_EFI_APPLICATION etc.).
const (
	ActionCallingEFIApp     = "Calling EFI Application from Boot Option"
	ActionExitBootServices  = "Exit Boot Services Invocation"
	ActionExitBootSvcReturn = "Exit Boot Services Returned with Success"
)

// Labels of boot-time events. They match the labels package mr gives its computed log.
const (
	LabelTDHob      = "td-hob"
	LabelCFV        = "cfv"
	LabelSecureBoot = "secure-boot"
	LabelPK         = "pk"
	LabelKEK        = "kek"
	LabelDB         = "db"
	LabelDBX        = "dbx"
	LabelDBT        = "dbt"
	LabelSeparator  = "separator"
	LabelACPILoader = "acpi-loader"
	LabelACPIRSDP   = "acpi-rsdp"
	LabelACPITables = "acpi-tables"
	LabelBootOrder  = "boot-order"
	// Events of edk2 >= stable202505 firmware, which dstack-mr recognises but does not model:
	// a QEMU fw_cfg item cached and measured in SEC, and QEMU's SMBIOS tables.
	LabelQEMUFwCfg       = "qemu-fw-cfg"
	LabelSMBIOSHandoff   = "smbios-handoff-tables"
	LabelBoot0000        = "boot0000"
	LabelKernel          = "kernel"
	LabelBootAttempt     = "efi-action-calling-efi-application"
	LabelExitBootSvc     = "efi-action-exit-boot-services"
	LabelExitBootSvcDone = "efi-action-exit-boot-services-returned"
	LabelCmdline         = "cmdline"
	LabelInitrd          = "initrd"
)

var (
	secureBootVarOrder = []string{LabelSecureBoot, LabelPK, LabelKEK, LabelDB, LabelDBX}
	acpiOrder          = []string{LabelACPILoader, LabelACPIRSDP, LabelACPITables}
	bootVarOrder       = []string{LabelBootOrder, LabelBoot0000}
	efiActionOrder     = []string{LabelBootAttempt, LabelExitBootSvc, LabelExitBootSvcDone}
	eventTagOrder      = []string{LabelCmdline, LabelInitrd}
	secureBootVarNames = map[string]string{"SecureBoot": LabelSecureBoot, "PK": LabelPK, "KEK": LabelKEK, "db": LabelDB, "dbx": LabelDBX, "dbt": LabelDBT}
	efiActionLabels    = map[string]string{ActionCallingEFIApp: LabelBootAttempt, ActionExitBootServices: LabelExitBootSvc, ActionExitBootSvcReturn: LabelExitBootSvcDone}
)

// Label names every event after what it measures, from its payload when the log kept it and
// from its position among events of the same type otherwise (dstack's compact logs strip
// boot-time payloads). Runtime events are labelled with their own name. Events this package
// does not recognise keep an empty label.
func Label(events []Event) {
	seen := map[[2]uint32]int{}
	for i := range events {
		e := &events[i]
		// A fw_cfg item shares the ACPI events' type; it must not take an ACPI blob's place.
		if IsQEMUFwCfgEvent(e) {
			e.Label = LabelQEMUFwCfg
			continue
		}
		key := [2]uint32{e.IMR, e.EventType}
		nth := seen[key]
		seen[key]++
		e.Label = labelFor(e, nth)
	}
}

// qemuFwCfgPrefix opens the payload of the RTMR0 event edk2 >= stable202505 logs for each QEMU
// fw_cfg item it measures (OvmfPkg QemuFwCfgCacheInit: "QEMU FW CFG" NUL, then the item name).
var qemuFwCfgPrefix = []byte("QEMU FW CFG\x00")

// IsQEMUFwCfgEvent reports whether e is such a fw_cfg item event.
func IsQEMUFwCfgEvent(e *Event) bool {
	return e.IMR == 0 && e.EventType == EvPlatformConfigFlags && bytes.HasPrefix(e.Payload, qemuFwCfgPrefix)
}

// QEMUFwCfgItem is the fw_cfg item name such an event measured.
func QEMUFwCfgItem(e *Event) string {
	name, _, _ := bytes.Cut(e.Payload[len(qemuFwCfgPrefix):], []byte{0})
	return string(name)
}

func labelFor(e *Event, nth int) string {
	ordinal := func(order []string) string {
		if nth < len(order) {
			return order[nth]
		}
		return ""
	}
	if e.IsRuntime() {
		return e.Name
	}
	switch e.IMR {
	case 0:
		switch e.EventType {
		case EvEFIHandoffTables2:
			return LabelTDHob
		case EvEFIHandoffTables:
			return LabelSMBIOSHandoff
		case EvEFIPlatformFirmwareBlob2:
			return LabelCFV
		case EvEFIVariableDriverConfig:
			if name, ok := efiVariableName(e.Payload); ok {
				return secureBootVarNames[name]
			}
			return ordinal(secureBootVarOrder)
		case EvSeparator:
			return LabelSeparator
		case EvPlatformConfigFlags:
			// dstack's guest names the three ACPI DATA events itself; trust only known names.
			for _, l := range acpiOrder {
				if e.Name == l {
					return l
				}
			}
			return ordinal(acpiOrder)
		case EvEFIVariableBoot:
			if name, ok := efiVariableName(e.Payload); ok {
				if name == "BootOrder" {
					return LabelBootOrder
				}
				return strings.ToLower(name)
			}
			return ordinal(bootVarOrder)
		}
	case 1:
		switch e.EventType {
		case EvEFIBootServicesApp:
			return LabelKernel
		case EvSeparator:
			return LabelSeparator
		case EvEFIAction:
			if l, ok := efiActionLabels[string(e.Payload)]; ok {
				return l
			}
			return ordinal(efiActionOrder)
		}
	case 2:
		if e.EventType == EvEventTag {
			switch {
			case bytes.Contains(e.Payload, []byte("LOADED_IMAGE::LoadOptions")):
				return LabelCmdline
			case bytes.Contains(e.Payload, []byte("Linux initrd")):
				return LabelInitrd
			}
			return ordinal(eventTagOrder)
		}
	}
	return ""
}

// efiVariableName reads the variable name of a UEFI_VARIABLE_DATA payload: GUID (16 bytes),
// UnicodeNameLength (u64, in characters), VariableDataLength (u64), then the UTF-16LE name.
func efiVariableName(p []byte) (string, bool) {
	if len(p) < 32 {
		return "", false
	}
	n := binary.LittleEndian.Uint64(p[16:])
	if n == 0 || n > uint64(len(p)-32)/2 {
		return "", false
	}
	u := make([]uint16, n)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(p[32+2*i:])
	}
	return string(utf16.Decode(u)), true
}
