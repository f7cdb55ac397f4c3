package uefi

import (
	"bytes"
	"fmt"
	"strings"
)

// Files whose presence or content decides how a TDX guest's firmware measures the boot.
// OVMF's build options (SECURE_BOOT_ENABLE, SMM_REQUIRE, the edk2 release) leave no flag in
// the image; the modules they pull in do.
var (
	// TdTcg2Dxe produces EFI_CC_MEASUREMENT_PROTOCOL: without it nothing in DXE extends an
	// RTMR (no variables, ACPI, kernel, command line or initrd events).
	tdTcg2DxeGUID = MustParseGUID("f062221e-c607-44c2-b0b4-c3886331d351")
	// SecureBootConfigDxe is built into OVMF exactly when SECURE_BOOT_ENABLE is set (the
	// same switch that sets PcdSecureBootSupported and links AuthVariableLib).
	secureBootConfigDxeGUID = MustParseGUID("f0e6a44f-7195-41c3-ac64-54f202cd0a21")
	// The variable drivers: runtime (no SMM) and the SMM one of SMM_REQUIRE builds.
	variableRuntimeDxeGUID = MustParseGUID("cbd2e4d5-7068-4ff5-b462-9822b4ad8d60")
	variableSmmGUID        = MustParseGUID("23a089b3-eed5-4ac5-b2ab-43e3298c2343")
)

// LoadOptionsForm is where OVMF's QEMU kernel loader puts "initrd=initrd" in the
// LoadOptions it hands the kernel (and the Linux EFI stub measures into RTMR2).
type LoadOptionsForm int

const (
	// InitrdSuffix: command line, then " initrd=initrd" (edk2 up to stable202502,
	// X86QemuLoadImageLib formatting "%a%a" with the suffix second).
	InitrdSuffix LoadOptionsForm = iota + 1
	// InitrdPrefix: "initrd=initrd ", then the command line (edk2 after stable202502, commit
	// a2ac0fea49 "OvmfPkg/X86QemuLoadImageLib: ... shim", and GenericQemuLoadImageLib).
	InitrdPrefix
)

func (f LoadOptionsForm) String() string {
	switch f {
	case InitrdSuffix:
		return `cmdline + " initrd=initrd"`
	case InitrdPrefix:
		return `"initrd=initrd " + cmdline`
	}
	return "unknown"
}

// The literal each loader variant formats the load options with. The suffix form's
// literal starts with the space; the prefix form's ends with it.
var (
	initrdSuffixLiteral = []byte(" initrd=initrd\x00")
	initrdPrefixLiteral = []byte("initrd=initrd \x00")
	// QemuKernelFetchNamedBlobs compares fw_cfg file names against this prefix.
	namedBlobPrefixLiteral = []byte("etc/boot/\x00")
	// The event description QemuFwCfgLib's fw_cfg cache (edk2 after stable202502,
	// QemuFwCfgCacheInit.c) logs with each QEMU fw_cfg item it measures into RTMR0.
	fwCfgMeasurementLiteral = []byte("QEMU FW CFG\x00")
)

// BootTraits are the build choices of a firmware image that change its TDX RTMR events,
// each read from the modules the image contains, with the evidence.
type BootTraits struct {
	// CCMeasurement: TdTcg2Dxe is present, so DXE measures into RTMRs.
	CCMeasurement bool `json:"cc_measurement"`
	// SecureBootCapable: built with SECURE_BOOT_ENABLE. The variable driver then runs
	// AuthVariableLib (which creates the volatile SecureBoot variable) and OVMF's platform
	// code copies the CFV's variable store into the emulated store a TD uses; without it the
	// TD starts from an empty store whatever the CFV holds.
	SecureBootCapable bool `json:"secure_boot_capable"`
	// SMMRequired: built with SMM_REQUIRE (variables in SMM). TDX guests have no SMM.
	SMMRequired bool `json:"smm_required"`
	// NamedKernelBlobs: the kernel loader fetches QEMU's "etc/boot/*" fw_cfg files first
	// (QemuKernelFetchNamedBlobs). QEMU >= 10.0 publishes the kernel file there as given,
	// so such firmware measures the kernel without QEMU's setup-header patch.
	NamedKernelBlobs bool `json:"named_kernel_blobs"`
	// FwCfgMeasurement: SEC caches QEMU's fw_cfg items and measures several of them
	// (extra PCI roots, BootMenu, bootorder, ...) into RTMR0 as EV_PLATFORM_CONFIG_FLAGS
	// events. The edk2 releases with this cache also measure QEMU's SMBIOS tables and add
	// a Boot#### option.
	FwCfgMeasurement bool `json:"fw_cfg_measurement"`
	// LoadOptions is where the kernel loader puts "initrd=initrd"; 0 when the image has no
	// recognisable QEMU kernel loader.
	LoadOptions LoadOptionsForm `json:"-"`
	// LoadOptionsForm is LoadOptions in words, for reports.
	LoadOptionsForm string `json:"load_options_form"`
	// Evidence says, per trait, which file or string decided it.
	Evidence []string `json:"evidence"`
}

// BootTraits reads the measurement-relevant build choices from a parsed image. An image
// whose modules disagree about a choice (a Secure Boot UI without AuthVariableLib, both
// load-option literals) is reported as ErrNotSupported rather than guessed.
func (fw *Firmware) BootTraits() (*BootTraits, error) {
	t := &BootTraits{}
	if f := fw.fileByGUID(tdTcg2DxeGUID); f != nil {
		t.CCMeasurement = true
		t.Evidence = append(t.Evidence, fmt.Sprintf("CC measurement: %s present", describeFile(f)))
	} else {
		t.Evidence = append(t.Evidence, fmt.Sprintf("CC measurement: no TdTcg2Dxe (%s)", tdTcg2DxeGUID))
	}

	varDriver := fw.fileByGUID(variableRuntimeDxeGUID)
	if smm := fw.fileByGUID(variableSmmGUID); smm != nil {
		t.SMMRequired = true
		varDriver = smm
		t.Evidence = append(t.Evidence, fmt.Sprintf("SMM_REQUIRE: %s present", describeFile(smm)))
	}
	config := fw.fileByGUID(secureBootConfigDxeGUID)
	authLib := false
	if varDriver != nil {
		// AuthVariableLib reads and writes SecureBootEnable; AuthVariableLibNull names no
		// Secure Boot variable beyond what the variable driver's own policy tables list.
		if pe := firstSection(varDriver.Sections, SectionPE32); pe != nil {
			authLib = bytes.Contains(pe, utf16zEncode("SecureBootEnable"))
		}
	}
	switch {
	case config != nil && authLib:
		t.SecureBootCapable = true
		t.Evidence = append(t.Evidence, fmt.Sprintf("Secure Boot capable: %s present and %s links AuthVariableLib",
			describeFile(config), describeFile(varDriver)))
	case config == nil && !authLib:
		what := "no variable driver"
		if varDriver != nil {
			what = describeFile(varDriver) + " without AuthVariableLib"
		}
		t.Evidence = append(t.Evidence, fmt.Sprintf("no Secure Boot: no SecureBootConfigDxe, %s", what))
	default:
		return nil, fmt.Errorf("uefi: cannot tell whether the firmware was built with Secure Boot: SecureBootConfigDxe present = %t, AuthVariableLib in the variable driver = %t: %w",
			config != nil, authLib, ErrNotSupported)
	}

	var suffixIn, prefixIn, namedIn, fwCfgIn []string
	for _, v := range fw.Volumes {
		for _, f := range v.Files {
			pe := firstSection(f.Sections, SectionPE32)
			if pe == nil {
				continue
			}
			if bytes.Contains(pe, fwCfgMeasurementLiteral) {
				fwCfgIn = append(fwCfgIn, describeFile(f))
			}
			if bytes.Contains(pe, initrdSuffixLiteral) {
				suffixIn = append(suffixIn, describeFile(f))
			}
			if bytes.Contains(pe, initrdPrefixLiteral) {
				prefixIn = append(prefixIn, describeFile(f))
			}
			if bytes.Contains(pe, namedBlobPrefixLiteral) {
				namedIn = append(namedIn, describeFile(f))
			}
		}
	}
	switch {
	case len(suffixIn) > 0 && len(prefixIn) == 0:
		t.LoadOptions = InitrdSuffix
		t.Evidence = append(t.Evidence, fmt.Sprintf("kernel load options %s: %q in %s", t.LoadOptions, cString(initrdSuffixLiteral), strings.Join(suffixIn, ", ")))
	case len(prefixIn) > 0 && len(suffixIn) == 0:
		t.LoadOptions = InitrdPrefix
		t.Evidence = append(t.Evidence, fmt.Sprintf("kernel load options %s: %q in %s", t.LoadOptions, cString(initrdPrefixLiteral), strings.Join(prefixIn, ", ")))
	case len(prefixIn) > 0:
		return nil, fmt.Errorf("uefi: the firmware holds both kernel load-option layouts (suffix in %s, prefix in %s): %w",
			strings.Join(suffixIn, ", "), strings.Join(prefixIn, ", "), ErrNotSupported)
	default:
		t.Evidence = append(t.Evidence, "kernel load options: no QEMU kernel loader literal found")
	}
	t.LoadOptionsForm = t.LoadOptions.String()
	if t.FwCfgMeasurement = len(fwCfgIn) > 0; t.FwCfgMeasurement {
		t.Evidence = append(t.Evidence, fmt.Sprintf("fw_cfg measurement: %q in %s", cString(fwCfgMeasurementLiteral), strings.Join(fwCfgIn, ", ")))
	} else {
		t.Evidence = append(t.Evidence, "no fw_cfg measurement: no QemuFwCfgLib cache measures QEMU's fw_cfg items")
	}
	if t.NamedKernelBlobs = len(namedIn) > 0; t.NamedKernelBlobs {
		t.Evidence = append(t.Evidence, fmt.Sprintf("named kernel blobs: %q in %s", cString(namedBlobPrefixLiteral), strings.Join(namedIn, ", ")))
	} else {
		t.Evidence = append(t.Evidence, "no named kernel blobs: the kernel loader reads only QEMU's setup and kernel items")
	}
	return t, nil
}

// cString is a NUL-terminated literal without its NUL, for reports.
func cString(b []byte) string { return string(bytes.TrimSuffix(b, []byte{0})) }

func describeFile(f *File) string {
	if f.UIName != "" {
		return fmt.Sprintf("%s (%s)", f.UIName, f.Name)
	}
	return f.Name.String()
}

// BootAnalysis is what a TDX measurement reads from a firmware image's volumes.
type BootAnalysis struct {
	Traits *BootTraits
	// BootManagerMenu is the Boot0000 load option BDS creates; nil when the firmware makes
	// no DXE measurements (Traits.CCMeasurement false), since nothing would log it.
	BootManagerMenu *LoadOption
}

// AnalyzeBoot parses the whole image once and returns its build traits and Boot0000.
func AnalyzeBoot(image []byte) (*BootAnalysis, error) {
	fw, err := Parse(image)
	if err != nil {
		return nil, err
	}
	return fw.AnalyzeBoot()
}

// AnalyzeBoot is the package-level AnalyzeBoot for an image already parsed.
func (fw *Firmware) AnalyzeBoot() (*BootAnalysis, error) {
	t, err := fw.BootTraits()
	if err != nil {
		return nil, err
	}
	a := &BootAnalysis{Traits: t}
	if !t.CCMeasurement {
		return a, nil
	}
	if a.BootManagerMenu, err = fw.BootManagerMenu(); err != nil {
		return nil, err
	}
	return a, nil
}
