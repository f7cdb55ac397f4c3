package uefi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf16"
)

// EFI_LOAD_OPTION attributes (UEFI spec 3.1.3).
const (
	LoadOptionActive      = 0x00000001
	LoadOptionHidden      = 0x00000008
	LoadOptionCategoryApp = 0x00000100
)

// bootManagerMenuAttributes is what BmRegisterBootManagerMenu passes to
// EfiBootManagerInitializeLoadOption.
const bootManagerMenuAttributes = LoadOptionCategoryApp | LoadOptionActive | LoadOptionHidden

// bootManagerMenuFallback is BmRegisterBootManagerMenu's description when the
// file has no user-interface section.
const bootManagerMenuFallback = "Boot Manager Menu"

// Device path node types (UEFI spec 10.3).
const (
	devicePathMedia       = 0x04
	devicePathPiwgFile    = 0x06 // MEDIA_PIWG_FW_FILE_DP: FvFile(GUID)
	devicePathPiwgVolume  = 0x07 // MEDIA_PIWG_FW_VOL_DP: Fv(GUID)
	devicePathEnd         = 0x7F
	devicePathEndEntire   = 0xFF
	devicePathGUIDNodeLen = 4 + 16
)

// LoadOption is the Boot#### load option OVMF's BDS registers for its
// boot-manager-menu application, with where each part came from.
type LoadOption struct {
	Data        []byte `json:"-"` // the EFI_LOAD_OPTION: the Boot0000 variable data
	Attributes  uint32 `json:"attributes"`
	Description string `json:"description"`
	VolumeName  GUID   `json:"volume_name"` // Fv() node: the name of the FV holding the file
	FileGUID    GUID   `json:"file_guid"`   // FvFile() node
	UIName      string `json:"ui_name,omitempty"`
	FoundBy     string `json:"found_by"` // how the file was identified
}

// BootManagerLoadOption returns the EFI_LOAD_OPTION OVMF's BDS creates as
// Boot0000 for its boot-manager-menu application (UiApp).
func BootManagerLoadOption(fw []byte) ([]byte, error) {
	lo, err := BootManagerMenu(fw)
	if err != nil {
		return nil, err
	}
	return lo.Data, nil
}

// BootManagerMenu parses the image and builds the boot-manager-menu load option.
func BootManagerMenu(image []byte) (*LoadOption, error) {
	fw, err := Parse(image)
	if err != nil {
		return nil, err
	}
	return fw.BootManagerMenu()
}

// BootManagerMenu mirrors BmRegisterBootManagerMenu (MdeModulePkg
// UefiBootManagerLib/BmBoot.c): the file named by PcdBootManagerMenuFile is
// located in the firmware volumes (the BDS driver's own volume first), its
// device path is Fv(volume name)/FvFile(file)/End, its description is its
// user-interface section, and the option carries no optional data.
func (fw *Firmware) BootManagerMenu() (*LoadOption, error) {
	bds := fw.fileByUIName("BdsDxe")
	menuGUID, foundBy, err := fw.bootManagerMenuGUID(bds)
	if err != nil {
		return nil, err
	}
	f, err := fw.locateForBDS(menuGUID, bds)
	if err != nil {
		return nil, err
	}
	if f.Volume.Name == nil {
		// The DXE core then names the volume by a memory-mapped device path
		// whose addresses depend on where the volume was decompressed to.
		return nil, fmt.Errorf("uefi: volume holding %s has no name GUID: %w", menuGUID, ErrNotSupported)
	}
	desc := uiDescription(f.uiRaw)
	lo := &LoadOption{
		Attributes: bootManagerMenuAttributes,
		VolumeName: *f.Volume.Name,
		FileGUID:   f.Name,
		UIName:     f.UIName,
		FoundBy:    foundBy,
	}
	lo.Description = utf16z(desc)
	lo.Data = encodeLoadOption(lo.Attributes, desc, fvFileDevicePath(lo.VolumeName, lo.FileGUID), nil)
	return lo, nil
}

// bootManagerMenuGUID decides which file PcdBootManagerMenuFile names. The
// PCD is a build-time constant inside the BDS driver, so it cannot be read
// as a value; OvmfPkg sets it to UiApp's GUID (also the MdeModulePkg
// default). That GUID is accepted only if the BDS driver's image really
// contains it; otherwise the single application named "UiApp" whose GUID the
// BDS image contains is used.
func (fw *Firmware) bootManagerMenuGUID(bds *File) (GUID, string, error) {
	var bdsImage []byte
	if bds != nil {
		bdsImage = firstSection(bds.Sections, SectionPE32)
	}
	referenced := func(g GUID) bool { return bdsImage == nil || bytes.Contains(bdsImage, g[:]) }
	if f := fw.fileByGUID(DefaultBootManagerMenu); f != nil && referenced(DefaultBootManagerMenu) {
		how := "PcdBootManagerMenuFile default (UiApp GUID)"
		if bdsImage != nil {
			how += ", referenced by BdsDxe"
		}
		return DefaultBootManagerMenu, how, nil
	}
	var found []GUID
	for _, v := range fw.Volumes {
		for _, f := range v.Files {
			if f.Type == FileTypeApplication && f.UIName == "UiApp" && bdsImage != nil && referenced(f.Name) {
				found = appendUnique(found, f.Name)
			}
		}
	}
	if len(found) == 1 {
		return found[0], "application named UiApp referenced by BdsDxe", nil
	}
	return GUID{}, "", fmt.Errorf("uefi: boot manager menu application not found (%d candidates; %d undecoded encapsulations): %w",
		len(found), len(fw.Unsupported), ErrNotSupported)
}

func appendUnique(gs []GUID, g GUID) []GUID {
	for _, h := range gs {
		if h == g {
			return gs
		}
	}
	return append(gs, g)
}

// locateForBDS mirrors GetFileDevicePathFromAnyFv: the caller's own volume
// first, then every volume; the file must carry a PE32 section.
func (fw *Firmware) locateForBDS(g GUID, bds *File) (*File, error) {
	usable := func(f *File) bool { return f.Name == g && firstSection(f.Sections, SectionPE32) != nil }
	if bds != nil {
		for _, f := range bds.Volume.Files {
			if usable(f) {
				return f, nil
			}
		}
	}
	var hits []*File
	for _, v := range fw.Volumes {
		for _, f := range v.Files {
			if usable(f) {
				hits = append(hits, f)
			}
		}
	}
	switch {
	case len(hits) == 0:
		return nil, fmt.Errorf("uefi: no file %s with a PE32 section: %w", g, ErrNotSupported)
	case len(hits) > 1 && !sameVolumeName(hits):
		// Which one BDS picks depends on the DXE core's volume handle order.
		return nil, fmt.Errorf("uefi: file %s is in %d different volumes: %w", g, len(hits), ErrNotSupported)
	}
	return hits[0], nil
}

func sameVolumeName(fs []*File) bool {
	for _, f := range fs[1:] {
		a, b := f.Volume.Name, fs[0].Volume.Name
		if a == nil || b == nil || *a != *b {
			return false
		}
	}
	return true
}

func (fw *Firmware) fileByGUID(g GUID) *File {
	for _, v := range fw.Volumes {
		for _, f := range v.Files {
			if f.Name == g {
				return f
			}
		}
	}
	return nil
}

// fileByUIName returns the only file with that user-interface name, or nil.
func (fw *Firmware) fileByUIName(name string) *File {
	var hit *File
	for _, v := range fw.Volumes {
		for _, f := range v.Files {
			if f.UIName == name {
				if hit != nil && hit.Name != f.Name {
					return nil
				}
				hit = f
			}
		}
	}
	return hit
}

// firstSection finds a section of the given type through encapsulations,
// in the order the FV2 ReadSection service walks them.
func firstSection(secs []*Section, typ uint8) []byte {
	for _, s := range secs {
		if s.Type == typ {
			return s.Data
		}
		if d := firstSection(s.Children, typ); d != nil {
			return d
		}
	}
	return nil
}

// uiDescription returns the UTF-16LE description including its NUL, as
// EfiBootManagerInitializeLoadOption copies it (StrSize bytes).
func uiDescription(raw []byte) []byte {
	if raw == nil {
		return utf16zEncode(bootManagerMenuFallback)
	}
	for i := 0; i+1 < len(raw); i += 2 {
		if raw[i] == 0 && raw[i+1] == 0 {
			return append([]byte(nil), raw[:i+2]...)
		}
	}
	return append(append([]byte(nil), raw[:len(raw)&^1]...), 0, 0)
}

func utf16zEncode(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 0, 2*len(u)+2)
	for _, c := range u {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return append(b, 0, 0)
}

func fvFileDevicePath(volume, file GUID) []byte {
	var p []byte
	p = append(p, devicePathMedia, devicePathPiwgVolume)
	p = binary.LittleEndian.AppendUint16(p, devicePathGUIDNodeLen)
	p = append(p, volume[:]...)
	p = append(p, devicePathMedia, devicePathPiwgFile)
	p = binary.LittleEndian.AppendUint16(p, devicePathGUIDNodeLen)
	p = append(p, file[:]...)
	return append(p, devicePathEnd, devicePathEndEntire, 4, 0)
}

// encodeLoadOption lays out EFI_LOAD_OPTION as BmGetLoadOptionBuffer /
// EfiBootManagerLoadOptionToVariable do: Attributes, FilePathListLength,
// Description (with NUL), FilePathList, OptionalData.
func encodeLoadOption(attr uint32, desc, path, optional []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, attr)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(path)))
	b = append(b, desc...)
	b = append(b, path...)
	return append(b, optional...)
}
