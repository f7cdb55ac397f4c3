package uefi

import (
	"encoding/binary"
	"fmt"
)

// Variable store layout (MdeModulePkg/Include/Guid/VariableFormat.h).
const (
	varStoreHeaderLen  = 28 // Signature, Size, Format, State, Reserved, Reserved1
	varStoreFormatted  = 0x5A
	varStoreHealthy    = 0xFE
	varStartID         = 0x55AA
	varHeaderLen       = 32 // VARIABLE_HEADER
	authVarHeaderLen   = 60 // AUTHENTICATED_VARIABLE_HEADER (packed)
	varHeaderAlignment = 4  // HEADER_ALIGNMENT; names and data are unaligned on x86 (ALIGNMENT 1)

	// VarAdded is the State of a completely written, live variable.
	VarAdded = 0x3F
	// varAddedInDeletion is VAR_ADDED & VAR_IN_DELETED_TRANSITION: the old
	// copy while an update is in flight; live only if no VAR_ADDED copy exists.
	varAddedInDeletion = 0x3E
)

// Variable is one live variable from a non-volatile variable store.
type Variable struct {
	VendorGUID GUID   `json:"vendor_guid"`
	Name       string `json:"name"`
	Attributes uint32 `json:"attributes"`
	Data       []byte `json:"data"`
	// Authenticated-store header fields; zero in a plain store.
	MonotonicCount uint64   `json:"monotonic_count,omitempty"`
	TimeStamp      [16]byte `json:"-"` // EFI_TIME
	PubKeyIndex    uint32   `json:"pub_key_index,omitempty"`
}

// ReadVariables returns the live variables of a variable store. cfv is
// either the varstore firmware volume (OVMF's CFV: an FV with the NVRAM
// file-system GUID whose header is followed by the store) or a bare
// VARIABLE_STORE_HEADER and its contents. An erased (never formatted)
// store has no variables. Variables come in store order; one found only in
// the middle of an update (VAR_IN_DELETED_TRANSITION) comes after them.
func ReadVariables(cfv []byte) ([]Variable, error) {
	store, err := variableStore(cfv)
	if err != nil {
		return nil, err
	}
	if store == nil {
		return nil, nil
	}
	return parseVariables(store)
}

// variableStore returns the formatted store (header through Size), or nil
// for an erased one.
func variableStore(b []byte) ([]byte, error) {
	if len(b) >= fvHeaderMinLen && string(b[fvSignatureOffset:fvSignatureOffset+4]) == "_FVH" {
		if fs := guidAt(b, 16); fs != NVRAMGUID {
			return nil, fmt.Errorf("uefi: CFV file system %s, want NVRAM %s", fs, NVRAMGUID)
		}
		length := binary.LittleEndian.Uint64(b[32:])
		hl := int(binary.LittleEndian.Uint16(b[48:]))
		if length > uint64(len(b)) {
			return nil, fmt.Errorf("uefi: CFV FvLength %#x exceeds the %#x bytes given", length, len(b))
		}
		if hl < fvHeaderMinLen || uint64(hl) > length {
			return nil, fmt.Errorf("uefi: CFV HeaderLength %d outside [%d, %#x]", hl, fvHeaderMinLen, length)
		}
		b = b[hl:length]
	}
	if len(b) < varStoreHeaderLen {
		return nil, fmt.Errorf("uefi: variable store header truncated: %d bytes", len(b))
	}
	if allBytes(b[:varStoreHeaderLen], 0xFF) {
		return nil, nil
	}
	sig := guidAt(b, 0)
	if sig != AuthenticatedVariableStoreGUID && sig != VariableStoreGUID {
		return nil, fmt.Errorf("uefi: variable store signature %s is neither %s nor %s",
			sig, AuthenticatedVariableStoreGUID, VariableStoreGUID)
	}
	size := binary.LittleEndian.Uint32(b[16:])
	if size < varStoreHeaderLen || uint64(size) > uint64(len(b)) {
		return nil, fmt.Errorf("uefi: variable store Size %#x outside [%d, %#x]", size, varStoreHeaderLen, len(b))
	}
	if b[20] != varStoreFormatted || b[21] != varStoreHealthy {
		return nil, fmt.Errorf("uefi: variable store Format %#x / State %#x, want %#x / %#x",
			b[20], b[21], varStoreFormatted, varStoreHealthy)
	}
	return b[:size], nil
}

func parseVariables(store []byte) ([]Variable, error) {
	auth := guidAt(store, 0) == AuthenticatedVariableStoreGUID
	hl := varHeaderLen
	if auth {
		hl = authVarHeaderLen
	}
	var live []Variable
	var transit []Variable
	for off := align(varStoreHeaderLen, varHeaderAlignment); off+hl <= len(store); {
		h := store[off : off+hl]
		if binary.LittleEndian.Uint16(h) != varStartID {
			break // end of the written part of the store
		}
		v, state, next, err := parseVariable(store, off, hl, auth)
		if err != nil {
			return nil, err
		}
		switch state {
		case VarAdded:
			live = append(live, v)
		case varAddedInDeletion:
			transit = append(transit, v)
		}
		off = next
	}
	// FindVariable in the variable driver prefers a VAR_ADDED copy and falls
	// back to one caught mid-update.
	for _, t := range transit {
		if FindVariable(live, t.VendorGUID, t.Name) == nil {
			live = append(live, t)
		}
	}
	return dedupe(live), nil
}

// parseVariable decodes the variable at off and returns the offset of the next.
func parseVariable(store []byte, off, hl int, auth bool) (Variable, uint8, int, error) {
	h := store[off : off+hl]
	state := h[2]
	var v Variable
	v.Attributes = binary.LittleEndian.Uint32(h[4:])
	p := 8
	if auth {
		v.MonotonicCount = binary.LittleEndian.Uint64(h[8:])
		copy(v.TimeStamp[:], h[16:32])
		v.PubKeyIndex = binary.LittleEndian.Uint32(h[32:])
		p = 36
	}
	nameSize := binary.LittleEndian.Uint32(h[p:])
	dataSize := binary.LittleEndian.Uint32(h[p+4:])
	v.VendorGUID = guidAt(h, p+8)
	// A header written without its sizes (power loss) has all-ones fields;
	// the variable driver treats them as zero-length.
	if state == 0xFF || nameSize == ^uint32(0) || dataSize == ^uint32(0) || v.Attributes == ^uint32(0) {
		nameSize, dataSize = 0, 0
	}
	rest := uint64(len(store) - off - hl)
	if uint64(nameSize)+uint64(dataSize) > rest {
		return v, 0, 0, fmt.Errorf("uefi: variable at store offset %#x: NameSize %#x + DataSize %#x exceed the %#x bytes left",
			off, nameSize, dataSize, rest)
	}
	nameOff := off + hl
	dataOff := nameOff + int(nameSize)
	v.Name = utf16z(store[nameOff:dataOff])
	v.Data = append([]byte(nil), store[dataOff:dataOff+int(dataSize)]...)
	return v, state, align(dataOff+int(dataSize), varHeaderAlignment), nil
}

// dedupe keeps the first copy of each (GUID, name); a well-formed store
// has one live copy, so later ones can only be leftovers.
func dedupe(vs []Variable) []Variable {
	out := vs[:0]
	for _, v := range vs {
		if FindVariable(out, v.VendorGUID, v.Name) == nil {
			out = append(out, v)
		}
	}
	return out
}

// FindVariable returns the variable with that vendor GUID and name, or nil.
func FindVariable(vars []Variable, guid GUID, name string) *Variable {
	for i := range vars {
		if vars[i].VendorGUID == guid && vars[i].Name == name {
			return &vars[i]
		}
	}
	return nil
}

// UTF16LE encodes a variable name as UEFI stores and measures it, without
// the terminating NUL (UEFI_VARIABLE_DATA.UnicodeName).
func UTF16LE(s string) []byte {
	b := utf16zEncode(s)
	return b[:len(b)-2]
}

// VariableStoreVolume returns the first top-level NVRAM firmware volume of
// a flash image: the CFV that ReadVariables takes.
func VariableStoreVolume(image []byte) ([]byte, error) {
	fw, err := Parse(image)
	if err != nil {
		return nil, err
	}
	return fw.VariableStoreVolume()
}

// VariableStoreVolume returns the first top-level NVRAM volume's bytes.
func (fw *Firmware) VariableStoreVolume() ([]byte, error) {
	for _, v := range fw.Volumes {
		if v.Depth == 0 && v.FileSystem == NVRAMGUID {
			return v.Data, nil
		}
	}
	return nil, fmt.Errorf("uefi: no NVRAM (%s) firmware volume in the image", NVRAMGUID)
}
