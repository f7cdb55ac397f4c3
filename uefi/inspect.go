package uefi

import "fmt"

// FirmwareReport describes an image's volumes and files for humans and for
// `dstack-mr firmware inspect`.
type FirmwareReport struct {
	Size        int             `json:"size"`
	Volumes     []VolumeReport  `json:"volumes"`
	Unsupported []string        `json:"unsupported,omitempty"`
	BootManager *LoadOption     `json:"boot_manager_menu,omitempty"`
	BootError   string          `json:"boot_manager_menu_error,omitempty"`
	Variables   []VariableBrief `json:"variables"`
	VarError    string          `json:"variables_error,omitempty"`
	Traits      *BootTraits     `json:"measurement_traits,omitempty"`
	TraitsError string          `json:"measurement_traits_error,omitempty"`
}

// VolumeReport is one firmware volume. Offset is inside the image for
// top-level volumes and inside the decompressed container otherwise.
type VolumeReport struct {
	Offset        int          `json:"offset"`
	Size          uint64       `json:"size"`
	FileSystem    GUID         `json:"file_system"`
	Name          *GUID        `json:"name,omitempty"`
	Depth         int          `json:"depth"`
	Container     *GUID        `json:"container_file,omitempty"`
	ChecksumValid bool         `json:"checksum_valid"`
	Files         []FileReport `json:"files,omitempty"`
}

// FileReport is one FFS file.
type FileReport struct {
	GUID     GUID   `json:"guid"`
	Type     uint8  `json:"type"`
	TypeName string `json:"type_name"`
	Offset   int    `json:"offset"`
	Size     uint64 `json:"size"`
	UIName   string `json:"ui_name,omitempty"`
}

// VariableBrief summarises a variable without its data.
type VariableBrief struct {
	VendorGUID GUID   `json:"vendor_guid"`
	Name       string `json:"name"`
	Attributes uint32 `json:"attributes"`
	DataSize   int    `json:"data_size"`
}

// Inspect parses an image and reports what it contains. Parts that cannot
// be derived (boot manager menu, variables) are reported as errors inside
// the report; only an image without parseable volumes fails.
func Inspect(image []byte) (*FirmwareReport, error) {
	fw, err := Parse(image)
	if err != nil {
		return nil, err
	}
	return fw.Inspect(len(image)), nil
}

// Inspect reports on an image already parsed; size is the image's length.
func (fw *Firmware) Inspect(size int) *FirmwareReport {
	r := &FirmwareReport{Size: size, Unsupported: fw.Unsupported, Variables: []VariableBrief{}}
	for _, v := range fw.Volumes {
		vr := VolumeReport{
			Offset: v.Offset, Size: v.Length, FileSystem: v.FileSystem, Name: v.Name,
			Depth: v.Depth, ChecksumValid: v.ChecksumValid,
		}
		if v.Container != nil {
			g := v.Container.Name
			vr.Container = &g
		}
		for _, f := range v.Files {
			vr.Files = append(vr.Files, FileReport{
				GUID: f.Name, Type: f.Type, TypeName: FileTypeName(f.Type),
				Offset: f.Offset, Size: f.Size, UIName: f.UIName,
			})
		}
		r.Volumes = append(r.Volumes, vr)
	}
	if lo, err := fw.BootManagerMenu(); err != nil {
		r.BootError = err.Error()
	} else {
		r.BootManager = lo
	}
	if t, err := fw.BootTraits(); err != nil {
		r.TraitsError = err.Error()
	} else {
		r.Traits = t
	}
	cfv, err := fw.VariableStoreVolume()
	var vars []Variable
	if err == nil {
		vars, err = ReadVariables(cfv)
	}
	if err != nil {
		r.VarError = err.Error()
	}
	for _, v := range vars {
		r.Variables = append(r.Variables, VariableBrief{v.VendorGUID, v.Name, v.Attributes, len(v.Data)})
	}
	return r
}

var fileTypeNames = map[uint8]string{
	0x01: "RAW", 0x02: "FREEFORM", 0x03: "SECURITY_CORE", 0x04: "PEI_CORE", 0x05: "DXE_CORE",
	0x06: "PEIM", 0x07: "DRIVER", 0x08: "COMBINED_PEIM_DRIVER", 0x09: "APPLICATION", 0x0A: "MM",
	0x0B: "FIRMWARE_VOLUME_IMAGE", 0x0C: "COMBINED_MM_DXE", 0x0D: "MM_CORE", 0x0E: "MM_STANDALONE",
	0x0F: "MM_CORE_STANDALONE", 0xF0: "FFS_PAD",
}

// FileTypeName returns the PI spec name of an FFS file type.
func FileTypeName(t uint8) string {
	if n, ok := fileTypeNames[t]; ok {
		return n
	}
	switch {
	case t >= 0xC0 && t <= 0xDF:
		return fmt.Sprintf("OEM_%#02x", t)
	case t >= 0xE0 && t <= 0xEF:
		return fmt.Sprintf("DEBUG_%#02x", t)
	}
	return fmt.Sprintf("UNKNOWN_%#02x", t)
}
