package uefi

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrNotSupported marks firmware constructs this package recognises but does
// not decode (e.g. Tiano-compressed sections); callers must not guess a value.
var ErrNotSupported = errors.New("uefi: not supported yet")

// GUID is an EFI_GUID in its in-memory (EFI) byte order: the first three
// fields little-endian, the last eight bytes as written. That is the order
// firmware stores and measures, so it is the order kept here.
type GUID [16]byte

// ParseGUID parses the canonical text form "aabbccdd-eeff-0011-2233-445566778899".
func ParseGUID(s string) (GUID, error) {
	var g GUID
	parts := strings.Split(s, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 ||
		len(parts[3]) != 4 || len(parts[4]) != 12 {
		return g, fmt.Errorf("uefi: malformed GUID %q", s)
	}
	raw, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return g, fmt.Errorf("uefi: malformed GUID %q: %v", s, err)
	}
	binary.LittleEndian.PutUint32(g[0:4], binary.BigEndian.Uint32(raw[0:4]))
	binary.LittleEndian.PutUint16(g[4:6], binary.BigEndian.Uint16(raw[4:6]))
	binary.LittleEndian.PutUint16(g[6:8], binary.BigEndian.Uint16(raw[6:8]))
	copy(g[8:], raw[8:])
	return g, nil
}

// MustParseGUID is ParseGUID for compile-time constants.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// String returns the canonical lower-case text form.
func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(g[0:4]),
		binary.LittleEndian.Uint16(g[4:6]),
		binary.LittleEndian.Uint16(g[6:8]),
		g[8:10], g[10:16])
}

// Bytes returns the EFI byte-order encoding (what EV_EFI_VARIABLE_* events hash).
func (g GUID) Bytes() []byte { b := g; return b[:] }

// MarshalText makes GUIDs print canonically in JSON reports.
func (g GUID) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

// UnmarshalText accepts the canonical text form.
func (g *GUID) UnmarshalText(b []byte) error {
	p, err := ParseGUID(string(b))
	if err != nil {
		return err
	}
	*g = p
	return nil
}

func guidAt(b []byte, off int) GUID {
	var g GUID
	copy(g[:], b[off:off+16])
	return g
}

// Well-known GUIDs, named after their EDK2 symbols.
var (
	// File systems an FV can carry.
	FileSystem2GUID = MustParseGUID("8c8ce578-8a3d-4f1c-9935-896185c32dd3") // gEfiFirmwareFileSystem2Guid
	FileSystem3GUID = MustParseGUID("5473c07a-3dcb-4dca-bd6f-1e9689e7349a") // gEfiFirmwareFileSystem3Guid
	// NVRAMGUID is the file-system GUID of OVMF's varstore FV (gEfiSystemNvDataFvGuid).
	NVRAMGUID = MustParseGUID("fff12b8d-7696-4c8b-a985-2747075b4f50")

	// Variable store signatures.
	AuthenticatedVariableStoreGUID = MustParseGUID("aaf32c78-947b-439a-a180-2e144ec37792") // gEfiAuthenticatedVariableGuid
	VariableStoreGUID              = MustParseGUID("ddcf3616-3275-4164-98b6-fe85707ffe7d") // gEfiVariableGuid

	// GUID-defined section encapsulations.
	LzmaCustomDecompressGUID    = MustParseGUID("ee4e5898-3914-4259-9d6e-dc7bd79403cf") // gLzmaCustomDecompressGuid
	LzmaF86CustomDecompressGUID = MustParseGUID("d42ae6bd-1352-4bfb-909a-ca72a6eae889")
	TianoCustomDecompressGUID   = MustParseGUID("a31280ad-481e-41b6-95e8-127f4c984779")
	Crc32GuidedSectionGUID      = MustParseGUID("fc1bcdb0-7d31-49aa-936a-a4600d9dd083") // gEfiCrc32GuidedSectionExtractionGuid

	// Variable namespaces used by measured boot.
	GlobalVariableGUID     = MustParseGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c") // EFI_GLOBAL_VARIABLE
	ImageSecurityDatabase  = MustParseGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f") // EFI_IMAGE_SECURITY_DATABASE_GUID (db, dbx)
	DefaultBootManagerMenu = MustParseGUID("462caa21-7614-4503-836e-8ab6f4662331") // MdeModulePkg PcdBootManagerMenuFile default (UiApp)
)
